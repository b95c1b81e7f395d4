"""What ops see: a booking and its attempts as a dict (for --json) and as text, with the why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from models import ApiKey, AttemptOutcome, ScheduledStream, StartAttempt, StreamState
from worker.crypto import StreamKeyCipher, cipher_for, mask
from worker.errors import SecretKeyError
from worker.settings import Secret, Settings
from worker.timeparse import describe


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _local(value: datetime | None, zone_name: str) -> str | None:
    return None if value is None else describe(value, zone_name)


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
    key: Secret = cipher.decrypt(stream.stream_key_ciphertext)
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
        "due_at": _iso(stream.due_at),
        "attempts": stream.attempts,
        "last_error": stream.last_error,
        "livestream_id": stream.livestream_id,
        "livestream_status": stream.livestream_status,
        "ingest_server": stream.ingest_server,
        "playback_url": stream.playback_url,
        "stream_key": stream_key_text(stream, cipher, reveal=reveal),
        "started_at": _iso(stream.started_at),
        "lateness_seconds": (
            None
            if stream.started_at is None
            else round((stream.started_at - stream.scheduled_at).total_seconds(), 3)
        ),
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
        return f"started {late:+.3f} s from the booked instant; {how}"
    if state is StreamState.FAILED:
        return f"failed after {tried} start call(s): {stream.last_error or 'no reason stored'}"
    if state is StreamState.MISSED:
        return f"missed, no call was made: {stream.last_error or 'deadline passed'}"
    return f"cancelled: {stream.last_error or 'by ops'}"


def render_stream(data: dict[str, Any], why: str | None = None) -> str:
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
        ("due", _local_of(data, "due_at")),
        ("attempts", data["attempts"]),
        ("last error", data["last_error"]),
        ("livestream", data["livestream_id"]),
        ("status", data["livestream_status"]),
        ("ingest server", data["ingest_server"]),
        ("playback url", data["playback_url"]),
        ("stream key", data["stream_key"]),
        ("started", data["started_at"]),
        (
            "lateness",
            None if data["lateness_seconds"] is None else f"{data['lateness_seconds']:+.3f} s",
        ),
    ]
    return "\n".join(f"{k:<14}{v}" for k, v in rows if v not in (None, ""))


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


def render_row(data: dict[str, Any]) -> str:
    return "  ".join(
        [
            data["id"],
            f"{data['state']:<9}",
            data["scheduled_at_local"] or "",
            data["meeting_id"],
            data["livestream_id"] or "-",
        ]
    )


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
