"""The fake RealtimeKit's livestream record and its scripted status lifecycle.

A livestream's statuses, as the REST API reports them (the contract's enum):
- INVOKED: created; the first status of every livestream.
- LIVE: ``live_after`` seconds after creation (None: never), unless it erred first.
- ERRORED: ``errored_after`` seconds after creation (None: never), from INVOKED or LIVE. An
  erred livestream stays its meeting's active livestream until it is stopped, so a client
  that polls ``active-livestream`` sees the error (the contract is silent; our choice).
- IDLE: stopped by the product's call or ended upstream (by the host); final. The meeting
  has no active livestream any more, and ``GET /livestreams/{id}`` still finds it.

The plan is fixed when the livestream is created, so a later ``configure`` never rewrites a
stream that a test is already watching. Nothing here reads the clock or takes a lock: the
fake calls ``advance(now)`` under its own lock, both from its clock thread and before every
answer, so what a client reads never lags the script even when that thread runs late.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

INVOKED, LIVE, ERRORED, IDLE = "INVOKED", "LIVE", "ERRORED", "IDLE"
INGEST_SERVER = "rtmps://live.fake-realtimekit.invalid:443/live/"


@dataclass(frozen=True)
class Lifecycle:
    """When a new livestream changes status: seconds after creation, None for never."""

    live_after: float | None = None
    errored_after: float | None = None

    def steps(self) -> tuple[tuple[float, str], ...]:
        """(seconds after creation, status), in order. An error at or before ``live_after``
        means the stream never goes LIVE: a stream does not recover from ERRORED."""
        steps: list[tuple[float, str]] = []
        if self.errored_after is not None:
            steps.append((self.errored_after, ERRORED))
        if self.live_after is not None and (
            self.errored_after is None or self.live_after < self.errored_after
        ):
            steps.append((self.live_after, LIVE))
        return tuple(sorted(steps))

    def merged(self, spec: Any) -> Lifecycle:
        """This lifecycle with the keys of ``spec`` (``live_after``, ``errored_after``)
        replaced; ValueError on anything else."""
        if not isinstance(spec, dict) or set(spec) - {"live_after", "errored_after"}:
            raise ValueError(f"a lifecycle takes live_after and errored_after, got {spec!r}")
        return Lifecycle(
            _seconds(spec, "live_after", self.live_after),
            _seconds(spec, "errored_after", self.errored_after),
        )


@dataclass
class Livestream:
    """One livestream the fake holds. ``foreign``: started by someone else on the meeting
    (``/__fake__/foreign``), never counted as one of the product's starts."""

    id: str
    meeting_id: str
    name: str | None
    stream_key: str
    created: float  # time.time()
    steps: tuple[tuple[float, str], ...] = ()
    foreign: bool = False
    status: str = INVOKED
    updated: float = 0.0  # the instant of the last status change
    ended_by: str | None = None  # "stop" (the API call) or "upstream" (the host)
    _next: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        self.updated = self.created

    @property
    def active(self) -> bool:
        return self.status != IDLE

    def next_due(self) -> float | None:
        """The instant of the next scripted status change, or None when there is none."""
        if not self.active or self._next >= len(self.steps):
            return None
        return self.created + self.steps[self._next][0]

    def advance(self, now: float) -> list[tuple[str, float]]:
        """Apply every scripted change due by ``now``; the (status, instant) of each."""
        changes: list[tuple[str, float]] = []
        due = self.next_due()
        while due is not None and due <= now:
            self.status, self.updated = self.steps[self._next][1], due
            self._next += 1
            changes.append((self.status, due))
            due = self.next_due()
        return changes

    def end(self, now: float, by: str) -> None:
        """Stopped (``by`` "stop") or ended by the host (``by`` "upstream"): IDLE, for good."""
        self.status, self.updated, self.ended_by = IDLE, now, by

    @property
    def playback_url(self) -> str:
        return f"https://customer-fake.invalid/{self.id}/manifest/video.m3u8"

    def as_json(self, *, nullable_name: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "meeting_id": self.meeting_id,
            "name": self.name,
            "status": self.status,
            "ingest_server": INGEST_SERVER,
            "playback_url": self.playback_url,
            "stream_key": self.stream_key,
            "created_at": iso(self.created),
            "updated_at": iso(self.updated),
        }
        if self.name is None and not nullable_name:
            del doc["name"]  # GET /livestreams/{id} declares name as a non-nullable string
        return doc


def parse_meetings(spec: Any) -> dict[str, dict[str, Any] | None]:
    """``{"<meeting uuid>": {"live_after": ..., "errored_after": ...} | null}``, checked."""
    if not isinstance(spec, dict):
        raise ValueError("meetings must map meeting ids to lifecycles")
    for meeting, override in spec.items():
        try:
            uuid.UUID(meeting)
        except ValueError:
            raise ValueError(f"meetings: {meeting!r} is not a meeting id (a UUID)") from None
        if override is not None:
            Lifecycle().merged(override)  # raises on a bad one
    return spec


def iso(ts: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as the API writes its timestamps."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(spec: dict[str, Any], key: str, default: float | None) -> float | None:
    if key not in spec:
        return default
    value = spec[key]
    if value is None:
        return None
    # type() rather than isinstance(): JSON true is a bool, and bool is an int subclass.
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be null or a number of seconds >= 0, got {value!r}")
    return float(value)
