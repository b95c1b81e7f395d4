"""Outbound webhooks: the platform's endpoints, the outbox of events, each event's delivery to
each endpoint, and every attempt made (worker.notify.outbox, worker.notify.claims)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class EventType(enum.StrEnum):
    """What the platform is told; each is written with the state change that causes it."""

    BOOKING_STARTED = "booking.started"  # a livestream exists upstream
    BOOKING_FAILED = "booking.failed"  # tried and refused, or ran out of time after trying
    BOOKING_MISSED = "booking.missed"  # its start deadline passed before any attempt
    BOOKING_CANCELLED = "booking.cancelled"  # cancelled before it started
    STREAM_LIVE = "stream.live"  # LIVE seen for the first time
    STREAM_NOT_LIVE = "stream.not_live"  # not seen LIVE by the live deadline
    STREAM_ERRORED = "stream.errored"  # the provider reported ERRORED
    STREAM_ENDED = "stream.ended"  # stopped by us, or gone upstream
    STREAM_STOP_FAILED = "stream.stop_failed"  # the stop was refused for good
    SERIES_CREATED = "series.created"  # a recurring series was added
    SERIES_UPDATED = "series.updated"  # its rule, time or fields changed
    SERIES_CANCELLED = "series.cancelled"  # it makes no more occurrences


class DeliveryState(enum.StrEnum):
    """Where one event's delivery to one endpoint is."""

    PENDING = "pending"  # due at due_at; held by a run while claim_token is set and leased
    # Parked while its endpoint is disabled (pending again, due as it was, once enabled):
    # a disabled endpoint's backlog costs the dispatch tick nothing.
    HELD = "held"
    DELIVERED = "delivered"  # a 2xx answer (terminal)
    FAILED = "failed"  # the schedule ran out, or 410 disabled the endpoint (terminal)


# Still to go out: what `status`, the ops page and the retention count as waiting.
WAITING_STATES = (DeliveryState.PENDING.value, DeliveryState.HELD.value)


def _check_in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class WebhookEndpoint(Base):
    """A platform's URL, the event types it wants, and its signing secret (encrypted)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    url: Mapped[str] = mapped_column(Text)
    # Space-separated EventType values.
    event_types: Mapped[str] = mapped_column(Text)
    # Fernet ciphertext of the `whsec_...` secret (worker.crypto), never the secret itself.
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    # Kept valid until previous_secret_expires_at after a rotation: both signatures are sent.
    previous_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures_in_a_row: Mapped[int] = mapped_column(Integer, default=0)
    # The first failure since the last success: `livestreams status` reports long failures.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The API key that registered it, which (with ``ops``) alone may manage it; NULL for an
    # endpoint made by the CLI or before keys owned endpoints: ``ops`` only.
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("api_keys.id"), index=True
    )

    def __repr__(self) -> str:  # never the secret
        return f"<WebhookEndpoint {self.id} {self.url}>"


class WebhookEvent(Base):
    """The outbox: one event, written in the transaction of the state change that causes it.

    ``payload`` is the exact body sent (JSON text), so every attempt and every replay sends
    the same bytes under the same ``webhook-id`` (the event's id). Never holds a stream key.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_stream_id", "stream_id"),
        Index("ix_webhook_events_series_id", "series_id"),
        Index("ix_webhook_events_created_at", "created_at"),
        CheckConstraint(_check_in("type", EventType), name="type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(String(32))
    # The booking the event is about; NULL for a series event, which names its series.
    stream_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("scheduled_streams.id"))
    series_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("series.id"))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event to one endpoint: claimed like a start (token, lease), retried on a schedule.

    A replay is a new delivery of the same event (same ``webhook-id``), with its own attempts.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The dispatch tick's claim reads (state, due_at) only: flat cost at any size.
        Index("ix_webhook_deliveries_state_due_at", "state", "due_at"),
        Index("ix_webhook_deliveries_event_id", "event_id"),
        Index("ix_webhook_deliveries_endpoint_id_created_at", "endpoint_id", "created_at"),
        CheckConstraint(_check_in("state", DeliveryState), name="state"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The process whose run took the claim up (its heartbeat id), and when it was handed out:
    # a killed sender's claim is taken back within seconds, a lost message is sent again.
    claim_owner: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Base):
    """One POST of a delivery: written before it is sent, finished after (NULL: died in it)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id", "delivery_id"),
        # The ops overview counts deliveries per minute over the last hour (or day).
        Index("ix_webhook_attempts_sent_at", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id"))
    number: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[int | None] = mapped_column(Integer)
    duration: Mapped[float | None] = mapped_column(Float)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
