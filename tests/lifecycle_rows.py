"""Bookings as the start and tracking runs leave them (started, live, ended, flagged), with
their status timeline, written straight to the database for a test."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, update

from models import ScheduledStream, StatusEvent
from models.db import db_now, get_sessionmaker

# (status, source, seconds after the booked instant)
Seen = tuple[str, str, float]


def follow(
    url: str, stream_id: uuid.UUID, state: str, *, seen: Iterable[Seen] = (), **values: object
) -> None:
    """Move the booking to ``state`` with a livestream started 2 s after its instant, the
    statuses ``seen`` in its timeline (the newest one stored on the row), and ``values``."""
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        booked = s.scalar(
            select(ScheduledStream.scheduled_at).where(ScheduledStream.id == stream_id)
        )
        assert booked is not None
        livestream = f"ls-{stream_id.hex[:12]}"
        columns: dict[str, object] = {
            "state": state,
            "livestream_id": livestream,
            "started_at": booked + timedelta(seconds=2),
            "due_at": now + timedelta(minutes=5),
        }
        for status, source, after in seen:
            at: datetime = booked + timedelta(seconds=after)
            s.add(
                StatusEvent(
                    stream_id=stream_id, livestream_id=livestream, status=status, source=source,
                    observed_at=at, recorded_at=now,
                )
            )  # fmt: skip
            columns.update(livestream_status=status, status_observed_at=at)
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream_id)
            .values(**{**columns, **values})
        )
