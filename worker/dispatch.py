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
from worker.lease.claims import Claim, ClaimKind
from worker.notify import claims as notify_claims
from worker.settings import Settings
from worker.start import claims, rules
from worker.start.rules import Launch
from worker.upstream import attempts, pacing

log = logging.getLogger(__name__)

HEARTBEAT = "dispatch"


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


@dataclass(frozen=True)
class Queue:
    """What a tick knows before it claims anything: the upstream requests the token's rate
    budget allows now, the most claims the broker may hold that no run has taken up (``cap``,
    the claim batch), and how many of each kind it holds now."""

    budget: int
    cap: int
    starts: int  # start claims handed out for now or earlier, not taken up yet
    follow_ups: int  # status checks and stops, the same
    deliveries: int  # webhook deliveries held (handed out, or running, and not finished)


@dataclass(frozen=True)
class Share:
    """How many claims of each kind the tick may still hand out."""

    starts: int
    stops: int
    checks: int
    deliveries: int


def share(queue: Queue, *, starts: int = 0, stops: int = 0, starts_soon: int = 0) -> Share:
    """What the budget and the broker's cap leave for each kind, once the tick has claimed
    ``starts`` starts and ``stops`` stops, with ``starts_soon`` bookings due to start within a
    rate window. Pure (table-tested); the tick claims in this order: starts, stops, checks.

    - The broker holds at most ``cap`` claims that no run has taken up: a burst waits in the
      database, in order, rather than in a queue so long that its tail outlives the pickup
      grace and is sent again behind the same backlog.
    - Starts come first in the budget, then stops. Checks and stops share the queue with the
      starts and take at most half of it, so a burst of status checks never stands long
      before the starts due next; checks also leave room for every start due within a window.
    - Webhook deliveries spend no upstream budget: at most ``cap`` held at once, so a backlog
      (an endpoint back after a day) waits in the database rather than in the broker.
    """
    cap, backlog = queue.cap, queue.starts + queue.follow_ups
    follow = min(queue.budget - starts, cap - backlog - starts, cap // 2 - queue.follow_ups)
    return Share(
        starts=_at_most(cap, min(queue.budget, cap - backlog)),
        stops=_at_most(cap, follow),
        checks=_at_most(cap, follow - stops - starts_soon),
        deliveries=_at_most(cap, cap - queue.deliveries),
    )


def _at_most(cap: int, room: int) -> int:
    return max(0, min(cap, room))


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
        since = _running_since(session, now, settings.claims.dispatch_interval)
        # Owners are judged only once ticks have run long enough for a live owner to have
        # beaten since the database came back: an outage silences every heartbeat at once.
        judge = (now - since).total_seconds() >= settings.claims.owner_timeout
        grace, owners = (
            settings.claims.pickup_grace,
            settings.claims.owner_timeout if judge else None,
        )
        expired = claims.expire_untried(session, now)
        expired += claims.fail_reclaimed(session, now, owner_timeout=owners)
        taken_up = attempts.starts_since(session, now - timedelta(seconds=grace))
        reaped = claims.reap(
            session,
            now,
            lease=settings.claims.lease,
            batch=settings.claims.batch,
            pickup_grace=grace,
            owner_timeout=owners,
            resend=rules.resend_cap(taken_up),
        )
        reaped += follow_claims.reap(
            session,
            now,
            lookahead=settings.claims.lookahead,
            lease=settings.claims.lease,
            batch=settings.claims.batch,
            pickup_grace=grace,
            owner_timeout=owners,
        )
        reaped += notify_claims.reap(
            session,
            now,
            lease=settings.webhooks.lease,
            batch=settings.claims.batch,
            pickup_grace=grace,
            owner_timeout=owners,
        )
        key = pacing.token_hash(settings.upstream.api_token)
        paused = pacing.paused_until(session, key, now)
        # While the token is paused nothing is claimed, until the pause's end falls within
        # the lookahead: then the claims are handed out for that instant.
        horizon = now + timedelta(seconds=settings.claims.lookahead)
        waiting = paused is not None and paused > horizon
        held_for = settings.claims.lookahead  # a held tracked row is due by then
        queue = Queue(
            budget=(
                0
                if waiting
                else pacing.budget(session, settings.upstream.rate_limit, now, held_for=held_for)
            ),
            cap=settings.claims.batch,
            starts=claims.unconfirmed(session, now),
            follow_ups=follow_claims.unconfirmed(session, now),
            deliveries=notify_claims.held(session, now),
        )
        fresh = claims.claim_due(
            session,
            now,
            lookahead=settings.claims.lookahead,
            lease=settings.claims.lease,
            batch=share(queue).starts,
            not_before=paused,
        )

        def follow_up(batch: int, *, stops: bool) -> list[Claim]:
            return follow_claims.claim(
                session,
                now,
                lookahead=settings.claims.lookahead,
                lease=settings.claims.lease,
                batch=batch,
                stops=stops,
                not_before=paused,
            )

        stops = follow_up(share(queue, starts=len(fresh)).stops, stops=True)
        # A check claimed now may leave up to a lookahead and a pickup grace later, and counts
        # against the budget for a whole window after that: it leaves room for every start
        # due by then. (Counted only when checks could be claimed at all.)
        so_far = share(queue, starts=len(fresh), stops=len(stops))
        reach = (
            settings.upstream.rate_limit.window
            + settings.claims.lookahead
            + settings.claims.pickup_grace
        )
        soon = follow_claims.starts_due_within(session, now, reach) if so_far.checks > 0 else 0
        checks = follow_up(
            share(queue, starts=len(fresh), stops=len(stops), starts_soon=soon).checks,
            stops=False,
        )
        webhooks = notify_claims.claim(
            session, now, lease=settings.webhooks.lease, batch=share(queue).deliveries
        )
        upsert_newer(
            session,
            DispatcherHeartbeat,
            "name",
            "last_tick_at",
            name=HEARTBEAT,
            last_tick_at=now,
            running_since=since,
            claimed=len(fresh),
            reaped=len(reaped),
            expired=expired,
        )
    starts = [c for c in [*reaped, *fresh] if c.kind is ClaimKind.START]
    rest = [
        c for c in [*reaped, *fresh, *stops, *checks, *webhooks] if c.kind is not ClaimKind.START
    ]
    enqueued = 0
    if launch is not None:
        for group in rules.launches(starts):
            enqueued += _hand_out(partial(launch, group), group.claims)
        starts = []
    for claim in [*starts, *rest]:
        enqueued += _hand_out(partial(enqueue, claim), (claim,))
    report = TickReport(
        now,
        expired,
        len(reaped),
        len(fresh),
        enqueued,
        len(stops),
        len(checks),
        paused,
        queue.budget,
    )
    if expired or reaped or fresh or stops:
        log.info(
            "dispatch tick: %d claimed, %d reaped, %d missed, %d stops, %d checks",
            len(fresh),
            len(reaped),
            expired,
            len(stops),
            len(checks),
            extra={"action": "dispatch_tick", "claimed": len(fresh), "reaped": len(reaped)},
        )
    return report


def _hand_out(send: Callable[[], None], claims: tuple[Claim, ...]) -> int:
    """Send one message for ``claims``; how many claims it carried (0: the broker is down, and
    the claims are handed out again after the pickup grace)."""
    try:
        send()
    except Exception:
        first = claims[0]
        log.exception(
            "could not enqueue %d %s claim(s); handed out again after the pickup grace",
            len(claims),
            first.kind.value,
            extra={
                "action": "enqueue_failed",
                "kind": first.kind.value,
                "stream_id": str(first.row_id),
            },
        )
        return 0
    return len(claims)


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
