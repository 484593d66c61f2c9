"""SSRF policy for per-command `callback_url`s: checked at `POST /commands` (422) and again before each send.

API callers choose these URLs, so they must not reach the operator's own network: only http(s); when
NOTIFY_ALLOWED_HOSTS is set the host must be in it; loopback, link-local, private and other non-global
addresses (also when a DNS name resolves to one) are refused unless the host is listed there.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from lockhook.errors import CallbackUrlRefused
from lockhook.settings import Settings

MAX_URL_LENGTH = 2048

Resolver = Callable[[str, int], list[str]]


class CallbackUrlUnresolvable(CallbackUrlRefused):
    """The host did not resolve (possibly a transient DNS failure: a sender may retry later)."""

    code = "callback_url_unresolvable"


def _resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_callback_url(url: str, settings: Settings, resolve: Resolver = _resolve) -> str:
    """Return the URL if it may be called, else raise CallbackUrlRefused (a 422 at the API)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise CallbackUrlRefused("callback_url must be an http(s) URL of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackUrlRefused("callback_url is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise CallbackUrlRefused("callback_url must use http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise CallbackUrlRefused("callback_url has no host")
    allowed = settings.allowed_hosts
    if host in allowed or f"{host}:{port}" in allowed:
        return url  # listed by the operator: trusted, even on a private address
    if allowed:
        raise CallbackUrlRefused("callback_url host is not in NOTIFY_ALLOWED_HOSTS")
    try:
        addresses = [host] if _is_ip(host) else resolve(host, port)
    except (OSError, UnicodeError):
        raise CallbackUrlUnresolvable("callback_url host does not resolve") from None
    if not addresses:
        raise CallbackUrlUnresolvable("callback_url host does not resolve")
    if not all(_public(a) for a in addresses):
        raise CallbackUrlRefused("callback_url points to a loopback, link-local or private address")
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
