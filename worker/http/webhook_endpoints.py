"""/v1/webhook-endpoints: the same calls as `livestreams webhooks ...`, for the platform.

Scope ``webhooks:manage`` (or ``ops``, which implies it). Registering also needs
``bookings:read``: every event carries a booking's id, ref, meeting and playback URL, which the
key could not read otherwise. A key sees and manages the endpoints it registered; ``ops``
manages every one (worker.http.apikeys.may_manage). Another key's endpoint answers 404, as if it
did not exist. The secret is in the answer of the create and rotate-secret calls only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, Security
from pydantic import Field
from sqlalchemy.orm import Session

from models import ApiKey, WebhookEndpoint
from models.db import db_now
from worker.crypto import cipher_for
from worker.errors import MissingScope, WebhookEndpointNotFound
from worker.http import apikeys
from worker.http.deps import SessionDep, SettingsDep, require_scope
from worker.http.problems import declared
from worker.http.schemas import Body
from worker.notify import endpoints
from worker.notify.present import delivery_dict, endpoint_dict

ManageKey = Annotated[ApiKey, Security(require_scope(apikeys.WEBHOOKS_MANAGE))]
router = APIRouter(
    prefix="/v1/webhook-endpoints", tags=["webhooks"], responses=declared(401, 403, 422, 503)
)
ONE = declared(404)


def managed(session: Session, endpoint_id: str, key: ApiKey) -> WebhookEndpoint:
    """The endpoint, if ``key`` may manage it; 404 otherwise (its existence is not told)."""
    endpoint = endpoints.get(session, endpoint_id)
    if not apikeys.may_manage(key, endpoint.api_key_id):
        raise WebhookEndpointNotFound("endpoint", f"no webhook endpoint {endpoint.id}")
    return endpoint


class EndpointIn(Body):
    """An endpoint to register: an http(s) URL on a public address, and the event types."""

    url: str = Field(max_length=endpoints.MAX_URL)
    event_types: list[str] = Field(default_factory=lambda: ["*"], max_length=20)


class DisableIn(Body):
    reason: str | None = Field(default=None, max_length=500)


class RotateIn(Body):
    grace_hours: float = Field(default=24.0, ge=0, le=24 * 30)


@router.post("", status_code=201, responses=declared(400, 413))
def create(
    body: EndpointIn, response: Response, session: SessionDep, settings: SettingsDep,
    key: ManageKey,
) -> dict[str, Any]:  # fmt: skip
    """Register an endpoint (also needs `bookings:read`). The answer holds its `secret`: shown
    this once."""
    if apikeys.BOOKINGS_READ not in apikeys.granted(key):
        raise MissingScope(apikeys.BOOKINGS_READ)
    cipher = cipher_for(settings, create=True)
    created = endpoints.add(
        session, settings, cipher, url=body.url, event_types=body.event_types, owner=key.id
    )
    data = endpoint_dict(created.endpoint, db_now(session))
    response.headers["Location"] = f"{router.prefix}/{data['id']}"
    return {**data, "secret": created.secret.get()}


@router.get("")
def list_endpoints(session: SessionDep, key: ManageKey) -> list[dict[str, Any]]:
    """The endpoints this key manages with their health: last success, failures in a row."""
    now = db_now(session)
    owner = None if apikeys.OPS in apikeys.granted(key) else key.id
    return [endpoint_dict(e, now) for e in endpoints.list_endpoints(session, owner=owner)]


@router.get("/{endpoint_id}", responses=ONE)
def show(endpoint_id: str, session: SessionDep, key: ManageKey) -> dict[str, Any]:
    return endpoint_dict(managed(session, endpoint_id, key), db_now(session))


@router.post("/{endpoint_id}/disable", responses=declared(400, 404, 413))
def disable(
    endpoint_id: str, session: SessionDep, key: ManageKey, body: DisableIn | None = None
) -> dict[str, Any]:
    """Stop sending; deliveries wait until the endpoint is enabled again."""
    reason = body.reason if body is not None else None
    found = managed(session, endpoint_id, key)
    endpoint = endpoints.set_enabled(session, found.id, False, reason)
    return endpoint_dict(endpoint, db_now(session))


@router.post("/{endpoint_id}/enable", responses=ONE)
def enable(endpoint_id: str, session: SessionDep, key: ManageKey) -> dict[str, Any]:
    """Send again (after a 410 or a disable); waiting deliveries go first."""
    found = managed(session, endpoint_id, key)
    return endpoint_dict(endpoints.set_enabled(session, found.id, True), db_now(session))


@router.post("/{endpoint_id}/rotate-secret", responses=declared(400, 404, 413))
def rotate_secret(
    endpoint_id: str, session: SessionDep, settings: SettingsDep, key: ManageKey,
    body: RotateIn | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A new secret, in this answer only; the old one also signs for `grace_hours`."""
    grace = timedelta(hours=body.grace_hours if body is not None else 24.0)
    found = managed(session, endpoint_id, key)
    created = endpoints.rotate_secret(session, cipher_for(settings), found.id, grace)
    return {**endpoint_dict(created.endpoint, db_now(session)), "secret": created.secret.get()}


@router.get("/{endpoint_id}/deliveries", responses=ONE)
def deliveries(
    endpoint_id: str,
    session: SessionDep,
    key: ManageKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """The newest deliveries first, each with its attempts (status, duration, answer)."""
    found = managed(session, endpoint_id, key)
    rows = endpoints.deliveries(session, found.id, limit=limit)
    types = endpoints.event_types(session, [r.event_id for r in rows])
    return [delivery_dict(r, types[r.event_id], endpoints.attempts(session, r.id)) for r in rows]


@router.post("/{endpoint_id}/deliveries/{delivery_id}/replay", status_code=202, responses=ONE)
def replay(
    endpoint_id: str, delivery_id: str, session: SessionDep, key: ManageKey
) -> dict[str, Any]:
    """Send the delivery's event again: same `webhook-id`, same body, a new delivery."""
    endpoint = managed(session, endpoint_id, key)
    row = endpoints.replay(session, delivery_id, endpoint_id=endpoint.id)
    return delivery_dict(row, endpoints.event_types(session, [row.event_id])[row.event_id])
