"""Celery settings that carry a promise of the product."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from pathlib import Path


def test_a_worker_whose_clock_runs_ahead_of_beat_still_runs_the_ticks() -> None:
    """Beat stamps a tick's expiry with its clock, a worker reads it with its own: a worker
    10 s ahead of beat dropped every tick when the expiry was 5 s."""
    config = importlib.reload(importlib.import_module("worker.celeryconfig"))
    options = config.beat_schedule["dispatch-due"]["options"]
    sent_by_beat = datetime(2030, 1, 1, tzinfo=UTC)
    expires = sent_by_beat + timedelta(seconds=options["expires"])
    read_by_worker = sent_by_beat + timedelta(seconds=10) + timedelta(seconds=1)  # skew + queue
    assert read_by_worker < expires
    # ...while a worker that was stopped for hours does not find hours of ticks to run.
    assert options["expires"] <= 600


def test_task_events_are_off_unless_asked_for(monkeypatch) -> None:
    config = importlib.reload(importlib.import_module("worker.celeryconfig"))
    assert (config.worker_send_task_events, config.task_send_sent_event) == (False, False)
    monkeypatch.setenv("LIVESTREAMS_TASK_EVENTS", "1")
    config = importlib.reload(importlib.import_module("worker.celeryconfig"))
    assert (config.worker_send_task_events, config.task_send_sent_event) == (True, True)
    monkeypatch.delenv("LIVESTREAMS_TASK_EVENTS")
    importlib.reload(config)


def test_every_task_beat_schedules_is_one_the_worker_knows() -> None:
    import worker.tasks  # noqa: F401  (registers the tasks)
    from worker.celery import app

    config = importlib.reload(importlib.import_module("worker.celeryconfig"))
    scheduled = {entry["task"] for entry in config.beat_schedule.values()}
    assert {"livestreams.dispatch_due", "livestreams.prune_webhooks"} <= scheduled
    assert scheduled <= set(app.tasks)


def test_every_task_has_a_lane_and_every_lane_a_process_in_the_production_layout() -> None:
    import worker.tasks  # noqa: F401  (registers the tasks)
    from worker.celery import app

    config = importlib.reload(importlib.import_module("worker.celeryconfig"))
    ours = {name for name in app.tasks if name.startswith("livestreams.")}
    assert set(config.task_routes) == ours
    queues = {q.name for q in config.task_queues}
    assert {route["queue"] for route in config.task_routes.values()} <= queues
    assert config.task_routes["livestreams.launch"]["queue"] == "livestreams.start"
    # Each queue is consumed by one process of the Procfile, and starts by their own.
    procfile = (Path(__file__).parents[2] / "Procfile").read_text().splitlines()
    consumed: dict[str, str] = {}
    for line in procfile:
        if line and not line.startswith("#") and " -Q " in line:
            name = line.split(":", 1)[0]
            for queue in line.split(" -Q ", 1)[1].split()[0].split(","):
                assert queue not in consumed, f"{queue} consumed by {consumed.get(queue)} too"
                consumed[queue] = name
    assert set(consumed) == queues
    starts = consumed["livestreams.start"]
    assert {q for q, p in consumed.items() if p == starts} == {
        "livestreams.start",
        "livestreams.dispatch",
    }
