"""Claim owners and worker heartbeats (recovery in seconds); fetch_key attempts and outcome.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:33:00.766191
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_ACTIONS = "action IN ('start', 'reconcile')"
NEW_ACTIONS = "action IN ('start', 'reconcile', 'fetch_key')"
_OUTCOMES = "'started', 'adopted', 'absent', 'retryable', 'fatal', 'ambiguous'"
OLD_OUTCOMES = f"outcome IS NULL OR outcome IN ({_OUTCOMES})"
NEW_OUTCOMES = f"outcome IS NULL OR outcome IN ({_OUTCOMES}, 'fetched')"


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_heartbeats")),
    )
    with op.batch_alter_table("dispatcher_heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("running_since", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("claim_owner", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("reclaims", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_start_attempts_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_action"), NEW_ACTIONS)
        batch_op.drop_constraint(op.f("ck_start_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_outcome"), NEW_OUTCOMES)


def downgrade() -> None:
    # The key fetches are calls like any other; without their action they cannot be kept.
    op.execute("DELETE FROM start_attempts WHERE action = 'fetch_key'")
    with op.batch_alter_table("start_attempts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_start_attempts_action"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_action"), OLD_ACTIONS)
        batch_op.drop_constraint(op.f("ck_start_attempts_outcome"), type_="check")
        batch_op.create_check_constraint(op.f("ck_start_attempts_outcome"), OLD_OUTCOMES)

    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_column("reclaims")
        batch_op.drop_column("claim_owner")
        batch_op.drop_column("claimed_at")

    with op.batch_alter_table("dispatcher_heartbeats", schema=None) as batch_op:
        batch_op.drop_column("running_since")

    op.drop_table("worker_heartbeats")
