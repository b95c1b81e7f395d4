"""A booking's whole life with real beat, worker and `livestreams serve` processes: it goes
live, is stopped at its end or on request, ends when it ends upstream, and learns its status
from the fake's signed webhooks before any poll could have told it.

Runs on the embedded default (SQLite) and on PostgreSQL with Redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner

from models import StreamState
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import free_port
from worker.cli import cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pipeline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    # Checks every second or two, live ones too: the minutes of production scaled down.
    env = {
        "LIVESTREAMS_FIRST_CHECK": "1",
        "LIVESTREAMS_CHECK_CAP": "1",
        "LIVESTREAMS_LIVE_CHECK": "2",
    }
    tmp = tmp_path_factory.mktemp(f"lifecycle-{request.param}")
    with pipeline_for(request.param, tmp, env=env) as p:
        p.fake.configure({"live_after": 1.0})
        yield p


def stops_of(pipeline: Pipeline, livestream_id: str | None) -> int:
    return int(pipeline.fake.stats()["stops_by_livestream"].get(livestream_id, 0))


def test_a_booking_with_an_end_goes_live_and_is_stopped_there_once(pipeline: Pipeline) -> None:
    stream = pipeline.book(1.0, duration=5)
    live = pipeline.wait_state(stream.id, StreamState.LIVE, StreamState.ENDED)
    assert live.live_at is not None
    ended = pipeline.wait_state(stream.id, StreamState.ENDED, timeout=30)
    assert ended.end_reason == "scheduled_stop" and ended.live_at is not None
    assert ended.ended_at >= ended.ends_at
    assert stops_of(pipeline, ended.livestream_id) == 1
    actions = [(a.action, a.outcome) for a in pipeline.attempts(stream.id, tracking=True)]
    assert actions[0] == ("start", "started") and actions[-1] == ("stop", "stopped")
    assert all(outcome is not None for _, outcome in actions)
    # Its checks and its stop were routine: at INFO, no line of Celery's per check, and the
    # stop's answer (success: true, no livestream in it) is not logged as odd.
    log = pipeline.celery.log("worker-1").read_text()
    assert "livestreams.track_stream[" not in log
    assert "without data.id" not in log
    assert f"booking {stream.id} ended (scheduled_stop)" in log


def test_livestreams_stop_stops_a_live_stream(pipeline: Pipeline, monkeypatch) -> None:
    stream = pipeline.book(1.0)
    pipeline.wait_state(stream.id, StreamState.LIVE)
    for name, value in pipeline.env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["stop", str(stream.id)])
    assert result.exit_code == 0, result.output
    ended = pipeline.wait_state(stream.id, StreamState.ENDED)
    assert ended.end_reason == "ops_stop" and stops_of(pipeline, ended.livestream_id) == 1


def test_a_stream_ended_upstream_is_ended_and_the_next_one_on_its_meeting_left_alone(
    pipeline: Pipeline,
) -> None:
    stream = pipeline.book(1.0, duration=600)
    live = pipeline.wait_state(stream.id, StreamState.LIVE)
    meeting = str(stream.meeting_id)
    assert pipeline.fake.end_livestream(meeting_id=meeting) is not None
    foreign = pipeline.fake.start_foreign(meeting)
    assert foreign is not None
    ended = pipeline.wait_state(stream.id, StreamState.ENDED)
    assert ended.end_reason == "ended_upstream"
    assert pipeline.fake.stats()["active"] == {meeting: foreign["id"]}
    assert stops_of(pipeline, live.livestream_id) == 0


@pytest.mark.parametrize("kind", ["postgresql"])
def test_signed_webhooks_make_a_stream_live_before_any_poll(tmp_path, kind) -> None:
    # Checks only every minute: LIVE can only come from the fake's webhook.
    env = {"LIVESTREAMS_FIRST_CHECK": "60", "LIVESTREAMS_CHECK_CAP": "60"}
    with pipeline_for(kind, tmp_path, env=env) as p:
        port = free_port()
        p.celery.serve("serve", port)
        p.fake.configure(
            {
                "live_after": 1.0,
                "webhooks": {"url": f"http://127.0.0.1:{port}/v1/webhooks/realtimekit"},
            }
        )
        stream = p.book(1.0)
        live = p.wait_state(stream.id, StreamState.LIVE, timeout=20)
        assert live.started_at is not None
        assert live.live_at < live.started_at + timedelta(seconds=30)
        assert [a.action for a in p.attempts(stream.id, tracking=True)] == ["start"]  # no poll yet
        deliveries = p.fake.stats()["webhooks"]["deliveries"]
        mine = [d for d in deliveries if d["streamId"] == live.livestream_id]
        assert {d["status"] for d in mine} >= {"LIVE"} and all(d["answered"] == 200 for d in mine)
        assert uuid.UUID(str(stream.id))
