"""/v1/series and /v1/capacity: the same calls as `livestreams series ...` and `livestreams
capacity`, with the scopes of bookings (bookings:read to read, bookings:write to change)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from models.db import db_now
from worker.bookings.timeparse import parse_instant
from worker.capacity import forecast
from worker.capacity.present import report_dict
from worker.http.deps import ReadKey, SessionDep, SettingsDep, WriteKey
from worker.http.problems import declared
from worker.http.schemas import Body, Duration, Strict
from worker.series import flow, present

router = APIRouter(prefix="/v1/series", tags=["series"], responses=declared(401, 403, 422, 503))
capacity_router = APIRouter(tags=["capacity"], responses=declared(401, 403, 422, 503))
ONE = declared(404, when={404: "no such series"})
CONFLICT = (
    "the series is cancelled, or the ref is a series with other fields, or `strict` and the "
    "token's budget cannot start its occurrences on time (nothing stored)"
)
CHANGE = declared(400, 404, 409, 413, when={404: "no such series", 409: CONFLICT})


class SeriesIn(Body):
    """What `livestreams series add` takes; the same `ref` again answers 200."""

    ref: str
    meeting_id: str
    rule: str
    at: str
    tz: str
    duration: Duration
    first: str | None = None
    name: str | None = None
    width: int | None = None
    height: int | None = None
    account_id: str | None = None
    app_id: str | None = None
    start_window: float | None = None
    exdates: list[str] | None = None


class SeriesEditIn(Body):
    """What may change; untouched, unstarted occurrences follow."""

    rule: str | None = None
    at: str | None = None
    tz: str | None = None
    duration: Duration = None
    name: str | None = None
    width: int | None = None
    height: int | None = None
    start_window: float | None = None
    exdates: list[str] | None = None


class SeriesOut(BaseModel):
    id: str
    ref: str
    state: str
    meeting_id: str
    account_id: str
    app_id: str
    name: str | None
    video_width: int | None
    video_height: int | None
    rule: str
    exdates: list[str]
    first_date: str
    wall_time: str
    timezone: str
    duration_seconds: float
    start_window: float
    made_until: str | None
    created_at: str | None
    updated_at: str | None


class OccurrenceOut(BaseModel):
    id: str
    ref: str | None
    date: str | None
    scheduled_at: str | None
    scheduled_at_local: str
    state: str
    detached: bool


class ClockChangeOut(BaseModel):
    date: str
    scheduled_at: str | None
    scheduled_at_local: str
    timing: str


class SeriesDetailOut(SeriesOut):
    wall_time_rule: str
    clock_changes: list[ClockChangeOut]
    occurrences: list[OccurrenceOut]


class SeriesChangeOut(SeriesOut):
    created: bool = False
    made: int = 0
    moved: int = 0
    cancelled: int = 0
    warnings: list[str] = []


class SeriesPage(BaseModel):
    items: list[SeriesOut]


@router.post(
    "",
    status_code=201,
    operation_id="create_series",
    response_model=SeriesChangeOut,
    responses={200: {"description": "added before, same fields"}, **CHANGE},
)
def create_series(
    body: SeriesIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _key: WriteKey,
    strict: Strict = False,
) -> SeriesChangeOut:
    """Add a series and book its occurrences up to the horizon; `warnings` names each
    instant the token's budget cannot start on time."""
    made = flow.add(session, settings, strict=strict, **body.model_dump(exclude_none=True))
    data = present.series_dict(made.series)
    if made.created:
        response.headers["Location"] = f"{router.prefix}/{data['id']}"
    else:
        response.status_code = 200
    return SeriesChangeOut(
        **data, created=made.created, made=len(made.made), warnings=made.warnings
    )


@router.get("", operation_id="list_series", response_model=SeriesPage)
def list_series(
    session: SessionDep,
    _key: ReadKey,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SeriesPage:
    """Series by ref."""
    rows = flow.listing(session, state=state, limit=limit)
    return SeriesPage(items=[SeriesOut(**present.series_dict(s)) for s in rows])


@router.get(
    "/{series_id}", operation_id="get_series", response_model=SeriesDetailOut, responses=ONE
)
def get_series(series_id: str, session: SessionDep, _key: ReadKey) -> SeriesDetailOut:
    """A series, its occurrences, and the dates a clock change moves its wall time on."""
    found = flow.find(session, series_id)
    data = present.full_dict(
        found, flow.occurrences_of(session, found), flow.timing_notes(found, db_now(session))
    )
    return SeriesDetailOut(**data)


@router.post(
    "/{series_id}/edit",
    operation_id="edit_series",
    response_model=SeriesChangeOut,
    responses=CHANGE,
)
def edit_series(
    series_id: str,
    body: SeriesEditIn,
    session: SessionDep,
    settings: SettingsDep,
    _key: WriteKey,
    strict: Strict = False,
) -> SeriesChangeOut:
    """Change a series; its future occurrences that nobody changed and that have not begun
    follow."""
    found = flow.find(session, series_id)
    made = flow.edit(session, settings, found, strict=strict, **body.model_dump(exclude_none=True))
    return SeriesChangeOut(
        **present.series_dict(made.series),
        made=len(made.made), moved=made.moved, cancelled=made.cancelled,
        warnings=made.warnings,
    )  # fmt: skip


@router.post(
    "/{series_id}/cancel",
    operation_id="cancel_series",
    response_model=SeriesChangeOut,
    responses=declared(404, 409, 413, when={404: "no such series", 409: "already cancelled"}),
)
def cancel_series(series_id: str, session: SessionDep, _key: WriteKey) -> SeriesChangeOut:
    """Cancel a series and its future occurrences that nobody changed and that have not
    begun."""
    made = flow.cancel(session, flow.find(session, series_id))
    return SeriesChangeOut(**present.series_dict(made.series), cancelled=made.cancelled)


class CapacityInstantOut(BaseModel):
    at: str
    due: int
    on_time: int
    late: int
    missed: int
    latest_seconds: float
    start_window: float
    message: str


class CapacityWindowOut(BaseModel):
    start: str
    end: str
    starts: int
    calls: float
    budget: int
    late: int
    missed: int
    at_risk: bool
    instants: list[CapacityInstantOut]


class CapacityOut(BaseModel):
    start: str = Field(alias="from")
    end: str = Field(alias="to")
    budget: dict[str, float]
    per_start: dict[str, float]
    windows: list[CapacityWindowOut]


@capacity_router.get("/v1/capacity", operation_id="get_capacity", response_model=CapacityOut)
def get_capacity(
    session: SessionDep,
    settings: SettingsDep,
    _key: ReadKey,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
) -> CapacityOut:
    """Starts due per rate window against the token's budget, the windows at risk first."""
    since = None if start is None else parse_instant(start, None, "from")[0]
    until = None if end is None else parse_instant(end, None, "to")[0]
    return CapacityOut.model_validate(report_dict(forecast.report(session, settings, since, until)))
