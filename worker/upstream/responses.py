"""What the RealtimeKit API answers, read leniently: livestreams, error text, ``retry-after``.

Parsing only: what an answer *means* (started, retry, reconcile, give up) is decided in
``worker.upstream.policy``. Every field is optional upstream (contract README "Parse leniently"), so
each reader returns None rather than raise, and text that reaches ops is cut short, cleaned of
control characters and never carries a stream key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from worker.settings import Secret

# Retry-After past a day is nonsense; capping keeps later arithmetic finite (a 400-digit
# value would otherwise become inf). The deadline check in the caller cuts it shorter anyway.
MAX_RETRY_AFTER = 86_400.0
MAX_MESSAGE = 150  # upstream text kept in a message, so the whole message stays < 200 chars
REDACTED = "[redacted]"
MAX_ID = 100  # livestream ids are UUIDs; anything longer or with control characters is no id
MAX_FIELD = 2000  # URLs and other free text kept from a response
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A stream key inside text that did not parse as JSON (a body cut short) is still a key.
_KEY_IN_TEXT = re.compile(r"""(["']?stream_key["']?\s*[:=]\s*["']?)[^"',}\s]+""", re.IGNORECASE)


@dataclass(frozen=True)
class CallInfo:
    """What ops need to find one upstream call again: HTTP status, ``cf-ray``, seconds taken."""

    status: int | None
    ray_id: str | None
    duration: float


@dataclass(frozen=True)
class Livestream:
    """A livestream as the API described it. Every field but ``id`` may be missing upstream.

    ``stream_key`` is a ``Secret`` so a logged or printed result never shows it; ``call`` is
    filled in by the client and left out of equality.
    """

    id: str
    status: str | None = None
    ingest_server: str | None = None
    playback_url: str | None = None
    stream_key: Secret | None = None
    meeting_id: str | None = None
    created_at: datetime | None = None
    name: str | None = None  # the name the start call gave it (GET .../active-livestream)
    call: CallInfo | None = field(default=None, compare=False)

    def with_key_of(self, other: Livestream) -> Livestream:
        """This livestream with the stream key (and any URL it lacks) of ``other``, when
        ``other`` is the same livestream with a key; else unchanged: a key for another
        livestream is worse than none."""
        if other.id != self.id or other.stream_key is None:
            return self
        return replace(
            self,
            stream_key=other.stream_key,
            ingest_server=self.ingest_server or other.ingest_server,
            playback_url=self.playback_url or other.playback_url,
        )


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``retry-after`` header: delay-seconds or an HTTP-date (RFC 9110).

    Returns None when the header is missing or unreadable, 0 for a date in the past.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # RFC 9110 allows only whole seconds; a decimal is accepted because it is unambiguous.
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 5322 "-0000": treat as UTC, as HTTP-dates always are
        when = when.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def parse_livestream(data: object) -> Livestream | None:
    """The livestream in a response's ``data``, leniently; None when it has no id.

    ``data`` is the livestream itself (start, active-livestream), holds it under
    ``livestream`` (GET /livestreams/{id}), or is a list of them (seen on list endpoints).
    """
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), None)
    if isinstance(data, dict) and isinstance(data.get("livestream"), dict):
        data = data["livestream"]
    if not isinstance(data, dict):
        return None
    ident = _text(data.get("id"))
    if not ident or len(ident) > MAX_ID or not ident.isprintable() or ident != ident.strip():
        return None  # not an id we could store or show: as if there were none
    key = _text(data.get("stream_key"))
    return Livestream(
        id=ident,
        status=field_text(data.get("status"), 16),
        ingest_server=field_text(data.get("ingest_server"), MAX_FIELD),
        playback_url=field_text(data.get("playback_url"), MAX_FIELD),
        stream_key=Secret(key) if key and "\x00" not in key else None,
        meeting_id=field_text(data.get("meeting_id"), MAX_ID),
        created_at=_timestamp(data.get("created_at")),
        name=field_text(data.get("name"), MAX_FIELD),
    )


def load_json(body: bytes) -> Any:
    """The JSON document in ``body``, or None when it is not JSON (HTML, empty, cut short)."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    # RecursionError: "[[[[..." nested 60k deep fits in a 64 KiB body and breaks json.
    except (ValueError, RecursionError):
        return None


def error_details(doc: Any, body: bytes) -> tuple[str | None, str | None]:
    """(code, message) from the v4 envelope, else RealtimeKit's, else a top-level message, else
    the raw non-JSON body."""
    if isinstance(doc, dict):
        errors = doc.get("errors")
        if isinstance(errors, list):
            found = [e for e in errors if isinstance(e, dict) and _text(e.get("message"))]
            if found:
                text = "; ".join(str(_text(e.get("message"))) for e in found)
                return field_text(found[0].get("code"), 64), _short(text)
        error = doc.get("error")
        if isinstance(error, dict) and _text(error.get("message")):
            return field_text(error.get("code"), 64), _short(str(_text(error.get("message"))))
        if isinstance(error, str) and error.strip():
            return None, _short(error)
        # A third shape, seen for a body field the API does not allow: a bare top-level
        # {"message": "...", "success": false}, with no code.
        message = doc.get("message")
        if isinstance(message, str) and message.strip():
            return None, _short(message)
        # A JSON body with no error text is never echoed: it may carry a stream key.
        return None, None
    if doc is not None:
        return None, None
    text = body.decode("utf-8", errors="replace")
    if text.lstrip()[:1] in ("{", "["):
        # JSON cut short or too big to read: it may hold a stream key anywhere, so say what
        # it was rather than echo any of it.
        return None, f"unreadable JSON body ({len(body)} bytes read)"
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:  # an HTML error page: its title says it all, the markup is noise
        text = title.group(1)
    return None, _short(_KEY_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)) or None


def stream_keys(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return []
    data = doc.get("data")
    if isinstance(data, dict) and isinstance(data.get("livestream"), dict):
        data = data["livestream"]
    if isinstance(data, dict) and isinstance(data.get("stream_key"), str):
        return [data["stream_key"]]
    return []


def redact(text: str | None, secrets: list[str]) -> str | None:
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _short(text: str) -> str:
    text = " ".join(printable(text).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def printable(text: str, limit: int | None = None) -> str:
    """``text`` without control characters, cut to ``limit``: upstream text reaches ops'
    terminals (an ESC sequence) and PostgreSQL (which refuses a NUL in text)."""
    text = _CONTROL.sub("?", text)
    return text if limit is None or len(text) <= limit else text[:limit]


def field_text(value: object, limit: int) -> str | None:
    """An optional response field as clean text of at most ``limit`` characters."""
    text = _text(value)
    return None if text is None else printable(text, limit) or None


def _text(value: object) -> str | None:
    # Cloudflare sends numbers as strings and the reverse; ids and codes are kept as text.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        return str(value)
    return None


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; httpx.Headers is not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value
