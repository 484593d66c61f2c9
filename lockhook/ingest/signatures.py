"""Webhook signature checking as a pure function over raw bytes and headers (Svix / Standard Webhooks).

The HMAC is computed by the `svix` library (`Webhook.sign`); this module only parses the headers
defensively, applies the timestamp tolerance against an injectable clock and compares in constant
time, so that every malformed input becomes a typed 401 instead of a 500.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache

from svix.webhooks import Webhook

from lockhook import defaults
from lockhook.errors import (
    AmbiguousSignatureHeaders,
    ConfigError,
    InvalidSignature,
    MissingSignatureHeaders,
    TimestampOutOfTolerance,
)

SIGNATURE_HEADERS = tuple(f"{prefix}-{name}".encode() for prefix in ("svix", "webhook")
                          for name in ("id", "timestamp", "signature"))
MAX_ID_LENGTH = 256
MAX_SIGNATURE_HEADER_LENGTH = 8192


@lru_cache(maxsize=64)
def _signer(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except Exception as exc:  # bad base64 or empty: a configuration problem, never echo the secret
        raise ConfigError("a configured webhook secret is not a valid whsec_ base64 secret") from exc


def check_secrets(secrets: Iterable[str]) -> None:
    """Raise ConfigError now (at startup) if any configured secret cannot be used."""
    for secret in secrets:
        _signer(secret)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(f"svix-{name}") or headers.get(f"webhook-{name}")
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(f"svix-{name}") or lowered.get(f"webhook-{name}")
    return (value or "").strip()


def check_unambiguous(raw_headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Refuse a request whose signature headers could be read two ways (checked with one, stored with another).

    `raw_headers` are the (lower-case name, value) pairs as received. Each signature header may appear once;
    where a sender sends both the svix-* and webhook-* form, they must agree.
    """
    seen: dict[bytes, bytes] = {}
    for name, value in raw_headers:
        if name in SIGNATURE_HEADERS:
            if name in seen:
                raise AmbiguousSignatureHeaders(f"{name.decode()} was sent more than once")
            seen[name] = value.strip()
    for name in (b"id", b"timestamp", b"signature"):
        svix, webhook = seen.get(b"svix-" + name), seen.get(b"webhook-" + name)
        if svix is not None and webhook is not None and svix != webhook:
            raise AmbiguousSignatureHeaders(f"svix-{name.decode()} and webhook-{name.decode()} disagree")


def sign(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature for one delivery (used by tests, replay and the simulator)."""
    return _signer(secret).sign(delivery_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())


def signature_headers(secret: str, delivery_id: str, body: bytes, timestamp: int | None = None,
                      prefix: str = "svix") -> dict[str, str]:
    """The three headers a sender adds to a delivery."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        f"{prefix}-id": delivery_id,
        f"{prefix}-timestamp": str(ts),
        f"{prefix}-signature": sign(secret, delivery_id, ts, body),
    }


def verify(secrets: Iterable[str], headers: Mapping[str, str], body: bytes, *,
           now: float | None = None, tolerance_s: int = defaults.SIGNATURE_TOLERANCE_S) -> str:
    """Verify a delivery and return its delivery id, or raise a SignatureError subclass."""
    msg_id = _header(headers, "id")
    msg_ts = _header(headers, "timestamp")
    msg_sig = _header(headers, "signature")
    if not (msg_id and msg_ts and msg_sig):
        raise MissingSignatureHeaders("svix-id, svix-timestamp and svix-signature are required")
    if len(msg_id) > MAX_ID_LENGTH or len(msg_sig) > MAX_SIGNATURE_HEADER_LENGTH or not msg_id.isprintable():
        raise InvalidSignature("malformed signature headers")
    if not (msg_ts.isascii() and msg_ts.isdigit() and len(msg_ts) <= 12):
        raise InvalidSignature("svix-timestamp must be unix seconds")
    timestamp = int(msg_ts)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise TimestampOutOfTolerance(f"svix-timestamp is more than {tolerance_s} s from now")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("body is not UTF-8") from None

    offered: list[bytes] = []
    for item in msg_sig.split():
        version, _, encoded = item.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            offered.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not offered:
        raise InvalidSignature("no v1 signature in the signature header")

    stamp = datetime.fromtimestamp(timestamp, tz=UTC)
    for secret in secrets:
        expected = base64.b64decode(_signer(secret).sign(msg_id, stamp, payload).partition(",")[2])
        # compare against every offered signature; compare_digest keeps each comparison constant-time
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise InvalidSignature("no signature matches")
