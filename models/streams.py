"""The booked livestreams, every call made for them, and the dispatcher's own bookkeeping."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, UTCDateTime


class StreamState(enum.StrEnum):
    """Where a booking is in its life; the terminal ones are left only by an ops command."""

    SCHEDULED = "scheduled"  # booked, waiting for its instant
    STARTING = "starting"  # claimed by a dispatcher; a start task owns it until the lease ends
    RETRYING = "retrying"  # a retryable failure; due again at due_at
    STARTED = "started"  # a livestream exists upstream, not yet seen LIVE; tracked from here on
    LIVE = "live"  # LIVE was observed (live_at); tracked until it ends
    ENDED = "ended"  # stopped by us, or gone upstream (ended_at, end_reason) (terminal)
    FAILED = "failed"  # tried and refused, or ran out of time after trying (terminal)
    MISSED = "missed"  # its deadline passed before any attempt was made (terminal)
    CANCELLED = "cancelled"  # cancelled by a caller before it started (terminal)


# States in which no start call is ever made again: the start has settled, one way or the other
# (started and live rows are followed still; the others are final).
START_SETTLED_STATES = frozenset(
    {
        StreamState.STARTED,
        StreamState.LIVE,
        StreamState.ENDED,
        StreamState.FAILED,
        StreamState.MISSED,
        StreamState.CANCELLED,
    }
)
CLAIMABLE_STATES = (StreamState.SCHEDULED, StreamState.RETRYING)
# A livestream exists upstream: the row's due_at is its next tracking action (a status check,
# or its stop), claimed by the same dispatch tick and run by livestreams.track_stream.
TRACKED_STATES = (StreamState.STARTED, StreamState.LIVE)


class EndReason(enum.StrEnum):
    """Why a livestream's row is ``ended``."""

    SCHEDULED_STOP = "scheduled_stop"  # stopped by us at the booking's ends_at
    OPS_STOP = "ops_stop"  # stopped by us on an ops request (CLI, HTTP API)
    ENDED_UPSTREAM = "ended_upstream"  # no longer the meeting's active livestream upstream


class Problem(enum.StrEnum):
    """A flag on a started or live row that ops should look at; NULL when all is well."""

    NOT_LIVE = "not_live"  # not seen LIVE by started_at + the live deadline
    ERRORED = "errored"  # the provider reported ERRORED
    STOP_FAILED = "stop_failed"  # the stop was refused for good (reason in last_error)


class StatusSource(enum.StrEnum):
    """Where an observed livestream status came from."""

    START = "start"  # the start call's answer (or the reconcile that adopted it)
    POLL = "poll"  # a status check of ours
    WEBHOOK = "webhook"  # a signed livestreaming.statusUpdate from the provider


class AttemptOutcome(enum.StrEnum):
    """What one call to the upstream API came to."""

    STARTED = "started"  # the start call returned a livestream
    ADOPTED = "adopted"  # a reconcile found the livestream an earlier, unclear call created
    ABSENT = "absent"  # a reconcile found no livestream: an earlier unclear call created none
    RETRYABLE = "retryable"  # nothing was created; try again later
    FATAL = "fatal"  # refused for good
    AMBIGUOUS = "ambiguous"  # may have been created; reconcile before sending again
    FETCHED = "fetched"  # a fetch_key call returned the livestream's stream key
    OBSERVED = "observed"  # a status call found our livestream active and read its status
    STOPPED = "stopped"  # a stop call stopped our livestream


class AttemptAction(enum.StrEnum):
    START = "start"  # POST .../meetings/{id}/livestreams
    RECONCILE = "reconcile"  # GET .../meetings/{id}/active-livestream
    FETCH_KEY = "fetch_key"  # GET .../livestreams/{id}: the key an adopted livestream lacked
    STATUS = "status"  # GET .../meetings/{id}/active-livestream: is ours active, and its status
    STOP = "stop"  # POST .../meetings/{id}/active-livestream/stop, once ours was seen active


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
        Index("ix_scheduled_streams_livestream_id", "livestream_id"),
        Index("ix_scheduled_streams_problem", "problem"),
        # The ops page finds a booking by its exact ref or name: both index probes.
        Index("ix_scheduled_streams_name", "name"),
        # A series' occurrences, by date: its page and its edits read them so.
        Index("ix_scheduled_streams_series_id_series_date", "series_id", "series_date"),
        # ... and by a prefix of either in any case: lower() of each, with text_pattern_ops on
        # PostgreSQL so that LIKE 'prefix%' reads the index whatever the database's collation.
        Index(
            "ix_scheduled_streams_ref_lower",
            func.lower(text("external_ref")).label("ref_lower"),
            postgresql_ops={"ref_lower": "text_pattern_ops"},
        ),
        Index(
            "ix_scheduled_streams_name_lower",
            func.lower(text("name")).label("name_lower"),
            postgresql_ops={"name_lower": "text_pattern_ops"},
        ),
        # The ops overview's start lateness over the last hour (or day) reads only these two.
        Index("ix_scheduled_streams_started_at", "started_at", "scheduled_at"),
        CheckConstraint(_check_in("state", StreamState), name="state"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint(
            f"end_reason IS NULL OR {_check_in('end_reason', EndReason)}", name="end_reason"
        ),
        CheckConstraint(f"problem IS NULL OR {_check_in('problem', Problem)}", name="problem"),
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
    # When the livestream is to be stopped (UTC); NULL: it runs until it ends upstream.
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
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
    # How often a claim was taken back from a run that had taken it up (confirmed it) and
    # vanished; bounded (worker.lease.claims.MAX_RECLAIMS). Claims no run took up are not counted.
    reclaims: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    livestream_id: Mapped[str | None] = mapped_column(String(100))
    ingest_server: Mapped[str | None] = mapped_column(Text)
    playback_url: Mapped[str | None] = mapped_column(Text)
    # Fernet ciphertext, never the key itself: see worker.crypto.
    stream_key_ciphertext: Mapped[str | None] = mapped_column("stream_key", Text)
    livestream_status: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the stored livestream_status was observed (the provider's instant where it gave
    # one): an older observation (a late webhook) never overwrites a newer one.
    status_observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    live_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first time LIVE was seen
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Ops asked to stop it now (CLI stop, POST .../stop); the next track run stops it.
    stop_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    problem: Mapped[str | None] = mapped_column(String(16))
    # An occurrence of a series (worker.series): its rule's local date. A changed occurrence
    # is ``detached``: the series' edits and cancellation leave it alone from then on.
    series_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("series.id"))
    series_date: Mapped[date | None] = mapped_column(Date)
    detached: Mapped[bool] = mapped_column(Boolean, server_default=false())

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


class StatusEvent(Base):
    """One observed livestream status: the timeline that ``livestreams show`` prints.

    Written when an observation changes what is known (a new status, or the first of its
    kind), not for every identical poll answer.
    """

    __tablename__ = "stream_status_events"
    __table_args__ = (
        Index("ix_stream_status_events_stream_id_observed_at", "stream_id", "observed_at"),
        CheckConstraint(_check_in("source", StatusSource), name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scheduled_streams.id"))
    livestream_id: Mapped[str | None] = mapped_column(String(100))
    # Any value the provider sends: the documented LIVE / IDLE / ERRORED / INVOKED, OFFLINE
    # from its webhook pages, or whatever comes next. Stored as received, never refused.
    status: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProviderWebhook(Base):
    """One webhook delivery received from the provider, keyed by its ``rtk-uuid``: a replay
    finds its row and is applied once. Never holds the payload (it carries the stream key)."""

    __tablename__ = "provider_webhooks"
    __table_args__ = (Index("ix_provider_webhooks_received_at", "received_at"),)

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    livestream_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(32))
    stream_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # NULL: no booking of ours
    # What it did: applied, stale (older than what is stored), unknown_stream, ignored.
    result: Mapped[str] = mapped_column(String(16))
    # Hex sha256 of the signed body: the rtk-uuid header is not signed, so one captured
    # delivery replayed under fresh ids is still the same delivery. NULL in rows from before.
    body_sha256: Mapped[str | None] = mapped_column(String(64), unique=True)


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
    """A worker process (or beat), alive while ``beat_at`` is fresh (worker.lease.heartbeat).

    A claim names the process that holds it by this row's id; the ops page lists the rows.
    """

    __tablename__ = "worker_heartbeats"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The queues it consumes ("livestreams.start,livestreams.dispatch"), or "beat"; NULL in
    # rows written before it was kept.
    lane: Mapped[str | None] = mapped_column(String(255))
    # What it was doing at its last beat ("launch of 3 starts", "idle"), for people only.
    doing: Mapped[str | None] = mapped_column(String(200))


class UpstreamPause(Base):
    """A 429 pauses every start that uses the same API token until ``paused_until``.

    Keyed by a hash of the token, never the token itself.
    """

    __tablename__ = "upstream_pauses"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_until: Mapped[datetime] = mapped_column(UTCDateTime)
