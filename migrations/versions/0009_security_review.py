"""What a security review asked of the schema: who registered a webhook endpoint, ended ops
page sessions, and the digest of each provider delivery's signed body.

- ``webhook_endpoints.api_key_id``: an endpoint is managed by the key that registered it (or
  ``ops``); endpoints from before have none, so only ``ops`` manages them.
- ``ended_ops_sessions``: signing out refuses that session's cookie from then on.
- ``provider_webhooks.body_sha256`` (unique): a signed body replayed under a fresh ``rtk-uuid``
  (the header is not signed) is a duplicate. Rows from before have none.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ended_ops_sessions",
        sa.Column("session_id", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_ended_ops_sessions_api_key_id_api_keys"),
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_ended_ops_sessions")),
    )
    with op.batch_alter_table("ended_ops_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_ended_ops_sessions_expires_at", ["expires_at"], unique=False)
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("api_key_id", sa.Uuid(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_webhook_endpoints_api_key_id"), ["api_key_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_webhook_endpoints_api_key_id_api_keys"),
            "api_keys",
            ["api_key_id"],
            ["id"],
        )
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_sha256", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_provider_webhooks_body_sha256"), ["body_sha256"]
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_webhooks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_provider_webhooks_body_sha256"), type_="unique")
        batch_op.drop_column("body_sha256")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_webhook_endpoints_api_key_id_api_keys"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_api_key_id"))
        batch_op.drop_column("api_key_id")
    with op.batch_alter_table("ended_ops_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_ended_ops_sessions_expires_at")
    op.drop_table("ended_ops_sessions")
