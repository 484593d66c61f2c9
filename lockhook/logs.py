"""Logging setup: one JSON object per line (or readable text on a terminal), with correlation ids."""

from __future__ import annotations

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


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Configure the root logger once per process."""
    fmt = settings.log_format or ("text" if sys.stderr.isatty() else "json")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # no formatter shows caller, thread or process: skip collecting them for every record (~40 us per line)
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
