"""The Lua scripts that make each state change one atomic Redis step, loaded once per client."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from lockhook import keys

NAMES = ("ingest", "apply_event", "register", "transition")


@cache
def source(name: str) -> str:
    """A script's text: the shared helpers followed by the script itself."""
    folder = files("lockhook") / "lua"
    return (folder / "common.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


class Scripts:
    """Registered scripts for one Redis client (sync or asyncio); call as `scripts.ingest(args=[...])`."""

    def __init__(self, client):
        for name in NAMES:
            setattr(self, name, client.register_script(source(name)))

    @staticmethod
    def args(now_ms: int, *rest) -> list:
        """ARGV always starts with the key prefix and the current time in ms."""
        return [keys.PREFIX, now_ms, *rest]
