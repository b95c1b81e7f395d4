"""Rendering a page: the Jinja2 templates beside this module, and the headers every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
# autoescape everywhere: every value on a page came from a caller (names, refs, errors).
# StrictUndefined: a misspelt name fails the test that renders it, not silently blank.
_env = Environment(
    loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
)
templates = Jinja2Templates(env=_env)

# No caching (pages show live state and a CSRF token), no framing (clickjacking a confirm
# button), and scripts and styles from this origin only.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
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
