"""Celery's own lines about routine tasks: at DEBUG, never at INFO; a start's are kept."""

from __future__ import annotations

import logging

import pytest

from worker.celery import QuietRoutineTasks

RECEIVED = "Task %(name)s[%(id)s] received"


def record(name: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(
        "celery.worker.strategy", level, __file__, 1, RECEIVED, ({"name": name, "id": "1"},), None
    )


@pytest.mark.parametrize(
    ("task", "shown_at_info"),
    [
        ("livestreams.dispatch_due", False),
        ("livestreams.track_stream", False),
        ("livestreams.deliver_webhook", False),
        ("livestreams.launch", True),
        ("livestreams.start_stream", True),
        ("livestreams.prune_webhooks", True),
    ],
)
def test_routine_tasks_are_quiet_at_info_and_shown_at_debug(task: str, shown_at_info: bool):
    logger = logging.getLogger("celery.worker.strategy")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        assert QuietRoutineTasks().filter(record(task)) is shown_at_info
        logger.setLevel(logging.DEBUG)
        shown = record(task)
        assert QuietRoutineTasks().filter(shown)
        assert shown.levelno == (logging.INFO if shown_at_info else logging.DEBUG)
    finally:
        logger.setLevel(before)


def test_a_routine_task_that_fails_still_shows() -> None:
    assert QuietRoutineTasks().filter(record("livestreams.track_stream", logging.ERROR))
