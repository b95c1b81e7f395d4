"""Two deployments on one Redis database: each takes some of the other's launches, which
makes starts late (each is sent again after the pickup grace, and may be taken by the other
again). That is a misconfiguration the product cannot repair; what it owes is to name it in
the log within a minute, instead of nothing but "stale", and never to start a booking twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import StreamState
from tests.pipeline import pipeline_for
from tests.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CAUSE = b"another deployment probably shares this broker database"


def test_a_second_deployment_on_the_same_broker_is_named_in_the_log(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with pipeline_for("postgresql", tmp_path / "a") as first:
        shared = {"LIVESTREAMS_BROKER_URL": first.env["LIVESTREAMS_BROKER_URL"]}
        with pipeline_for("postgresql", tmp_path / "b", env=shared) as second:
            streams = [first.book(1.0 + i / 5) for i in range(10)]

            def named() -> bool:
                return CAUSE in second.celery.log("worker-1").read_bytes()

            wait_until(named, 60, "the second deployment's worker to name the cause")
            for stream in streams:
                assert len(first.created_for(stream.meeting_id)) <= 1
                if first.row(stream.id).state == StreamState.STARTED:
                    assert len(first.created_for(stream.meeting_id)) == 1
