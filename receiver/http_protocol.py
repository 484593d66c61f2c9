"""uvicorn's httptools protocol with a bounded request head: a size cap (431) and a time limit to send it.

httptools reads headers without either, so one connection streaming a huge header stalls the event loop
and grows the process, and a client trickling its headers holds a connection forever. The Procfile runs
uvicorn with `--http receiver.http_protocol:BoundedHeadProtocol`: same parser and speed, bounded head.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lockhook.settings import get_settings

log = logging.getLogger("lockhook.receiver")

_END_OF_HEAD = b"\r\n\r\n"
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"content-length: 43\r\nconnection: close\r\n\r\n"
              b'{"error":"request_header_fields_too_large"}')


_graceful_stop_callbacks: list[Callable[[], None]] = []


def on_graceful_stop(callback: Callable[[], None]) -> None:
    """Call `callback` once when uvicorn begins a graceful stop (SIGTERM), before it waits for open requests."""
    _graceful_stop_callbacks.append(callback)


def _announce_graceful_stop() -> None:
    callbacks = list(_graceful_stop_callbacks)
    _graceful_stop_callbacks.clear()
    for callback in callbacks:
        callback()


class BoundedHeadProtocol(HttpToolsProtocol):
    """Counts the bytes of each request head before the parser sees them and times how long it takes."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        settings = get_settings()  # built once per process (cached)
        self._head_limit = settings.max_header_bytes
        self._head_timeout_s = settings.header_read_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._start_head()

    def _start_head(self) -> None:
        """A new request head may begin: count from zero, and give it `header_read_timeout_s` to complete."""
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._cancel_timer()
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _cancel_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            end = (self._tail + data).find(_END_OF_HEAD)
            head_part = len(data) if end < 0 else max(0, end + len(_END_OF_HEAD) - len(self._tail))
            self._head_bytes += head_part
            self._tail = data[-3:]
            if self._head_bytes > self._head_limit:
                self._refuse_head()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head()  # the next request on this keep-alive connection

    def shutdown(self) -> None:
        """uvicorn calls this on every open connection as its graceful stop begins."""
        _announce_graceful_stop()
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def _refuse_head(self) -> None:
        log.warning("request head over %d bytes refused (431)", self._head_limit)
        self._cancel_timer()
        self._in_head = False
        if not self.transport.is_closing():
            self.transport.write(_TOO_LARGE)
            self.transport.close()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            if self._head_bytes:
                log.warning("request head not complete within %g s: connection closed", self._head_timeout_s)
            self.transport.close()
