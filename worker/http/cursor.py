"""The opaque `next` cursor of GET /v1/bookings: base64 of the last row's (scheduled_at, id)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime

from worker.bookings.timeparse import EARLIEST, LATEST
from worker.errors import BookingError


def encode(scheduled_at: datetime, stream_id: uuid.UUID) -> str:
    raw = f"{scheduled_at.isoformat()}|{stream_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, stream_id = raw.split("|")
        instant = datetime.fromisoformat(at)
        if instant.tzinfo is None:
            raise ValueError("naive")
        # 0001-01-01T00:00+01:00 parses, but overflows once the database converts it to UTC
        # (a 5xx for a forged cursor): no cursor we hand out lies outside the bookable range.
        instant = instant.astimezone(UTC)
        if not EARLIEST <= instant < LATEST:
            raise ValueError("out of range")
        return instant, uuid.UUID(stream_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise BookingError("cursor", "not a cursor this API handed out") from None
