"""The ops page's read-only views: the overview, the list, a booking's detail (and the reveal
of its stream key, which is a POST: it is logged, and no prefetch may trigger it)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from models import Problem, ScheduledStream, StreamState
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


def row(stream: ScheduledStream) -> dict[str, Any]:
    """A booking as a list row: the JSON API's fields plus its page."""
    return {**stream_dict(stream), "href": f"/ops/bookings/{stream.id}"}


@router.get("")
def overview(request: Request, ops: OpsPage, session: SessionDep, settings: SettingsDep) -> Any:
    """Counts per state, what needs a look (each linking to its list), the next 24 hours."""
    health = check(session, settings)
    data = health.as_dict()
    upcoming = Filter(start=_z(health.now), end=_z(health.now + UPCOMING))
    rows = listing.list_streams(session, limit=PAGE_SIZE + 1, **upcoming.listing())
    age = data["last_tick_age_seconds"]
    overdue = data["oldest_overdue"]
    attention = [
        _item("failed", health.counts["failed"], Filter(states=("failed",))),
        _item("missed", health.counts["missed"], Filter(states=("missed",))),
        *(
            _item(f"problem: {p.value}", health.problem_counts[p.value], Filter(problems=(p,)))
            for p in Problem
        ),
        _item("stuck in starting past the lease", health.stuck, Filter(states=("starting",))),
        _item(
            "starting past the start deadline",
            health.starting_past_deadline,
            Filter(states=("starting",)),
        ),
    ]
    context = {
        "title": "Overview",
        "ops": ops,
        "refresh": REFRESH_SECONDS,
        "now": _z(health.now),
        "healthy": health.healthy,
        "health_problems": health.problems,
        "counts": [
            {"state": s, "count": n, "href": "/ops/bookings?" + Filter(states=(s,)).query()}
            for s, n in health.counts.items()
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
        "upcoming": [row(s) for s in rows[:PAGE_SIZE]],
        "upcoming_more": len(rows) > PAGE_SIZE,
        "upcoming_href": "/ops/bookings?" + upcoming.query(),
    }
    return page(request, "overview.html", context)


def _item(label: str, count: int, where: Filter) -> dict[str, Any]:
    return {"label": label, "count": count, "href": "/ops/bookings?" + where.query()}


def _z(value: Any) -> str:
    return str(value.replace(microsecond=0).isoformat().replace("+00:00", "Z"))


@router.get("/bookings")
def bookings(request: Request, ops: OpsPage, session: SessionDep) -> Any:
    """The list: filters, a page of PAGE_SIZE, and a link to the next page (keyset)."""
    shown = Filter.read(request.query_params)
    error, rows, next_href = None, [], None
    try:
        after = request.query_params.get("cursor")
        found = listing.list_streams(
            session,
            after=cursor.decode(after) if after else None,
            limit=PAGE_SIZE + 1,
            **shown.listing(),
        )
    except InputError as exc:
        error = f"{exc.field}: {exc.problem}"
    else:
        rows = [row(s) for s in found[:PAGE_SIZE]]
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
    return page(request, "detail.html", context)


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
