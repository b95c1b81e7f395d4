"""Attempt rows as a start run leaves them, written straight to the database for a test."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from models import ScheduledStream, StartAttempt, StreamState
from models.db import db_now, get_sessionmaker

# (action, outcome, HTTP status); outcome None: the run died during the call.
Call = tuple[str, str | None, int | None]


def add_calls(url: str, stream_id: uuid.UUID, *calls: Call) -> None:
    """Append ``calls`` to the booking's attempts and leave it ``retrying``, due in a minute."""
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        query = select(func.count()).where(StartAttempt.stream_id == stream_id)
        done = s.scalar(query) or 0
        for number, (action, outcome, status) in enumerate(calls, start=done + 1):
            s.add(
                StartAttempt(
                    stream_id=stream_id, number=number, action=action, sent_at=now,
                    finished_at=None if outcome is None else now, outcome=outcome,
                    http_status=status,
                )
            )  # fmt: skip
        s.execute(
            update(ScheduledStream)
            .where(ScheduledStream.id == stream_id)
            .values(
                state=StreamState.RETRYING.value,
                attempts=done + len(calls),
                due_at=now + timedelta(minutes=1),
                last_error="start: HTTP 502",
            )
        )
