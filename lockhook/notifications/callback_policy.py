"""SSRF policy for per-command `callback_url`s: checked at `POST /commands` (422) and again at send time.

API callers choose these URLs, so they must not reach the operator's network: only http(s) URLs the client
sends as given; the host normalised with IDNA 2008 / UTS-46 exactly as the client (yarl) encodes it; only
NOTIFY_ALLOWED_HOSTS when set; never a non-global address (also behind a DNS name) unless listed there. At
send time the notifier's resolver checks the one answer it connects to (`check_addresses`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import idna
from yarl import URL

from lockhook.errors import CallbackUrlRefused
from lockhook.settings import Settings

MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], list[str]]


class CallbackUrlUnresolvable(CallbackUrlRefused):
    """The host did not resolve (possibly a transient DNS failure: a sender may retry later)."""

    code = "callback_url_unresolvable"


def _resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def _public(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_global and not ip.is_multicast


def trusted(host: str, port: int, settings: Settings) -> bool:
    """Listed in NOTIFY_ALLOWED_HOSTS (as `host` or `host:port`): trusted, even on a private address."""
    return host in settings.allowed_hosts or f"{host}:{port}" in settings.allowed_hosts


def check_addresses(addresses: list[str]) -> None:
    """Every address a name answers must be public (one internal address refuses the whole answer)."""
    if not addresses:
        raise CallbackUrlUnresolvable("callback_url host does not resolve")
    if not all(_public(a) for a in addresses):
        raise CallbackUrlRefused("callback_url points to a loopback, link-local or private address")


def callback_target(url: str, settings: Settings) -> tuple[str, int, bool]:
    """(ASCII host, port, trusted) of a URL the client sends as given, without DNS; else CallbackUrlRefused."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise CallbackUrlRefused("callback_url must be an http(s) URL of at most 2048 characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):  # the client would drop or escape them
        raise CallbackUrlRefused("callback_url must not contain spaces or control characters")
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, UnicodeError):
        raise CallbackUrlRefused("callback_url is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise CallbackUrlRefused("callback_url must use http or https")
    if not parsed.raw_host or port is None:
        raise CallbackUrlRefused("callback_url has no host")
    host = (parsed.host or "").rstrip(".").lower()
    try:
        host = host.strip("[]") if _ip(host) else idna.encode(host, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        host = ""
    if host != parsed.raw_host.rstrip(".").lower().strip("[]"):  # not IDNA 2008, or the client encodes it otherwise
        raise CallbackUrlRefused("callback_url host is not a valid (IDNA 2008) host name")
    if trusted(host, port, settings):
        return host, port, True
    if settings.allowed_hosts:
        raise CallbackUrlRefused("callback_url host is not in NOTIFY_ALLOWED_HOSTS")
    if _ip(host):
        check_addresses([host])
    return host, port, False


def check_callback_url(url: str, settings: Settings, resolve: Resolver = _resolve) -> str:
    """Return the URL if it may be called, else raise CallbackUrlRefused (a 422 at the API)."""
    host, port, is_trusted = callback_target(url, settings)
    if not is_trusted and not _ip(host):
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError):
            raise CallbackUrlUnresolvable("callback_url host does not resolve") from None
        check_addresses(addresses)
    return url
