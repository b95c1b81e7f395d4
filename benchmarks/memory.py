"""Case 4, memory: peak RSS of the worker and beat process trees during the same burst with
1,000 and with 1,000,000 future bookings stored. The goal: flat in the number of stored rows.

The burst case reports the same figures for its own, larger burst.
"""

from __future__ import annotations

from benchmarks.burst import burst
from benchmarks.data import clear_all_but_bulk
from benchmarks.dispatch import sizes, stored_rows, tag
from benchmarks.report import Figure, figure, ratio
from benchmarks.services import Bench

CASE = "memory"
GOAL_RATIO = 1.1  # "flat": within 10 %
COUNT = 500  # bookings in each burst


def run(bench: Bench) -> list[Figure]:
    small, large = sizes(bench)
    urls = stored_rows(bench)
    peaks: dict[int, tuple[float, float]] = {}
    for rows in (small, large):
        clear_all_but_bulk(urls[rows])
        bench.fake.reset()
        result = burst(bench, COUNT, url=urls[rows], noop=False)
        if result.started != COUNT:
            raise RuntimeError(f"only {result.started} of {COUNT} started with {rows:,} rows")
        peaks[rows] = (result.worker_rss, result.beat_rss)
        clear_all_but_bulk(urls[rows])
    (worker_s, beat_s), (worker_l, beat_l) = peaks[small], peaks[large]
    tag_s, tag_l = tag(small), tag(large)
    note = f"a burst of {COUNT} starts; worker tree = main + pool children"
    return [
        figure(CASE, f"worker_peak_rss_{tag_s}_rows", worker_s, "MiB", note=note),
        figure(CASE, f"worker_peak_rss_{tag_l}_rows", worker_l, "MiB"),
        figure(CASE, "worker_rss_ratio", ratio(worker_l, worker_s), "x", at_most=GOAL_RATIO),
        figure(CASE, f"beat_peak_rss_{tag_s}_rows", beat_s, "MiB"),
        figure(CASE, f"beat_peak_rss_{tag_l}_rows", beat_l, "MiB"),
        figure(CASE, "beat_rss_ratio", ratio(beat_l, beat_s), "x", at_most=GOAL_RATIO),
    ]
