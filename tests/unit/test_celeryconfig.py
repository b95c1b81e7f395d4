"""Celery settings that carry a promise of the product."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta


def test_a_worker_whose_clock_runs_ahead_of_beat_still_runs_the_ticks() -> None:
    """Beat stamps a tick's expiry with its clock, a worker reads it with its own: a worker
    10 s ahead of beat dropped every tick when the expiry was 5 s."""
    config = importlib.reload(importlib.import_module("celeryconfig"))
    options = config.beat_schedule["dispatch-due"]["options"]
    sent_by_beat = datetime(2030, 1, 1, tzinfo=UTC)
    expires = sent_by_beat + timedelta(seconds=options["expires"])
    read_by_worker = sent_by_beat + timedelta(seconds=10) + timedelta(seconds=1)  # skew + queue
    assert read_by_worker < expires
    # ...while a worker that was stopped for hours does not find hours of ticks to run.
    assert options["expires"] <= 600


def test_task_events_are_off_unless_asked_for(monkeypatch) -> None:
    config = importlib.reload(importlib.import_module("celeryconfig"))
    assert (config.worker_send_task_events, config.task_send_sent_event) == (False, False)
    monkeypatch.setenv("LIVESTREAMS_TASK_EVENTS", "1")
    config = importlib.reload(importlib.import_module("celeryconfig"))
    assert (config.worker_send_task_events, config.task_send_sent_event) == (True, True)
    monkeypatch.delenv("LIVESTREAMS_TASK_EVENTS")
    importlib.reload(config)


def test_every_task_beat_schedules_is_one_the_worker_knows() -> None:
    import worker.tasks  # noqa: F401  (registers the tasks)
    from worker.celery import app

    config = importlib.reload(importlib.import_module("celeryconfig"))
    scheduled = {entry["task"] for entry in config.beat_schedule.values()}
    assert {"livestreams.dispatch_due", "livestreams.prune_webhooks"} <= scheduled
    assert scheduled <= set(app.tasks)
