"""Mapping and engine/session factories; callers own their sessions."""

from models.apikeys import ApiKey
from models.base import Base, UTCDateTime
from models.streams import (
    CLAIMABLE_STATES,
    TERMINAL_STATES,
    TRACKED_STATES,
    AttemptAction,
    AttemptOutcome,
    DispatcherHeartbeat,
    EndReason,
    Problem,
    ProviderWebhook,
    ScheduledStream,
    StartAttempt,
    StatusEvent,
    StatusSource,
    StreamState,
    UpstreamPause,
    WorkerHeartbeat,
)
from models.webhooks import (
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "CLAIMABLE_STATES",
    "TERMINAL_STATES",
    "TRACKED_STATES",
    "ApiKey",
    "AttemptAction",
    "AttemptOutcome",
    "Base",
    "DeliveryState",
    "DispatcherHeartbeat",
    "EndReason",
    "EventType",
    "Problem",
    "ProviderWebhook",
    "ScheduledStream",
    "StartAttempt",
    "StatusEvent",
    "StatusSource",
    "StreamState",
    "UTCDateTime",
    "UpstreamPause",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WorkerHeartbeat",
]
