"""The HTTP shape of request bodies; the domain checks (worker.bookings.booking) stay where they
are."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, WithJsonSchema, field_validator

from worker.bookings import plaintext


class Body(BaseModel):
    # Unknown fields are refused: a typo such as "start_windw" must not book with a default.
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        # Every text field of every body: a NUL was a 503 from PostgreSQL
        # (worker.bookings.plaintext).
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not plaintext.clean(v) for v in values):
            raise ValueError(plaintext.PROBLEM)
        return value


# Seconds (5400) or a form like "1h30m". Declared so, but taken as anything: worker.bookings.booking
# checks it and names the field "duration"; a pydantic union would name "duration.str".
Duration = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}],
            "examples": [5400, "1h30m"],
        }
    ),
]


class BookingIn(Body):
    """What `livestreams schedule` takes; `ref` makes booking again a no-op."""

    meeting_id: str
    at: str
    tz: str | None = None
    account_id: str | None = None
    app_id: str | None = None
    name: str | None = None
    width: int | None = None
    height: int | None = None
    ref: str | None = None
    start_window: float | None = None
    ends_at: str | None = None
    duration: Duration = None


class RescheduleIn(Body):
    """A new start; the booked length is kept unless `ends_at` or `duration` is given."""

    at: str
    tz: str | None = None
    start_window: float | None = None
    ends_at: str | None = None
    duration: Duration = None


class RetryIn(Body):
    at: str | None = None
    start_window: float | None = None


# `?strict=true` on a booking or a series: refuse instead of warning over the capacity budget.
Strict = Annotated[
    bool,
    Query(description="Refuse (409, nothing stored) instead of warning when over the budget."),
]
