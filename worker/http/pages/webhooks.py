"""The ops page's outbound webhook endpoints: each one's health and deliveries, and its actions
(replay a delivery, disable, enable), through worker.notify.endpoints exactly as `livestreams
webhooks` and /v1/webhook-endpoints do.

Scope ``webhooks:manage``, as /v1/webhook-endpoints asks (the page's ``ops`` implies it).
An action is one POST with this session's CSRF token; it redirects to the endpoint's page,
which says what was done. Never a secret: see worker.http.pages.webhook_reads.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from models import WebhookEndpoint
from models.db import db_now
from worker.errors import InputError, WebhookEndpointNotFound
from worker.http import cursor
from worker.http.deps import SessionDep
from worker.http.pages import webhook_reads as reads
from worker.http.pages.auth import Ops, OpsForm, OpsPage
from worker.http.pages.render import HEADERS, page
from worker.http.pages.views import NotFoundPage, _z
from worker.notify import endpoints

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ops/webhooks", include_in_schema=False)

PAGE_SIZE = 50
ALERT_AFTER = f"{endpoints.FAILING_ALERT.total_seconds() / 3600:g} h"  # "1 h"
MAX_REASON = 500  # as /v1/webhook-endpoints/{id}/disable takes
_DONE = {
    "replay": "Replay queued: a new delivery of the same event, due now (it is at the top).",
    "disable": "Disabled: nothing is sent to it; its deliveries wait until it is enabled.",
    "enable": "Enabled: waiting deliveries go out first; its failure streak is cleared.",
}


class WebhooksRefused(Exception):
    """The session's API key lacks webhooks:manage: 403, and nothing is done."""

    def __init__(self, ops: Ops) -> None:
        super().__init__(
            f"Webhook endpoints need the webhooks:manage scope; the API key {ops.key.name!r} "
            "does not have it, so nothing was done."
        )


def _manager(ops: OpsPage) -> Ops:
    if not ops.can_manage_webhooks:
        raise WebhooksRefused(ops)
    return ops


def _manager_form(ops: OpsForm) -> Ops:
    return _manager(ops)


Manager = Annotated[Ops, Depends(_manager)]
ManagerForm = Annotated[Ops, Depends(_manager_form)]


def _endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    try:
        return endpoints.get(session, endpoint_id)
    except WebhookEndpointNotFound as exc:
        raise NotFoundPage(exc.problem) from None


@router.get("")
def endpoint_list(request: Request, ops: Manager, session: SessionDep) -> HTMLResponse:
    """Every endpoint with its health, each linking to its deliveries."""
    now = db_now(session)
    context = {
        "title": "Webhook endpoints",
        "ops": ops,
        "now": _z(now),
        "alert_after": ALERT_AFTER,
        "endpoints": reads.endpoint_rows(session, now),
    }
    return page(request, "webhooks.html", context)


@router.get("/{endpoint_id}")
def endpoint_detail(
    request: Request, endpoint_id: str, ops: Manager, session: SessionDep
) -> HTMLResponse:
    """Its health, its actions, and its deliveries newest first, PAGE_SIZE a page (keyset),
    each with every attempt made."""
    return _detail(request, ops, session, _endpoint(session, endpoint_id))


def _detail(
    request: Request,
    ops: Ops,
    session: Session,
    endpoint: WebhookEndpoint,
    refused: str | None = None,
) -> HTMLResponse:
    now = db_now(session)
    error, rows, next_href = refused, [], None
    after = request.query_params.get("cursor")
    try:
        found = reads.delivery_rows(
            session,
            endpoint.id,
            before=cursor.decode(after) if after else None,
            limit=PAGE_SIZE + 1,
        )
    except InputError as exc:
        error = f"{exc.field}: {exc.problem}"
    else:
        rows = found[:PAGE_SIZE]
        if len(found) > PAGE_SIZE:
            last = cursor.encode(*rows[-1]["cursor_key"])
            next_href = f"{reads.href(endpoint.id)}?cursor={last}"
    waiting = reads.waiting(session, [endpoint.id]).get(endpoint.id, {})
    data = reads.endpoint_row(endpoint, now, waiting)
    context = {
        "title": f"Webhook endpoint {endpoint.url}",
        "ops": ops,
        "now": _z(now),
        "endpoint": data,
        "deliveries": rows,
        "error": error,
        "next_href": next_href,
        "first_href": data["href"] if after else None,
        "done": _DONE.get(request.query_params.get("done", "")),
        "max_reason": MAX_REASON,
        "alert_after": ALERT_AFTER,
    }
    return page(request, "webhook.html", context, 422 if error else 200)


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay")
def replay(
    endpoint_id: str, delivery_id: str, ops: ManagerForm, session: SessionDep
) -> RedirectResponse:
    """endpoints.replay: a new delivery of the same event to this endpoint, due now."""
    endpoint = _endpoint(session, endpoint_id)
    try:
        replayed = endpoints.replay(session, delivery_id, endpoint_id=endpoint.id)
    except WebhookEndpointNotFound as exc:
        raise NotFoundPage(exc.problem) from None
    _log(ops, "replay", endpoint, delivery=str(delivery_id), replayed_as=str(replayed.id))
    return _done(endpoint, "replay")


@router.post("/{endpoint_id}/disable")
def disable(
    request: Request,
    endpoint_id: str,
    ops: ManagerForm,
    session: SessionDep,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """endpoints.set_enabled(False), with the reason shown beside it (optional)."""
    endpoint = _endpoint(session, endpoint_id)
    if len(reason) > MAX_REASON:
        refused = f"Refused: reason: at most {MAX_REASON} characters; nothing was changed."
        return _detail(request, ops, session, endpoint, refused)
    endpoints.set_enabled(session, endpoint.id, False, reason.strip() or None)
    _log(ops, "disable", endpoint)
    return _done(endpoint, "disable")


@router.post("/{endpoint_id}/enable")
def enable(endpoint_id: str, ops: ManagerForm, session: SessionDep) -> RedirectResponse:
    endpoint = _endpoint(session, endpoint_id)
    endpoints.set_enabled(session, endpoint.id, True)
    _log(ops, "enable", endpoint)
    return _done(endpoint, "enable")


def _log(ops: Ops, action: str, endpoint: WebhookEndpoint, **extra: str) -> None:
    log.info(
        "ops page: webhook %s of endpoint %s by API key %r",
        action,
        endpoint.id,
        ops.key.name,
        extra={
            "action": f"ops_webhook_{action}",
            "endpoint_id": str(endpoint.id),
            "api_key": ops.key.name,
            **extra,
        },
    )


def _done(endpoint: WebhookEndpoint, action: str) -> RedirectResponse:
    return RedirectResponse(
        f"{reads.href(endpoint.id)}?done={action}", status_code=303, headers=HEADERS
    )
