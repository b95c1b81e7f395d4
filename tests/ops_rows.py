"""Bookings in the states the ops page acts on, written straight to the database for a test."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from models import ScheduledStream, StartAttempt
from models.db import db_now, get_sessionmaker

RAY = "8f2c1d3e4a5b6c7d-FRA"
REFUSAL = "meeting not found"


def fail(url: str, stream_id: uuid.UUID, *, state: str = "failed") -> None:
    """The booking as a start run leaves it after the API refused it for good (422, with a
    cf-ray), or as the dispatcher leaves a missed one (no call)."""
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        if state == "failed":
            s.add(
                StartAttempt(
                    stream_id=stream_id,
                    number=1,
                    action="start",
                    sent_at=now - timedelta(seconds=5),
                    finished_at=now - timedelta(seconds=4),
                    outcome="fatal",
                    http_status=422,
                    error_code="422",
                    error_message=REFUSAL,
                    ray_id=RAY,
                    duration=0.8,
                )
            )
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream_id)
            .values(
                state=state,
                attempts=1 if state == "failed" else 0,
                last_error=REFUSAL if state == "failed" else "deadline passed",
                updated_at=now,
            )
        )


def busy_hour(url: str, stream_ids: list[uuid.UUID]) -> int:
    """The bookings as started over the last hour, each a start call then a status check
    every 3 minutes since: what the overview's charts draw. Returns the checks written."""
    from tests.conftest import make_due
    from tests.lifecycle_rows import follow

    checks = 0
    for k, stream_id in enumerate(stream_ids):
        booked = make_due(url, stream_id, timedelta(minutes=-(55 - 12 * k)))
        follow(url, stream_id, "live", seen=[("LIVE", "poll", 3)])
        with get_sessionmaker(url).begin() as s:
            now = db_now(s)
            calls = [("start", booked, "started", 201)]
            at = booked + timedelta(minutes=3)
            while at < now:
                calls.append(("status", at, "observed", 200))
                at += timedelta(minutes=3)
            for number, (action, sent, outcome, status) in enumerate(calls, start=1):
                s.add(
                    StartAttempt(
                        stream_id=stream_id, number=number, action=action, sent_at=sent,
                        finished_at=sent + timedelta(seconds=0.3), outcome=outcome,
                        http_status=status, duration=0.3,
                    )
                )  # fmt: skip
            checks += len(calls) - 1
    return checks
