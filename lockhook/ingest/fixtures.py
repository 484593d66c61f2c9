"""The fixture format for recorded deliveries: {"endpoint", "headers", "body"} per JSON file or JSONL line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lockhook.ingest.inbox import Delivery

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def to_fixture(delivery: Delivery) -> dict:
    return {"endpoint": delivery.endpoint, "headers": delivery.headers, "body": delivery.body.decode()}


def fixture_name(delivery: Delivery) -> str:
    """`<endpoint>_<id>.json`, unique per delivery: an id that had to be changed (unsafe characters, too long)
    gets `~` and a digest of the exact id, which no unchanged id can contain."""
    safe = _UNSAFE.sub("_", delivery.delivery_id)
    if safe == delivery.delivery_id and len(safe) <= 120:
        return f"{delivery.endpoint}_{safe}.json"
    digest = hashlib.sha256(delivery.delivery_id.encode()).hexdigest()[:16]
    return f"{delivery.endpoint}_{safe[:80]}~{digest}.json"


def write_fixture(directory: str | Path, delivery: Delivery) -> Path:
    """Write one delivery as a file, atomically (temp file + rename)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / fixture_name(delivery)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rec-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(to_fixture(delivery), handle, indent=2)
    os.replace(tmp, target)
    return target


def read_fixtures(*paths: str | Path) -> Iterator[tuple[str, dict]]:
    """Yield (source, fixture) from files, JSONL files and folders (sorted by name), in order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            children = sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())
            yield from read_fixtures(*children)
        elif path.suffix == ".jsonl":
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    yield f"{path}:{number}", json.loads(line)
        else:
            yield str(path), json.loads(path.read_text())
