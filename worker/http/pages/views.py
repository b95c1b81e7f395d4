"""The ops page's read-only views: the overview (with its charts), the list, a booking's
detail (and the reveal of its stream key, which is a POST: it is logged, and no prefetch may
trigger it), and the processes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from models import Problem, ScheduledStream, StreamState
from models.db import db_now
from worker.bookings import booking, listing, observe
from worker.bookings.present import (
    attempt_dict,
    event_dict,
    explain,
    reading_cipher,
    stream_dict,
    stream_key_text,
    stream_rows,
)
from worker.errors import InputError
from worker.health import check
from worker.http import cursor
from worker.http.deps import SessionDep, SettingsDep
from worker.http.pages import activity, charts
from worker.http.pages.auth import Ops, OpsForm, OpsPage
from worker.http.pages.filters import Filter
from worker.http.pages.render import page
from worker.http.pages.series_link import series_of
from worker.http.pages.webhook_reads import overview_lines
from worker.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops", include_in_schema=False)

PAGE_SIZE = 50
UPCOMING = timedelta(hours=24)
REFRESH_SECONDS = 15
# Which actions a booking in each state offers (booking.* refuses the rest, with its reason).
ACTIONS: dict[str, tuple[str, ...]] = {
    StreamState.SCHEDULED: ("cancel", "reschedule"),
    StreamState.RETRYING: ("cancel", "reschedule"),
    StreamState.FAILED: ("retry",),
    StreamState.MISSED: ("retry",),
    StreamState.STARTED: ("stop",),
    StreamState.LIVE: ("stop",),
}


_LABELS = {"cancel": "Cancel…", "retry": "Retry…", "reschedule": "Reschedule…", "stop": "Stop now…"}


class NotFoundPage(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def find(session: Session, stream_id: str) -> ScheduledStream:
    try:
        return booking.find(session, stream_id)
    except InputError as exc:
        raise NotFoundPage(exc.problem) from None


def row(stream: ScheduledStream, now: datetime | None = None) -> dict[str, Any]:
    """A booking as a list row: the JSON API's fields plus its page, and its start said
    relative to ``now`` ("in 3 h")."""
    return {
        **stream_dict(stream),
        "href": f"/ops/bookings/{stream.id}",
        "starts_relative": charts.relative(now, stream.scheduled_at) if now else "",
    }


_CHART_TITLES = {
    "starts": "Starts",
    "failures": "Failed calls",
    "pauses": "429 answers (pauses)",
    "checks": "Status checks",
    "deliveries": "Webhook deliveries",
}


def _charts(
    session: Session, settings: Settings, now: datetime, chosen: charts.Range, win: charts.Window
) -> Any:
    seen = activity.read(session, settings, win, now)
    drawn = [
        {"key": key, "title": _CHART_TITLES[key], "chart": charts.bar_chart(counts, win)}
        for key, counts in seen.series.items()
    ]
    paused = seen.paused_until
    lateness = charts.histogram(seen.lateness)
    most = max(lateness.counts, default=0) or 1
    return {
        "range": chosen,
        "ranges": [
            {"key": r.key, "label": r.label, "href": f"/ops?range={r.key}", "current": r == chosen}
            for r in charts.RANGES
        ],
        "charts": drawn,
        "chart_width": charts.WIDTH,
        "chart_height": charts.HEIGHT,
        "lateness": lateness,
        "lateness_rows": [
            (label, {"count": n, "width": round(100 * n / most, 1)})
            for label, n in zip(lateness.labels, lateness.counts, strict=True)
        ],
        "budget": {
            "used": seen.budget_used,
            "limit": seen.budget_limit,
            "window": f"{seen.budget_window:g} s",
            "percent": min(100, round(100 * seen.budget_used / max(seen.budget_limit, 1))),
        },
        "paused": None
        if paused is None
        else {"until": _z(paused), "relative": charts.relative(now, paused)},
    }


@router.get("")
def overview(request: Request, ops: OpsPage, session: SessionDep, settings: SettingsDep) -> Any:
    """The last hour (or day, or week) in charts, what is live now, the rate budget and any
    pause; what needs a look and the bookings due in that range per state (each linking to
    its list); the next 24 hours. Nothing here reads every booking: it runs on every refresh."""
    health = check(session, settings, count_states=False)
    data = health.as_dict()
    chosen = charts.pick_range(request.query_params.get("range"))
    win = charts.window(chosen, health.now)
    # Due in the range so far: from its start to now (the list's filter takes the same).
    since = Filter(start=_z(win.start), end=_z(health.now))
    counts = activity.states_between(session, win.start, health.now)
    upcoming = Filter(start=_z(health.now), end=_z(health.now + UPCOMING))
    rows = listing.list_streams(session, limit=PAGE_SIZE + 1, **upcoming.listing())
    age = data["last_tick_age_seconds"]
    overdue = data["oldest_overdue"]
    attention = [
        _item(f"failed, due in the {chosen.label}", counts["failed"], since, "failed"),
        _item(f"missed, due in the {chosen.label}", counts["missed"], since, "missed"),
        *(
            _item(f"problem: {p.value}", health.problem_counts[p.value], Filter(problems=(p,)))
            for p in Problem
        ),
        _item("stuck in starting past the lease", health.stuck, Filter(), StreamState.STARTING),
        _item(
            "starting past the start deadline",
            health.starting_past_deadline,
            Filter(),
            StreamState.STARTING,
        ),
    ]
    context = {
        "title": "Overview",
        "ops": ops,
        "refresh": REFRESH_SECONDS,
        "now": _z(health.now),
        **_charts(session, settings, health.now, chosen, win),
        "live": activity.live_now(session),
        "live_href": "/ops/bookings?" + Filter(states=("live",)).query(),
        "healthy": health.healthy,
        "health_problems": health.problems,
        "counts": [
            {"state": s, "count": n, "href": "/ops/bookings?" + replace(since, states=(s,)).query()}
            for s, n in counts.items()
        ],
        "attention": attention,
        "tick": "never" if age is None else f"{age:.1f} s ago",
        "tick_stale": age is None or age > settings.claims.stale_after,
        "overdue": None
        if overdue is None
        else {
            **overdue,
            "href": f"/ops/bookings/{overdue['id']}",
            "late": f"{overdue['overdue_seconds']:.0f} s",
        },
        "webhook_lines": overview_lines(session, health.now, health.failing_endpoints),
        "upcoming": [row(s, health.now) for s in rows[:PAGE_SIZE]],
        "upcoming_more": len(rows) > PAGE_SIZE,
        "upcoming_href": "/ops/bookings?" + upcoming.query(),
    }
    return page(request, "overview.html", context)


def _item(label: str, count: int, where: Filter, state: str = "") -> dict[str, Any]:
    """A tile of "Needs a look": its count, and its link to the list (narrowed to ``state``)."""
    if state:
        where = replace(where, states=(state,))
    return {"label": label, "count": count, "href": "/ops/bookings?" + where.query()}


def _z(value: Any) -> str:
    return str(value.replace(microsecond=0).isoformat().replace("+00:00", "Z"))


@router.get("/bookings")
def bookings(request: Request, ops: OpsPage, session: SessionDep) -> Any:
    """The list: filters, a page of PAGE_SIZE, and a link to the next page (keyset)."""
    shown = Filter.read(request.query_params)
    now = db_now(session)
    error, rows, next_href = None, [], None
    try:
        after = request.query_params.get("cursor")
        found = listing.list_streams(
            session,
            after=cursor.decode(after) if after else None,
            limit=PAGE_SIZE + 1,
            newest_first=shown.newest_first,
            **shown.listing(),
        )
    except InputError as exc:
        error = f"{exc.field}: {exc.problem}"
    else:
        rows = [row(s, now) for s in found[:PAGE_SIZE]]
        if len(found) > PAGE_SIZE:
            last = found[PAGE_SIZE - 1]
            next_href = "/ops/bookings?" + shown.query(
                cursor=cursor.encode(last.scheduled_at, last.id)
            )
    context = {
        "title": "Bookings",
        "ops": ops,
        "filter": shown,
        "states": [s.value for s in StreamState],
        "problems": [p.value for p in Problem],
        "rows": rows,
        "error": error,
        "refresh": REFRESH_SECONDS,
        "now": _z(now),
        "presets": [
            {
                "label": p.label,
                "href": "/ops/bookings?" + replace(shown, start=p.start, end=p.end).query(),
            }
            for p in charts.presets(now)
        ],
        "sort_href": "/ops/bookings?"
        + replace(shown, order="" if not shown.newest_first else "oldest").query(),
        "sort": "descending" if shown.newest_first else "ascending",
        "next_href": next_href,
        "first_href": "/ops/bookings?" + shown.query()
        if request.query_params.get("cursor")
        else None,
        "bulk_cancel_href": "/ops/bulk/cancel?" + shown.query(),
        "bulk_retry_href": "/ops/bulk/retry?" + shown.query(),
    }
    return page(request, "list.html", context, 422 if error else 200)


def detail_context(
    session: Session, settings: Settings, ops: Ops, stream: ScheduledStream, *, reveal: bool
) -> dict[str, Any]:
    tried = booking.attempts(session, stream)
    data = stream_dict(stream, reading_cipher(settings, reveal=False))
    if reveal:
        data["stream_key"] = stream_key_text(stream, reading_cipher(settings, True), reveal=True)
    why = explain(stream, tried)
    return {
        "title": f"Booking {stream.external_ref or stream.id}",
        "ops": ops,
        "booking": data,
        "why": why,
        "fields": stream_rows(data),  # the why is shown above them
        "revealed": reveal,
        "has_key": stream.stream_key_ciphertext is not None,
        "attempts": [attempt_dict(a) for a in tried],
        "timeline": [event_dict(e, stream.timezone) for e in observe.timeline(session, stream.id)],
        "actions": [
            {"href": f"/ops/bookings/{stream.id}/{a}", "label": _LABELS[a]}
            for a in ACTIONS.get(stream.state, ())
        ],
        "done": None,
        "refused": None,
        "series": series_of(session, stream),
    }


@router.get("/bookings/{stream_id}")
def detail(
    request: Request, stream_id: str, ops: OpsPage, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Everything `livestreams show` shows: the request, the result (key masked), every
    attempt and the status timeline; and the actions its state allows."""
    stream = find(session, stream_id)
    context = detail_context(session, settings, ops, stream, reveal=False)
    context["done"] = _DONE.get(request.query_params.get("done", ""))
    context["refresh"] = REFRESH_SECONDS
    context["now"] = _z(db_now(session))
    return page(request, "detail.html", context)


@router.get("/processes")
def processes(request: Request, ops: OpsPage, session: SessionDep, settings: SettingsDep) -> Any:
    """Every worker process and beat with its lane, its last heartbeat and what it is doing,
    and the dispatcher's last tick; the silent ones marked dead."""
    now = db_now(session)
    found = [
        {**vars(p), "beat_at": _z(p.beat_at), "ago": charts.relative(now, p.beat_at)}
        for p in activity.processes(session, settings, now)
    ]
    context = {
        "title": "Processes",
        "ops": ops,
        "refresh": REFRESH_SECONDS,
        "now": _z(now),
        "processes": found,
        "dead_after": f"{settings.claims.owner_timeout:g} s",
    }
    return page(request, "processes.html", context)


_DONE = {
    "cancel": "Cancelled.",
    "retry": "Retry booked.",
    "reschedule": "Rescheduled.",
    "stop": "Stop requested: the next tracking run stops the livestream.",
}


@router.post("/bookings/{stream_id}/reveal")
def reveal(
    request: Request, stream_id: str, ops: OpsForm, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """The detail page with the stream key in the clear: needs stream-keys:read; logged."""
    stream = find(session, stream_id)
    if not ops.can_reveal:
        context = detail_context(session, settings, ops, stream, reveal=False)
        context["refused"] = (
            f"Revealing a stream key needs the stream-keys:read scope; the API key "
            f"{ops.key.name!r} does not have it."
        )
        return page(request, "detail.html", context, 403)
    log.info(
        "stream key of booking %s revealed on the ops page to API key %r",
        stream.id,
        ops.key.name,
        extra={
            "action": "stream_key_reveal",
            "booking_id": str(stream.id),
            "api_key": ops.key.name,
        },
    )
    return page(request, "detail.html", detail_context(session, settings, ops, stream, reveal=True))
