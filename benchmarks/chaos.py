"""Case chaos: the chaos test's scenario (tests/chaos/test_chaos.py) over several seeds.

Each seed is one run of the test in its own process: three workers and two beats on
PostgreSQL and a Redis of its own, the fake injecting 5xx, 429, hangs and drops, workers
SIGKILLed every few seconds, Redis restarted empty, PostgreSQL refusing for 5 s. The test
asserts correctness (no double start, nothing lost, every stop once); this case reads the
summary line each run prints and reports its lateness and how long until every booking was
final. ``BENCH_CHAOS_SEEDS`` (comma-separated) picks the seeds; by default five random ones
(one with --quick).
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

from benchmarks.procs import ROOT
from benchmarks.report import Figure, figure, log
from benchmarks.services import Bench

CASE = "chaos"
LINE = re.compile(
    r"chaos: .*?, (?P<double>\d+) double starts, (?P<lost>\d+) lost bookings, start lateness"
    r" p50 (?P<p50>[0-9.]+) s p99 (?P<p99>[0-9.]+) s \(min [-0-9.]+ s, max (?P<max>[0-9.]+) s\),"
    r" all ended (?P<ended>[0-9.]+) s after"
)
GOAL_P99_S, GOAL_ENDED_S = 15.0, 60.0


def seeds(bench: Bench) -> list[int]:
    chosen = os.environ.get("BENCH_CHAOS_SEEDS")
    if chosen:
        return [int(s) for s in chosen.split(",")]
    rng = random.SystemRandom()
    return [rng.randrange(2**32) for _ in range(1 if bench.quick else 5)]


def one_seed(seed: int) -> dict[str, float] | None:
    argv = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-o",
            "addopts=", "tests/chaos/test_chaos.py"]  # fmt: skip
    env = {**os.environ, "CHAOS_SEED": str(seed), "CI": "true"}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    found = LINE.search(done.stdout)
    if done.returncode != 0 or found is None:
        log(f"{CASE}: seed {seed} failed (exit {done.returncode}):\n{done.stdout[-3000:]}")
        return None
    values = {k: float(v) for k, v in found.groupdict().items()}
    log(f"{CASE}: seed {seed}: {found.group(0)}")
    return values


def run(bench: Bench) -> list[Figure]:
    chosen = seeds(bench)
    runs = {seed: one_seed(seed) for seed in chosen}
    passed = [r for r in runs.values() if r is not None]
    figures = [
        figure(CASE, "runs_passed", len(passed), "runs", at_least=len(chosen),
               note="seeds " + ", ".join(map(str, chosen))),
        figure(CASE, "double_starts", sum(r["double"] for r in passed), "", at_most=0),
        figure(CASE, "lost", sum(r["lost"] for r in passed), "bookings", at_most=0),
    ]  # fmt: skip
    for seed, r in runs.items():
        if r is None:
            continue
        figures += [
            figure(CASE, f"{seed}_lateness_p50", r["p50"], "s"),
            figure(CASE, f"{seed}_lateness_p99", r["p99"], "s", at_most=GOAL_P99_S),
            figure(CASE, f"{seed}_lateness_max", r["max"], "s"),
            figure(CASE, f"{seed}_all_final_after", r["ended"], "s", at_most=GOAL_ENDED_S),
        ]
    return figures
