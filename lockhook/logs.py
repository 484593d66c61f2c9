"""Logging setup: one JSON object per line (or readable text on a terminal), with correlation ids."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from lockhook.settings import Settings

_ENCODER = json.JSONEncoder(default=str)  # built once: json.dumps(default=...) builds one per call

CONTEXT_FIELDS = ("delivery_id", "event_id", "event_type", "command_id", "device_id", "outcome", "endpoint",
                  "status", "target", "attempt", "error_code", "latency_ms")


class JsonFormatter(logging.Formatter):
    """Structured lines that carry whichever correlation ids were passed as `extra=`."""

    _second: int = -1
    _second_text: str = ""

    def _ts(self, created: float) -> str:
        """ISO time; the seconds part is formatted once per second (this runs once per webhook delivery)."""
        second = int(created)
        if second != self._second:
            self._second, self._second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self._ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        attrs = record.__dict__
        for field in CONTEXT_FIELDS:
            value = attrs.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
        return _ENCODER.encode(line)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{f}={getattr(record, f)}" for f in CONTEXT_FIELDS if getattr(record, f, None) is not None)
        base = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.name}: "
        return base + record.getMessage() + (f"  [{extras}]" if extras else "")


class LineBatcher:
    """High-volume lines (one per webhook delivery) written one batch per event-loop turn.

    The lines look exactly like the configured handler's, but skip the LogRecord machinery and the
    per-line write + flush, which together cost more than the rest of the ack path's bookkeeping.
    Without a handler from configure_logging (tests, embedding) it falls back to plain logging.
    """

    def __init__(self, name: str):
        self.logger = logging.getLogger(name)
        self._records: list[tuple[float, str, dict]] = []
        self._scheduled = False

    def info(self, msg: str, **fields) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        self._records.append((time.time(), msg, fields))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        records, self._records = self._records, []
        handler = next((h for h in logging.getLogger().handlers if getattr(h, "lockhook_batchable", False)), None)
        if handler is None:
            for _, msg, fields in records:
                self.logger.info(msg, extra=fields)
            return
        formatter = handler.formatter
        name = self.logger.name
        lines = []
        for created, msg, fields in records:
            if isinstance(formatter, JsonFormatter):  # the production path: same keys, no LogRecord
                line = {"ts": formatter._ts(created), "level": "info", "logger": name, "msg": msg}
                line.update((k, v) for k, v in fields.items() if v is not None)
                lines.append(_ENCODER.encode(line))
            else:
                lines.append(formatter.format(logging.makeLogRecord(
                    {"name": name, "levelname": "INFO", "levelno": logging.INFO, "msg": msg, "created": created,
                     **fields})))
        try:
            handler.stream.write("\n".join(lines) + "\n")
            handler.stream.flush()
        except (OSError, ValueError):  # closed or broken stderr: logging must never break the ack path
            pass


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Configure the root logger once per process."""
    fmt = settings.log_format or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.lockhook_batchable = True
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # no formatter shows caller, thread or process: skip collecting them for every record (~40 us per line)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
