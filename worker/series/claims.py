"""The conditional statements of a series and of the occurrences that still follow it.

An occurrence *follows* its series while nobody changed it on its own (``detached`` is false:
a reschedule, cancel or retry of that booking sets it, worker.bookings.booking) and it has not
begun: still ``scheduled`` and never tried. Only such rows are moved or cancelled by a change
of the series, each in one UPDATE whose WHERE is that condition: a dispatcher that claims the
row first, or an ops change that detaches it first, wins, and the series leaves it alone.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from models import ScheduledStream, Series, SeriesState, StreamState

S = ScheduledStream

CANCELLED_WITH_SERIES = "cancelled with its series"
LEFT_THE_RULE = "its date left the series' rule"


def _following(series_id: uuid.UUID, now: datetime) -> Any:
    return and_(
        S.series_id == series_id,
        S.detached.is_(False),
        S.state == StreamState.SCHEDULED.value,
        S.attempts == 0,
        S.claim_token.is_(None),
        S.scheduled_at > now,
    )


def made_days(session: Session, series_id: uuid.UUID) -> set[date]:
    """The dates that already have an occurrence (in any state): never made twice."""
    found = session.scalars(select(S.series_date).where(S.series_id == series_id))
    return {d for d in found if d is not None}


def following(session: Session, series_id: uuid.UUID, now: datetime) -> list[ScheduledStream]:
    """The occurrences a change of the series moves: untouched and not begun."""
    return list(
        session.scalars(select(S).where(_following(series_id, now)).order_by(S.series_date))
    )


def attach(session: Session, stream_id: uuid.UUID, series_id: uuid.UUID, day: date) -> bool:
    """Make a booking just made by the maker an occurrence of ``series_id`` on ``day``."""
    result = session.execute(
        update(S)
        .where(S.id == stream_id, S.series_id.is_(None))
        .values(series_id=series_id, series_date=day)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def follow(
    session: Session, series_id: uuid.UUID, stream_id: uuid.UUID, now: datetime, **values: Any
) -> bool:
    """FOLLOW: move one untouched, unstarted occurrence to the series' new values."""
    result = session.execute(
        update(S)
        .where(S.id == stream_id, _following(series_id, now))
        .values(updated_at=now, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel_following(
    session: Session,
    series_id: uuid.UUID,
    now: datetime,
    reason: str,
    only: list[uuid.UUID] | None = None,
) -> list[uuid.UUID]:
    """CANCEL_FOLLOWING: cancel the untouched, unstarted occurrences (``only`` these, if
    given); the ids cancelled."""
    where = _following(series_id, now)
    if only is not None:
        where = and_(where, S.id.in_(only))
    rows = session.execute(
        update(S)
        .where(where)
        .values(state=StreamState.CANCELLED.value, last_error=reason, updated_at=now)
        .returning(S.id)
    )
    return [row[0] for row in rows]


def made_until(session: Session, series_id: uuid.UUID, until: datetime) -> None:
    """The maker's progress: occurrences exist up to ``until`` (never moved back)."""
    session.execute(
        update(Series)
        .where(
            Series.id == series_id,
            (Series.made_until.is_(None)) | (Series.made_until < until),
        )
        .values(made_until=until)
    )


def change(session: Session, series_id: uuid.UUID, now: datetime, **values: Any) -> bool:
    """SERIES_CHANGE: new rule, time or fields, while the series is active."""
    result = session.execute(
        update(Series)
        .where(Series.id == series_id, Series.state == SeriesState.ACTIVE.value)
        .values(updated_at=now, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def active_behind(session: Session, horizon: datetime) -> list[uuid.UUID]:
    """Active series whose occurrences are not made up to ``horizon`` yet."""
    return list(
        session.scalars(
            select(Series.id).where(
                Series.state == SeriesState.ACTIVE.value,
                (Series.made_until.is_(None)) | (Series.made_until < horizon),
            )
        )
    )
