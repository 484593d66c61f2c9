"""Reading a request body with a hard size cap and a read timeout, never all of an oversized body."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.types import Receive

from lockhook import defaults
from lockhook.errors import BodyTimeout, PayloadTooLarge, ValidationFailed


async def read_asgi_body(receive: Receive, declared: str | None, limit: int,
                         timeout_s: float = defaults.BODY_READ_TIMEOUT_S) -> bytes:
    """The raw body from ASGI `receive`, or PayloadTooLarge (413) as soon as it exceeds `limit` bytes.

    `declared` is the content-length header: a non-number is 422, a length over the limit is 413 before
    any byte is read. A body not complete within `timeout_s` is 408 (uvicorn has no body timeout).
    """
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValidationFailed("content-length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ValidationFailed("client disconnected before the body was complete")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"body exceeds {limit} bytes")
                    if not message.get("more_body", False) and not chunks:
                        return chunk  # the common case: the whole body in one message, no copy
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyTimeout(f"body not received within {timeout_s:g} s") from None


async def read_body(request: Request, limit: int, timeout_s: float = defaults.BODY_READ_TIMEOUT_S) -> bytes:
    """The same for a Starlette request (the commands API and the dashboard login)."""
    return await read_asgi_body(request.receive, request.headers.get("content-length"), limit, timeout_s)
