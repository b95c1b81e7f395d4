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
