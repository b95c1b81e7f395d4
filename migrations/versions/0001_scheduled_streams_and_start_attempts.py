"""Scheduled streams, their start attempts, dispatcher heartbeats and upstream pauses.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:23:24.675083
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatcher_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("last_tick_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.Column("reaped", sa.Integer(), nullable=False),
        sa.Column("expired", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_dispatcher_heartbeats")),
    )
    op.create_table(
        "scheduled_streams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("external_ref", sa.String(length=200), nullable=True),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("video_width", sa.Integer(), nullable=True),
        sa.Column("video_height", sa.Integer(), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("start_deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("livestream_id", sa.String(length=100), nullable=True),
        sa.Column("ingest_server", sa.Text(), nullable=True),
        sa.Column("playback_url", sa.Text(), nullable=True),
        sa.Column("stream_key", sa.Text(), nullable=True),
        sa.Column("livestream_status", sa.String(length=16), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('scheduled', 'starting', 'retrying', 'started', 'failed', 'missed', 'cancelled')",
            name=op.f("ck_scheduled_streams_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_scheduled_streams_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_streams")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_scheduled_streams_external_ref")),
    )
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_streams_meeting_id", ["meeting_id"], unique=False)
        batch_op.create_index("ix_scheduled_streams_scheduled_at", ["scheduled_at"], unique=False)
        batch_op.create_index(
            "ix_scheduled_streams_state_due_at", ["state", "due_at"], unique=False
        )

    op.create_table(
        "upstream_pauses",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_upstream_pauses")),
    )
    op.create_table(
        "start_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("ray_id", sa.String(length=100), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("livestream_id", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "action IN ('start', 'reconcile')", name=op.f("ck_start_attempts_action")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('started', 'adopted', 'absent', 'retryable', 'fatal', 'ambiguous')",
            name=op.f("ck_start_attempts_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["scheduled_streams.id"],
            name=op.f("fk_start_attempts_stream_id_scheduled_streams"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_start_attempts")),
        sa.UniqueConstraint("stream_id", "number", name="uq_start_attempts_stream_id_number"),
    )
    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_start_attempts_sent_at", ["sent_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_start_attempts_sent_at")

    op.drop_table("start_attempts")
    op.drop_table("upstream_pauses")
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_streams_state_due_at")
        batch_op.drop_index("ix_scheduled_streams_scheduled_at")
        batch_op.drop_index("ix_scheduled_streams_meeting_id")

    op.drop_table("scheduled_streams")
    op.drop_table("dispatcher_heartbeats")
