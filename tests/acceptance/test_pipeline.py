"""The whole pipeline with real `celery beat` and `celery worker` processes and the fake API.

Runs twice: on the embedded default (SQLite database, SQLite broker) and on PostgreSQL with
Redis. Every test books its own meetings and asserts on what the fake API received, so the
tests share one set of processes per backend.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery as CeleryApp
from sqlalchemy import update

from models import ScheduledStream, StreamState
from models.db import db_now, get_sessionmaker
from tests.conftest import make_due
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import wait_until
from worker.bookings import booking
from worker.crypto import cipher_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    with pipeline_for(request.param, tmp_path_factory.mktemp(f"pipeline-{request.param}")) as p:
        yield p


def test_on_time_start_stores_every_field(pipeline: Pipeline) -> None:
    stream = pipeline.book(2.0, name="on-time_1", width=1280, height=720)
    row = pipeline.wait_state(stream.id, StreamState.STARTED)

    (created,) = pipeline.created_for(stream.meeting_id)
    (sent,) = pipeline.requests_for(stream.meeting_id)
    assert json.loads(sent.body) == {
        "name": "on-time_1",
        "video_config": {"width": 1280, "height": 720},
    }
    # Never early: the request left at or after the booked instant.
    assert sent.arrived >= stream.scheduled_at.timestamp() - 0.01
    assert row.livestream_id == created.id
    assert (
        cipher_for(pipeline.settings).decrypt(row.stream_key_ciphertext).get() == created.stream_key
    )
    assert created.stream_key not in row.stream_key_ciphertext
    assert row.livestream_status == "INVOKED"
    assert row.ingest_server and row.playback_url and created.id in row.playback_url
    assert row.started_at >= row.scheduled_at
    (attempt,) = pipeline.attempts(stream.id)
    # The start released its claim. Its first status check is due 2 s later, within the
    # lookahead, so the next tick may already have handed the row to a track run.
    assert row.claim_token != attempt.claim_token
    assert (row.claim_token is None) == (row.lease_expires_at is None)
    assert (attempt.action, attempt.outcome, attempt.http_status) == ("start", "started", 201)
    assert attempt.livestream_id == created.id and attempt.ray_id


def test_a_5xx_is_reconciled_then_retried(pipeline: Pipeline) -> None:
    meeting = str(uuid.uuid4())
    pipeline.fake.script("start", 503, meeting_id=meeting)
    stream = pipeline.book(1.0, meeting_id=meeting)
    row = pipeline.wait_state(stream.id, StreamState.STARTED)
    outcomes = [(a.action, a.outcome) for a in pipeline.attempts(stream.id)]
    assert outcomes == [("start", "ambiguous"), ("reconcile", "absent"), ("start", "started")]
    assert len(pipeline.created_for(meeting)) == 1
    assert row.livestream_id == pipeline.created_for(meeting)[0].id


def test_a_429_waits_for_retry_after(pipeline: Pipeline) -> None:
    meeting = str(uuid.uuid4())
    pipeline.fake.script("start", {"status": 429, "retry_after": "2"}, meeting_id=meeting)
    stream = pipeline.book(1.0, meeting_id=meeting)
    pipeline.wait_state(stream.id, StreamState.STARTED)
    first, second = pipeline.requests_for(meeting)
    assert second.arrived - first.arrived >= 2.0
    assert [a.outcome for a in pipeline.attempts(stream.id)] == ["retryable", "started"]
    assert pipeline.attempts(stream.id)[0].http_status == 429


def test_a_final_refusal_stores_the_upstream_message(pipeline: Pipeline) -> None:
    meeting = str(uuid.uuid4())
    stream = pipeline.book(1.0, meeting_id=meeting)
    pipeline.fake.script("start", 403, meeting_id=meeting)
    row = pipeline.wait_state(stream.id, StreamState.FAILED)
    (attempt,) = pipeline.attempts(stream.id)
    assert (attempt.outcome, attempt.http_status) == ("fatal", 403)
    assert "403" in row.last_error and attempt.error_message in row.last_error
    time.sleep(1.5)
    assert len(pipeline.requests_for(meeting)) == 1  # never retried


def test_cancel_before_due_means_no_call(pipeline: Pipeline) -> None:
    stream = pipeline.book(4.0)
    with get_sessionmaker(pipeline.settings.database_url).begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
    time.sleep(5.5)
    assert pipeline.row(stream.id).state == StreamState.CANCELLED
    assert [r for r in pipeline.fake.requests if r.meeting_id == str(stream.meeting_id)] == []


def test_deadline_passed_while_down_is_missed_without_a_call(pipeline: Pipeline) -> None:
    stream = pipeline.book(3600)
    make_due(pipeline.settings.database_url, stream.id, at=timedelta(hours=-1))
    row = pipeline.wait_state(stream.id, StreamState.MISSED)
    assert "deadline" in row.last_error
    assert pipeline.requests_for(stream.meeting_id) == []


def test_two_beats_ticking_at_once_start_each_booking_once(pipeline: Pipeline) -> None:
    pipeline.celery.beat("beat-2")
    try:
        streams = [pipeline.book(2.5) for _ in range(20)]
        for stream in streams:
            pipeline.wait_state(stream.id, StreamState.STARTED)
    finally:
        pipeline.celery.kill("beat-2")
    for stream in streams:
        assert len(pipeline.requests_for(stream.meeting_id)) == 1
        assert len(pipeline.created_for(stream.meeting_id)) == 1


def test_the_same_start_message_twice_starts_once(pipeline: Pipeline) -> None:
    stream = pipeline.book(3600)
    token = uuid.uuid4()
    with get_sessionmaker(pipeline.settings.database_url).begin() as s:
        now = db_now(s)
        # What a dispatcher's claim leaves behind, done by hand so no dispatcher races us.
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream.id)
            .values(
                state="starting",
                claim_token=token,
                due_at=now,
                lease_expires_at=now + timedelta(minutes=5),
            )
        )
    sender = CeleryApp(broker=pipeline.env["LIVESTREAMS_BROKER_URL"])
    for _ in range(3):
        sender.send_task("livestreams.start_stream", args=(str(stream.id), str(token)))
    pipeline.wait_state(stream.id, StreamState.STARTED)
    time.sleep(2)
    assert len(pipeline.requests_for(stream.meeting_id)) == 1
    assert len(pipeline.created_for(stream.meeting_id)) == 1
    # Start calls only: the first status check is due 2 s after the start, and may have run.
    starts = [a for a in pipeline.attempts(stream.id) if a.action == "start"]
    assert [a.outcome for a in starts] == ["started"]


@pytest.mark.postgres
@pytest.mark.redis
def test_a_worker_killed_after_preparing_a_launch_is_recovered_and_starts_once(
    tmp_path: Path,
) -> None:
    # A lookahead of 20 s: the launch is prepared up to 20 s before the instants, so the kill
    # below falls between preparing and sending even on a machine loaded with parallel test
    # runs (with 2 s, a late launch there had already sent its requests).
    env = {"LIVESTREAMS_LOOKAHEAD": "20", "LIVESTREAMS_LEASE": "60"}
    with pipeline_for("postgresql", tmp_path, env=env) as pipeline:
        streams = [pipeline.book(22) for _ in range(3)]
        ids = [s.id for s in streams]

        def prepared() -> bool:  # every call written ahead, none sent: the launch ran early
            return all([(a.action, a.outcome) for a in pipeline.attempts(i)] == [("start", None)]
                       for i in ids)  # fmt: skip

        wait_until(prepared, 20, "the launch to write its calls ahead")
        assert all(not pipeline.requests_for(s.meeting_id) for s in streams)
        pipeline.celery.kill("worker-1")  # SIGKILL, with its pool and its launch thread
        pipeline.celery.worker("worker-1")
        for stream in streams:
            row = pipeline.wait_state(stream.id, StreamState.STARTED, timeout=60)
            (created,) = pipeline.created_for(stream.meeting_id)
            assert row.livestream_id == created.id
            # The prepared call is unclear once its run is gone: reconciled before the start.
            actions = [(a.action, a.outcome) for a in pipeline.attempts(stream.id)]
            assert actions == [
                ("start", "ambiguous"),
                ("reconcile", "absent"),
                ("start", "started"),
            ]


def test_a_worker_killed_mid_call_is_recovered_by_adoption(pipeline: Pipeline) -> None:
    meeting = str(uuid.uuid4())
    pipeline.fake.script("start", "hang", meeting_id=meeting)  # created, then no answer
    stream = pipeline.book(1.5, meeting_id=meeting)
    wait_until(lambda: pipeline.created_for(meeting), 20, "the start call to arrive")
    pipeline.celery.kill("worker-1")  # SIGKILL, with its pool, while the call hangs
    (attempt,) = pipeline.attempts(stream.id)
    assert attempt.outcome is None  # written ahead; its outcome died with the worker
    pipeline.celery.worker("worker-1")
    row = pipeline.wait_state(stream.id, StreamState.STARTED, timeout=60)
    (created,) = pipeline.created_for(meeting)
    assert row.livestream_id == created.id
    first, second = pipeline.attempts(stream.id)
    assert (first.action, first.outcome) == ("start", "ambiguous")
    assert "stopped before it could write" in first.error_message
    assert (second.action, second.outcome) == ("reconcile", "adopted")
    assert len(pipeline.requests_for(meeting)) == 1
