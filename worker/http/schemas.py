"""The HTTP shape of request bodies; the domain checks (worker.booking) stay where they are."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    # Unknown fields are refused: a typo such as "start_windw" must not book with a default.
    model_config = ConfigDict(extra="forbid", strict=True)


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


class RescheduleIn(Body):
    at: str
    tz: str | None = None
    start_window: float | None = None


class RetryIn(Body):
    at: str | None = None
    start_window: float | None = None
