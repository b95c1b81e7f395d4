"""Webhook deliveries are leased like starts: the owner that took a claim up, and when it was
handed out.

- ``webhook_deliveries.claim_owner``: the heartbeat id of the process whose run confirmed the
  claim; a delivery whose sender was killed is taken back once that process stops beating,
  instead of waiting out its whole lease.
- ``webhook_deliveries.claimed_at``: when the claim was handed out; a claim no run took up
  within the pickup grace (a lost message) is sent again.

Rows from before have neither: a claim held then is taken back when its lease runs out, as
before.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-04 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_owner", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("claim_owner")
