"""The statements of a start: claim due bookings, hand out again or take back lost claims,
confirm a claim for one call (one booking, or a whole launch in one UPDATE with its attempts
written ahead in one INSERT), and expire or fail what can no longer start.

Each is one conditional UPDATE on the claim machinery of ``worker.lease.claims`` (token, lease,
owner), and the calls are written ahead (``worker.upstream.attempts``): a launch confirms ahead of
the instant what a start run confirms at it, under the same conditions, so every rule of
docs/DESIGN.md "Exactly one start per booking" holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    bindparam,
    case,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from models import (
    CLAIMABLE_STATES,
    AttemptAction,
    EventType,
    ScheduledStream,
    StartAttempt,
    StreamState,
    UpstreamPause,
)
from worker.bookings.transitions import CLAIM_HELD
from worker.lease import claims as leasing
from worker.lease.claims import Claim, ClaimKind
from worker.notify import outbox
from worker.upstream.attempts import UNCLEAR_START_CALL

S = ScheduledStream
A = StartAttempt
START = ClaimKind.START
_STARTING = S.state == StreamState.STARTING.value


def claim_due(
    session: Session,
    now: datetime,
    *,
    lookahead: float,
    lease: float,
    batch: int,
    not_before: datetime | None = None,
) -> list[Claim]:
    """CLAIM_STARTS: up to ``batch`` rows due by ``now + lookahead``, oldest first.

    ``now`` must be the database's clock (models.db.db_now) so that beats on different hosts
    agree. Rows are claimed ahead of their instant so their launch is prepared before it,
    although the tick is coarse. The lease runs from the end of the lookahead, so it cannot run
    out before the instant even for a row claimed early. ``not_before`` (the end of a
    rate-limit pause within the lookahead) holds every claim until then: the starts leave as
    the pause ends, not at the first tick after it.
    """
    horizon = now + timedelta(seconds=lookahead)
    handed_out = max(now, not_before) if not_before is not None else now
    claimed = _take(
        session,
        [S.state.in_([s.value for s in CLAIMABLE_STATES]), S.due_at <= horizon],
        batch,
        state=StreamState.STARTING.value,
        lease_expires_at=horizon + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=handed_out,  # the pickup grace runs from when the run is expected
        updated_at=now,
    )
    return [replace(c, due_at=max(c.due_at, handed_out)) for c in claimed]


def _take(
    session: Session, where: list[ColumnElement[bool]], batch: int, **values: Any
) -> list[Claim]:
    return leasing.take(session, S, START, where, batch, **values)


# A claim is taken back after this many vanished runs: the booking then fails with a reason
# instead of being handed out for ever to runs that die (a poison row, a crashing process).
# Only a run that took the claim up (confirmed it: claim_owner set) and vanished counts. A
# claim no run took up in time (its message lost, or still queued behind a slow pool) says
# nothing about the booking: it is handed out again, uncounted, for as long as the start's
# own deadline allows; counting those failed whole bursts on an overloaded machine.
MAX_RECLAIMS = 5
# The row's run had taken the claim up when it was lost.
_RUN_VANISHED = S.claim_owner.is_not(None)


def _lost(now: datetime, owner_timeout: float | None) -> ColumnElement[bool]:
    """A ``starting`` row whose run has vanished: its lease ran out, or the run that took it
    up stopped beating (``owner_timeout``; None: do not judge owners now). An owner that beats
    keeps its claim until the lease runs out, and the lease outlives the longest call, so a
    call in flight is never taken over. (A claim no run took up is not lost but sent again:
    worker.lease.claims.resend.)"""
    lost = [S.lease_expires_at < now]
    if owner_timeout is not None:
        lost.append(leasing.owner_died(S, now, owner_timeout))
    return and_(_STARTING, or_(*lost))


def unconfirmed(session: Session, now: datetime) -> int:
    """Start claims handed out for now or earlier that no run has confirmed yet: the queue in
    the broker."""
    return leasing.unconfirmed(session, S, _STARTING, now)


def reap(
    session: Session,
    now: datetime,
    *,
    lease: float,
    batch: int,
    pickup_grace: float,
    owner_timeout: float | None,
    resend: int | None = None,
) -> list[Claim]:
    """Hand out again the claims no run took up within ``pickup_grace`` (a lost message, a
    killed worker's prefetch: same token), at most ``resend`` of them, and take back the rows
    whose run vanished (killed worker, dead owner, lease run out).

    A row taken back stays ``starting`` under a fresh token and no owner, so the old run, if it
    ever comes back, matches nothing. The new run reconciles any unfinished attempt before it
    posts. Either way the row keeps its due instant, and so its place in the queue.
    """
    again = leasing.resend(
        session,
        S,
        START,
        now,
        [_STARTING],
        lease=lease,
        pickup_grace=pickup_grace,
        batch=batch if resend is None else min(batch, resend),
    )
    taken = _take(
        session,
        [_lost(now, owner_timeout), or_(S.reclaims < MAX_RECLAIMS, ~_RUN_VANISHED)],
        batch - len(again),
        lease_expires_at=now + timedelta(seconds=lease),
        claim_owner=None,
        claimed_at=now,
        reclaims=S.reclaims + case((_RUN_VANISHED, 1), else_=0),  # the row as it was
        updated_at=now,
    )
    return sorted([*again, *taken], key=lambda c: c.due_at)


# What makes a start plain, besides its claim: the start deadline has not passed, no earlier
# start call of the booking may have created a livestream, and the API token is not paused.
_PLAIN = (
    S.start_deadline >= bindparam("now"),
    ~exists().where(A.stream_id == S.id, UNCLEAR_START_CALL),
    ~exists().where(
        UpstreamPause.token_hash == bindparam("token_key"),
        UpstreamPause.paused_until > bindparam("now"),
    ),
)
# What a start call needs of its booking: a plain confirmation returns it, so the run reads
# nothing else.
_START_FIELDS = (
    S.attempts,
    S.account_id,
    S.app_id,
    S.meeting_id,
    S.name,
    S.video_width,
    S.video_height,
    S.start_deadline,
    S.scheduled_at,
)

_HELD = (
    S.id.in_(bindparam("p_ids", expanding=True)),
    S.state == StreamState.STARTING.value,
    S.claim_token == bindparam("p_token"),
)

# CONFIRM_LAUNCH: the plain start of every claim of the launch at once. Besides the claim
# itself: due within the launch's lead by the database's clock (never confirmed earlier than
# that), the start deadline not passed by the instant, no earlier start call that may have
# created a livestream, the token not paused. Whatever fails one of these is left as it was:
# it takes the single-start path at its instant, which looks closer (worker.start.flow).
# The lease runs from the end of the lead, so it covers every instant of the launch plus its
# longest call. The new token is one per launch, as a claim's token is one per statement.
_CONFIRM_LAUNCH = leasing.confirm_statement(
    S,
    and_(*_HELD),
    S.due_at <= bindparam("p_until"),
    S.start_deadline >= S.due_at,
    *_PLAIN,
    returning=[S.id, S.due_at, *_START_FIELDS],
).execution_options(synchronize_session=False)

_STILL_HELD = select(S.id, S.due_at).where(*_HELD)


def confirm_launch(
    session: Session,
    token: uuid.UUID,
    stream_ids: Sequence[uuid.UUID],
    now: datetime,
    *,
    lead: float,
    lease: float,
    owner: uuid.UUID,
    token_key: str,
) -> tuple[uuid.UUID, list[Row[Any]]]:
    """CONFIRM_LAUNCH, then WRITE_AHEAD_MANY: the launch's plain claims, confirmed for one
    start call each under a new token owned by ``owner``, with their attempt rows written.

    Returns the new token and the confirmed rows (what each call needs). In the caller's
    transaction, so the attempts exist before any request leaves.
    """
    renewed = uuid.uuid4()
    until = now + timedelta(seconds=lead)
    rows = list(
        session.connection().execute(
            _CONFIRM_LAUNCH,
            {
                "p_ids": list(stream_ids),
                "p_token": token,
                "p_until": until,
                "now": now,
                "token_key": token_key,
                "renewed": renewed,
                "owner": owner,
                "lease_until": until + timedelta(seconds=lease),
            },
        )
    )
    if rows:
        # The request leaves at the instant (or now, when that has passed): sent_at says so,
        # and the rate budget counts it from then.
        session.connection().execute(
            insert(A),
            [
                {
                    "stream_id": row.id,
                    "number": row.attempts,
                    "action": AttemptAction.START.value,
                    "claim_token": renewed,
                    "sent_at": max(row.due_at, now),
                }
                for row in rows
            ],
        )
    return renewed, rows


def still_held(
    session: Session, token: uuid.UUID, stream_ids: Sequence[uuid.UUID]
) -> list[Row[Any]]:
    """Which of ``stream_ids`` are still claimed under ``token`` (id, due_at)."""
    if not stream_ids:
        return []
    return list(session.execute(_STILL_HELD, {"p_ids": list(stream_ids), "p_token": token}))


def fail_reclaimed(session: Session, now: datetime, *, owner_timeout: float | None) -> int:
    """Fail the rows whose run vanished again after runs had vanished :data:`MAX_RECLAIMS`
    times already.

    Their claim is released; the reason says that an earlier call may have created a
    livestream, which ``livestreams attempts`` shows.
    """
    stmt = (
        update(S)
        .where(_lost(now, owner_timeout), S.reclaims >= MAX_RECLAIMS, _RUN_VANISHED)
        .values(
            state=StreamState.FAILED.value,
            **leasing.RELEASED,
            last_error=f"a run that had taken it up vanished {MAX_RECLAIMS + 1} times (killed"
            " workers, or a start that takes its process down); not handed out again. An"
            " earlier call may have created a livestream: see its attempts",
            updated_at=now,
        )
        .returning(S.id)
        .execution_options(synchronize_session=False)
    )
    failed = session.execute(stmt).scalars().all()
    outbox.emit_many(session, EventType.BOOKING_FAILED, failed, now)
    return len(failed)


def expire_untried(session: Session, now: datetime) -> int:
    """Mark ``missed`` the rows whose deadline passed before any call was made for them.

    Rows that were tried are left to the start task: an earlier call may have created a
    livestream, so they must be reconciled before anyone may call them failed.
    """
    stmt = (
        update(S)
        .where(
            S.state.in_([s.value for s in CLAIMABLE_STATES]),
            S.due_at <= now,  # implied by the deadline test; lets the (state, due_at) index work
            S.start_deadline < now,
            S.attempts == 0,
        )
        .values(
            state=StreamState.MISSED.value,
            claim_token=None,
            lease_expires_at=None,
            last_error=case(
                (S.state == StreamState.SCHEDULED.value, "start deadline passed before dispatch"),
                else_="start deadline passed before the retry was due",
            ),
            updated_at=now,
        )
        .returning(S.id)
        .execution_options(synchronize_session=False)
    )
    missed = session.execute(stmt).scalars().all()
    outbox.emit_many(session, EventType.BOOKING_MISSED, missed, now)
    return len(missed)


# Never before the due instant by the database's clock: a worker whose clock runs ahead would
# otherwise start early (its ETA is read on its own clock).
_NOT_EARLY = S.due_at <= bindparam("now")

_CONFIRM = leasing.confirm_statement(S, CLAIM_HELD, _NOT_EARLY, returning=[S.attempts])


def confirm_claim(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
) -> tuple[int, uuid.UUID] | None:
    """Take the claim for one call: the new attempt number and the token that now holds it.

    Called in the transaction that writes the attempt row ahead of the call, so the attempt
    exists before the request leaves and the lease covers it. ``owner`` is the process's
    heartbeat id (worker.lease.heartbeat): while it beats, the claim is not taken back.
    """
    confirmed = leasing.confirm_with(session, _CONFIRM, stream_id, token, now, lease, owner)
    return None if confirmed is None else (confirmed[1].attempts, confirmed[0])


# The plain case of a start task: besides the claim, the start deadline has not passed, no
# earlier start call of this booking may have created a livestream, and the API token is not
# paused. It returns what the call needs, so the run reads nothing else.
_CONFIRM_PLAIN_START = leasing.confirm_statement(
    S, CLAIM_HELD, _NOT_EARLY, *_PLAIN, returning=_START_FIELDS
)


def confirm_plain_start(
    session: Session,
    stream_id: uuid.UUID,
    token: uuid.UUID,
    now: datetime,
    *,
    lease: float,
    owner: uuid.UUID,
    token_key: str,
) -> tuple[uuid.UUID, Row[Any]] | None:
    """:func:`confirm_claim` for the plain case, returning the booking's fields with it.

    None when anything is not plain (the claim is gone, the deadline passed, an earlier call
    is unclear, the token is paused): nothing was changed, and the caller looks closer.
    """
    return leasing.confirm_with(
        session, _CONFIRM_PLAIN_START, stream_id, token, now, lease, owner, token_key=token_key
    )
