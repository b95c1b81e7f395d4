"""Mapping and engine/session factories; callers own their sessions."""

from models.apikeys import ApiKey
from models.base import Base, UTCDateTime
from models.streams import (
    CLAIMABLE_STATES,
    TERMINAL_STATES,
    AttemptAction,
    AttemptOutcome,
    DispatcherHeartbeat,
    ScheduledStream,
    StartAttempt,
    StreamState,
    UpstreamPause,
    WorkerHeartbeat,
)

__all__ = [
    "CLAIMABLE_STATES",
    "TERMINAL_STATES",
    "ApiKey",
    "AttemptAction",
    "AttemptOutcome",
    "Base",
    "DispatcherHeartbeat",
    "ScheduledStream",
    "StartAttempt",
    "StreamState",
    "UTCDateTime",
    "UpstreamPause",
    "WorkerHeartbeat",
]
