"""The overview's charts, decided without the database: the time range's buckets, the bars of
a chart (server-rendered SVG: no script draws them), the lateness histogram and its quantiles,
and times said relative to now. Pure functions, table-tested (tests/unit/test_ops_charts.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from models import AttemptAction, AttemptOutcome


@dataclass(frozen=True)
class Range:
    """A time range the overview can show: ``span`` cut into buckets of ``step``."""

    key: str  # in the query string: ?range=1h
    label: str  # "last hour"
    span: timedelta
    step: timedelta
    per: str  # what one bar is: "per minute"


RANGES = (
    Range("1h", "last hour", timedelta(hours=1), timedelta(minutes=1), "per minute"),
    Range("24h", "last 24 hours", timedelta(hours=24), timedelta(minutes=15), "per 15 minutes"),
    Range("7d", "last 7 days", timedelta(days=7), timedelta(hours=1), "per hour"),
)
DEFAULT_RANGE = RANGES[0]


def pick_range(key: str | None) -> Range:
    """The range named ``key``; the last hour for anything else (a link, not a form field)."""
    return next((r for r in RANGES if r.key == key), DEFAULT_RANGE)


@dataclass(frozen=True)
class Window:
    """The buckets of a range ending with the one that holds ``now``: ``start`` is the first
    bucket's beginning, ``end`` the last one's end (after now)."""

    start: datetime
    end: datetime
    step: timedelta

    @property
    def buckets(self) -> int:
        return round((self.end - self.start) / self.step)

    def bucket_start(self, index: int) -> datetime:
        return self.start + index * self.step


def window(chosen: Range, now: datetime) -> Window:
    """Buckets aligned on whole steps since the epoch (a minute starts at :00), so two reads a
    few seconds apart put every row in the same bucket."""
    step = chosen.step.total_seconds()
    epoch = datetime(1970, 1, 1, tzinfo=now.tzinfo)
    end = epoch + timedelta(seconds=(math.floor((now - epoch).total_seconds() / step) + 1) * step)
    return Window(end - chosen.span, end, chosen.step)


# Outcomes of a call that did not do what it was for (a 429 is counted as a pause instead).
_FAILED = frozenset({AttemptOutcome.FATAL, AttemptOutcome.RETRYABLE, AttemptOutcome.AMBIGUOUS})
TOO_MANY_REQUESTS = 429


_CALL_SERIES: dict[str, tuple[str, ...]] = {
    AttemptAction.START: ("starts",),
    AttemptAction.STATUS: ("checks",),
}


def call_series(action: str, outcome: str | None, status: int | None) -> tuple[str, ...]:
    """Which of the overview's series one call to the API counts in: a start call in
    ``starts``, a status check in ``checks``, and either also in ``pauses`` when answered
    429 or in ``failures`` when it failed otherwise (a call still in flight is neither)."""
    found: tuple[str, ...] = _CALL_SERIES.get(action, ())
    if status == TOO_MANY_REQUESTS:
        return (*found, "pauses")
    if outcome in _FAILED:
        return (*found, "failures")
    return found


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    title: str  # the tooltip: "18:42Z: 3"


@dataclass(frozen=True)
class Chart:
    """One bar chart's drawing, in the SVG's own units (``WIDTH`` x ``HEIGHT``)."""

    bars: tuple[Bar, ...]  # only the buckets with a count: an empty minute draws nothing
    total: int
    peak: int
    first: str  # the labels under the x axis: the first bucket and "now"
    last: str


WIDTH = 600.0
HEIGHT = 90.0


def bar_chart(counts: list[int], win: Window) -> Chart:
    """Bars scaled to the highest count (at least 1, so a single event is a full bar)."""
    peak = max(counts, default=0)
    slot = WIDTH / max(len(counts), 1)
    gap = min(1.0, slot / 4)
    bars = []
    for i, count in enumerate(counts):
        if count:
            height = max(HEIGHT * count / max(peak, 1), 2.0)
            label = _clock(win.bucket_start(i), win.step)
            bars.append(
                Bar(
                    round(i * slot + gap / 2, 2), round(HEIGHT - height, 2),
                    round(slot - gap, 2), round(height, 2), count, f"{label}: {count}",
                )
            )  # fmt: skip
    return Chart(tuple(bars), sum(counts), peak, _clock(win.start, win.step), "now")


def _clock(at: datetime, step: timedelta) -> str:
    if step >= timedelta(hours=1):
        return at.strftime("%a %H:%MZ")
    return at.strftime("%H:%MZ")


# Upper edges of the start-lateness histogram, in seconds (the last bucket is everything
# above the last edge). Fine where starts should be (tens of milliseconds), coarse beyond.
LATENESS_EDGES = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class Histogram:
    counts: tuple[int, ...]  # one per edge, and one for above the last edge
    labels: tuple[str, ...]  # "≤ 25 ms", ..., "> 60 s"
    total: int
    p50: str  # "≤ 50 ms", or "-" without starts
    p99: str


def histogram(counts: list[int], edges: tuple[float, ...] = LATENESS_EDGES) -> Histogram:
    """The histogram of ``counts`` (len(edges) + 1 of them) with its p50 and p99, each the
    upper edge of the bucket the quantile falls in: the exact value is not stored per bucket,
    and an edge is an honest bound ("≤ 100 ms")."""
    labels = (*(f"≤ {_seconds(e)}" for e in edges), f"> {_seconds(edges[-1])}")
    total = sum(counts)
    return Histogram(
        tuple(counts),
        labels,
        total,
        _quantile(counts, labels, 0.5),
        _quantile(counts, labels, 0.99),
    )


def _quantile(counts: list[int], labels: tuple[str, ...], q: float) -> str:
    total = sum(counts)
    if not total:
        return "-"
    rank = math.ceil(q * total)  # the rank-th smallest lateness (1-based)
    seen = 0
    for count, label in zip(counts, labels, strict=True):
        seen += count
        if seen >= rank:
            return label
    raise AssertionError("unreachable: the counts add up to total")


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:g} ms"
    return f"{value:g} s"


def relative(now: datetime, then: datetime | None) -> str:
    """``then`` said from ``now``: "in 3 h", "5 min ago", "now" (within a second)."""
    if then is None:
        return ""
    seconds = (then - now).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    for limit, unit, per in ((60, "s", 1), (3600, "min", 60), (86400, "h", 3600)):
        if size < limit:
            amount = f"{size // per:.0f} {unit}"
            break
    else:
        amount = f"{size // 86400:.0f} d"
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


@dataclass(frozen=True)
class Preset:
    label: str
    start: str
    end: str


def presets(now: datetime) -> tuple[Preset, ...]:
    """The list's time presets, as instants with ``Z`` (what the filter's fields take)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        Preset("Last hour", _z(now - timedelta(hours=1)), _z(now)),
        Preset("Today (UTC)", _z(midnight), _z(midnight + timedelta(days=1))),
        Preset("Next 24 hours", _z(now), _z(now + timedelta(hours=24))),
    )


def _z(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")
