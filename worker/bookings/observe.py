"""What an observed livestream status does to a booking: the one place polls and webhooks meet.

An observation is (status, the instant it held, where it came from). It is applied with named
conditional UPDATEs, so a late or replayed observation can never move a row back:
- ``STORE_STATUS``: the row's ``livestream_status`` follows the newest observation only;
- ``MARK_LIVE``: ``started`` becomes ``live`` the first time LIVE is seen (at any age: it *was*
  live then), clearing a not_live or errored flag;
- ``FLAG_ERRORED``: ERRORED flags a started or live row that has no other flag;
- ``CHECK_SOON``: any other status from a webhook (OFFLINE, IDLE, …) for a tracked row brings
  its next status check forward to now: whether the stream has ended is for a poll to say (the
  meeting's active livestream), not for an event that may be late or out of order.
Every observation that says something new is kept in ``stream_status_events``.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, insert, or_, select, update
from sqlalchemy.orm import Session

from models import (
    TRACKED_STATES,
    EventType,
    Problem,
    ScheduledStream,
    StatusEvent,
    StatusSource,
    StreamState,
)
from worker.notify import outbox

S = ScheduledStream
LIVE = "LIVE"
ERRORED = "ERRORED"
_TRACKED = [s.value for s in TRACKED_STATES]


class Applied(enum.StrEnum):
    """What one observation did to its booking."""

    APPLIED = "applied"  # the newest word on the stream: stored
    STALE = "stale"  # older than what is stored: kept in the timeline only
    UNCHANGED = "unchanged"  # the very status and instant stored already: nothing is done
    UNKNOWN_STREAM = "unknown_stream"  # no booking of ours has this livestream id


@dataclass(frozen=True)
class Observation:
    livestream_id: str
    status: str
    observed_at: datetime
    source: StatusSource


def _newer(observed_at: datetime) -> ColumnElement[bool]:
    return or_(S.status_observed_at.is_(None), S.status_observed_at <= observed_at)


def find_booking(session: Session, livestream_id: str) -> uuid.UUID | None:
    """The booking whose livestream this is, if any (indexed on livestream_id)."""
    return session.scalar(select(S.id).where(S.livestream_id == livestream_id).limit(1))


def apply(
    session: Session, stream_id: uuid.UUID, seen: Observation, now: datetime, *, keep: bool = True
) -> Applied:
    """Apply ``seen`` to booking ``stream_id`` (whose livestream it is), in the caller's
    transaction; ``keep``: add it to the timeline (a poll that repeats the stored status
    is not kept: it would add a row per check and say nothing new)."""
    # Never later than our own clock: an instant from a provider clock running ahead (or a
    # bogus one) would otherwise make every later observation, our polls included, "stale".
    if seen.observed_at > now:
        seen = replace(seen, observed_at=now)
    mine = and_(S.id == stream_id, S.livestream_id == seen.livestream_id)
    status = seen.status
    # The observation stored already (a provider delivery replayed under a fresh id): a no-op,
    # or each copy would add a timeline row and ask for a status check from the shared budget.
    same = select(S.id).where(
        mine, S.livestream_status == status, S.status_observed_at == seen.observed_at
    )
    if session.scalar(same) is not None:
        return Applied.UNCHANGED
    stored = session.execute(
        update(S)  # STORE_STATUS
        .where(mine, _newer(seen.observed_at))
        .values(livestream_status=status, status_observed_at=seen.observed_at, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if status == LIVE:
        marked = session.execute(
            update(S)  # MARK_LIVE
            .where(mine, S.state == StreamState.STARTED.value)
            .values(
                state=StreamState.LIVE.value,
                live_at=seen.observed_at,
                problem=case((S.problem == Problem.STOP_FAILED.value, S.problem), else_=None),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        outbox.after(bool(marked), session, EventType.STREAM_LIVE, stream_id, now)
        if stored:
            session.execute(
                update(S)  # a newer LIVE clears the errored flag of a live row too
                .where(mine, S.problem == Problem.ERRORED.value)
                .values(problem=None)
                .execution_options(synchronize_session=False)
            )
    elif status == ERRORED and stored:
        flagged = session.execute(
            update(S)  # FLAG_ERRORED
            .where(mine, S.state.in_(_TRACKED), S.problem.is_(None))
            .values(problem=Problem.ERRORED.value, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        outbox.after(bool(flagged), session, EventType.STREAM_ERRORED, stream_id, now)
    elif stored and seen.source is StatusSource.WEBHOOK:
        session.execute(
            update(S)  # CHECK_SOON: an idle tracked row not held by a run is checked now
            .where(mine, S.state.in_(_TRACKED), S.claim_token.is_(None), S.due_at > now)
            .values(due_at=now)
            .execution_options(synchronize_session=False)
        )
    if keep:
        record(session, stream_id, seen, now)
    return Applied.APPLIED if stored else Applied.STALE


def record(session: Session, stream_id: uuid.UUID, seen: Observation, now: datetime) -> None:
    """Keep ``seen`` in the booking's timeline."""
    session.execute(
        insert(StatusEvent).values(
            stream_id=stream_id,
            livestream_id=seen.livestream_id,
            status=seen.status,
            source=seen.source.value,
            observed_at=seen.observed_at,
            recorded_at=now,
        )
    )


def record_many(session: Session, seen: list[tuple[uuid.UUID, Observation]], now: datetime) -> None:
    """:func:`record` for many bookings at once (one executemany)."""
    if seen:
        session.execute(
            insert(StatusEvent),
            [
                {
                    "stream_id": stream_id,
                    "livestream_id": o.livestream_id,
                    "status": o.status,
                    "source": o.source.value,
                    "observed_at": o.observed_at,
                    "recorded_at": now,
                }
                for stream_id, o in seen
            ],
        )


def timeline(session: Session, stream_id: uuid.UUID) -> list[StatusEvent]:
    """The booking's observed statuses, oldest first."""
    query = (
        select(StatusEvent)
        .where(StatusEvent.stream_id == stream_id)
        .order_by(StatusEvent.observed_at, StatusEvent.id)
    )
    return list(session.scalars(query))
