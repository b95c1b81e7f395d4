"""The ops page's series and capacity views: every series, one series with its occurrences
(each a link to its booking), and the starts due per rate window, the windows at risk first.
Read-only: series are changed with `livestreams series` or /v1/series."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from models.db import db_now
from worker.bookings.timeparse import parse_instant
from worker.capacity import forecast
from worker.capacity.present import report_dict
from worker.errors import InputError
from worker.http.deps import SessionDep, SettingsDep
from worker.http.pages.auth import OpsPage
from worker.http.pages.render import page
from worker.http.pages.views import NotFoundPage
from worker.series import flow, present

router = APIRouter(prefix="/ops", include_in_schema=False)


@router.get("/series")
def series_list(request: Request, ops: OpsPage, session: SessionDep) -> HTMLResponse:
    rows = [
        {**present.series_dict(s), "href": f"/ops/series/{s.id}"}
        for s in flow.listing(session, limit=500)
    ]
    return page(request, "series_list.html", {"title": "Series", "ops": ops, "rows": rows})


@router.get("/series/{series_id}")
def series_detail(
    request: Request, series_id: str, ops: OpsPage, session: SessionDep
) -> HTMLResponse:
    """What `livestreams series show` shows; each occurrence links to its booking."""
    try:
        found = flow.find(session, series_id)
    except InputError as exc:
        raise NotFoundPage(exc.problem) from None
    data = present.full_dict(
        found, flow.occurrences_of(session, found), flow.timing_notes(found, db_now(session))
    )
    for occurrence in data["occurrences"]:
        occurrence["href"] = f"/ops/bookings/{occurrence['id']}"
    context = {"title": f"Series {found.ref}", "ops": ops, "series": data}
    return page(request, "series.html", context)


@router.get("/capacity")
def capacity(
    request: Request, ops: OpsPage, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Starts per rate window against the token's budget, at risk first: from `from` (default
    now) to `to` (default a day later), read like `livestreams capacity --from --to`."""
    given = {k: request.query_params.get(k) or None for k in ("from", "to")}
    context: dict[str, Any] = {"title": "Capacity", "ops": ops, "given": given, "error": None}
    try:
        since, until = (
            None if v is None else parse_instant(v, None, k)[0] for k, v in given.items()
        )
    except InputError as exc:
        context["error"] = f"{exc.field}: {exc.problem}"
        since = until = None
    context["report"] = report_dict(forecast.report(session, settings, since, until))
    return page(request, "capacity.html", context, 422 if context["error"] else 200)
