"""The outbound webhook log is pruned past its retention, never what is still to go out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from models import ProviderWebhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from models.db import db_now, get_sessionmaker
from tests.conftest import tuned
from worker.bookings import booking
from worker.crypto import cipher_for
from worker.notify import endpoints, retention


@pytest.fixture
def factory(settings):
    return get_sessionmaker(settings.database_url)


def event_with_deliveries(factory, settings, book, age_days: float, *states: str):
    """A cancel's event, made ``age_days`` ago, with one delivery per endpoint in ``states``
    (each with one attempt)."""
    stream = book()
    with factory.begin() as s:
        booking.cancel(s, booking.find(s, stream.id))
        (event,) = s.scalars(select(WebhookEvent).where(WebhookEvent.stream_id == stream.id))
        made = event.created_at - timedelta(days=age_days)
        s.execute(update(WebhookEvent).where(WebhookEvent.id == event.id).values(created_at=made))
        delivered = list(
            s.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event.id))
        )
        for delivery, state in zip(delivered, states, strict=True):
            delivery.state = state
            s.add(WebhookAttempt(delivery_id=delivery.id, number=1, sent_at=made, status=500))
        return event.id


def counts(factory) -> tuple[int, int, int]:
    with factory() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t)) or 0
            for t in (WebhookEvent, WebhookDelivery, WebhookAttempt)
        )  # type: ignore[return-value]


def test_old_finished_events_go_with_their_deliveries_and_attempts_and_the_rest_stay(
    factory, settings, book, monkeypatch
) -> None:
    settings = tuned(settings, webhooks={"allow_private": True})
    cipher = cipher_for(settings)
    with factory.begin() as s:
        for port in (9, 10):
            endpoints.add(s, settings, cipher, url=f"http://127.0.0.1:{port}/", event_types=["*"])
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches in one run
    gone = [
        event_with_deliveries(factory, settings, book, 31, "delivered", "delivered"),
        event_with_deliveries(factory, settings, book, 40, "delivered", "failed"),
        event_with_deliveries(factory, settings, book, 90, "failed", "failed"),
    ]
    kept = [
        event_with_deliveries(factory, settings, book, 31, "delivered", "pending"),
        event_with_deliveries(factory, settings, book, 400, "held", "failed"),
        event_with_deliveries(factory, settings, book, 29, "delivered", "delivered"),
    ]
    assert counts(factory) == (6, 12, 12)
    assert retention.prune(factory, 0) == 0  # 0 days: kept forever
    assert retention.prune(factory, 30, batches=1) == 2  # a batch per transaction
    assert retention.prune(factory, 30) == len(gone) - 2
    with factory() as s:
        left = set(s.scalars(select(WebhookEvent.id)))
    assert left == set(kept) and counts(factory) == (3, 6, 6)
    assert retention.prune(factory, 30) == 0


def test_received_provider_webhooks_go_after_the_same_days(factory, monkeypatch) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    with factory.begin() as s:
        now = db_now(s)
        for n, age in enumerate((31, 45, 400, 29, 0)):
            received = now - timedelta(days=age)
            s.add(ProviderWebhook(delivery_id=f"rtk-{n}", event="livestreaming.statusUpdate",
                                  received_at=received, result="applied"))  # fmt: skip
    assert retention.prune(factory, 30) == 3
    with factory() as s:
        assert sorted(s.scalars(select(ProviderWebhook.delivery_id))) == ["rtk-3", "rtk-4"]
