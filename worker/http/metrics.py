"""State metrics at ``/metrics`` on `livestreams serve`: what the database says right now.

Bookings per state and per problem flag, overdue bookings and the age of the oldest, the age
of the dispatcher's last tick, the token's pause and the rate budget used in the current
window. Read from the database at most once per CACHE_SECONDS per process, however many
scrapers ask: the page is the same to all of them. Counts only: no key, no id, no secret.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from models import CLAIMABLE_STATES, ScheduledStream, StreamState
from models.db import db_now, get_sessionmaker
from worker import health
from worker.settings import Settings
from worker.upstream import pacing
from worker.upstream.attempts import calls_since

CACHE_SECONDS = 5.0
S = ScheduledStream

router = APIRouter()


@dataclass(frozen=True)
class Snapshot:
    states: dict[str, int]
    problems: dict[str, int]
    overdue: int
    oldest_overdue_seconds: float
    last_tick_age_seconds: float | None
    paused_seconds: float
    budget_used: int
    budget_limit: int


def read(settings: Settings) -> Snapshot:
    """One read of the database: health's own queries, plus overdue, pause and budget."""
    with get_sessionmaker(settings.database_url)() as session:
        seen = health.check(session, settings)
        now = db_now(session)
        claimable = S.state.in_([s.value for s in CLAIMABLE_STATES])
        overdue = session.scalar(select(func.count()).where(claimable, S.due_at < now)) or 0
        oldest = session.scalar(select(func.min(S.due_at)).where(claimable, S.due_at < now))
        paused = pacing.paused_until(session, pacing.token_hash(settings.upstream.api_token), now)
        window = settings.upstream.rate_limit.window
        used = calls_since(session, now - timedelta(seconds=window))
    states = {s.value: 0 for s in StreamState} | seen.counts
    return Snapshot(
        states=states,
        problems=dict(seen.problem_counts),
        overdue=int(overdue),
        oldest_overdue_seconds=(now - oldest).total_seconds() if oldest is not None else 0.0,
        last_tick_age_seconds=(
            (now - seen.last_tick_at).total_seconds() if seen.last_tick_at else None
        ),
        paused_seconds=(paused - now).total_seconds() if paused is not None else 0.0,
        budget_used=used,
        budget_limit=settings.upstream.rate_limit.requests,
    )


class StateCollector(Collector):
    """The gauges, from a snapshot at most CACHE_SECONDS old."""

    def __init__(self, settings: Settings, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._taken = 0.0

    def snapshot(self) -> Snapshot:
        with self._lock:  # one read at a time; the others get its result
            if self._snapshot is None or self.clock() - self._taken >= CACHE_SECONDS:
                self._snapshot = read(self.settings)
                self._taken = self.clock()
            return self._snapshot

    def collect(self) -> Any:
        snap = self.snapshot()
        states = GaugeMetricFamily("livestreams_bookings", "Bookings per state", labels=["state"])
        for state, count in sorted(snap.states.items()):
            states.add_metric([state], count)
        yield states
        flagged = GaugeMetricFamily(
            "livestreams_flagged_bookings",
            "Started or live bookings flagged for ops (not_live, errored, stop_failed)",
            labels=["problem"],
        )
        for problem, count in sorted(snap.problems.items()):
            flagged.add_metric([problem], count)
        yield flagged
        yield _gauge("livestreams_overdue_bookings", "Bookings due and not claimed", snap.overdue)
        yield _gauge(
            "livestreams_oldest_overdue_seconds",
            "How long the oldest overdue booking has been due (0: none)",
            snap.oldest_overdue_seconds,
        )
        if snap.last_tick_age_seconds is not None:
            yield _gauge(
                "livestreams_last_dispatch_tick_age_seconds",
                "Seconds since the dispatcher last finished a tick",
                snap.last_tick_age_seconds,
            )
        yield _gauge(
            "livestreams_rate_limit_paused_seconds",
            "Seconds left of the API token's pause after a 429 (0: not paused)",
            snap.paused_seconds,
        )
        yield _gauge(
            "livestreams_rate_budget_used",
            "Calls to the API in the current rate window",
            snap.budget_used,
        )
        yield _gauge(
            "livestreams_rate_budget_limit",
            "The token's limit per rate window (LIVESTREAMS_RATE_LIMIT)",
            snap.budget_limit,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def install(app: Any, settings: Settings) -> None:
    """A registry of the app's own (not the global one): an app per test, each its own."""
    registry = CollectorRegistry()
    registry.register(StateCollector(settings))
    app.state.metrics_registry = registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus' text format; no key needed (counts only), like /healthz."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
