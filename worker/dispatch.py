"""One dispatch tick: expire, reap, claim, commit, then hand the claims to the broker.

Runs as the ``livestreams.dispatch_due`` task, which beat sends every dispatch interval. Any
number of beats may send ticks: the claims are disjoint, so extra ticks cost a query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import DispatcherHeartbeat
from models.db import db_now, upsert_newer
from worker import claims, pacing
from worker.claims import Claim
from worker.settings import Settings

log = logging.getLogger(__name__)

HEARTBEAT = "dispatch"


@dataclass(frozen=True)
class TickReport:
    now: datetime
    expired: int
    reaped: int
    claimed: int
    enqueued: int
    paused_until: datetime | None
    budget: int


def tick(
    factory: sessionmaker[Session], settings: Settings, enqueue: Callable[[Claim], None]
) -> TickReport:
    """Claim what is due and enqueue it. Claims are committed before anything is enqueued.

    If enqueueing fails (broker down), the claimed rows wait for their lease to expire and the
    reaper of a later tick hands them out again: the database never forgets a booking.
    """
    with factory.begin() as session:
        now = db_now(session)
        expired = claims.expire_untried(session, now)
        reaped = claims.reap_expired(session, now, lease=settings.lease, batch=settings.claim_batch)
        key = pacing.token_hash(settings.api_token)
        paused = pacing.paused_until(session, key, now)
        room = 0 if paused else pacing.budget(session, settings.rate_limit, now)
        fresh = (
            claims.claim_due(
                session,
                now,
                lookahead=settings.lookahead,
                lease=settings.lease,
                batch=min(settings.claim_batch, room),
            )
            if room > 0
            else []
        )
        _heartbeat(session, now, claimed=len(fresh), reaped=len(reaped), expired=expired)
    enqueued = 0
    for claim in [*reaped, *fresh]:
        try:
            enqueue(claim)
        except Exception:  # the broker is down: the lease brings the row back later
            log.exception(
                "could not enqueue a claimed start; its lease will expire and it is reaped",
                extra={"action": "enqueue_failed", "stream_id": str(claim.stream_id)},
            )
        else:
            enqueued += 1
    report = TickReport(now, expired, len(reaped), len(fresh), enqueued, paused, room)
    if expired or reaped or fresh:
        log.info(
            "dispatch tick: %d claimed, %d reaped, %d missed",
            len(fresh),
            len(reaped),
            expired,
            extra={"action": "dispatch_tick", "claimed": len(fresh), "reaped": len(reaped)},
        )
    return report


def _heartbeat(session: Session, now: datetime, **counts: int) -> None:
    upsert_newer(
        session, DispatcherHeartbeat, "name", "last_tick_at",
        name=HEARTBEAT, last_tick_at=now, **counts,
    )  # fmt: skip


def last_tick(session: Session) -> datetime | None:
    return session.scalar(
        select(DispatcherHeartbeat.last_tick_at).where(DispatcherHeartbeat.name == HEARTBEAT)
    )
