"""One dispatch tick: expire, reap, claim, commit, then hand the claims to the broker.

Runs as the ``livestreams.dispatch_due`` task, which beat sends every dispatch interval. Any
number of beats may send ticks: the claims are disjoint, so extra ticks cost a query.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models import DispatcherHeartbeat
from models.db import db_now, upsert_newer
from worker.follow import claims as follow_claims
from worker.lease import claims
from worker.lease.claims import Claim
from worker.notify import claims as notify_claims
from worker.settings import Settings
from worker.start import rules
from worker.start.rules import Launch
from worker.upstream import attempts, pacing

log = logging.getLogger(__name__)

HEARTBEAT = "dispatch"
START = "start"  # Claim.kind of a start


@dataclass(frozen=True)
class TickReport:
    now: datetime
    expired: int
    reaped: int
    claimed: int
    enqueued: int
    stops: int
    checks: int
    paused_until: datetime | None
    budget: int


def tick(
    factory: sessionmaker[Session],
    settings: Settings,
    enqueue: Callable[[Claim], None],
    *,
    launch: Callable[[Launch], None] | None = None,
) -> TickReport:
    """Claim what is due and enqueue it. Claims are committed before anything is enqueued.

    Starts go out as launches (``launch``: one message per group, ahead of their instants,
    worker.start.rules); without ``launch`` each claim is enqueued on its own.

    If enqueueing fails (broker down), no run takes the claimed rows up, and a later tick
    takes them back after the pickup grace: the database never forgets a booking.
    """
    with factory.begin() as session:
        _serialise(session)
        now = db_now(session)
        since = _running_since(session, now, settings.dispatch_interval)
        # Owners are judged only once ticks have run long enough for a live owner to have
        # beaten since the database came back: an outage silences every heartbeat at once.
        judge = (now - since).total_seconds() >= settings.owner_timeout
        grace, owners = settings.pickup_grace, settings.owner_timeout if judge else None
        expired = claims.expire_untried(session, now)
        expired += claims.fail_reclaimed(session, now, owner_timeout=owners)
        taken_up = attempts.starts_since(session, now - timedelta(seconds=grace))
        reaped = claims.reap(
            session, now, lease=settings.lease, batch=settings.claim_batch,
            pickup_grace=grace, owner_timeout=owners, resend=rules.resend_cap(taken_up),
        )  # fmt: skip
        reaped += follow_claims.reap(
            session, now, lookahead=settings.lookahead, lease=settings.lease,
            batch=settings.claim_batch,
            pickup_grace=grace, owner_timeout=owners,
        )  # fmt: skip
        key = pacing.token_hash(settings.api_token)
        paused = pacing.paused_until(session, key, now)
        # While the token is paused nothing is claimed, until the pause's end falls within
        # the lookahead: then the claims are handed out for that instant.
        horizon = now + timedelta(seconds=settings.lookahead)
        waiting = paused is not None and paused > horizon
        held_for = settings.lookahead  # a held tracked row is due by then
        budget = (
            0 if waiting else pacing.budget(session, settings.rate_limit, now, held_for=held_for)
        )
        # The broker holds at most a batch of claims that no run has taken up: a burst waits
        # in the database, in order, rather than in a queue so long that its tail outlives
        # the pickup grace and is taken back, and queued again, behind the same backlog.
        # Track runs share the queue, so they count against the same cap, and take at most
        # half of it: a burst of status checks never stands long before the starts due next.
        tracked = follow_claims.unconfirmed(session, now)
        backlog = claims.unconfirmed(session, now) + tracked
        room = min(budget, settings.claim_batch - backlog)
        fresh = (
            claims.claim_due(
                session,
                now,
                lookahead=settings.lookahead,
                lease=settings.lease,
                batch=min(settings.claim_batch, room),
                not_before=paused,
            )
            if room > 0
            else []
        )
        left = min(budget - len(fresh), settings.claim_batch - backlog - len(fresh))
        left = min(left, settings.claim_batch // 2 - tracked)
        follow_up = _tracking_claims(session, now, settings, left, paused)
        # Outbound webhooks: no upstream budget, one indexed claim per tick (worker.notify.claims).
        webhooks = notify_claims.claim(
            session, now, lease=settings.webhook_lease, batch=settings.claim_batch
        )
        upsert_newer(
            session, DispatcherHeartbeat, "name", "last_tick_at",
            name=HEARTBEAT, last_tick_at=now, running_since=since,
            claimed=len(fresh), reaped=len(reaped), expired=expired,
        )  # fmt: skip
    stops, checks = follow_up
    starts = [c for c in [*reaped, *fresh] if c.kind == START]
    rest = [c for c in [*reaped, *fresh, *stops, *checks, *webhooks] if c.kind != START]
    enqueued = 0
    if launch is not None:
        for group in rules.launches(starts):
            enqueued += _hand_out(partial(launch, group), group.claims)
        starts = []
    for claim in [*starts, *rest]:
        enqueued += _hand_out(partial(enqueue, claim), (claim,))
    report = TickReport(
        now, expired, len(reaped), len(fresh), enqueued, len(stops), len(checks), paused, room
    )
    if expired or reaped or fresh or stops:
        log.info(
            "dispatch tick: %d claimed, %d reaped, %d missed, %d stops, %d checks",
            len(fresh), len(reaped), expired, len(stops), len(checks),
            extra={"action": "dispatch_tick", "claimed": len(fresh), "reaped": len(reaped)},
        )  # fmt: skip
    return report


def _hand_out(send: Callable[[], None], claims: tuple[Claim, ...]) -> int:
    """Send one message for ``claims``; how many claims it carried (0: the broker is down, and
    the claims are handed out again after the pickup grace)."""
    try:
        send()
    except Exception:
        first = claims[0]
        log.exception(
            "could not enqueue %d claimed %s(s); handed out again after the pickup grace",
            len(claims), first.kind,
            extra={"action": "enqueue_failed", "kind": first.kind,
                   "stream_id": str(first.stream_id)},
        )  # fmt: skip
        return 0
    return len(claims)


def _tracking_claims(
    session: Session,
    now: datetime,
    settings: Settings,
    left: int,
    paused: datetime | None,
) -> tuple[list[Claim], list[Claim]]:
    """Stops, then status checks, within what the budget (and the broker's cap) has ``left``
    after the starts.

    Checks also leave room for every start due within the rate window: a burst of bookings
    must never find the budget spent on asking how streams are doing.
    """

    def claim(batch: int, *, stops: bool) -> list[Claim]:
        return follow_claims.claim(
            session, now, lookahead=settings.lookahead, lease=settings.lease,
            batch=min(settings.claim_batch, batch), stops=stops, not_before=paused,
        )  # fmt: skip

    stops = claim(left, stops=True)
    left -= len(stops)
    if left <= 0:
        return stops, []
    # A check claimed now may leave up to a lookahead and a pickup grace later, and counts
    # against the budget for a whole window after that.
    reach = settings.rate_limit.window + settings.lookahead + settings.pickup_grace
    left -= follow_claims.starts_due_within(session, now, reach)
    checks = claim(left, stops=False)
    return stops, checks


# Any fixed number: the key of the PostgreSQL advisory lock that one tick holds at a time.
_TICK_LOCK = 0x6C69_7665_7469_636B  # "livetick"


def _serialise(session: Session) -> None:
    """One tick at a time, across every beat: two ticks that overlap (two beats, or one slow
    tick and the next) would each read the whole rate budget and both spend it. SQLite
    serialises already: every transaction begins IMMEDIATE (models.db)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_TICK_LOCK)))


def _running_since(session: Session, now: datetime, interval: float) -> datetime:
    """Since when ticks have run without a gap (now, if the last one is long past)."""
    row = session.execute(
        select(DispatcherHeartbeat.last_tick_at, DispatcherHeartbeat.running_since).where(
            DispatcherHeartbeat.name == HEARTBEAT
        )
    ).one_or_none()
    gap = timedelta(seconds=max(3 * interval, 2.0))
    if row is None or row.running_since is None or now - row.last_tick_at > gap:
        return now
    since: datetime = row.running_since
    return since


def last_tick(session: Session) -> datetime | None:
    return session.scalar(
        select(DispatcherHeartbeat.last_tick_at).where(DispatcherHeartbeat.name == HEARTBEAT)
    )
