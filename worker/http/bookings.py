"""/v1/bookings: the same calls as the CLI's schedule, list, show, cancel, reschedule, retry,
stop."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from worker.bookings import booking, listing, observe
from worker.bookings.present import (
    attempt_dict,
    event_dict,
    explain,
    reading_cipher,
    stream_dict,
    stream_key_text,
)
from worker.capacity import forecast
from worker.errors import BookingNotFound
from worker.http import cursor
from worker.http.deps import ReadKey, SessionDep, SettingsDep, StreamKeysKey, WriteKey
from worker.http.problems import declared
from worker.http.schemas import BookingIn, RescheduleIn, RetryIn, Strict

log = logging.getLogger(__name__)
# Every route may answer these; each adds the ones only it can give.
router = APIRouter(prefix="/v1/bookings", tags=["bookings"], responses=declared(401, 403, 422, 503))
ONE = declared(404)
CHANGE = declared(404, 409, 413)
CHANGE_WITH_BODY = declared(400, 404, 409, 413)
MAX_PAGE = 500


@router.post(
    "",
    status_code=201,
    responses={200: {"description": "booked before, same fields"}, **declared(400, 409, 413)},
)
def create(
    body: BookingIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    _key: WriteKey,
    strict: Strict = False,
) -> dict[str, Any]:
    """Book a livestream. The same `ref` again answers 200 with that booking; 409 if it differs.
    `warnings` names each instant the token's budget cannot start on time (with `strict`: 409,
    nothing stored)."""
    fields = body.model_dump(exclude={"ref"}, exclude_none=True)
    result = booking.schedule(session, settings, external_ref=body.ref, **fields)
    warnings = forecast.guard(session, settings, forecast.booked(result), strict=strict)
    data = stream_dict(result.stream)
    if result.created:
        response.headers["Location"] = f"{router.prefix}/{data['id']}"
    else:
        response.status_code = 200
    return {**data, "created": result.created, "warnings": warnings}


@router.get("")
def list_bookings(
    session: SessionDep,
    settings: SettingsDep,
    _key: ReadKey,
    state: Annotated[list[str], Query()] = [],  # noqa: B006  (FastAPI copies the default)
    problem: Annotated[list[str], Query()] = [],  # noqa: B006
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    meeting_id: str | None = None,
    ref: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    after: Annotated[str | None, Query(alias="cursor")] = None,
) -> dict[str, Any]:
    """Bookings by start time, a page at a time: pass `next` back as `cursor`."""
    rows = listing.list_streams(
        session,
        states=state,
        problems=problem,
        meeting_id=meeting_id,
        start=start,
        end=end,
        ref=ref,
        after=None if after is None else cursor.decode(after),
        limit=limit + 1,  # one more tells whether there is a next page
    )
    page = rows[:limit]
    cipher = reading_cipher(settings, reveal=False)
    last = page[-1] if len(rows) > limit else None
    return {
        "items": [stream_dict(s, cipher) for s in page],
        "next": None if last is None else cursor.encode(last.scheduled_at, last.id),
    }


@router.get("/{stream_id}", responses=ONE)
def show(
    stream_id: str, session: SessionDep, settings: SettingsDep, _key: ReadKey
) -> dict[str, Any]:
    """One booking with why it is where it is, every attempt and every status seen (the
    timeline, oldest first); the stream key masked."""
    stream = booking.find(session, stream_id)
    tried = booking.attempts(session, stream)
    data = stream_dict(stream, reading_cipher(settings, reveal=False))
    return {
        **data,
        "why": explain(stream, tried),
        "attempt_log": [attempt_dict(a) for a in tried],
        "timeline": [event_dict(e, stream.timezone) for e in observe.timeline(session, stream.id)],
    }


@router.post("/{stream_id}/cancel", responses=CHANGE)
def cancel(stream_id: str, session: SessionDep, _key: WriteKey) -> dict[str, Any]:
    """Cancel a booking that is scheduled or waiting to retry."""
    return stream_dict(booking.cancel(session, booking.find(session, stream_id)))


@router.post(
    "/{stream_id}/stop",
    status_code=202,
    responses={
        202: {"description": "the stop is requested; a tracking run carries it out"},
        **CHANGE,
    },
)
def stop(stream_id: str, session: SessionDep, _key: WriteKey) -> dict[str, Any]:
    """Ask for a started or live livestream to be stopped now; 409 with the reason otherwise."""
    return stream_dict(booking.stop(session, booking.find(session, stream_id)))


@router.post("/{stream_id}/reschedule", responses=CHANGE_WITH_BODY)
def reschedule(
    stream_id: str, body: RescheduleIn, session: SessionDep, settings: SettingsDep, _key: WriteKey
) -> dict[str, Any]:
    """Move a booking that has not started; a wall time without `tz` is read in its zone. The
    booked length is kept unless `ends_at` or `duration` is given."""
    stream = booking.find(session, stream_id)
    return stream_dict(
        booking.reschedule(session, settings, stream, **body.model_dump(exclude_none=True))
    )


@router.post("/{stream_id}/retry", responses=CHANGE_WITH_BODY)
def retry(
    stream_id: str,
    session: SessionDep,
    settings: SettingsDep,
    _key: WriteKey,
    body: Annotated[RetryIn | None, Body()] = None,
) -> dict[str, Any]:
    """Try a failed or missed booking again, now or at `at`; its history is kept."""
    stream = booking.find(session, stream_id)
    fields = body.model_dump(exclude_none=True) if body else {}
    return stream_dict(booking.retry(session, settings, stream, **fields))


@router.get("/{stream_id}/stream-key", tags=["stream keys"], responses=ONE)
def stream_key(
    stream_id: str, session: SessionDep, settings: SettingsDep, key: StreamKeysKey
) -> dict[str, Any]:
    """The stream key in the clear (scope stream-keys:read); every reveal is logged."""
    stream = booking.find(session, stream_id)
    text = stream_key_text(stream, reading_cipher(settings, reveal=True), reveal=True)
    if text is None:
        raise BookingNotFound(
            "stream_key", f"booking {stream.id} has no stream key ({stream.state})"
        )
    log.info(
        "stream key of booking %s revealed to API key %r",
        stream.id,
        key.name,
        extra={"action": "stream_key_reveal", "booking_id": str(stream.id), "api_key": key.name},
    )
    return {"id": str(stream.id), "stream_key": text}
