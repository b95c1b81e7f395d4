"""Rendering a page: the Jinja2 templates beside this module, and the headers every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).resolve().parent
# autoescape everywhere: every value on a page came from a caller (names, refs, errors).
# StrictUndefined: a misspelt name fails the test that renders it, not silently blank.
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
)
templates = Jinja2Templates(env=_env)

# No caching (pages show live state and a CSRF token), no framing (clickjacking a confirm
# button), scripts from this origin only (static/ops.js: no inline script, no handler
# attribute, no eval, so an injected one cannot run with an ops person's cookie), which
# fetches only this origin; styles and images from this origin only.
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    """The template ``name`` with ``context``; templates get ready-made values only."""
    context.setdefault("ops", None)
    context.setdefault("title", "")
    response = templates.TemplateResponse(
        request, name, context, status_code=status, headers=HEADERS
    )
    assert isinstance(response, HTMLResponse)
    return response


class OpsHeaders:
    """Every answer under /ops gets the page headers' CSP, framing and sniffing rules, its
    static files and any answer not made by :func:`page` included (a plain ASGI wrapper: no
    per-request task, unlike Starlette's BaseHTTPMiddleware)."""

    _ADDED = [
        (name.lower().encode(), value.encode())
        for name, value in HEADERS.items()
        if name != "Cache-Control"  # the static stylesheet may be cached
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ops"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [(n, v) for n, v in self._ADDED if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, with_headers)
