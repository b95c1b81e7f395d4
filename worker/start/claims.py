"""The statements of a launch: confirm all its claims in one UPDATE, write all their attempts
ahead in one INSERT, and read which of the rest are still held (they take the single-start
path at their instant).

These follow ``worker.lease.claims`` (the claim and its lease) and ``worker.upstream.attempts``
(written ahead): a launch confirms ahead of the instant what a start run confirmed at it, under the
same conditions, so every rule of docs/DESIGN.md "Exactly one start per booking" holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, exists, insert, select, update
from sqlalchemy.orm import Session

from models import AttemptAction, ScheduledStream, StartAttempt, StreamState, UpstreamPause
from worker.upstream.attempts import UNCLEAR_START_CALL

S = ScheduledStream
A = StartAttempt

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
_CONFIRM_LAUNCH = (
    update(S)
    .where(
        *_HELD,
        S.due_at <= bindparam("p_until"),
        S.start_deadline >= S.due_at,
        S.start_deadline >= bindparam("now"),
        ~exists().where(A.stream_id == S.id, UNCLEAR_START_CALL),
        ~exists().where(
            UpstreamPause.token_hash == bindparam("token_key"),
            UpstreamPause.paused_until > bindparam("now"),
        ),
    )
    .values(
        attempts=S.attempts + 1,
        claim_token=bindparam("renewed"),
        claim_owner=bindparam("owner"),
        lease_expires_at=bindparam("lease_until"),
        updated_at=bindparam("now"),
    )
    .returning(
        S.id, S.attempts, S.due_at, S.account_id, S.app_id, S.meeting_id, S.name,
        S.video_width, S.video_height, S.start_deadline, S.scheduled_at,
    )
    .execution_options(synchronize_session=False)
)  # fmt: skip

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


def known(session: Session, stream_ids: Sequence[uuid.UUID]) -> int:
    """How many of ``stream_ids`` this database has at all."""
    query = select(S.id).where(S.id.in_(list(stream_ids)))
    return len(session.execute(query).all())
