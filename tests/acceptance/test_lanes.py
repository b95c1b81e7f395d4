"""Lanes: the production layout (Procfile) runs starts and follow-up work on workers of their
own. A start-lane worker alone starts every booking; status checks wait in their own lane
until a worker consumes it, and never in front of a start."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from models import StreamState
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

START_LANE = ["livestreams.start", "livestreams.dispatch"]
FOLLOW_LANE = ["livestreams.follow", "livestreams.notify", "celery"]


def checks(pipeline: Pipeline, stream_id: uuid.UUID) -> list[str]:
    return [a.action for a in pipeline.attempts(stream_id, tracking=True) if a.action == "status"]


def test_the_start_lane_alone_starts_and_the_follow_lane_checks(tmp_path: Path) -> None:
    env = {"LIVESTREAMS_FIRST_CHECK": "0.5"}
    with pipeline_for("postgresql", tmp_path, workers=0, env=env) as pipeline:
        # At DEBUG, where Celery's lines for each status check show (INFO leaves them out).
        pipeline.celery.worker("starts", queues=START_LANE, loglevel="DEBUG")
        streams = [pipeline.book(2.0 + i / 10) for i in range(3)]
        for stream in streams:
            pipeline.wait_state(stream.id, StreamState.STARTED)
            assert len(pipeline.created_for(stream.meeting_id)) == 1
        # The first checks fall due half a second after each start; no worker takes them.
        time.sleep(3)
        assert not any(checks(pipeline, s.id) for s in streams)
        pipeline.celery.worker("follow", queues=FOLLOW_LANE, loglevel="DEBUG")

        def checked() -> bool:
            return all(checks(pipeline, s.id) for s in streams)

        wait_until(checked, 30, "a status check of every stream, by the follow worker")
        starts_log = pipeline.celery.log("starts").read_text()
        follow_log = pipeline.celery.log("follow").read_text()
        assert "livestreams.launch[" in starts_log and "livestreams.track_stream[" not in starts_log
        assert "livestreams.track_stream[" in follow_log and "livestreams.launch[" not in follow_log
