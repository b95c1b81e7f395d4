"""The one mapping from errors to RFC 9457 `application/problem+json` answers.

    {"type", "title", "status", "detail", "errors": [{"field", "message"}]}

Messages come from the product's errors, which never carry a key (worker.errors); database
errors are answered without their text, which may name the database URL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from worker.errors import (
    ApiKeyNotFound,
    AuthError,
    BadDelivery,
    BookingConflict,
    BookingNotFound,
    InputError,
    LivestreamsError,
    MissingScope,
    WebhookEndpointNotFound,
    WebhookError,
    WebhookKeyUnavailable,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
SIGNATURE_CHALLENGE = 'RTK-Signature header="rtk-signature"'
MAX_BODY = 16 * 1024
FASTAPI_BODY_ERROR = "There was an error parsing the body"  # fastapi.routing, any body error

# The domain's field names where the HTTP body spells them otherwise (BookingIn).
HTTP_FIELDS = {
    "external_ref": "ref",
    "scheduled_at": "at",
    "timezone": "tz",
    "video_width": "width",
    "video_height": "height",
}


# The body of every problem answer, for the OpenAPI document (`declared`).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "errors"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
WHEN = {
    400: "the body cannot be read as JSON text (not UTF-8)",
    401: "no API key, or not a valid one",
    403: "the API key lacks the scope",
    404: "no such booking",
    409: "disagrees with the booking as stored (its state, or another booking under the ref)",
    413: f"the request body exceeds {MAX_BODY} bytes",
    422: "the request is invalid: `errors` names each field",
    503: "the database is unavailable; try again",
}


def declared(
    *statuses: int, when: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` for problem answers with these statuses, so that the OpenAPI
    document declares them (and replaces FastAPI's own 422, which this app never answers);
    ``when`` describes a status where the route means something else by it than WHEN."""
    content = {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}
    described = {**WHEN, **(when or {})}
    return {status: {"description": described[status], "content": content} for status in statuses}


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    title = HTTPStatus(status).phrase
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    body["errors"] = errors or []
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _field(name: str) -> str:
    return HTTP_FIELDS.get(name, name)


def _input_error(exc: InputError) -> JSONResponse:
    status = 422
    if isinstance(exc, BookingNotFound | ApiKeyNotFound | WebhookEndpointNotFound):
        status = 404
    elif isinstance(exc, BookingConflict):
        status = 409
    fields = getattr(exc, "fields", ())
    if fields:  # a booking under the same ref: name each field that differs from it
        errors = [
            {"field": _field(f), "message": "differs from the booking stored under this ref"}
            for f in fields
        ]
    else:
        errors = [{"field": _field(exc.field), "message": exc.problem}]
    return problem(status, f"{_field(exc.field)}: {exc.problem}", errors)


def _auth_error(exc: AuthError) -> JSONResponse:
    # RFC 6750 section 3: 401 names the scheme; 403 says which scope was missing.
    if isinstance(exc, MissingScope):
        challenge = f'Bearer error="insufficient_scope", scope="{exc.scope}"'
        return problem(403, str(exc), headers={"WWW-Authenticate": challenge})
    return problem(401, str(exc), headers={"WWW-Authenticate": "Bearer"})


def _webhook_error(exc: WebhookError) -> JSONResponse:
    # The provider retries a 5xx, never a 4xx: only "cannot tell now" is a 503.
    if isinstance(exc, WebhookKeyUnavailable):
        return problem(503, "the provider's signing key is unavailable; try again")
    if isinstance(exc, BadDelivery):
        return problem(400, str(exc), [{"field": exc.field, "message": exc.problem}])
    # RFC 9110 section 11.6.1: a 401 names how to authenticate; here, by signature.
    return problem(401, str(exc), headers={"WWW-Authenticate": SIGNATURE_CHALLENGE})


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, InputError):
        return _input_error(exc)
    if isinstance(exc, AuthError):
        return _auth_error(exc)
    if isinstance(exc, WebhookError):
        return _webhook_error(exc)
    log.error("request failed: %s", exc, extra={"action": "http_error", "path": request.url.path})
    return problem(500, str(exc))


async def _database(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "database error answering %s: %s",
        request.url.path,
        type(exc).__name__,
        extra={"action": "http_database_error"},
    )
    return problem(503, "the database is unavailable; try again")


def not_json(error: Mapping[str, Any]) -> dict[str, str]:
    """FastAPI's ``json_invalid`` error (its ``loc`` is ("body", character offset)) as a
    problem's error naming the body and saying where it stops being JSON. Pure."""
    loc = list(error.get("loc", ()))
    at = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    why = str((error.get("ctx") or {}).get("error", "")) or "invalid"
    where = f" at character {at}" if at is not None else ""
    return {"field": "body", "message": f"is not JSON{where}: {why}"}


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            errors.append(not_json(error))
            continue
        loc = [str(part) for part in error.get("loc", ())]
        field = ".".join(loc[1:]) if len(loc) > 1 else (loc[0] if loc else "body")
        errors.append({"field": _field(field), "message": str(error.get("msg", "invalid"))})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    return problem(422, detail, errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == FASTAPI_BODY_ERROR:
        # FastAPI's answer to a body it cannot decode (not UTF-8): say which byte.
        try:
            (await request.body()).decode()
        except UnicodeDecodeError as bad:
            message = f"is not JSON: not UTF-8 text at byte {bad.start}"
            return problem(400, f"body: {message}", [{"field": "body", "message": message}])
    return problem(exc.status_code, str(exc.detail), headers=exc.headers)


def install(app: FastAPI) -> None:
    """Register the handlers: every error the app answers goes through this module."""
    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[JSONResponse]]] = {
        LivestreamsError: _domain,
        SQLAlchemyError: _database,
        RequestValidationError: _validation,
        HTTPException: _http,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before any route reads them.

    Checks Content-Length, and counts the bytes of bodies sent without one (chunked).
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        too_big = problem(413, f"the request body exceeds {self.limit} bytes")
        if not declared.isdigit() or int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await too_big(scope, receive, send)
                return
            more = message.get("more_body", False)
        replay: list[MutableMapping[str, Any]] = [
            {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        ]

        async def replayed() -> MutableMapping[str, Any]:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)
