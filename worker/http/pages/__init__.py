"""The ops web page under /ops: server-rendered (Jinja2), no front-end build step.

auth      sign-in with an ops API key, the session cookie, CSRF on every form
views     overview, list with filters, a booking's detail (and a stream key's reveal),
          processes
charts    the overview's charts and the list's times, decided without the database
activity  what the charts and the processes read
actions   cancel, retry, reschedule, stop; bulk cancel and retry; each confirmed first
webhooks  outbound webhook endpoints: health, deliveries and attempts; replay, disable, enable
webhook_reads  what those pages read (never a secret)
series    every series, one with its occurrences, and the capacity forecast (read-only)
filters   the list's filter, to and from query strings
signing   the cookie's and tokens' HMACs
render    templates/ and the headers of every page
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from worker.bookings import plaintext
from worker.http import problems
from worker.http.pages import actions, auth, series, views, webhooks
from worker.http.pages.render import HERE, page


async def _sign_in(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, auth.SignInRequired)
    return auth.sign_in_redirect(exc.wanted)


async def _csrf(request: Request, exc: Exception) -> HTMLResponse:
    message = (
        "This form did not come from this page (its CSRF token is missing or wrong), so nothing "
        "was done. Go back, reload the page and try again."
    )
    return page(request, "error.html", {"title": "Refused", "message": message}, 403)


async def _not_found(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, views.NotFoundPage)
    return page(request, "error.html", {"title": "Not found", "message": exc.message}, 404)


async def _webhooks_refused(request: Request, exc: Exception) -> HTMLResponse:
    return page(request, "error.html", {"title": "Refused", "message": str(exc)}, 403)


async def _control_characters(request: Request, exc: Exception) -> Response:
    # The API answers a problem naming the field; a page answers a page that says the same.
    assert isinstance(exc, plaintext.ControlCharacters)
    if not request.url.path.startswith("/ops"):
        return problems.problem(422, str(exc), [{"field": exc.field, "message": exc.problem}])
    message = f"Refused: {exc.field}: {exc.problem}; nothing was changed."
    return page(request, "error.html", {"title": "Refused", "message": message}, 422)


_fallback = APIRouter(include_in_schema=False)


@_fallback.get("/favicon.ico")
def favicon() -> FileResponse:
    """Browsers ask for it at the root whatever the page says; the same picture as the page's
    own icon link."""
    return FileResponse(
        HERE / "static" / "favicon.svg",
        media_type="image/svg+xml",
        headers={"Cache-Control": "max-age=86400"},
    )


@_fallback.api_route("/ops/{rest:path}", methods=["GET", "HEAD"])
def no_such_page(request: Request, rest: str) -> HTMLResponse:
    """Any other path under /ops: a page that says so, not the API's problem JSON."""
    message = f"There is no page at {request.url.path}."
    return page(request, "error.html", {"title": "Not found", "message": message}, 404)


def install(app: FastAPI) -> None:
    """Add the ops page's routes, its static files and its four answers without a page (sign
    in first, a forged form, no such booking or endpoint, no webhooks:manage) to ``app``."""
    app.add_exception_handler(auth.SignInRequired, _sign_in)
    app.add_exception_handler(plaintext.ControlCharacters, _control_characters)
    app.add_exception_handler(auth.CsrfRefused, _csrf)
    app.add_exception_handler(views.NotFoundPage, _not_found)
    app.add_exception_handler(webhooks.WebhooksRefused, _webhooks_refused)
    app.mount("/ops/static", StaticFiles(directory=HERE / "static"), name="ops-static")
    app.include_router(auth.router)
    app.include_router(views.router)
    app.include_router(actions.router)
    app.include_router(webhooks.router)
    app.include_router(series.router)
    app.include_router(_fallback)  # last: every route above comes first
