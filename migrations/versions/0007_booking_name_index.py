"""An index on the booking's name: the ops page finds a booking by its exact ref or name.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 12:36:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_streams_name", ["name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_streams_name")
