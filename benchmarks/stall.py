"""Case stall: a steady 10 starts/s while the worker is paused (SIGSTOP) for 2 s.

The whole worker (main process and pool) stops, as under a stop-the-world pause of a host or
a container being frozen; beat keeps ticking. Goals: no start later than the stall plus 1 s,
and starts due from 5 s after the stall on back under 10 ms at p99: a stall costs the stall,
no more.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime

from benchmarks.data import book
from benchmarks.lateness import (
    CONCURRENCY,
    LEAD,
    PLAIN,
    POOL,
    lateness_by_meeting,
    spread,
    wait_started,
)
from benchmarks.procs import Celery
from benchmarks.report import Figure, figure, log, percentile
from benchmarks.services import Bench

CASE = "stall"
RATE = 10
STALL = 2.0
STALL_AT = 6.0  # seconds after the first instant
RECOVERED_AFTER = 5.0  # starts due this long after the stall ends are judged "back"


def _pause(pid: int, at: float, seconds: float) -> None:
    time.sleep(max(0.0, at - time.time()))
    os.killpg(pid, signal.SIGSTOP)
    time.sleep(seconds)
    os.killpg(pid, signal.SIGCONT)


def run(bench: Bench) -> list[Figure]:
    window = 12.0 if bench.quick else 20.0
    count = int(RATE * window)
    bench.reset()
    with Celery(bench, PLAIN) as celery:
        worker = celery.worker("worker", pool=POOL, concurrency=CONCURRENCY)
        celery.beat("beat")
        booked = book(bench, spread(count, window, LEAD))
        first = min(booked.values()).timestamp()
        stall_from = first + STALL_AT
        pauser = threading.Thread(target=_pause, args=(worker.pid, stall_from, STALL))
        pauser.start()
        log(f"{CASE}: {count} starts over {window:g} s; worker paused {STALL:g} s at +{STALL_AT:g}")
        time.sleep(max(0.0, (max(booked.values()) - datetime.now(UTC)).total_seconds()))
        pauser.join()
        wait_started(bench, celery, booked, timeout=30)
    stall_end = stall_from + STALL
    by_meeting = lateness_by_meeting(bench, booked)
    late = list(by_meeting.values())
    after = [
        ms for m, ms in by_meeting.items() if booked[m].timestamp() >= stall_end + RECOVERED_AFTER
    ]
    during = [ms for m, ms in by_meeting.items() if stall_from <= booked[m].timestamp() < stall_end]
    before = [ms for m, ms in by_meeting.items() if booked[m].timestamp() < stall_from]
    note = f"{count} over {window:g} s at {RATE}/s; worker SIGSTOPped {STALL:g} s"
    return [
        figure(CASE, "started", len(late), "bookings", at_least=count, note=note),
        figure(CASE, "before_p99", percentile(before, 99), "ms"),
        figure(CASE, "during_max", max(during, default=None), "ms"),
        figure(CASE, "max", max(late, default=None), "ms", at_most=(STALL + 1) * 1000),
        figure(CASE, "after_p99", percentile(after, 99), "ms", at_most=10.0),
        figure(CASE, "after_max", max(after, default=None), "ms"),
    ]
