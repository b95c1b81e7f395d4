"""Figures: one JSON line each as they are measured, and a table of all of them at the end."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Figure:
    """One measured number. ``goal`` is a text like "<= 50"; ``met`` is None without a goal."""

    case: str
    name: str
    value: float | None
    unit: str
    goal: str | None = None
    met: bool | None = None
    note: str | None = None


def figure(
    case: str,
    name: str,
    value: float | None,
    unit: str,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    note: str | None = None,
) -> Figure:
    """A figure, judged against its goal when it has one; printed at once as a JSON line."""
    goal, met = None, None
    if at_most is not None:
        goal, met = f"<= {at_most:g}", value is not None and value <= at_most
    elif at_least is not None:
        goal, met = f">= {at_least:g}", value is not None and value >= at_least
    if value is not None and math.isnan(value):
        value = None  # JSON has no NaN: no value is "null"
    if value is not None:
        value = round(value, 3 if abs(value) < 100 else 1)
    fig = Figure(case, name, value, unit, goal, met, note)
    print(json.dumps(asdict(fig)), flush=True)
    return fig


def log(message: str) -> None:
    """Progress, on stderr so that stdout stays JSON lines and the table."""
    print(f"benchmarks: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def table(figures: list[Figure]) -> str:
    rows = [("case", "figure", "value", "unit", "goal", "met")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        value = "n/a" if f.value is None else f"{f.value:g}"
        rows.append((f.case, f.name, value, f.unit, f.goal or "", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
