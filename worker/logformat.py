"""Log lines as JSON objects, one per line, for a log pipeline: ``LIVESTREAMS_LOG_FORMAT=json``.

Every object has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then the
line's own fields from ``extra=`` (``action``, ``stream_id``, ``outcome``, ``ray_id``, …:
the product passes ids there, never secrets), and ``exception`` when there is one. The worker,
beat, ``serve`` and the CLI all use it when asked; the default stays plain text.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT, JSON = "text", "json"
_BASE = frozenset({"time", "level", "logger", "message"})
FORMATS = (TEXT, JSON)

# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# Fields that every line logged inside a run carries (its booking, its attempt), so that a
# line of the API client, which knows neither, can still be found by booking.
_context: ContextVar[dict[str, Any] | None] = ContextVar("livestreams_log_context", default=None)


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every record logged inside the block (this thread or task only)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


_base_factory = logging.getLogRecordFactory()
_CONTEXT = "livestreams_context"


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    # One attribute of its own: logging refuses an ``extra=`` key that the record already has.
    record.__dict__[_CONTEXT] = _context.get()
    return record


logging.setLogRecordFactory(_record_with_context)


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extras as fields, values that JSON lacks as text."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # The run's fields (stream_id, attempt), then the line's own, which win.
        fields = {**(record.__dict__.get(_CONTEXT) or {}), **{
            key: value for key, value in record.__dict__.items()
            if key not in _STANDARD and key != _CONTEXT and not key.startswith("_")
        }}  # fmt: skip
        doc.update({key: value for key, value in fields.items() if key not in _BASE})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return json.dumps(doc, default=str, ensure_ascii=False)


def use_json(handlers: list[logging.Handler]) -> None:
    """Give each handler the JSON formatter."""
    formatter = JsonFormatter()
    for handler in handlers:
        handler.setFormatter(formatter)
