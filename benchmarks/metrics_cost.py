"""Case metrics: what the worker's Prometheus metrics cost per start.

The burst case's 2,000 bookings due at once, with LIVESTREAMS_METRICS_PORT unset and set, in
turns (off, on, off, on) so that drift on the machine hits both alike: CPU per start of every
process involved, and the time to all started. Goal: metrics cost under 5 % per start.
"""

from __future__ import annotations

import statistics
import tempfile
import time

from benchmarks.burst import burst, size
from benchmarks.report import Figure, figure, log
from benchmarks.services import Bench
from worker.dev.processes import free_port

CASE = "metrics"
GOAL_PERCENT = 5.0
ROUNDS = 2


def run(bench: Bench) -> list[Figure]:
    count = size(bench)
    cpu: dict[bool, list[float]] = {False: [], True: []}
    took: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(ROUNDS):
        for on in (False, True):
            bench.reset()
            time.sleep(1)
            env = (
                {"LIVESTREAMS_METRICS_PORT": str(free_port()),
                 "LIVESTREAMS_METRICS_DIR": tempfile.mkdtemp(prefix="bench-metrics-")}
                if on else {}
            )  # fmt: skip
            r = burst(bench, count, noop=False, env=env)
            cpu[on].append(sum(r.product_cpu.values()) / count * 1000)
            if r.product_s is not None:
                took[on].append(r.product_s)
            log(f"{CASE}: metrics {'on' if on else 'off'}: {cpu[on][-1]:.2f} ms CPU per start")
    off, on = statistics.median(cpu[False]), statistics.median(cpu[True])
    cost = (on - off) / off * 100 if off else None
    note = f"{count} due at once, median of {ROUNDS} rounds each, off and on in turns"
    return [
        figure(CASE, "cpu_per_start_off", off, "ms", note=note),
        figure(CASE, "cpu_per_start_on", on, "ms"),
        figure(CASE, "cost_per_start", cost, "%", at_most=GOAL_PERCENT),
        figure(CASE, "time_to_all_started_off", statistics.median(took[False] or [0]), "s"),
        figure(CASE, "time_to_all_started_on", statistics.median(took[True] or [0]), "s"),
    ]
