"""The conditional UPDATEs of a started or live row: claim, take back, confirm, finish, end.

A tracked row (``started`` or ``live``) keeps its state while a run holds it; what marks it
held is its claim token and lease. A row whose run vanished is claimable again once its lease
has run out (or sooner, through ``reap``), and a fresh claim replaces the token: the old run's
writes, all under ``TRACK_HELD``, change nothing. Its ``due_at`` stays the instant the run is
for (the task's ETA) until the run writes the next one.
Starts and stops come first in the budget (worker.dispatch); status checks use what is left.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, or_, select
from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    TRACKED_STATES,
    EndReason,
    EventType,
    Problem,
    ScheduledStream,
    StreamState,
)
from worker.lease import claims as leasing
from worker.lease.claims import RELEASED, Claim, ClaimKind
from worker.notify import outbox

S = ScheduledStream
_TRACKED = [s.value for s in TRACKED_STATES]
TRACK = ClaimKind.TRACK
_IS_TRACKED = S.state.in_(_TRACKED)

# The run still holds the row: tracked, under its token.
TRACK_HELD = leasing.held(S, _IS_TRACKED)
# The event a flag set by ``finish`` tells the platform (follow.py sets each flag once).
_FLAG_EVENTS = {
    Problem.NOT_LIVE: EventType.STREAM_NOT_LIVE,
    Problem.ERRORED: EventType.STREAM_ERRORED,
    Problem.STOP_FAILED: EventType.STREAM_STOP_FAILED,
}
# Its stop is due by ``horizon`` (bound at use): these go first, like starts.
_STOP_PENDING = and_(
    or_(S.problem.is_(None), S.problem != Problem.STOP_FAILED.value),
    # Null-safe on purpose: NOT of a NULL would hide rows without ends_at from both claims.
    or_(
        S.stop_requested_at.is_not(None),
        and_(S.ends_at.is_not(None), S.ends_at <= bindparam("horizon")),
    ),
)


def claim(
    session: Session,
    now: datetime,
    *,
    lookahead: float,
    lease: float,
    batch: int,
    stops: bool,
    not_before: datetime | None = None,
) -> list[Claim]:
    """Claim up to ``batch`` tracked rows due by ``now + lookahead``, oldest first: those
    whose stop is due (``stops``), or the others (status checks)."""
    horizon = now + timedelta(seconds=lookahead)
    handed_out = max(now, not_before) if not_before is not None else now
    kind = _STOP_PENDING if stops else ~_STOP_PENDING
    claimed = leasing.take(
        session,
        S,
        TRACK,
        [
            _IS_TRACKED,
            S.due_at <= horizon,
            or_(S.claim_token.is_(None), S.lease_expires_at < now),
            kind,
        ],
        batch,
        params={"horizon": horizon},
        lease_expires_at=horizon + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=handed_out,
        updated_at=now,
    )
    return [replace(c, due_at=max(c.due_at, handed_out)) for c in claimed]


def reap(
    session: Session,
    now: datetime,
    *,
    lookahead: float,
    lease: float,
    batch: int,
    pickup_grace: float,
    owner_timeout: float | None,
) -> list[Claim]:
    """Hand out again held tracked rows that no run took up within ``pickup_grace`` of their
    instant (worker.lease.claims.resend: same token, less and less often), and take back those whose
    owner stopped beating before their lease ran out. (At the lease's end ``claim`` takes them
    again.) Held rows are due by the lookahead, so the (state, due_at) index bounds the scan."""
    tracked = [_IS_TRACKED, S.lease_expires_at >= now]  # past its lease, claim() does
    again = [
        replace(c, due_at=now)
        for c in leasing.resend(
            session, S, TRACK, now, tracked, lease=lease, batch=batch, pickup_grace=pickup_grace
        )
    ]
    if owner_timeout is None:
        return again
    taken = leasing.take(
        session,
        S,
        TRACK,
        [
            *tracked,
            S.due_at <= now + timedelta(seconds=lookahead),
            S.claim_token.is_not(None),
            leasing.owner_died(S, now, owner_timeout),
        ],
        batch - len(again),
        lease_expires_at=now + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=now,
        updated_at=now,
    )
    return [*again, *(replace(c, due_at=now) for c in taken)]


def unconfirmed(session: Session, now: datetime) -> int:
    """Tracked claims handed out for now or earlier that no run has confirmed yet: their
    messages wait in the broker (held rows are due by now, so the index bounds the scan)."""
    return leasing.unconfirmed(session, S, _IS_TRACKED, now)


def starts_due_within(session: Session, now: datetime, seconds: float) -> int:
    """Bookings due to start within ``seconds``: the room a status check must leave them."""
    query = select(func.count()).where(
        S.state.in_([s.value for s in CLAIMABLE_STATES]),
        S.due_at <= now + timedelta(seconds=seconds),
    )
    return session.scalar(query) or 0


_CONFIRM = leasing.confirm_statement(
    S,
    TRACK_HELD,
    returning=[
        S.attempts,
        S.state,
        S.account_id,
        S.app_id,
        S.meeting_id,
        S.livestream_id,
        S.livestream_status,
        S.started_at,
        S.live_at,
        S.ends_at,
        S.stop_requested_at,
        S.problem,
    ],
)


def confirm(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
) -> tuple[uuid.UUID, Any] | None:
    """Take the claim for one call (attempt number and the row's facts with it), renewing
    its token and lease; None if the claim is gone."""
    return leasing.confirm_with(session, _CONFIRM, stream_id, token, now, lease, owner)


def finish(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    due_at: datetime,
    began: datetime,
    problem: Problem | None = None,
    reason: str | None = None,
) -> bool:
    """Release the row until ``due_at`` (its next check or stop); flag ``problem``.

    A stop asked for while the run was out (after ``began``) brings the next run forward to
    now, so it is not left waiting for a check that may be an hour away.
    """
    values: dict[str, Any] = {
        **RELEASED,
        "updated_at": now,
        "due_at": case((S.stop_requested_at > began, now), else_=due_at),
    }
    if problem is not None:
        values["problem"] = problem.value
    if reason is not None:
        values["last_error"] = reason
    written = _while_held(session, stream_id, token, **values)
    if written and problem is not None:
        outbox.emit(session, _FLAG_EVENTS[problem], stream_id, now)
    return written


def end(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    reason: EndReason,
) -> bool:
    """``ended`` for ``reason``: stopped by us, or no longer ours upstream. True if written."""
    written = _while_held(
        session,
        stream_id,
        token,
        state=StreamState.ENDED.value,
        ended_at=now,
        end_reason=reason.value,
        **RELEASED,
        updated_at=now,
        # A stop that had failed is moot once the stream has ended.
        problem=case((S.problem == Problem.STOP_FAILED.value, None), else_=S.problem),
    )
    return outbox.after(written, session, EventType.STREAM_ENDED, stream_id, now)


def _while_held(session: Session, stream_id: uuid.UUID, token: uuid.UUID, **values: Any) -> bool:
    return leasing.while_held(session, S, TRACK_HELD, stream_id, token, **values)
