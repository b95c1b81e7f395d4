"""Case 1, lateness: bookings spread over a window, product defaults, real beat and worker.

Lateness of a booking = when the fake API received its start call - the booked instant.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from benchmarks.data import book, states
from benchmarks.procs import Celery, wait_until
from benchmarks.report import Figure, figure, log, percentile
from benchmarks.services import Bench

CASE = "lateness"
GOAL_P99_MS = 50.0
# What `celery -A worker worker` gives on this machine without options: prefork, one child
# per core. The product's settings are all left at their defaults.
POOL, CONCURRENCY = "prefork", 2
LEAD = 8.0  # seconds from booking to the first instant: longer than the default lookahead


def size(bench: Bench) -> tuple[int, float]:
    return (150, 10.0) if bench.quick else (500, 30.0)


def lateness_ms(bench: Bench, booked: dict[str, datetime]) -> list[float]:
    """Per booking, ms from its instant to the first start call the fake received for it."""
    first: dict[str, float] = {}
    for req in bench.fake.requests:
        if req.endpoint == "start" and req.meeting_id in booked:
            first.setdefault(req.meeting_id, req.arrived)
    return [(first[m] - at.timestamp()) * 1000 for m, at in booked.items() if m in first]


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


def summarize(case: str, late: list[float], expected: int, note: str) -> list[Figure]:
    figs = [
        figure(case, "started", len(late), "bookings", at_least=expected, note=note),
        figure(case, "lateness_p50", percentile(late, 50), "ms"),
        figure(case, "lateness_p99", percentile(late, 99), "ms", at_most=GOAL_P99_MS),
        figure(case, "lateness_max", max(late, default=None), "ms"),
    ]
    if late:
        log(f"{case}: min {min(late):.1f} ms; {sum(x > GOAL_P99_MS for x in late)} over goal")
    return figs


def run(bench: Bench) -> list[Figure]:
    count, window = size(bench)
    bench.reset()
    with Celery(bench) as celery:
        celery.worker("worker", pool=POOL, concurrency=CONCURRENCY)
        celery.beat("beat")
        booked = book(bench, spread(count, window, LEAD))
        log(f"{CASE}: booked {count} starts over {window:g} s; waiting for them")
        time.sleep(max(0.0, (max(booked.values()) - datetime.now(UTC)).total_seconds()))
        wait_started(bench, celery, booked, timeout=30)
    note = f"{count} bookings over {window:g} s; worker --pool {POOL} -c {CONCURRENCY}"
    return summarize(CASE, lateness_ms(bench, booked), count, note)
