"""Outbound webhook endpoints, deliveries and attempts as the sender leaves them, written
straight to the database for a test of the ops page (no worker sends anything)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from models.db import db_now, get_sessionmaker
from tests.conftest import tuned
from worker.bookings import booking
from worker.crypto import cipher_for
from worker.notify import endpoints
from worker.settings import Settings

URL = "https://platform.example/hooks/livestreams"
# What the platform answered each failed attempt: markup, to show that the page escapes it.
EXCERPT = '<html><script>alert("x")</script>upstream down</html>'


def register(settings: Settings, url: str = URL, types: tuple[str, ...] = ("*",)):
    """An endpoint, as `livestreams webhooks add` makes it; its id and secret (in the clear)."""
    open_settings = tuned(settings, webhooks={"allow_private": True})
    with get_sessionmaker(settings.database_url).begin() as s:
        created = endpoints.add(
            s, open_settings, cipher_for(settings, create=True), url=url, event_types=types
        )
        return created.endpoint.id, created.secret.get()


def cancel(settings: Settings, stream_id: uuid.UUID) -> list[WebhookDelivery]:
    """Cancel the booking: its booking.cancelled event, one delivery per endpoint."""
    with get_sessionmaker(settings.database_url).begin() as s:
        booking.cancel(s, booking.find(s, str(stream_id)))
    return deliveries(settings.database_url)


def deliveries(url: str) -> list[WebhookDelivery]:
    with get_sessionmaker(url)() as s:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at, WebhookDelivery.id)
        return list(s.scalars(query))


def endpoint(url: str, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    with get_sessionmaker(url)() as s:
        found = s.get(WebhookEndpoint, endpoint_id)
        assert found is not None
        return found


def fail(
    url: str,
    delivery: WebhookDelivery,
    statuses: list[int | None],
    *,
    failing_for: timedelta = timedelta(hours=3),
    last_success: timedelta | None = timedelta(days=2),
) -> None:
    """``len(statuses)`` failed attempts of ``delivery`` (None: no answer, a timeout), and its
    endpoint failing since ``failing_for`` ago, its last success ``last_success`` ago."""
    with get_sessionmaker(url).begin() as s:
        now = db_now(s)
        for number, status in enumerate(statuses, 1):
            s.add(
                WebhookAttempt(
                    delivery_id=delivery.id, number=number,
                    sent_at=now - timedelta(minutes=10 * (len(statuses) - number + 1)),
                    finished_at=now, status=status, duration=0.25,
                    response_excerpt=EXCERPT if status else None,
                    error=None if status else "timed out after 10 s",
                )
            )  # fmt: skip
        last = statuses[-1]
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id)
            .values(
                attempts=len(statuses),
                last_status=last,
                last_error=None if last else "timed out after 10 s",
                due_at=now + timedelta(minutes=30),
            )
        )
        s.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == delivery.endpoint_id)
            .values(
                failures_in_a_row=len(statuses),
                failing_since=now - failing_for,
                last_success_at=None if last_success is None else now - last_success,
            )
        )
