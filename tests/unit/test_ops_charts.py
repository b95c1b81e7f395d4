"""Table tests of the overview's pure chart decisions (worker.http.pages.charts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from worker.http.pages import charts

NOW = datetime(2031, 3, 1, 18, 42, 17, tzinfo=UTC)


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2031, 2 if day > 1 else 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "start", "end", "buckets"),
    [
        ("1h", at(1, 17, 43), at(1, 18, 43), 60),
        ("24h", at(28, 18, 45), at(1, 18, 45), 96),
        ("7d", at(22, 19, 0), at(1, 19, 0), 168),
        ("bogus", at(1, 17, 43), at(1, 18, 43), 60),
    ],
)  # fmt: skip
def test_a_window_ends_with_the_bucket_that_holds_now(key, start, end, buckets) -> None:
    win = charts.window(charts.pick_range(key), NOW)
    assert (win.start, win.end, win.buckets) == (start, end, buckets)
    assert win.start <= NOW < win.end


def test_a_window_on_a_bucket_edge_starts_a_new_bucket() -> None:
    edge = NOW.replace(second=0)
    win = charts.window(charts.pick_range("1h"), edge)
    assert win.end == edge + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("counts", "bars", "total", "peak"),
    [
        ([0, 0, 0, 0], [], 0, 0),
        ([0, 1, 0, 0], [(150.5, 0.0, 149.0, 90.0, 1, "18:43Z: 1")], 1, 1),
        (
            [4, 0, 2, 0],
            [(0.5, 0.0, 149.0, 90.0, 4, "18:42Z: 4"), (300.5, 45.0, 149.0, 45.0, 2, "18:44Z: 2")],
            6,
            4,
        ),
        # A bar of one among hundreds is still drawn (2 units high), never lost.
        (
            [400, 1, 0, 0],
            [
                (0.5, 0.0, 149.0, 90.0, 400, "18:42Z: 400"),
                (150.5, 88.0, 149.0, 2.0, 1, "18:43Z: 1"),
            ],
            401,
            400,
        ),
    ],
)  # fmt: skip
def test_bars_are_scaled_to_the_peak_and_empty_buckets_draw_nothing(
    counts, bars, total, peak
) -> None:
    win = charts.Window(
        NOW.replace(second=0), NOW.replace(second=0) + timedelta(minutes=4), timedelta(minutes=1)
    )
    chart = charts.bar_chart(counts, win)
    assert [(b.x, b.y, b.width, b.height, b.count, b.title) for b in chart.bars] == bars
    assert (chart.total, chart.peak, chart.first, chart.last) == (total, peak, "18:42Z", "now")


@pytest.mark.parametrize(
    ("counts", "p50", "p99"),
    [
        ([0] * 12, "-", "-"),
        ([1] + [0] * 11, "≤ 25 ms", "≤ 25 ms"),
        ([98, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], "≤ 25 ms", "> 60 s"),  # rank 99 of 100
        ([99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], "≤ 25 ms", "≤ 25 ms"),
        ([0, 0, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "≤ 100 ms", "≤ 250 ms"),
        ([0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0], "≤ 2.5 s", "≤ 2.5 s"),
    ],
)
def test_lateness_quantiles_are_the_edge_of_their_bucket(counts, p50, p99) -> None:
    seen = charts.histogram(counts)
    assert (seen.p50, seen.p99, seen.total) == (p50, p99, sum(counts))
    assert seen.labels[0] == "≤ 25 ms" and seen.labels[-1] == "> 60 s"
    assert len(seen.labels) == len(counts)


@pytest.mark.parametrize(
    ("then", "said"),
    [
        (None, ""),
        (NOW, "now"),
        (NOW + timedelta(seconds=0.4), "now"),
        (NOW - timedelta(seconds=42), "42 s ago"),
        (NOW + timedelta(seconds=59.9), "in 59 s"),
        (NOW + timedelta(minutes=5, seconds=30), "in 5 min"),
        (NOW - timedelta(hours=3, minutes=59), "3 h ago"),
        (NOW + timedelta(days=2, hours=23), "in 2 d"),
    ],
)
def test_relative_times(then, said) -> None:
    assert charts.relative(NOW, then) == said


def test_presets_are_instants_with_z() -> None:
    assert [(p.label, p.start, p.end) for p in charts.presets(NOW)] == [
        ("Last hour", "2031-03-01T17:42:17Z", "2031-03-01T18:42:17Z"),
        ("Today (UTC)", "2031-03-01T00:00:00Z", "2031-03-02T00:00:00Z"),
        ("Next 24 hours", "2031-03-01T18:42:17Z", "2031-03-02T18:42:17Z"),
    ]


@pytest.mark.parametrize(
    ("action", "outcome", "status", "series"),
    [
        ("start", "started", 201, ("starts",)),
        ("start", None, None, ("starts",)),  # in flight: not (yet) a failure
        ("start", "fatal", 422, ("starts", "failures")),
        ("start", "ambiguous", 503, ("starts", "failures")),
        ("start", "retryable", 429, ("starts", "pauses")),
        ("status", "observed", 200, ("checks",)),
        ("status", "retryable", 429, ("checks", "pauses")),
        ("status", "ambiguous", None, ("checks", "failures")),
        ("reconcile", "adopted", 200, ()),
        ("stop", "fatal", 404, ("failures",)),
        ("fetch_key", "fetched", 200, ()),
    ],
)
def test_each_call_counts_in_its_series(action, outcome, status, series) -> None:
    assert charts.call_series(action, outcome, status) == series
