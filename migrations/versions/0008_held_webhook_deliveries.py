"""Held webhook deliveries: a disabled endpoint's pending deliveries are parked.

Before, they stayed ``pending`` and every dispatch tick read past them (the claim skipped
rows of disabled endpoints one by one): an endpoint disabled with a day's backlog made every
tick dearer. Now disabling moves them to ``held`` and enabling moves them back, due as they
were. The upgrade parks what is pending for endpoints already disabled; the downgrade makes
held deliveries pending again (what the old code expects).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = "state IN ('pending', 'delivered', 'failed')"
NEW_STATES = "state IN ('pending', 'delivered', 'failed', 'held')"

deliveries = sa.table(
    "webhook_deliveries",
    sa.column("state", sa.String),
    sa.column("endpoint_id", sa.Uuid),
    sa.column("claim_token", sa.Uuid),
    sa.column("lease_expires_at", sa.DateTime),
)
endpoints = sa.table("webhook_endpoints", sa.column("id", sa.Uuid), sa.column("enabled"))


def _states(check: str) -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_webhook_deliveries_state"), type_="check")
        batch_op.create_check_constraint(op.f("ck_webhook_deliveries_state"), check)


def upgrade() -> None:
    _states(NEW_STATES)
    disabled = sa.select(endpoints.c.id).where(endpoints.c.enabled.is_(False))
    op.execute(
        deliveries.update()
        .where(deliveries.c.state == "pending", deliveries.c.endpoint_id.in_(disabled))
        .values(state="held", claim_token=None, lease_expires_at=None)
    )


def downgrade() -> None:
    op.execute(deliveries.update().where(deliveries.c.state == "held").values(state="pending"))
    _states(OLD_STATES)
