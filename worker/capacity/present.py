"""The capacity report as a dict (JSON, HTTP, the ops page) and as text (the CLI)."""

from __future__ import annotations

from typing import Any

from worker.capacity import rules
from worker.capacity.forecast import Report, stamp


def report_dict(report: Report) -> dict[str, Any]:
    budget, spend = report.budget, report.spend
    return {
        "from": stamp(report.start),
        "to": stamp(report.end),
        "budget": {"calls": budget.calls, "window_seconds": budget.window},
        "per_start": {
            "calls": round(spend.per_start, 2),
            "first_window_checks": round(spend.checks, 2),
        },
        "windows": [
            {
                "start": stamp(w.start),
                "end": stamp(w.end),
                "starts": w.starts,
                "calls": w.calls,
                "budget": w.budget,
                "late": w.late,
                "missed": w.missed,
                "at_risk": w.at_risk,
                "instants": [
                    {
                        "at": stamp(i.at),
                        "due": i.due,
                        "on_time": i.on_time,
                        "late": i.late,
                        "missed": i.missed,
                        "latest_seconds": i.latest,
                        "start_window": i.window,
                        "message": rules.describe(i, budget, stamp(i.at)),
                    }
                    for i in w.instants
                ],
            }
            for w in report.windows
        ],
    }


HEADER = f"{'WINDOW (UTC)':<50} {'STARTS':>7} {'CALLS':>8} {'BUDGET':>7} {'LATE':>6} {'MISSED':>7}"


def render_report(data: dict[str, Any]) -> str:
    budget = data["budget"]
    lines = [
        f"budget: {budget['calls']:,} calls / {budget['window_seconds']:g} s; a start costs "
        f"{data['per_start']['calls']:g} calls (and {data['per_start']['first_window_checks']:g} "
        f"status checks after it)",
        f"from {data['from']} to {data['to']}",
    ]
    if not data["windows"]:
        return "\n".join([*lines, "no starts due"])
    lines.append(HEADER)
    for w in data["windows"]:
        mark = "  AT RISK" if w["at_risk"] else ""
        lines.append(
            f"{w['start'] + ' - ' + w['end']:<50} {w['starts']:>7,} {w['calls']:>8,.0f} "
            f"{w['budget']:>7,} {w['late']:>6,} {w['missed']:>7,}{mark}"
        )
        lines.extend(f"    {i['message']}" for i in w["instants"])
    return "\n".join(lines)
