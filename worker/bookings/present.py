"""What ops see: a booking, its attempts and its status timeline as a dict (for --json) and as
text, with the why."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from models import (
    ApiKey,
    AttemptOutcome,
    EndReason,
    Problem,
    ScheduledStream,
    StartAttempt,
    StatusEvent,
    StreamState,
)
from worker.bookings.timeparse import describe, describe_duration
from worker.crypto import StreamKeyCipher, cipher_for, mask
from worker.errors import SecretKeyError
from worker.settings import Secret, Settings


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _local(value: datetime | None, zone_name: str) -> str | None:
    return None if value is None else describe(value, zone_name)


UNREADABLE = "(cannot decrypt: no configured key opens it)"


def reading_cipher(settings: Settings, reveal: bool) -> StreamKeyCipher | None:
    """The cipher to show stream keys with; without a key, None (keys show as encrypted),
    unless they are to be revealed."""
    try:
        return cipher_for(settings)
    except SecretKeyError:
        if reveal:
            raise
        return None


def stream_key_text(
    stream: ScheduledStream, cipher: StreamKeyCipher | None, *, reveal: bool
) -> str | None:
    """The stream key masked (default) or in the clear (``reveal``), or why it cannot be shown."""
    if stream.stream_key_ciphertext is None:
        return None
    if cipher is None:
        if reveal:
            raise SecretKeyError("cannot reveal the stream key: no LIVESTREAMS_SECRET_KEY")
        return "(encrypted)"
    try:
        key: Secret = cipher.decrypt(stream.stream_key_ciphertext)
    except SecretKeyError:
        if reveal:
            raise
        # One key no configured key decrypts must not fail every list page it is on (a 500):
        # the masked view says so, and revealing it still refuses with the reason.
        return UNREADABLE
    return key.get() if reveal else mask(key)


def stream_dict(
    stream: ScheduledStream, cipher: StreamKeyCipher | None = None, *, reveal: bool = False
) -> dict[str, Any]:
    return {
        "id": str(stream.id),
        "external_ref": stream.external_ref,
        "account_id": stream.account_id,
        "app_id": stream.app_id,
        "meeting_id": str(stream.meeting_id),
        "name": stream.name,
        "video_width": stream.video_width,
        "video_height": stream.video_height,
        "state": stream.state,
        "scheduled_at": _iso(stream.scheduled_at),
        "scheduled_at_local": _local(stream.scheduled_at, stream.timezone),
        "timezone": stream.timezone,
        "start_deadline": _iso(stream.start_deadline),
        "start_window": stream.start_window,
        "ends_at": _iso(stream.ends_at),
        "ends_at_local": _local(stream.ends_at, stream.timezone),
        "duration_seconds": (
            None
            if stream.ends_at is None
            else (stream.ends_at - stream.scheduled_at).total_seconds()
        ),
        "due_at": _iso(stream.due_at),
        "attempts": stream.attempts,
        "last_error": stream.last_error,
        "livestream_id": stream.livestream_id,
        "livestream_status": stream.livestream_status,
        "status_observed_at": _iso(stream.status_observed_at),
        "ingest_server": stream.ingest_server,
        "playback_url": stream.playback_url,
        "stream_key": stream_key_text(stream, cipher, reveal=reveal),
        "started_at": _iso(stream.started_at),
        "lateness_seconds": (
            None
            if stream.started_at is None
            else round((stream.started_at - stream.scheduled_at).total_seconds(), 3)
        ),
        "live_at": _iso(stream.live_at),
        "stop_requested_at": _iso(stream.stop_requested_at),
        "ended_at": _iso(stream.ended_at),
        "end_reason": stream.end_reason,
        "problem": stream.problem,
        "created_at": _iso(stream.created_at),
        "updated_at": _iso(stream.updated_at),
    }


def attempt_dict(attempt: StartAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "action": attempt.action,
        "sent_at": _iso(attempt.sent_at),
        "finished_at": _iso(attempt.finished_at),
        "outcome": attempt.outcome,
        "http_status": attempt.http_status,
        "error_code": attempt.error_code,
        "error_message": attempt.error_message,
        "ray_id": attempt.ray_id,
        "duration_seconds": attempt.duration,
        "livestream_id": attempt.livestream_id,
    }


def event_dict(event: StatusEvent, zone_name: str) -> dict[str, Any]:
    """One entry of a booking's status timeline, its instant in UTC and in the booking's zone."""
    return {
        "observed_at": _iso(event.observed_at),
        "observed_at_local": _local(event.observed_at, zone_name),
        "status": event.status,
        "source": event.source,
    }


def explain(stream: ScheduledStream, attempts: list[StartAttempt]) -> str:
    """One sentence on what happened to a booking and why, from the stored rows alone."""
    state = StreamState(stream.state)
    tried = sum(1 for a in attempts if a.action == "start")
    last = attempts[-1] if attempts else None
    if state is StreamState.SCHEDULED:
        return f"waiting: due at {_iso(stream.due_at)}"
    if state is StreamState.STARTING:
        if last is not None and last.outcome is None:
            return f"calling the API now (attempt {last.number} sent at {_iso(last.sent_at)})"
        return f"claimed by a dispatcher; start due at {_iso(stream.due_at)}"
    if state is StreamState.RETRYING:
        return (
            f"will retry at {_iso(stream.due_at)} after: {stream.last_error or 'a retryable error'}"
        )
    if state is StreamState.STARTED:
        late = (stream.started_at - stream.scheduled_at).total_seconds() if stream.started_at else 0
        how = (
            "adopted the livestream an unclear earlier call had created"
            if any(a.outcome == AttemptOutcome.ADOPTED for a in attempts)
            else f"started on start call {tried}"
        )
        return f"started {late:+.3f} s from the booked instant; {how}" + _following(stream)
    if state is StreamState.LIVE:
        since = f" since {_iso(stream.live_at)}" if stream.live_at else ""
        return f"live{since}" + _following(stream)
    if state is StreamState.ENDED:
        why = _ENDED.get(stream.end_reason or "", stream.end_reason or "no reason stored")
        at = f" at {_iso(stream.ended_at)}" if stream.ended_at else ""
        return f"ended{at}: {why}" + _flag(stream)
    if state is StreamState.FAILED:
        return f"failed after {tried} start call(s): {stream.last_error or 'no reason stored'}"
    if state is StreamState.MISSED:
        return f"missed, no call was made: {stream.last_error or 'deadline passed'}"
    return f"cancelled: {stream.last_error or 'by ops'}"


_ENDED: dict[str, str] = {
    EndReason.SCHEDULED_STOP: "stopped at its ends_at",
    EndReason.OPS_STOP: "stopped on request",
    EndReason.ENDED_UPSTREAM: "no longer the meeting's active livestream upstream",
}
_PROBLEMS: dict[str, str] = {
    Problem.NOT_LIVE: "not seen LIVE within the live deadline",
    Problem.ERRORED: "the provider reported ERRORED",
    Problem.STOP_FAILED: "the stop was refused",
}


def _following(stream: ScheduledStream) -> str:
    """What comes next for a started or live livestream, and its flag if it has one."""
    if stream.stop_requested_at is not None:
        next_step = f"; a stop was requested at {_iso(stream.stop_requested_at)}"
    elif stream.ends_at is not None:
        next_step = f"; to be stopped at {_iso(stream.ends_at)}"
    else:
        next_step = "; runs until it ends upstream"
    return next_step + _flag(stream)


def _flag(stream: ScheduledStream) -> str:
    if stream.problem is None:
        return ""
    said = _PROBLEMS.get(stream.problem, stream.problem)
    if stream.problem == Problem.STOP_FAILED and stream.last_error:
        said = f"{said}: {stream.last_error}"
    return f"; problem {stream.problem}: {said}"


def render_stream(data: dict[str, Any], why: str | None = None) -> str:
    return "\n".join(f"{k:<14}{v}" for k, v in stream_rows(data, why))


def stream_rows(data: dict[str, Any], why: str | None = None) -> list[tuple[str, Any]]:
    """What `show` shows of a booking, as (label, text) pairs; the empty ones left out (the
    ops page shows the same rows)."""
    rows = [
        ("id", data["id"]),
        ("external ref", data["external_ref"]),
        ("state", data["state"]),
        ("why", why),
        ("meeting", f"{data['meeting_id']} (account {data['account_id']}, app {data['app_id']})"),
        ("name", data["name"]),
        ("video", _video(data)),
        ("scheduled", data["scheduled_at_local"]),
        ("deadline", _local_of(data, "start_deadline")),
        ("start window", f"{data['start_window']:g} s"),
        ("ends", _ends(data)),
        ("due", _local_of(data, "due_at")),
        ("attempts", data["attempts"]),
        ("last error", data["last_error"]),
        ("livestream", data["livestream_id"]),
        ("status", _status(data)),
        ("ingest server", data["ingest_server"]),
        ("playback url", data["playback_url"]),
        ("stream key", data["stream_key"]),
        ("started", data["started_at"]),
        (
            "lateness",
            None if data["lateness_seconds"] is None else f"{data['lateness_seconds']:+.3f} s",
        ),
        ("live", _local_of(data, "live_at")),
        ("stop request", _local_of(data, "stop_requested_at")),
        ("ended", _ended(data)),
        ("problem", data["problem"]),
    ]
    return [(k, v) for k, v in rows if v not in (None, "")]


def render_attempt(data: dict[str, Any]) -> str:
    parts = [
        f"#{data['number']:<3}",
        f"{data['action']:<9}",
        str(data["sent_at"]),
        f"{data['outcome'] or 'no outcome (in flight or crashed)':<10}",
    ]
    if data["http_status"] is not None:
        parts.append(f"HTTP {data['http_status']}")
    if data["duration_seconds"] is not None:
        parts.append(f"{data['duration_seconds']:.3f}s")
    if data["ray_id"]:
        parts.append(f"cf-ray {data['ray_id']}")
    if data["livestream_id"]:
        parts.append(f"livestream {data['livestream_id']}")
    if data["error_message"]:
        code = f"[{data['error_code']}] " if data["error_code"] else ""
        parts.append(f"- {code}{data['error_message']}")
    return "  ".join(parts)


def render_event(data: dict[str, Any]) -> str:
    return "  ".join([data["observed_at_local"], f"{data['status']:<8}", data["source"]])


def render_row(data: dict[str, Any]) -> str:
    parts = [
        data["id"],
        f"{data['state']:<9}",
        data["scheduled_at_local"] or "",
        data["meeting_id"],
        data["livestream_id"] or "-",
    ]
    if data["problem"]:
        parts.append(f"problem {data['problem']}")
    return "  ".join(parts)


def _ends(data: dict[str, Any]) -> str | None:
    if data["ends_at"] is None:
        return None
    length = describe_duration(timedelta(seconds=data["duration_seconds"]))
    return f"{data['ends_at_local']}, {length} after the start"


def _status(data: dict[str, Any]) -> str | None:
    status: str | None = data["livestream_status"]
    if status is None or data["status_observed_at"] is None:
        return status
    return f"{status} (observed {data['status_observed_at']})"


def _ended(data: dict[str, Any]) -> str | None:
    if data["ended_at"] is None:
        return None
    return f"{_local_of(data, 'ended_at')}: {data['end_reason'] or 'no reason stored'}"


def _video(data: dict[str, Any]) -> str | None:
    if data["video_width"] is None and data["video_height"] is None:
        return None
    return f"{data['video_width'] or '?'}x{data['video_height'] or '?'}"


def _local_of(data: dict[str, Any], key: str) -> str | None:
    value = data[key]
    if value is None:
        return None
    return describe(datetime.fromisoformat(value.replace("Z", "+00:00")), data["timezone"])


def api_key_dict(key: ApiKey, now: datetime) -> dict[str, Any]:
    """An API key as ops see it: the visible prefix only, never the key or its hash."""
    if key.revoked_at is not None:
        state = "revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": f"lsk_{key.prefix}_",
        "scopes": key.scopes.split(),
        "state": state,
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "revoked_at": _iso(key.revoked_at),
        "last_used_at": _iso(key.last_used_at),
    }


def render_api_key(data: dict[str, Any]) -> str:
    return "  ".join(
        [
            data["name"],
            data["prefix"] + "…",
            f"{data['state']:<7}",
            ",".join(data["scopes"]),
            f"expires {data['expires_at'] or 'never'}",
            f"last used {data['last_used_at'] or 'never'}",
        ]
    )
