"""Reading a request body with a hard size cap and a read timeout, never all of an oversized body."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

from lockhook import defaults
from lockhook.errors import BodyTimeout, PayloadTooLarge, ValidationFailed


async def read_body(request: Request, limit: int, timeout_s: float = defaults.BODY_READ_TIMEOUT_S) -> bytes:
    """The raw body, or PayloadTooLarge (413) as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ValidationFailed("content-length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            if declared is not None:  # the server enforces the declared length: read it whole
                return await request.body()
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(f"body not received within {timeout_s:g} s") from None
    except ClientDisconnect:
        raise ValidationFailed("client disconnected before the body was complete") from None
    return b"".join(chunks)
