"""`livestreams status`: counts per state and per problem flag, what is overdue or stuck, the
dispatcher's pulse, and the provider webhooks of the last hour."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import CLAIMABLE_STATES, Problem, ScheduledStream, StreamState
from models.db import db_now
from worker.dispatch import last_tick
from worker.inbound import intake
from worker.notify import endpoints
from worker.settings import Settings

S = ScheduledStream
WEBHOOK_WINDOW = timedelta(hours=1)  # provider webhooks are counted over this last stretch


@dataclass(frozen=True)
class Health:
    now: datetime
    counts: dict[str, int]
    # Bookings flagged for ops (not_live, errored, stop_failed); a flag is not ill health of
    # the pipeline, so it never makes the check fail.
    problem_counts: dict[str, int]
    last_tick_at: datetime | None
    oldest_overdue: ScheduledStream | None
    stuck: int  # rows `starting` whose lease ran out longer ago than the stale limit
    starting_past_deadline: int  # rows `starting` although their start deadline has passed
    problems: list[str]
    webhooks: dict[str, int]  # provider webhooks received in the last hour, by result
    last_webhook_at: datetime | None
    # Outbound webhook endpoints failing for over an hour: the platform's outage, reported
    # but not ill health of the pipeline (the check does not fail for it).
    failing_endpoints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        overdue = self.oldest_overdue
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "now": self.now.isoformat(),
            "counts": self.counts,
            "problem_counts": self.problem_counts,
            "last_tick_at": self.last_tick_at.isoformat() if self.last_tick_at else None,
            "last_tick_age_seconds": (
                None
                if self.last_tick_at is None
                else round((self.now - self.last_tick_at).total_seconds(), 3)
            ),
            "oldest_overdue": None
            if overdue is None
            else {
                "id": str(overdue.id),
                "state": overdue.state,
                "due_at": overdue.due_at.isoformat(),
                "overdue_seconds": round((self.now - overdue.due_at).total_seconds(), 3),
            },
            "stuck_starting": self.stuck,
            "starting_past_deadline": self.starting_past_deadline,
            "provider_webhooks": self.webhooks,
            "last_provider_webhook_at": (
                self.last_webhook_at.isoformat() if self.last_webhook_at else None
            ),
            "failing_webhook_endpoints": self.failing_endpoints,
        }


def check(session: Session, settings: Settings, *, count_states: bool = True) -> Health:
    """Read the health of the pipeline; every query here is an index range or a tiny table,
    except the bookings per state (``count_states``), which reads every booking: the ops
    page's overview counts those of its time range instead, on every refresh."""
    now = db_now(session)
    stale = timedelta(seconds=settings.claims.stale_after)
    counts = {s.value: 0 for s in StreamState}
    if count_states:
        for state, count in session.execute(select(S.state, func.count()).group_by(S.state)):
            counts[state] = count
    flagged = {p.value: 0 for p in Problem}
    query = select(S.problem, func.count()).where(S.problem.is_not(None)).group_by(S.problem)
    for problem, count in session.execute(query):  # ix_scheduled_streams_problem
        flagged[problem] = count
    tick = last_tick(session)
    # One probe of ix_scheduled_streams_state_due_at per state, the earliest of them: with
    # IN (both states) PostgreSQL sorted every future booking to find none overdue.
    oldest = [
        session.scalars(
            select(S)
            .where(S.state == state.value, S.due_at < now - stale)
            .order_by(S.due_at)
            .limit(1)
        ).first()
        for state in CLAIMABLE_STATES
    ]
    overdue = min((o for o in oldest if o is not None), key=lambda o: o.due_at, default=None)
    stuck = (
        session.scalar(
            select(func.count()).where(
                S.state == StreamState.STARTING.value, S.lease_expires_at < now - stale
            )
        )
        or 0
    )
    # A run may reconcile past the deadline, but only for the length of one call: a row that
    # stays `starting` that long after its deadline is not being finished by anyone.
    past_deadline = (
        session.scalar(
            select(func.count()).where(
                S.state == StreamState.STARTING.value, S.start_deadline < now - stale
            )
        )
        or 0
    )
    problems = []
    if tick is None:
        problems.append(
            "the dispatcher has never ticked: are `celery -A worker beat` and a worker running?"
        )
    elif now - tick > stale:
        age = (now - tick).total_seconds()
        problems.append(f"the last dispatch tick was {age:.0f} s ago (limit {stale.seconds} s)")
    if overdue is not None:
        late = (now - overdue.due_at).total_seconds()
        problems.append(f"booking {overdue.id} is {late:.0f} s overdue and not claimed")
    if stuck:
        problems.append(f"{stuck} booking(s) stuck in starting past their lease")
    if past_deadline:
        problems.append(f"{past_deadline} booking(s) still starting past their start deadline")
    webhooks = intake.counts_since(session, now - WEBHOOK_WINDOW)
    last_webhook = intake.last_received_at(session)
    failing = [
        {
            "id": str(e.id),
            "url": e.url,
            "failures_in_a_row": e.failures_in_a_row,
            "failing_since": e.failing_since.isoformat() if e.failing_since else None,
        }
        for e in endpoints.failing(session, now)
    ]
    return Health(
        now,
        counts,
        flagged,
        tick,
        overdue,
        stuck,
        past_deadline,
        problems,
        webhooks,
        last_webhook,
        failing,
    )


def render(health: Health) -> str:
    data = health.as_dict()
    lines = ["healthy" if health.healthy else "UNHEALTHY"]
    lines += [f"  problem: {p}" for p in health.problems]
    lines.append("  " + "  ".join(f"{k}={v}" for k, v in health.counts.items()))
    lines.append("  flagged: " + "  ".join(f"{k}={v}" for k, v in health.problem_counts.items()))
    age = data["last_tick_age_seconds"]
    lines.append(f"  last dispatch tick: {'never' if age is None else f'{age:.1f} s ago'}")
    if data["oldest_overdue"]:
        o = data["oldest_overdue"]
        lines.append(
            f"  oldest overdue: {o['id']} ({o['state']}, {o['overdue_seconds']:.0f} s late)"
        )
    counted = "  ".join(f"{k}={v}" for k, v in health.webhooks.items())
    last = health.last_webhook_at
    when = "never" if last is None else f"{(health.now - last).total_seconds():.0f} s ago"
    lines.append(f"  provider webhooks, last hour: {counted} (last {when})")
    for e in health.failing_endpoints:
        lines.append(
            f"  webhook endpoint {e['id']} ({e['url']}) failing since {e['failing_since']}:"
            f" {e['failures_in_a_row']} failures in a row"
        )
    return "\n".join(lines)
