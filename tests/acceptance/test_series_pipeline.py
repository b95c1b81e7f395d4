"""A series through the real pipeline: its occurrences are booked by the worker's maker task
(sent through the broker, as beat sends it), then each is started once by real `celery`
processes against the fake API, and stopped at its end.

The calendar across clock changes is table-tested (tests/unit/test_series_rules.py); here the
three daily occurrences are moved to fifteen seconds apart once booked (their start, deadline
and end, as a reschedule by the database would), so that the run takes a minute, not days.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery as CeleryApp
from sqlalchemy import select, update

from models import ScheduledStream, StreamState
from models.db import db_now, get_sessionmaker
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import wait_until
from worker.series import flow

pytestmark = pytest.mark.slow
SPACING = 15.0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    env = {"LIVESTREAMS_SERIES_HORIZON": "4"}
    with pipeline_for("sqlite", tmp_path_factory.mktemp("series-pipeline"), env=env) as p:
        yield p


def occurrences(pipeline: Pipeline, series_id: uuid.UUID) -> list[ScheduledStream]:
    with get_sessionmaker(pipeline.settings.database_url)() as s:
        query = select(ScheduledStream).where(ScheduledStream.series_id == series_id)
        return list(s.scalars(query.order_by(ScheduledStream.series_date)))


def test_each_occurrence_is_booked_by_the_maker_and_started_once(pipeline: Pipeline) -> None:
    meeting = str(uuid.uuid4())
    factory = get_sessionmaker(pipeline.settings.database_url)
    one_day = dataclasses.replace(pipeline.settings, series_horizon_days=1)
    with factory.begin() as s:
        today = db_now(s).date()
        made = flow.add(s, one_day, ref="daily", meeting_id=meeting, rule="FREQ=DAILY;COUNT=3",
                        at="12:00", tz="UTC", duration="5s", name="daily-show",
                        first=(today + timedelta(days=1)).isoformat())  # fmt: skip
    series_id = made.series.id
    assert len(made.made) <= 1  # a one-day horizon: tomorrow's at most

    # The worker's maker, with its four-day horizon, books the rest; sent twice, it books
    # nothing more.
    sender = CeleryApp(broker=pipeline.env["LIVESTREAMS_BROKER_URL"])
    for _ in range(2):
        sender.send_task("livestreams.make_occurrences")
    rows = wait_until(
        lambda: len(found := occurrences(pipeline, series_id)) == 3 and found,
        30,
        "the maker to book three occurrences",
    )
    assert [r.external_ref for r in rows] == [
        f"daily:{today + timedelta(days=n)}" for n in (1, 2, 3)
    ]

    with factory.begin() as s:
        now = db_now(s)
        for n, row in enumerate(rows):
            at = now + timedelta(seconds=4 + n * SPACING)
            s.execute(
                update(ScheduledStream)
                .where(ScheduledStream.id == row.id)
                .values(
                    scheduled_at=at,
                    due_at=at,
                    start_deadline=at + timedelta(minutes=15),
                    ends_at=at + timedelta(seconds=5),
                )
            )
    for row in rows:
        pipeline.wait_state(row.id, StreamState.STARTED, StreamState.LIVE, StreamState.ENDED)
    ended = [pipeline.wait_state(r.id, StreamState.ENDED, timeout=40) for r in rows]

    starts = pipeline.requests_for(meeting)
    assert len(starts) == 3 and len(pipeline.created_for(meeting)) == 3
    for sent, row in zip(starts, ended, strict=True):
        assert sent.arrived >= row.scheduled_at.timestamp() - 0.01  # never early
    assert [r.end_reason for r in ended] == ["scheduled_stop"] * 3
    assert len({r.livestream_id for r in ended}) == 3
    assert {r.series_id for r in ended} == {series_id} and not any(r.detached for r in ended)
