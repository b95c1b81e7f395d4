"""Mapping and engine/session factories; callers own their sessions."""

from models.apikeys import ApiKey, EndedOpsSession
from models.base import Base, UTCDateTime
from models.series import Series, SeriesState
from models.streams import (
    CLAIMABLE_STATES,
    START_SETTLED_STATES,
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
    WAITING_STATES,
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ = [
    "CLAIMABLE_STATES",
    "START_SETTLED_STATES",
    "TRACKED_STATES",
    "WAITING_STATES",
    "ApiKey",
    "AttemptAction",
    "AttemptOutcome",
    "Base",
    "DeliveryState",
    "DispatcherHeartbeat",
    "EndReason",
    "EndedOpsSession",
    "EventType",
    "Problem",
    "ProviderWebhook",
    "ScheduledStream",
    "Series",
    "SeriesState",
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
