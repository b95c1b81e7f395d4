"""Recurring series: a rule on one meeting whose occurrences are ordinary bookings
(worker.series)."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, Float, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime


class SeriesState(enum.StrEnum):
    """Whether a series still makes occurrences."""

    ACTIVE = "active"  # occurrences are made ahead, up to the horizon
    CANCELLED = "cancelled"  # no more occurrences; its untouched future ones were cancelled


class Series(Base):
    """A rule (an RFC 5545 RRULE subset) at a wall time in an IANA zone, on one meeting.

    Its occurrences are rows of ``scheduled_streams`` with ``series_id`` set and the ref
    ``<series ref>:<local date>``, made ahead by beat (worker.series.flow.make).
    """

    __tablename__ = "series"
    __table_args__ = (
        Index("ix_series_state_made_until", "state", "made_until"),
        CheckConstraint(
            f"state IN ({', '.join(repr(s.value) for s in SeriesState)})", name="state"
        ),
        CheckConstraint("duration > 0", name="duration"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    ref: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16), default=SeriesState.ACTIVE.value)
    account_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    meeting_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    name: Mapped[str | None] = mapped_column(String(200))
    video_width: Mapped[int | None] = mapped_column(Integer)
    video_height: Mapped[int | None] = mapped_column(Integer)
    # The rule as given (FREQ=WEEKLY;BYDAY=MO;...), checked by worker.series.rules.parse_rule.
    rule: Mapped[str] = mapped_column(Text)
    # Local dates (YYYY-MM-DD, space-separated) the rule skips: RFC 5545 EXDATE.
    exdates: Mapped[str] = mapped_column(Text, default="")
    first_date: Mapped[date] = mapped_column(Date)  # DTSTART's date, in the zone
    wall_time: Mapped[str] = mapped_column(String(5))  # HH:MM in the zone
    timezone: Mapped[str] = mapped_column(String(64))
    duration: Mapped[float] = mapped_column(Float)  # seconds each occurrence runs
    start_window: Mapped[float] = mapped_column(Float)
    # Occurrences exist for every rule date up to here (UTC): the maker's progress.
    made_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"<Series {self.id} {self.ref} {self.state}>"
