"""worker.logformat: one JSON object per record, with the record's own fields."""

from __future__ import annotations

import json
import logging
import sys
import uuid

import pytest

from worker.errors import SettingsError
from worker.logformat import JsonFormatter
from worker.settings import Settings, log_format_from_env


def record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            info = sys.exc_info()
    rec = logging.LogRecord("worker.follow.flow", logging.WARNING, "f.py", 1, msg, args, info)
    rec.__dict__.update(extra)
    return rec


def test_a_record_is_one_json_line_with_its_fields() -> None:
    stream = uuid.uuid4()
    line = JsonFormatter().format(
        record("booking %s flagged %s", stream, "not_live", action="stream_flagged",
               stream_id=stream, attempt=3)
    )  # fmt: skip
    assert "\n" not in line
    doc = json.loads(line)
    assert doc.pop("time").endswith("+00:00")
    assert doc == {
        "level": "WARNING",
        "logger": "worker.follow.flow",
        "message": f"booking {stream} flagged not_live",
        "action": "stream_flagged",
        "stream_id": str(stream),
        "attempt": 3,
    }


def test_an_exception_is_one_field_and_the_line_stays_one_line() -> None:
    line = JsonFormatter().format(record("failed", exc=True, action="x"))
    assert "\n" not in line
    doc = json.loads(line)
    assert "ValueError: boom" in doc["exception"] and doc["message"] == "failed"


@pytest.mark.parametrize(
    ("raw", "expected"), [("", "text"), ("json", "json"), (" JSON ", "json"), ("text", "text")]
)
def test_log_format_setting(raw: str, expected: str) -> None:
    env = {"LIVESTREAMS_LOG_FORMAT": raw}
    assert log_format_from_env(env) == expected == Settings.from_env(env).log_format


def test_a_bad_log_format_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="LIVESTREAMS_LOG_FORMAT: must be text or json"):
        Settings.from_env({"LIVESTREAMS_LOG_FORMAT": "xml"})


def test_lines_inside_a_run_carry_its_booking_and_attempt(caplog) -> None:
    from worker import logformat

    caplog.set_level(logging.INFO)
    with logformat.context(stream_id="s-1"), logformat.context(attempt=2):
        logging.getLogger("worker.upstream.realtimekit").info("call", extra={"ray_id": "r-1"})
    logging.getLogger("worker.upstream.realtimekit").info("outside")
    inside, outside = caplog.records
    doc = json.loads(JsonFormatter().format(inside))
    assert (doc["stream_id"], doc["attempt"], doc["ray_id"]) == ("s-1", 2, "r-1")
    assert "stream_id" not in json.loads(JsonFormatter().format(outside))
