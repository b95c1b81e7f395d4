"""Webhook endpoints as ops and platforms manage them: add, list, disable, enable, rotate the
secret, read deliveries, replay. The CLI (`livestreams webhooks`) and the HTTP API
(/v1/webhook-endpoints) are thin layers over these functions.

The secret is returned once, by ``add`` and ``rotate_secret``; it is stored encrypted with the
stream-key cipher (worker.crypto) and never shown again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from models import (
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from models.db import db_now
from worker.crypto import StreamKeyCipher
from worker.errors import WebhookEndpointError, WebhookEndpointNotFound
from worker.notify import claims as notify_claims
from worker.notify import outbox, signing, ssrf
from worker.settings import Secret, Settings

E = WebhookEndpoint
D = WebhookDelivery
EVENT_TYPES = tuple(t.value for t in EventType)
ROTATION_GRACE = timedelta(hours=24)  # the old secret still signs this long after a rotation
FAILING_ALERT = timedelta(hours=1)  # `livestreams status` reports endpoints failing longer
MAX_URL = 2000


@dataclass(frozen=True)
class Created:
    endpoint: WebhookEndpoint
    secret: Secret  # shown once


def parse_event_types(values: Iterable[str]) -> list[str]:
    """Event types given one by one or space- or comma-separated; ``*`` for all. Sorted."""
    names = {part for value in values for part in re.split(r"[\s,]+", value) if part}
    if "*" in names:
        return sorted(EVENT_TYPES)
    unknown = sorted(names - set(EVENT_TYPES))
    if unknown:
        raise WebhookEndpointError(
            "event_types", f"unknown {', '.join(unknown)}; one of {', '.join(EVENT_TYPES)}, or *"
        )
    if not names:
        raise WebhookEndpointError("event_types", "give at least one event type, or *")
    return sorted(names)


def add(
    session: Session,
    settings: Settings,
    cipher: StreamKeyCipher,
    *,
    url: str,
    event_types: Iterable[str],
    resolver: ssrf.Resolver = ssrf.resolve,
    owner: uuid.UUID | None = None,
) -> Created:
    """Register an endpoint; its URL must lead to a public address (the SSRF guard).
    ``owner``: the API key registering it (None from the CLI)."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise WebhookEndpointError("url", f"must be at most {MAX_URL} characters")
    types = parse_event_types(event_types)
    ssrf.check(url, allow_private=settings.webhooks.allow_private, resolver=resolver)
    now = db_now(session)
    secret = signing.new_secret()
    endpoint_id = uuid.uuid4()
    session.execute(
        insert(E).values(
            id=endpoint_id, url=url, event_types=" ".join(types),
            secret_ciphertext=cipher.encrypt(secret), enabled=True, created_at=now,
            updated_at=now, failures_in_a_row=0, api_key_id=owner,
        )
    )  # fmt: skip
    return Created(get(session, endpoint_id), secret)


def get(session: Session, endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
    ident = _uuid(endpoint_id, "endpoint")
    found = session.get(E, ident, populate_existing=True)
    if found is None:
        raise WebhookEndpointNotFound("endpoint", f"no webhook endpoint {ident}")
    return found


def list_endpoints(session: Session, *, owner: uuid.UUID | None = None) -> list[WebhookEndpoint]:
    """Every endpoint, or those registered by the API key ``owner``."""
    query = select(E).order_by(E.created_at, E.id)
    if owner is not None:
        query = query.where(E.api_key_id == owner)
    return list(session.scalars(query))


def set_enabled(
    session: Session, endpoint_id: uuid.UUID | str, enabled: bool, reason: str | None = None
) -> WebhookEndpoint:
    """DISABLE_ENDPOINT / ENABLE_ENDPOINT. Its pending deliveries are held while it is
    disabled and go out once it is enabled, oldest first; enabling clears its failure streak."""
    endpoint = get(session, endpoint_id)
    now = db_now(session)
    values: dict[str, object] = {"enabled": enabled, "updated_at": now}
    if enabled:
        values.update(disabled_reason=None, failures_in_a_row=0, failing_since=None)
    else:
        values["disabled_reason"] = reason or "disabled by ops"
    session.execute(update(E).where(E.id == endpoint.id).values(**values))
    if enabled:
        notify_claims.unpark(session, endpoint.id, now)
    else:
        notify_claims.park(session, endpoint.id, now)
    return get(session, endpoint.id)


def rotate_secret(
    session: Session,
    cipher: StreamKeyCipher,
    endpoint_id: uuid.UUID | str,
    grace: timedelta = ROTATION_GRACE,
) -> Created:
    """A new secret; the current one keeps signing (both signatures are sent) for ``grace``."""
    endpoint = get(session, endpoint_id)
    now = db_now(session)
    secret = signing.new_secret()
    session.execute(
        update(E)
        .where(E.id == endpoint.id)
        .values(
            secret_ciphertext=cipher.encrypt(secret),
            previous_secret_ciphertext=E.secret_ciphertext,
            previous_secret_expires_at=now + grace,
            updated_at=now,
        )
    )
    return Created(get(session, endpoint.id), secret)


def deliveries(
    session: Session, endpoint_id: uuid.UUID | str, *, limit: int = 50
) -> list[WebhookDelivery]:
    """The endpoint's newest deliveries first."""
    endpoint = get(session, endpoint_id)
    query = (
        select(D)
        .where(D.endpoint_id == endpoint.id)
        .order_by(D.created_at.desc(), D.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def attempts(session: Session, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number, WebhookAttempt.id)
    )
    return list(session.scalars(query))


def replay(
    session: Session, delivery_id: uuid.UUID | str, *, endpoint_id: uuid.UUID | None = None
) -> WebhookDelivery:
    """A new delivery of the same event to the same endpoint, due now: the same body under the
    same ``webhook-id``, with a fresh retry schedule (held until the endpoint is enabled, if it
    is disabled). The old one keeps its history. ``endpoint_id``: the delivery must be that
    endpoint's."""
    ident = _uuid(delivery_id, "delivery")
    old = session.get(D, ident)
    if old is None or (endpoint_id is not None and old.endpoint_id != endpoint_id):
        raise WebhookEndpointNotFound("delivery", f"no webhook delivery {ident}")
    now = db_now(session)
    row = outbox.delivery(old.event_id, old.endpoint_id, now)
    if not get(session, old.endpoint_id).enabled:
        row["state"] = DeliveryState.HELD.value
    session.execute(insert(D).values(**row))
    found = session.get(D, row["id"])
    assert found is not None
    return found


def event_types(session: Session, event_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The type of each event, by id."""
    query = select(WebhookEvent.id, WebhookEvent.type).where(WebhookEvent.id.in_(event_ids))
    return {ident: type_ for ident, type_ in session.execute(query).tuples()}


def failing(session: Session, now: datetime, longer_than: timedelta = FAILING_ALERT) -> list[E]:
    """Enabled endpoints whose failures began more than ``longer_than`` ago."""
    query = select(E).where(E.enabled.is_(True), E.failing_since < now - longer_than)
    return list(session.scalars(query.order_by(E.failing_since)))


def _uuid(value: uuid.UUID | str, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError:
        raise WebhookEndpointNotFound(field, f"not an id: {value!r}") from None
