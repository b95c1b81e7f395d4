"""What the ops page's overview and search read: indexes for finding a booking by a prefix of
its ref or name in any case, for the start lateness and deliveries of the last hour, and each
process's lane and current work beside its heartbeat.

- ``ix_scheduled_streams_ref_lower``, ``ix_scheduled_streams_name_lower``: ``lower()`` of each,
  with ``text_pattern_ops`` on PostgreSQL (a ``LIKE 'prefix%'`` then reads the index whatever
  the database's collation).
- ``ix_scheduled_streams_started_at`` on (started_at, scheduled_at): lateness of recent starts.
- ``ix_webhook_attempts_sent_at``: deliveries per minute.
- ``worker_heartbeats.lane`` and ``.doing``: NULL in rows from before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lower(column: str) -> sa.TextClause:
    pattern_ops = " text_pattern_ops" if op.get_bind().dialect.name == "postgresql" else ""
    return sa.text(f"lower({column}){pattern_ops}")


def upgrade() -> None:
    op.create_index("ix_scheduled_streams_ref_lower", "scheduled_streams", [_lower("external_ref")])
    op.create_index("ix_scheduled_streams_name_lower", "scheduled_streams", [_lower("name")])
    op.create_index(
        "ix_scheduled_streams_started_at", "scheduled_streams", ["started_at", "scheduled_at"]
    )
    op.create_index("ix_webhook_attempts_sent_at", "webhook_attempts", ["sent_at"])
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lane", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("doing", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeats", schema=None) as batch_op:
        batch_op.drop_column("doing")
        batch_op.drop_column("lane")
    op.drop_index("ix_webhook_attempts_sent_at", table_name="webhook_attempts")
    op.drop_index("ix_scheduled_streams_started_at", table_name="scheduled_streams")
    op.drop_index("ix_scheduled_streams_name_lower", table_name="scheduled_streams")
    op.drop_index("ix_scheduled_streams_ref_lower", table_name="scheduled_streams")
