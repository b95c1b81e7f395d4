"""The livestream's whole life: live and ended states, ends_at, problems, status history,
provider webhook deliveries, and the status and stop calls.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 10:33:15.895371
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES = "'scheduled', 'starting', 'retrying', 'started', 'failed', 'missed', 'cancelled'"
OLD_STATES = f"state IN ({_STATES})"
NEW_STATES = f"state IN ({_STATES}, 'live', 'ended')"
_ACTIONS = "'start', 'reconcile', 'fetch_key'"
OLD_ACTIONS = f"action IN ({_ACTIONS})"
NEW_ACTIONS = f"action IN ({_ACTIONS}, 'status', 'stop')"
_OUTCOMES = "'started', 'adopted', 'absent', 'retryable', 'fatal', 'ambiguous', 'fetched'"
OLD_OUTCOMES = f"outcome IS NULL OR outcome IN ({_OUTCOMES})"
NEW_OUTCOMES = f"outcome IS NULL OR outcome IN ({_OUTCOMES}, 'observed', 'stopped')"
END_REASONS = "end_reason IS NULL OR end_reason IN ('scheduled_stop', 'ops_stop', 'ended_upstream')"
PROBLEMS = "problem IS NULL OR problem IN ('not_live', 'errored', 'stop_failed')"


def upgrade() -> None:
    op.create_table(
        "provider_webhooks",
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("livestream_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("stream_id", sa.Uuid(), nullable=True),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_provider_webhooks")),
    )
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.create_index("ix_provider_webhooks_received_at", ["received_at"], unique=False)

    op.create_table(
        "stream_status_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("stream_id", sa.Uuid(), nullable=False),
        sa.Column("livestream_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('start', 'poll', 'webhook')", name=op.f("ck_stream_status_events_source")
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["scheduled_streams.id"],
            name=op.f("fk_stream_status_events_stream_id_scheduled_streams"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_status_events")),
    )
    with op.batch_alter_table("stream_status_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stream_status_events_stream_id_observed_at",
            ["stream_id", "observed_at"],
            unique=False,
        )

    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("status_observed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("live_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("stop_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("problem", sa.String(length=16), nullable=True))
        batch_op.alter_column(
            "livestream_status",
            existing_type=sa.VARCHAR(length=16),
            type_=sa.String(length=32),
            existing_nullable=True,
        )
        batch_op.create_index("ix_scheduled_streams_livestream_id", ["livestream_id"])
        batch_op.create_index("ix_scheduled_streams_problem", ["problem"])
        batch_op.drop_constraint(op.f("ck_scheduled_streams_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_scheduled_streams_state"), NEW_STATES)
        batch_op.create_check_constraint(op.f("ck_scheduled_streams_end_reason"), END_REASONS)
        batch_op.create_check_constraint(op.f("ck_scheduled_streams_problem"), PROBLEMS)

    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_start_attempts_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_action"), NEW_ACTIONS)
        batch_op.drop_constraint(op.f("ck_start_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_outcome"), NEW_OUTCOMES)

    # The status each started row's start call returned opens its timeline; the rows are then
    # tracked from their (past) due instant: the first dispatch ticks check them.
    op.execute(
        "INSERT INTO stream_status_events"
        " (stream_id, livestream_id, status, source, observed_at, recorded_at)"
        " SELECT id, livestream_id, livestream_status, 'start', started_at, started_at"
        " FROM scheduled_streams"
        " WHERE state = 'started' AND livestream_status IS NOT NULL AND started_at IS NOT NULL"
    )
    op.execute(
        "UPDATE scheduled_streams SET status_observed_at = started_at WHERE state = 'started'"
    )


def downgrade() -> None:
    # Live and ended rows are started rows to the old schema; the calls made to follow them,
    # and their history, cannot be kept without their actions and tables.
    op.execute("UPDATE scheduled_streams SET state = 'started' WHERE state IN ('live', 'ended')")
    op.execute("DELETE FROM start_attempts WHERE action IN ('status', 'stop')")
    op.execute(
        "UPDATE scheduled_streams SET livestream_status = NULL WHERE LENGTH(livestream_status) > 16"
    )
    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_start_attempts_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_action"), OLD_ACTIONS)
        batch_op.drop_constraint(op.f("ck_start_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_outcome"), OLD_OUTCOMES)

    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_scheduled_streams_problem"), type_="check")
        batch_op.drop_constraint(op.f("ck_scheduled_streams_end_reason"), type_="check")
        batch_op.drop_constraint(op.f("ck_scheduled_streams_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_scheduled_streams_state"), OLD_STATES)
        batch_op.drop_index("ix_scheduled_streams_problem")
        batch_op.drop_index("ix_scheduled_streams_livestream_id")
        batch_op.alter_column(
            "livestream_status",
            existing_type=sa.String(length=32),
            type_=sa.VARCHAR(length=16),
            existing_nullable=True,
        )
        batch_op.drop_column("problem")
        batch_op.drop_column("stop_requested_at")
        batch_op.drop_column("end_reason")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("live_at")
        batch_op.drop_column("status_observed_at")
        batch_op.drop_column("ends_at")

    with op.batch_alter_table("stream_status_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stream_status_events_stream_id_observed_at")
    op.drop_table("stream_status_events")
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_webhooks_received_at")
    op.drop_table("provider_webhooks")
