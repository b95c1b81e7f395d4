"""scheduled_streams.start_window: the start window the caller booked, in seconds.

Existing rows get ``start_deadline - scheduled_at``, the window the code derived until now.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Seconds from scheduled_at to start_deadline, to the microsecond, as Python's
# timedelta.total_seconds() gives them. PostgreSQL subtracts timestamptz exactly. SQLite has
# no timestamp type: SQLAlchemy stores "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC, see
# models.base.UTCDateTime), and julianday() keeps only milliseconds, so whole seconds and
# microseconds are taken apart.
_WINDOW = {
    "postgresql": "EXTRACT(EPOCH FROM start_deadline - scheduled_at)",
    "sqlite": (
        "((CAST(strftime('%s', substr(start_deadline, 1, 19)) AS INTEGER)"
        " - CAST(strftime('%s', substr(scheduled_at, 1, 19)) AS INTEGER)) * 1000000"
        " + (CAST(substr(start_deadline || '.000000', 21, 6) AS INTEGER)"
        " - CAST(substr(scheduled_at || '.000000', 21, 6) AS INTEGER))) / 1000000.0"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_window", sa.Float(), nullable=True))
    window = _WINDOW[op.get_bind().dialect.name]
    op.execute(f"UPDATE scheduled_streams SET start_window = {window}")  # noqa: S608
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.alter_column("start_window", existing_type=sa.Float(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_column("start_window")
