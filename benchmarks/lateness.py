"""Case lateness: bookings spread evenly over a window at 10, 20 and 40 starts/s, against the
default product: real beat and worker, status checks on, and a platform's webhook endpoint
subscribed to every event (so deliveries share the machine with the starts, as in production).

Lateness of a booking = when the fake API received its start call - the booked instant.
``BENCH_LATENESS_RATES`` (comma-separated starts/s) chooses the rates.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.data import book, states
from benchmarks.procs import Celery, wait_until
from benchmarks.report import Figure, figure, log, percentile
from benchmarks.services import Bench

CASE = "lateness"
GOAL_P99_MS = {10: 10.0, 20: 10.0, 40: 20.0}
GOAL_MAX_MS = 50.0
# What `celery -A worker worker` gives on this machine without options: prefork, one child
# per core. The product's settings are all left at their defaults, but for the rate limit at
# 40/s: one token's 1,200 calls / 5 min would be the limit there, not the product.
POOL, CONCURRENCY = "prefork", 2
LEAD = 8.0  # seconds from booking to the first instant: longer than the default lookahead
FAST_TOKEN = {"LIVESTREAMS_RATE_LIMIT": "100000/1", "LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1"}
PLAIN = {"LIVESTREAMS_WEBHOOKS_ALLOW_PRIVATE": "1"}


def rates(bench: Bench) -> list[int]:
    chosen = os.environ.get("BENCH_LATENESS_RATES")
    if chosen:
        return [int(r) for r in chosen.split(",")]
    return [10, 20] if bench.quick else [10, 20, 40]


def window(bench: Bench) -> float:
    return 8.0 if bench.quick else 20.0


def size(bench: Bench, rate: int = 20) -> tuple[int, float]:
    """(bookings, seconds) of one rate's run."""
    return int(rate * window(bench)), window(bench)


def lateness_by_meeting(bench: Bench, booked: dict[str, datetime]) -> dict[str, float]:
    """Per meeting started, ms from its instant to the first start call the fake received."""
    first: dict[str, float] = {}
    for req in bench.fake.requests:
        if req.endpoint == "start" and req.meeting_id in booked:
            first.setdefault(req.meeting_id, req.arrived)
    return {m: (arrived - booked[m].timestamp()) * 1000 for m, arrived in first.items()}


def lateness_ms(bench: Bench, booked: dict[str, datetime]) -> list[float]:
    """Per booking started, ms from its instant to the first start call the fake received."""
    return list(lateness_by_meeting(bench, booked).values())


def spread(count: int, window: float, lead: float) -> list[datetime]:
    start = datetime.now(UTC) + timedelta(seconds=lead)
    return [start + timedelta(seconds=window * i / max(1, count - 1)) for i in range(count)]


def wait_started(bench: Bench, celery: Celery, booked: dict[str, datetime], timeout: float) -> None:
    meetings = list(booked)

    def done() -> bool:
        celery.check_alive()
        return states(bench.database_url, meetings).get("started", 0) == len(meetings)

    try:
        wait_until(done, timeout, "every booking to be started", interval=0.5)
    except TimeoutError as exc:
        log(f"{exc}: {states(bench.database_url, meetings)}")


def summarize(
    case: str,
    late: list[float],
    expected: int,
    note: str,
    *,
    p99_goal: float | None = None,
    max_goal: float | None = None,
) -> list[Figure]:
    figs = [
        figure(case, "started", len(late), "bookings", at_least=expected, note=note),
        figure(case, "lateness_p50", percentile(late, 50), "ms"),
        figure(case, "lateness_p99", percentile(late, 99), "ms", at_most=p99_goal),
        figure(case, "lateness_max", max(late, default=None), "ms", at_most=max_goal),
    ]
    if late and p99_goal is not None:
        log(f"{case}: min {min(late):.1f} ms; {sum(x > p99_goal for x in late)} over {p99_goal} ms")
    return figs


@contextlib.contextmanager
def platform(bench: Bench) -> Iterator[Any]:
    """A webhook receiver with an endpoint for every event registered at it; None with a
    version of the product that has no outbound webhooks (the comparison with older code)."""
    try:  # imported here: the webhooks case imports this module
        from benchmarks.webhooks import Receiver, register
    except ImportError:
        yield None
        return
    with Receiver(bench) as rx:
        register(bench, rx)
        yield rx


def one_rate(bench: Bench, rate: int) -> list[Figure]:
    count, _ = size(bench, rate)
    bench.reset()
    env = FAST_TOKEN if rate > 20 else PLAIN
    with platform(bench) as rx, Celery(bench, env) as celery:
        celery.worker("worker", pool=POOL, concurrency=CONCURRENCY)
        celery.beat("beat")
        booked = book(bench, spread(count, window(bench), LEAD))
        log(f"{CASE}: booked {count} starts over {window(bench):g} s ({rate}/s); waiting")
        time.sleep(max(0.0, (max(booked.values()) - datetime.now(UTC)).total_seconds()))
        wait_started(bench, celery, booked, timeout=30)
        delivered = "no webhooks in this version" if rx is None else f"{rx.count()} delivered"
    note = (
        f"{count} over {window(bench):g} s; worker --pool {POOL} -c {CONCURRENCY}; checks on;"
        f" an endpoint for every event ({delivered})"
    )
    name = f"{CASE}_{rate}"
    return summarize(
        name,
        lateness_ms(bench, booked),
        count,
        note,
        p99_goal=GOAL_P99_MS.get(rate, GOAL_P99_MS[40]),
        max_goal=GOAL_MAX_MS if rate <= 20 else None,
    )


def run(bench: Bench) -> list[Figure]:
    figures: list[Figure] = []
    for rate in rates(bench):
        figures.extend(one_rate(bench, rate))
    return figures
