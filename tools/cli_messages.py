"""What the CLI says when something goes wrong: one line saying what happened and what to do, never a traceback."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import typer

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def say(message: str) -> None:
    """A note on stderr (stdout stays for output other commands read)."""
    typer.echo(f"lockhook: {message}", err=True)


def base_url(url: str, option: str = "--url") -> str:
    """An http(s) base URL; one without a scheme is taken as http:// (and said so), anything else refused."""
    from lockhook.errors import ConfigError

    raw = url.strip()
    if "://" not in raw:
        fixed = "http://" + raw
        if not urlsplit(fixed).hostname:
            raise ConfigError(f"{option} {url!r} is not a URL: give one like http://127.0.0.1:8000")
        say(f"{option} {raw} has no scheme: using {fixed}")
        raw = fixed
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option} {url!r}: only http:// and https:// URLs are supported")
    return raw.rstrip("/")


def origin(url) -> str:
    parts = urlsplit(str(url))
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


def unreachable(url, reason: str = "") -> str:
    """Nothing answered at `url`: say whether lockhook is probably just not running."""
    where = origin(url)
    why = f" ({reason})" if reason else ""
    if (urlsplit(where).hostname or "") in LOCAL_HOSTS:
        return f"cannot reach {where}{why}: is lockhook running? try `make run` (or pass --url)"
    return f"cannot reach {where}{why}: check the URL and that the service is up"


def _redis_where() -> str:
    try:
        from lockhook.settings import get_settings

        return origin(get_settings().redis_url)  # without the password
    except Exception:  # the settings themselves are broken: say nothing about where
        return "REDIS_URL"


def explain(exc: BaseException) -> str:
    """The message for an error that reached the top of the CLI."""
    import httpx
    import redis
    from pydantic import ValidationError

    from lockhook.errors import LockhookError

    if isinstance(exc, LockhookError):
        return exc.message
    if isinstance(exc, ValidationError):  # settings from the environment; the values are not repeated
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper() or 'settings'}: {e['msg']}"
                             for e in exc.errors())
        return f"invalid setting {problems} (fix the environment variable)"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"{exc.request.url if _has_request(exc) else 'the URL'} needs http:// or https://"
    if isinstance(exc, httpx.TransportError):
        if _has_request(exc):
            return unreachable(exc.request.url, type(exc).__name__)
        return f"network error: {exc}"
    if isinstance(exc, redis.AuthenticationError):
        return f"Redis at {_redis_where()} refused the credentials in REDIS_URL"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return (f"cannot reach Redis at {_redis_where()}: is it running? set REDIS_URL to your Redis "
                "(`make run` starts one of its own)")
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder: {exc.filename}"
    if isinstance(exc, OSError) and exc.filename:
        return f"cannot read {exc.filename}: {exc.strerror}"
    return f"unexpected error ({type(exc).__name__}: {exc})"


def _has_request(exc) -> bool:
    try:
        exc.request  # noqa: B018  (httpx raises when the error has no request)
    except RuntimeError:
        return False
    return True
