"""Tracking shares the rate budget with starts, with real beat and worker processes.

1,000 live streams all want a status check while a burst of bookings comes due. The fake
enforces a limit scaled down from Cloudflare's 1,200 requests per 5 min (100 per 5 s), and the
product is told the same. Starts come first and status checks leave room for every start due
within the rate window, so the limit is never hit and the burst starts, each once.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from models import ScheduledStream, StreamState
from models.db import db_now, get_sessionmaker
from tests.pipeline import Pipeline, pipeline_for
from tests.processes import own_redis, wait_until
from worker.bookings import booking

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LIVE_STREAMS = 1000
BURST = 60
LIMIT, WINDOW = 100, 5.0


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    with own_redis(tmp_path) as server:
        env = {
            "LIVESTREAMS_RATE_LIMIT": f"{LIMIT}/{WINDOW:g}",
            "LIVESTREAMS_BROKER_URL": server.url,
        }
        with pipeline_for("postgresql", tmp_path, env=env, workers=2) as p:
            p.fake.set_rate_limit(LIMIT, WINDOW)
            yield p


def test_1000_live_streams_and_a_burst_of_starts_never_hit_the_limit(pipeline: Pipeline) -> None:
    url, settings = pipeline.settings.database_url, pipeline.settings
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        s.execute(
            insert(ScheduledStream),
            [
                {
                    "id": uuid.uuid4(),
                    "account_id": settings.upstream.account_id,
                    "app_id": settings.upstream.app_id,
                    "meeting_id": uuid.uuid4(),
                    "scheduled_at": now,
                    "timezone": "UTC",
                    "start_deadline": now,
                    "start_window": 900.0,
                    "due_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "state": StreamState.LIVE.value,
                    "attempts": 1,
                    "livestream_id": f"ls-{i}",
                    "livestream_status": "LIVE",
                    "started_at": now,
                    "live_at": now,
                }
                for i in range(LIVE_STREAMS)
            ],
        )
        burst_at = now + timedelta(seconds=8)
        rows = [
            booking.schedule(s, settings, meeting_id=str(uuid.uuid4()), at=burst_at).stream
            for _ in range(BURST)
        ]

    def started() -> bool:
        with get_sessionmaker(url)() as s:
            query = select(func.count()).where(
                ScheduledStream.id.in_([r.id for r in rows]),
                ScheduledStream.state.in_(["started", "live"]),
            )
            return s.scalar(query) == BURST

    try:
        wait_until(started, 90, f"all {BURST} bookings to start", interval=0.5)
    except TimeoutError:
        print(pipeline.celery.logs())
        raise
    requests = pipeline.fake.requests
    refused = [r for r in requests if r.response == 429]
    checks = [r for r in requests if r.endpoint == "active"]
    first = {}
    for r in requests:
        if r.endpoint == "start":
            first.setdefault(r.meeting_id, r.arrived)
    late = sorted(t - burst_at.timestamp() for t in first.values())
    print(
        f"tracking budget: {len(requests)} requests, {len(checks)} status checks, "
        f"{len(refused)} refused with 429; burst lateness p50 {statistics.median(late):.3f} s,"
        f" max {late[-1]:.3f} s"
    )
    assert refused == []
    assert checks, "no status check was made at all"
    for row in rows:
        assert len(pipeline.created_for(row.meeting_id)) == 1
