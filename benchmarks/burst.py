"""Case 2, burst: many bookings due at one instant, against a no-op task on the same worker.

The product's starts leave as launches prepared ahead of the instant; the no-ops are messages
with one ETA, held by the worker until then. The no-ops run first, on an idle worker; the
product's time runs from the instant to the last ``started_at``, the no-op's to the last run.
Memory of the worker and beat process trees is sampled all along.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from celery import Celery as CeleryApp
from sqlalchemy import func, select

from benchmarks.data import book, states
from benchmarks.procs import Celery, PeakRSS, cpu_snapshot, wait_until
from benchmarks.report import Figure, figure, log, ratio
from benchmarks.services import NOOP_KEY, Bench
from models import ScheduledStream
from models.db import get_sessionmaker

APP = "benchmarks.app"  # the product's Celery app plus bench.noop
CASE = "burst"
GOAL_RATIO = 1.0  # a burst starts at least as fast as the same number of no-op tasks
POOL, CONCURRENCY = "prefork", 4
# The fake has no rate limit; the product's default paces to 1,200 calls / 5 min per token.
RATE_LIMIT = "100000/1"
ENV = {"LIVESTREAMS_RATE_LIMIT": RATE_LIMIT}
TIMEOUT = 180.0


@dataclass(frozen=True)
class BurstResult:
    count: int
    started: int
    product_s: float | None  # instant -> last started_at
    last_call_s: float | None  # instant -> last start call received by the fake
    noop_s: float | None  # instant -> last no-op run
    worker_rss: float
    beat_rss: float
    product_cpu: dict[str, float]  # CPU seconds per group from the instant to the last start
    noop_cpu: dict[str, float]


def _sleep_until(instant: datetime) -> None:
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))


def _cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}


def size(bench: Bench) -> int:
    return 500 if bench.quick else 2000


def _lead(bench: Bench, count: int) -> float:
    """Seconds from booking to the instant: every row claimed (one batch a tick) before it."""
    settings = bench.settings
    ticks = math.ceil(count / settings.claims.batch) * settings.claims.dispatch_interval
    return settings.claims.lookahead + ticks + 3.0 + count / 500  # booking takes ~2 ms a row


def _product(
    bench: Bench, celery: Celery, count: int, url: str
) -> tuple[int, float | None, float | None, dict[str, float]]:
    instant = datetime.now(UTC) + timedelta(seconds=_lead(bench, count))
    booked = book(bench, [instant] * count, url)
    log(f"{CASE}: {count} bookings due at {instant:%H:%M:%S.%f}")
    meetings = list(booked)
    worker, database = celery.procs["worker"].pid, url.rsplit("/", 1)[1].split("?")[0]
    _sleep_until(instant)
    before = cpu_snapshot(worker, database)

    def done() -> bool:
        celery.check_alive()
        return states(url, meetings).get("started", 0) == count

    try:
        wait_until(done, TIMEOUT, "every booking of the burst to be started", interval=0.5)
    except TimeoutError as exc:
        log(f"{exc}: {states(url, meetings)}")
    cpu = _cpu_used(before, cpu_snapshot(worker, database))
    with get_sessionmaker(url)() as session:
        started, last = session.execute(
            select(func.count(), func.max(ScheduledStream.started_at)).where(
                ScheduledStream.state == "started", ScheduledStream.name.like("bench-%")
            )
        ).one()
    calls = [r.arrived for r in bench.fake.requests if r.meeting_id in booked]
    product = (last - instant).total_seconds() if last is not None else None
    last_call = max(calls) - instant.timestamp() if calls else None
    return started, product, last_call, cpu


def _noop(bench: Bench, celery: Celery, count: int) -> tuple[float | None, dict[str, float]]:
    sender = CeleryApp("bench-sender", broker=bench.broker_url, set_as_current=False)
    sender.conf.task_serializer = "json"
    with contextlib.closing(bench.redis()) as client:
        client.delete(NOOP_KEY)
        instant = datetime.now(UTC) + timedelta(seconds=3.0 + count / 1000)
        with sender.producer_or_acquire() as producer:
            for _ in range(count):
                sender.send_task("bench.noop", eta=instant, producer=producer)
        if datetime.now(UTC) > instant:
            log(f"{CASE}: sending the no-ops took past their instant; the figure is pessimistic")
        worker = celery.procs["worker"].pid
        _sleep_until(instant)
        before = cpu_snapshot(worker, bench.database_name)

        def done() -> bool:
            celery.check_alive()
            return client.llen(NOOP_KEY) >= count

        try:
            wait_until(done, TIMEOUT, "every no-op to run", interval=0.2)
        except TimeoutError as exc:
            log(str(exc))
        cpu = _cpu_used(before, cpu_snapshot(worker, bench.database_name))
        runs = [float(v) for v in client.lrange(NOOP_KEY, 0, -1)]
    return (max(runs) - instant.timestamp() if len(runs) == count else None), cpu


def burst(
    bench: Bench,
    count: int,
    *,
    url: str | None = None,
    noop: bool = True,
    env: dict[str, str] | None = None,
) -> BurstResult:
    """One burst of ``count`` bookings (then of ``count`` no-ops) on a fresh worker and beat,
    against the database at ``url`` (the run's own by default); ``env``: more settings."""
    url = url or bench.database_url
    with Celery(bench, {**ENV, "LIVESTREAMS_DATABASE_URL": url, **(env or {})}) as celery:
        # The product's app plus the no-op task, so both run on the very same worker.
        worker = celery.worker("worker", pool=POOL, concurrency=CONCURRENCY, app=APP)
        beat = celery.beat("beat")
        sampler = PeakRSS({"worker": worker.pid, "beat": beat.pid})
        with sampler.running():
            # The no-ops first, on an idle worker: after the product's burst the worker is
            # busy for a while with its 2,000 streams' status checks, which is the product's
            # follow-up work, not what a no-op task costs.
            noop_s, noop_cpu = _noop(bench, celery, count) if noop else (None, {})
            started, product, last_call, product_cpu = _product(bench, celery, count, url)
    return BurstResult(
        count, started, product, last_call, noop_s, sampler.peak["worker"], sampler.peak["beat"],
        product_cpu, noop_cpu,
    )  # fmt: skip


def run(bench: Bench) -> list[Figure]:
    count = size(bench)
    bench.reset()
    time.sleep(1)  # let PostgreSQL settle after the truncate
    r = burst(bench, count)
    product_rate = count / r.product_s if r.product_s else None
    noop_rate = count / r.noop_s if r.noop_s else None
    note = (
        f"{count} due at once; worker --pool {POOL} -c {CONCURRENCY}; "
        f"LIVESTREAMS_RATE_LIMIT={RATE_LIMIT} (the fake has no limit)"
    )
    figs = [
        figure(CASE, "started", r.started, "bookings", at_least=count, note=note),
        figure(CASE, "time_to_all_started", r.product_s, "s"),
        figure(CASE, "time_to_last_start_call", r.last_call_s, "s"),
        figure(CASE, "product_throughput", product_rate, "starts/s"),
        figure(CASE, "noop_time", r.noop_s, "s", note="no-op tasks, same ETA path and worker"),
        figure(CASE, "noop_throughput", noop_rate, "tasks/s"),
        figure(CASE, "ratio_product_to_noop", ratio(product_rate, noop_rate), "x",
               at_least=GOAL_RATIO),
    ]  # fmt: skip
    cpu_note = "CPU used from the instant to the last start, per start, by process group"
    for group, used in r.product_cpu.items():
        figs.append(figure(CASE, f"cpu_per_start_{group}", used / count * 1000, "ms",
                           note=cpu_note if group == "worker_main" else None))  # fmt: skip
    figs.append(figure(CASE, "cpu_per_start_total", sum(r.product_cpu.values()) / count * 1000,
                       "ms"))  # fmt: skip
    figs.append(figure(CASE, "cpu_per_noop_total", sum(r.noop_cpu.values()) / count * 1000, "ms"))
    tree = "worker process tree (main + pool children; shared pages counted in each)"
    figs.append(figure("memory", "worker_peak_rss_burst", r.worker_rss, "MiB", note=tree))
    figs.append(figure("memory", "beat_peak_rss_burst", r.beat_rss, "MiB"))
    return figs
