"""Signing in to the ops page with an API key that has the ``ops`` scope, and signing out.

The session is a signed cookie (worker.http.pages.signing): HttpOnly, SameSite=Strict, Secure
over https, scoped to /ops. Every request re-reads the API key's row, so revoking the key (or
its expiry) ends its sessions at once; signing out ends that session on the server
(worker.http.ops_sessions), so a copy of the cookie dies with it. The sign-in form has its own
CSRF token, bound to a random cookie, so no other site can sign a browser in under a key of
its choosing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from models import ApiKey
from models.db import db_now
from worker.crypto import key_material
from worker.errors import NotAuthenticated, SecretKeyError
from worker.http import apikeys, ops_sessions
from worker.http.deps import SessionDep, SettingsDep
from worker.http.pages.render import HEADERS, page
from worker.http.pages.signing import Signed, Signer, new_nonce

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops", include_in_schema=False)

COOKIE = "ops_session"
SIGN_IN_COOKIE = "ops_sign_in"
SESSION_LIFETIME = timedelta(hours=12)
HOME = "/ops"


class SignInRequired(Exception):
    """No valid session: the answer is a 303 to the sign-in page, and nothing is done."""

    def __init__(self, wanted: str) -> None:
        super().__init__("sign-in required")
        self.wanted = wanted


class CsrfRefused(Exception):
    """A form without this session's CSRF token: 403, and nothing is done."""


@dataclass(frozen=True)
class Ops:
    """The signed-in ops person: their API key's row, session, and this session's CSRF token."""

    key: ApiKey
    session: Signed
    csrf: str

    @property
    def can_reveal(self) -> bool:
        return apikeys.STREAM_KEYS_READ in apikeys.granted(self.key)

    @property
    def can_manage_webhooks(self) -> bool:
        """What /v1/webhook-endpoints asks for; ``ops`` implies it."""
        return apikeys.WEBHOOKS_MANAGE in apikeys.granted(self.key)


def signer_for(request: Request) -> Signer | None:
    """The process's signer (made on first use), or None without any key material."""
    signer = getattr(request.app.state, "ops_signer", None)
    if signer is None:
        try:
            signer = Signer(key_material(request.app.state.settings))
        except (SecretKeyError, ValueError):
            return None
        request.app.state.ops_signer = signer
    assert isinstance(signer, Signer)
    return signer


def _usable(key: ApiKey | None, now: datetime) -> bool:
    return (
        key is not None
        and key.revoked_at is None
        and (key.expires_at is None or key.expires_at > now)
        and apikeys.OPS in apikeys.granted(key)
    )


def signed_in(request: Request, session: SessionDep) -> Ops:
    """The page's caller, or SignInRequired (a redirect) without a valid session."""
    signer = signer_for(request)
    now = db_now(session)
    signed = signer.read_session(request.cookies.get(COOKIE), now) if signer else None
    key = session.get(ApiKey, signed.key_id) if signed else None
    if (
        signer is None
        or signed is None
        or key is None
        or not _usable(key, now)
        or ops_sessions.ended(session, signed.session_id)
    ):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(wanted if request.method == "GET" else HOME)
    return Ops(key, signed, signer.csrf_token(signed.session_id))


OpsPage = Annotated[Ops, Depends(signed_in)]


async def posted(request: Request, ops: OpsPage) -> Ops:
    """``signed_in``, for a form: its ``csrf`` field must be this session's token."""
    form = await request.form()
    request.state.ops_form = form  # for a sync route that reads more than FastAPI's Form()s
    token = form.get("csrf")
    signer = signer_for(request)
    if signer is None or not signer.csrf_ok(ops.session.session_id, _text(token)):
        raise CsrfRefused
    return ops


OpsForm = Annotated[Ops, Depends(posted)]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def safe_next(wanted: str | None) -> str:
    """Where to go after signing in: a path of this page only (never another site)."""
    if wanted and wanted.startswith("/ops") and not wanted.startswith("/ops/sign-"):
        return wanted
    return HOME


def _sign_in_page(
    request: Request, wanted: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    signer = signer_for(request)
    nonce = request.cookies.get(SIGN_IN_COOKIE) or new_nonce()
    context = {
        "title": "Sign in",
        "next": safe_next(wanted),
        "csrf": signer.sign("sign-in", nonce) if signer else "",
        "error": error
        if signer
        else "Signing in needs LIVESTREAMS_SECRET_KEY on this server (or the key file beside "
        "its SQLite database).",
        "signed_out": request.query_params.get("signed_out") == "1",
    }
    response = page(request, "sign_in.html", context, status)
    _set_cookie(request, response, SIGN_IN_COOKIE, nonce, max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = HOME) -> HTMLResponse:
    return _sign_in_page(request, next)


@router.post("/sign-in")
def sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = HOME,
) -> Response:
    """Check the key and its scope; set the session cookie and go where the person was going."""
    signer = signer_for(request)
    nonce = request.cookies.get(SIGN_IN_COOKIE)
    if signer is None or nonce is None or not signer.verify("sign-in", nonce, csrf):
        raise CsrfRefused
    now = db_now(session)
    try:
        key = apikeys.authenticate(session, api_key.strip(), now)
    except NotAuthenticated as exc:
        log.warning("ops sign-in refused: %s", exc, extra={"action": "ops_sign_in_refused"})
        return _sign_in_page(request, next, f"Not signed in: {exc}.", 401)
    if apikeys.OPS not in apikeys.granted(key):
        log.warning(
            "ops sign-in refused: API key %r lacks the ops scope",
            key.name,
            extra={"action": "ops_sign_in_refused", "api_key": key.name},
        )
        has = ", ".join(sorted(apikeys.granted(key)))
        message = f"Not signed in: the API key {key.name!r} lacks the ops scope (it has {has})."
        return _sign_in_page(request, next, message, 403)
    apikeys.touch(session, key, now)
    expires = now + SESSION_LIFETIME
    if key.expires_at is not None:
        expires = min(expires, key.expires_at)
    log.info(
        "ops sign-in by API key %r",
        key.name,
        extra={"action": "ops_sign_in", "api_key": key.name},
    )
    response = RedirectResponse(safe_next(next), status_code=303, headers=HEADERS)
    max_age = int((expires - now).total_seconds())
    _set_cookie(request, response, COOKIE, signer.session_cookie(key.id, expires), max_age)
    response.delete_cookie(SIGN_IN_COOKIE, path="/ops", httponly=True, samesite="strict")
    return response


@router.post("/sign-out")
def sign_out(ops: OpsForm, session: SessionDep) -> Response:
    """End this session on the server (a copied cookie dies too) and in the browser."""
    signed = ops.session
    ops_sessions.end(session, signed.session_id, signed.key_id, signed.expires_at, db_now(session))
    log.info(
        "ops sign-out by API key %r",
        ops.key.name,
        extra={"action": "ops_sign_out", "api_key": ops.key.name},
    )
    response = RedirectResponse("/ops/sign-in?signed_out=1", status_code=303, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_in_redirect(wanted: str) -> RedirectResponse:
    return RedirectResponse(
        f"/ops/sign-in?next={quote(wanted, safe='')}", status_code=303, headers=HEADERS
    )
