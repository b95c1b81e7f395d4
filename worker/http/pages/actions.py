"""The ops page's actions: cancel, retry, reschedule and stop one booking, and bulk cancel and
retry over what a filter selects. Each asks for confirmation first (a GET shows what will
happen; only the POST, with this session's CSRF token, acts) and goes through
worker.bookings.booking exactly as the CLI does; a refusal is shown with its reason and changes
nothing."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from models import ScheduledStream, StreamState
from models.db import db_now
from worker.bookings import booking, listing
from worker.errors import BookingConflict, BookingError, InputError
from worker.http.deps import SessionDep, SettingsDep
from worker.http.pages.auth import Ops, OpsForm, OpsPage
from worker.http.pages.filters import Filter
from worker.http.pages.render import HEADERS, page
from worker.http.pages.views import find, row
from worker.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops", include_in_schema=False)

Action = Literal["cancel", "retry", "reschedule", "stop"]
BulkAction = Literal["cancel", "retry"]
# A bulk action acts on at most this many rows in one request; more asks for a narrower filter.
BULK_MAX = 1000
# The confirm page lists this many of the bookings it will touch, beside their count.
PREVIEW = 50
# The states each bulk action can change: the filter is narrowed to them.
BULK_STATES: dict[str, tuple[str, ...]] = {
    "cancel": (StreamState.SCHEDULED, StreamState.RETRYING),
    "retry": (StreamState.FAILED, StreamState.MISSED),
}
VERBS = {"cancel": "Cancel", "retry": "Retry", "reschedule": "Reschedule", "stop": "Stop now"}


def _confirm(
    request: Request,
    ops: Ops,
    stream: ScheduledStream,
    action: str,
    *,
    error: str | None = None,
    at: str = "",
    tz: str = "",
    status: int = 200,
) -> HTMLResponse:
    context = {
        "title": f"{VERBS[action]} {stream.external_ref or stream.id}",
        "ops": ops,
        "action": action,
        "verb": VERBS[action],
        "booking": row(stream),
        "error": error,
        "at": at,
        "tz": tz,
    }
    return page(request, "confirm.html", context, status)


@router.get("/bookings/{stream_id}/{action}")
def confirm(
    request: Request, stream_id: str, action: Action, ops: OpsPage, session: SessionDep
) -> HTMLResponse:
    return _confirm(request, ops, find(session, stream_id), action)


@router.post("/bookings/{stream_id}/{action}")
def act(
    request: Request,
    stream_id: str,
    action: Action,
    ops: OpsForm,
    session: SessionDep,
    settings: SettingsDep,
    at: Annotated[str, Form()] = "",
    tz: Annotated[str, Form()] = "",
) -> Response:
    stream = find(session, stream_id)
    try:
        with session.begin_nested():
            _apply(session, settings, stream, action, at.strip(), tz.strip())
    except InputError as exc:
        status = 409 if isinstance(exc, BookingConflict) else 422
        reason = f"Refused: {exc.field}: {exc.problem}"
        return _confirm(request, ops, stream, action, error=reason, at=at, tz=tz, status=status)
    log.info(
        "ops page: %s of booking %s by API key %r",
        action,
        stream.id,
        ops.key.name,
        extra={"action": f"ops_{action}", "booking_id": str(stream.id), "api_key": ops.key.name},
    )
    return RedirectResponse(
        f"/ops/bookings/{stream.id}?done={action}", status_code=303, headers=HEADERS
    )


def _apply(
    session: Session, settings: Settings, stream: ScheduledStream, action: str, at: str, tz: str
) -> None:
    """The CLI's call for ``action`` (worker.cli: cancel, retry, reschedule, stop)."""
    if action == "cancel":
        booking.cancel(session, stream)
    elif action == "retry":
        booking.retry(session, settings, stream, at=at or None)
    elif action == "reschedule":
        if not at:
            raise BookingError("at", "give the new start time")
        booking.reschedule(session, settings, stream, at=at, tz=tz or None)
    else:
        booking.stop(session, stream)


def _bulk_filter(request_filter: Filter, action: str) -> Filter | None:
    return request_filter.only(*BULK_STATES[action])


@router.get("/bulk/{action}")
def bulk_confirm(
    request: Request, action: BulkAction, ops: OpsPage, session: SessionDep
) -> HTMLResponse:
    """How many bookings the filter selects that the action can change, and the first
    PREVIEW of them, before it acts."""
    asked = Filter.read(request.query_params)
    narrowed = _bulk_filter(asked, action)
    error, preview = None, []
    try:
        asked.listing()  # the whole filter is checked, also what the action narrows away
        if narrowed is not None:
            count = listing.count_streams(session, **narrowed.listing())
            preview = listing.list_streams(session, limit=PREVIEW, **narrowed.listing())
        else:
            count = 0
    except InputError as exc:
        count, error = 0, f"{exc.field}: {exc.problem}"
    if count > BULK_MAX:
        error = f"{count} bookings: at most {BULK_MAX} at once; narrow the filter"
    now = db_now(session)
    shown = [row(s, now) for s in preview]
    return _bulk_page(request, ops, action, asked, count, error, result=None, preview=shown)


@router.post("/bulk/{action}")
def bulk(
    request: Request,
    action: BulkAction,
    ops: OpsForm,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """Apply the action to each booking the (posted) filter selects, one by one through
    worker.bookings.booking; each refusal is counted with its reason."""
    asked = Filter.read(request.state.ops_form)
    narrowed = _bulk_filter(asked, action)
    error, done, refused = None, 0, Counter[str]()
    try:
        asked.listing()
        rows = (
            []
            if narrowed is None
            else listing.list_streams(session, limit=BULK_MAX + 1, **narrowed.listing())
        )
    except InputError as exc:
        rows, error = [], f"{exc.field}: {exc.problem}"
    if len(rows) > BULK_MAX:
        rows, error = [], f"more than {BULK_MAX} bookings: narrow the filter"
    for stream in rows:
        try:
            with session.begin_nested():
                _apply(session, settings, stream, action, "", "")
        except BookingConflict as exc:
            refused[exc.problem] += 1
        else:
            done += 1
    log.info(
        "ops page: bulk %s of %d booking(s) (%d refused) by API key %r",
        action,
        done,
        sum(refused.values()),
        ops.key.name,
        extra={"action": f"ops_bulk_{action}", "count": done, "api_key": ops.key.name},
    )
    result = {"done": done, "refused": sorted(refused.items())}
    return _bulk_page(request, ops, action, asked, len(rows), error, result=result)


def _bulk_page(
    request: Request,
    ops: Ops,
    action: BulkAction,
    asked: Filter,
    count: int,
    error: str | None,
    *,
    result: dict[str, Any] | None,
    preview: list[dict[str, Any]] | None = None,
) -> HTMLResponse:
    """The bulk page: what the filter selects before the action, or what it did after."""
    context = {
        "title": f"Bulk {action}",
        "ops": ops,
        "action": action,
        "verb": VERBS[action],
        "states": BULK_STATES[action],
        "filter": asked,
        "pairs": asked.pairs(),
        "count": count,
        "error": error,
        "back": "/ops/bookings?" + asked.query(),
        "result": result,
        "preview": preview or [],
        "preview_max": PREVIEW,
    }
    return page(request, "bulk.html", context, 422 if error else 200)
