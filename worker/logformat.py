"""Log lines as JSON objects, one per line, for a log pipeline: ``LIVESTREAMS_LOG_FORMAT=json``.

Every object has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, then the
line's own fields from ``extra=`` (``action``, ``stream_id``, ``outcome``, ``ray_id``, …:
the product passes ids there, never secrets), and ``exception`` when there is one. The worker,
beat, ``serve`` and the CLI all use it when asked; the default stays plain text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

TEXT, JSON = "text", "json"
FORMATS = (TEXT, JSON)

# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extras as fields, values that JSON lacks as text."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value
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
