"""Same-origin check for the dashboard's state-changing posts (sign-in, sign-out, re-send), before any lookup.

Browsers send `Origin` with every POST; `Origin: null` (sandboxed frames, file: pages, some redirects)
and another host are refused, and so is a post without `Origin` whose `Sec-Fetch-Site` says it came from
another site. A post with neither header (curl, scripts holding the token) is allowed: a browser would
have sent one of them. The host compared is the request's `Host` header, so a proxy must pass it through.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

from lockhook.errors import CrossOriginRefused

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(host: str, scheme: str) -> tuple[str, int | None] | None:
    """(hostname, port) with the scheme's default port made explicit, or None when it does not parse."""
    try:
        parts = urlsplit(f"{scheme}://{host}")
        return (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None


def _same_host(origin: str, host: str) -> bool:
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in _DEFAULT_PORTS or not parts.netloc or "@" in parts.netloc or parts.path or parts.query:
        return False
    ours = _host_port(host, parts.scheme)  # TLS may end at a proxy: the scheme is the browser's
    return ours is not None and ours[0] != "" and _host_port(parts.netloc, parts.scheme) == ours


def require_same_origin(request: Request) -> None:
    """Raise CrossOriginRefused (403) unless the post can only have come from this site (or no browser)."""
    origin = request.headers.get("origin")
    if origin is None:
        if request.headers.get("sec-fetch-site", "").strip().lower() in ("cross-site", "same-site"):
            raise CrossOriginRefused("cross-site request refused (Sec-Fetch-Site without Origin)")
        return
    if origin.strip().lower() == "null":
        raise CrossOriginRefused("cross-site request refused (Origin: null)")
    if not _same_host(origin.strip(), request.headers.get("host", "")):
        raise CrossOriginRefused("cross-site request refused (Origin is another site)")
