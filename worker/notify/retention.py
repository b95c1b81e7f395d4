"""How long the webhook logs are kept: the outbound one (events, their deliveries and
attempts) and the inbound one (a row per provider webhook received, kept to apply each once).

Every state change that an endpoint wants writes an event, a delivery per endpoint and an
attempt per POST; left alone, the tables grow with the product's whole history. An event is
pruned once it is older than LIVESTREAMS_WEBHOOK_RETENTION_DAYS (30 by default; 0 keeps
everything) and none of its deliveries is still to go out (pending, or held for a disabled
endpoint): what a platform has not yet been told is never pruned, however old. A received
provider webhook is pruned after the same number of days (the provider retries a delivery
for hours, not weeks, so its dedupe key is long spent). Beat runs
``livestreams.prune_webhooks`` hourly; each run deletes in batches, oldest first, so one run
stays short and a large backlog is worked off over several.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session, sessionmaker

from models import (
    WAITING_STATES,
    ProviderWebhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)
from models.db import db_now

D = WebhookDelivery
BATCH = 1000  # events per transaction
BATCHES = 20  # per run: a run deletes at most 20,000 events


def prunable(session: Session, before: datetime, limit: int) -> list[uuid.UUID]:
    """The oldest events made before ``before`` with nothing left to deliver (index on
    created_at; the NOT EXISTS reads the deliveries by event)."""
    waiting = exists().where(D.event_id == WebhookEvent.id, D.state.in_(WAITING_STATES))
    query = (
        select(WebhookEvent.id)
        .where(WebhookEvent.created_at < before, ~waiting)
        .order_by(WebhookEvent.created_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def prune_batch(session: Session, before: datetime, limit: int = BATCH) -> int:
    """PRUNE_WEBHOOK_LOG: delete up to ``limit`` such events with their deliveries and
    attempts, children first (foreign keys). Returns the events deleted."""
    ids = prunable(session, before, limit)
    if not ids:
        return 0
    deliveries = select(D.id).where(D.event_id.in_(ids))
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(delete(D).where(D.event_id.in_(ids)))
    session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))
    return len(ids)


def prune_received_batch(session: Session, before: datetime, limit: int = BATCH) -> int:
    """PRUNE_RECEIVED_WEBHOOKS: delete up to ``limit`` provider webhooks received before
    ``before``, oldest first (index on received_at). Returns the rows deleted."""
    W = ProviderWebhook
    oldest = select(W.delivery_id).where(W.received_at < before).order_by(W.received_at)
    ids = list(session.scalars(oldest.limit(limit)))
    if ids:
        session.execute(delete(W).where(W.delivery_id.in_(ids)))
    return len(ids)


def prune(factory: sessionmaker[Session], days: int, *, batches: int = BATCHES) -> int:
    """Prune both logs of what is older than ``days`` (by the database's clock), a batch per
    transaction, at most ``batches`` of each. Returns the rows deleted (events and received
    webhooks); 0 days prunes nothing."""
    if days <= 0:
        return 0
    deleted = 0
    for step in (prune_batch, prune_received_batch):
        for _ in range(batches):
            with factory.begin() as session:
                done = step(session, db_now(session) - timedelta(days=days), BATCH)
            deleted += done
            if done < BATCH:
                break
    return deleted
