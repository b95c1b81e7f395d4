"""What a start run works on (``Job``) and what it comes to (``RunResult``)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.upstream.policy import StartStep


class RunResult(enum.StrEnum):
    """What one run of the start task came to (the task logs it)."""

    STARTED = "started"  # the start call created a livestream, stored with its key
    ADOPTED = "adopted"  # a reconcile found the livestream of an earlier unclear call
    RETRYING = "retrying"  # the booking is due again later
    PAUSED = "paused"  # the token is rate-limited: due again when the pause ends, no call made
    FAILED = "failed"  # refused, out of time, or a livestream without a key
    MISSED = "missed"  # the deadline passed before any call was made
    STALE = "stale"  # the claim was not this run's (replayed message, reaped row): nothing done
    CLAIM_LOST = "claim-lost"  # a livestream exists, but the claim went before it was stored


ENDED = {
    StartStep.RETRY: RunResult.RETRYING,
    StartStep.FAIL: RunResult.FAILED,
    StartStep.MISS: RunResult.MISSED,
}


@dataclass
class Job:
    """What one run needs from the row, read under the claim. ``token`` follows each renewal."""

    stream_id: uuid.UUID
    token: uuid.UUID
    account_id: str
    app_id: str
    meeting_id: str
    name: str | None
    width: int | None
    height: int | None
    deadline: datetime
    scheduled_at: datetime | None  # the booked instant, for the lateness metric
    first_unclear: datetime | None  # sent_at of the first start call whose outcome is unknown

    @classmethod
    def of(
        cls, row: Any, stream_id: uuid.UUID, token: uuid.UUID, *, first_unclear: datetime | None
    ) -> Job:
        """From a booking's row (ORM object or result row: the same attribute names)."""
        return cls(
            stream_id=stream_id,
            token=token,
            account_id=row.account_id,
            app_id=row.app_id,
            meeting_id=str(row.meeting_id),
            name=row.name,
            width=row.video_width,
            height=row.video_height,
            deadline=row.start_deadline,
            scheduled_at=row.scheduled_at,
            first_unclear=first_unclear,
        )
