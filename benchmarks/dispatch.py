"""Case 3, dispatch cost: one tick with 1,000 vs 1,000,000 future bookings stored, in-process,
and the SQL statements each started stream costs (its launch against the fake, in-process).

A tick is ``worker.dispatch.tick`` with an enqueue that only collects the claims: the broker's
cost is per claim, not per stored row, and the burst case measures it.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, func, select

from benchmarks.data import bulk_future, clear_all_but_bulk, fresh_due, rearm_due
from benchmarks.report import Figure, figure, log, ratio
from benchmarks.services import Bench
from models import ScheduledStream
from models.db import get_sessionmaker
from worker.dispatch import tick
from worker.lease.claims import Claim
from worker.lease.foreign import Foreign
from worker.settings import Settings
from worker.start.flow import Starter
from worker.start.launch import Launcher
from worker.start.results import Results
from worker.start.rules import Launch
from worker.start.timer import LaunchTimer
from worker.upstream.realtimekit import RealtimeKitClient

CASE = "dispatch"
GOAL_RATIO = 1.5
DUE = 100  # rows due at each measured claiming tick
WARMUP = 5


def sizes(bench: Bench) -> tuple[int, int]:
    return (1_000, 100_000) if bench.quick else (1_000, 1_000_000)


class Counter:
    """SQL statements and commits on one engine while ``counting``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements = 0
        self.commits = 0

    def _statement(self, *_: object) -> None:
        self.statements += 1

    def _commit(self, *_: object) -> None:
        self.commits += 1

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        try:
            yield self
        finally:
            event.remove(self.engine, "before_cursor_execute", self._statement)
            event.remove(self.engine, "commit", self._commit)


def _tick_ms(url: str, settings: Settings, *, claiming: bool) -> float:
    """One tick; a claiming tick finds DUE rows due (re-armed before it, outside the timing)."""
    if claiming:
        rearm_due(url)
    claims: list[Claim] = []
    started = time.perf_counter()
    tick(get_sessionmaker(url), settings, claims.append)
    elapsed = (time.perf_counter() - started) * 1000
    if claiming and len(claims) != DUE:
        raise RuntimeError(f"a claiming tick took {len(claims)} rows, expected {DUE}")
    return elapsed


def _alternating(bench: Bench, urls: list[str], reps: int, *, claiming: bool) -> list[float]:
    """Median tick time per schema, ticking them in turn so that noise hits each alike."""
    times: list[list[float]] = [[] for _ in urls]
    settings = [bench.settings_for(url) for url in urls]
    for i in range(WARMUP + reps):
        for j, url in enumerate(urls):
            elapsed = _tick_ms(url, settings[j], claiming=claiming)
            if i >= WARMUP:
                times[j].append(elapsed)
    return [statistics.median(t) for t in times]


def _per_stream(bench: Bench, url: str) -> tuple[float, float, float]:
    """Statements per tick that claims DUE rows; statements and commits per started stream."""
    fresh_due(url, DUE)
    settings, factory = bench.settings_for(url), get_sessionmaker(url)
    counter = Counter(factory.kw["bind"])
    launches: list[Launch] = []
    with counter.counting():
        tick(factory, settings, lambda c: None, launch=launches.append)
    per_tick = counter.statements
    with RealtimeKitClient.from_settings(settings) as client:
        starter = Starter(factory, settings, client, owner=uuid.uuid4())
        timer = LaunchTimer()
        results = Results(starter.record, settings.cadence.first_check, settings.claims.lease)
        launcher = Launcher(factory, settings, starter, timer, results, Foreign(factory))
        counter = Counter(factory.kw["bind"])
        with counter.counting():
            confirmed = sum(
                launcher.run(group.token, group.stream_ids).confirmed for group in launches
            )
            launcher.close(60.0)
    if confirmed != DUE or started(url) != DUE:
        raise RuntimeError(f"in-process launches: {confirmed} confirmed, {started(url)} started")
    return per_tick, counter.statements / DUE, counter.commits / DUE


def started(url: str) -> int:
    with get_sessionmaker(url)() as session:
        query = select(func.count()).where(
            ScheduledStream.name.like("due-%"), ScheduledStream.state == "started"
        )
        return session.scalar(query) or 0


def stored_rows(bench: Bench) -> dict[int, str]:
    """Schema URLs holding the small and the large number of future rows (loaded once a run)."""
    urls = {}
    for rows in sizes(bench):
        urls[rows] = url = bench.schema(f"rows_{tag(rows)}")
        seconds = bulk_future(url, rows)
        log(f"{rows:,} future rows stored in schema rows_{tag(rows)} ({seconds:.1f} s)")
    return urls


def run(bench: Bench) -> list[Figure]:
    small, large = sizes(bench)
    reps = 10 if bench.quick else 30
    urls = stored_rows(bench)
    for url in urls.values():
        fresh_due(url, DUE)
    pair = [urls[small], urls[large]]
    idle_s, idle_l = _alternating(bench, pair, reps, claiming=False)
    busy_s, busy_l = _alternating(bench, pair, reps, claiming=True)
    per_tick, statements, commits = _per_stream(bench, urls[large])
    for url in urls.values():
        clear_all_but_bulk(url)
    tag_s, tag_l = tag(small), tag(large)
    note = f"median of {reps} ticks each, in turn, in-process; claims collected, not enqueued"
    return [
        figure(CASE, f"tick_idle_{tag_s}", idle_s, "ms", note=note),
        figure(CASE, f"tick_idle_{tag_l}", idle_l, "ms"),
        figure(CASE, "tick_idle_ratio", ratio(idle_l, idle_s), "x", at_most=GOAL_RATIO),
        figure(CASE, f"tick_claim{DUE}_{tag_s}", busy_s, "ms"),
        figure(CASE, f"tick_claim{DUE}_{tag_l}", busy_l, "ms"),
        figure(CASE, "tick_claim_ratio", ratio(busy_l, busy_s), "x", at_most=GOAL_RATIO),
        figure(CASE, f"statements_per_tick_claiming_{DUE}", per_tick, "statements"),
        figure(
            CASE,
            "statements_per_start",
            statements,
            "statements",
            note="a launch of 100, clean 201s; pool pings and BEGIN not counted",
        ),
        figure(
            CASE,
            "statements_per_started_stream",
            statements + per_tick / DUE,
            "statements",
            note="a start plus its share of the claiming tick",
        ),
        figure(CASE, "commits_per_start", commits, "transactions"),
    ]


def tag(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows >= 1_000_000 else f"{rows // 1000}k"
