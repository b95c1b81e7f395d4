"""The booked livestreams, every call made for them, and the dispatcher's own bookkeeping."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime


class StreamState(enum.StrEnum):
    """Where a booking is in its life; the terminal ones are left only by an ops command."""

    SCHEDULED = "scheduled"  # booked, waiting for its instant
    STARTING = "starting"  # claimed by a dispatcher; a start task owns it until the lease ends
    RETRYING = "retrying"  # a retryable failure; due again at due_at
    STARTED = "started"  # a livestream exists upstream and its details are stored (terminal)
    FAILED = "failed"  # tried and refused, or ran out of time after trying (terminal)
    MISSED = "missed"  # its deadline passed before any attempt was made (terminal)
    CANCELLED = "cancelled"  # cancelled by a caller before it started (terminal)


TERMINAL_STATES = frozenset(
    {StreamState.STARTED, StreamState.FAILED, StreamState.MISSED, StreamState.CANCELLED}
)
CLAIMABLE_STATES = (StreamState.SCHEDULED, StreamState.RETRYING)


class AttemptOutcome(enum.StrEnum):
    """What one call to the upstream API came to."""

    STARTED = "started"  # the start call returned a livestream
    ADOPTED = "adopted"  # a reconcile found the livestream an earlier, unclear call created
    ABSENT = "absent"  # a reconcile found no livestream: an earlier unclear call created none
    RETRYABLE = "retryable"  # nothing was created; try again later
    FATAL = "fatal"  # refused for good
    AMBIGUOUS = "ambiguous"  # may have been created; reconcile before sending again
    FETCHED = "fetched"  # a fetch_key call returned the livestream's stream key


class AttemptAction(enum.StrEnum):
    START = "start"  # POST .../meetings/{id}/livestreams
    RECONCILE = "reconcile"  # GET .../meetings/{id}/active-livestream
    FETCH_KEY = "fetch_key"  # GET .../livestreams/{id}: the key an adopted livestream lacked


def _check_in(column: str, values: type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class ScheduledStream(Base):
    """One booked livestream, kept forever."""

    __tablename__ = "scheduled_streams"
    __table_args__ = (
        # The dispatcher's claim reads (state, due_at) only, so a tick costs the same with
        # ten rows or ten million.
        Index("ix_scheduled_streams_state_due_at", "state", "due_at"),
        Index("ix_scheduled_streams_meeting_id", "meeting_id"),
        Index("ix_scheduled_streams_scheduled_at", "scheduled_at"),
        CheckConstraint(_check_in("state", StreamState), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    external_ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    account_id: Mapped[str] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(32))
    meeting_id: Mapped[uuid.UUID] = mapped_column(Uuid)

    name: Mapped[str | None] = mapped_column(String(200))
    video_width: Mapped[int | None] = mapped_column(Integer)
    video_height: Mapped[int | None] = mapped_column(Integer)

    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    # Seconds after the due instant in which a start may still be tried, as the caller booked
    # it. Kept, not derived from start_deadline - scheduled_at: a retry moves the deadline
    # but not scheduled_at, so the derived window grew with every retry and reschedule.
    start_window: Mapped[float] = mapped_column(Float)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    state: Mapped[str] = mapped_column(String(16), default=StreamState.SCHEDULED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the dispatcher last handed the row out (claimed it, or took it back).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The process (worker_heartbeats.id) whose run confirmed the claim; NULL until a run does.
    claim_owner: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # How often a claim was taken back from a run that vanished; bounded (worker.claims).
    reclaims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    livestream_id: Mapped[str | None] = mapped_column(String(100))
    ingest_server: Mapped[str | None] = mapped_column(Text)
    playback_url: Mapped[str | None] = mapped_column(Text)
    # Fernet ciphertext, never the key itself: see worker.crypto.
    stream_key_ciphertext: Mapped[str | None] = mapped_column("stream_key", Text)
    livestream_status: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempt_rows: Mapped[list[StartAttempt]] = relationship(
        back_populates="stream", order_by="StartAttempt.number", lazy="raise_on_sql"
    )

    def __repr__(self) -> str:
        return f"<ScheduledStream {self.id} {self.state} at {self.scheduled_at.isoformat()}>"


class StartAttempt(Base):
    """One call to the upstream API for a booking: written before the call, finished after."""

    __tablename__ = "start_attempts"
    __table_args__ = (
        UniqueConstraint("stream_id", "number", name="uq_start_attempts_stream_id_number"),
        Index("ix_start_attempts_sent_at", "sent_at"),
        CheckConstraint(_check_in("action", AttemptAction), name="action"),
        CheckConstraint(
            f"outcome IS NULL OR {_check_in('outcome', AttemptOutcome)}", name="outcome"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scheduled_streams.id"))
    number: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # NULL while the call is in flight, and forever if the process died during it.
    outcome: Mapped[str | None] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    ray_id: Mapped[str | None] = mapped_column(String(100))
    duration: Mapped[float | None] = mapped_column(Float)
    livestream_id: Mapped[str | None] = mapped_column(String(100))

    stream: Mapped[ScheduledStream] = relationship(back_populates="attempt_rows")


class DispatcherHeartbeat(Base):
    """When each dispatcher last finished a tick, for `livestreams status`."""

    __tablename__ = "dispatcher_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_tick_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    reaped: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    # When ticks last resumed after a gap (an outage): owners' heartbeats are judged only once
    # the database has been reachable long enough for a live owner to have beaten again.
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeat(Base):
    """A process that runs start tasks, alive while ``beat_at`` is fresh (worker.heartbeat)."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UpstreamPause(Base):
    """A 429 pauses every start that uses the same API token until ``paused_until``.

    Keyed by a hash of the token, never the token itself.
    """

    __tablename__ = "upstream_pauses"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_until: Mapped[datetime] = mapped_column(UTCDateTime)
