"""Recurring series: the ``series`` table, each booking's series (an occurrence), and series
events in the webhook outbox.

- ``series``: a rule at a wall time in a zone on one meeting, and how far ahead its
  occurrences were made (``made_until``).
- ``scheduled_streams.series_id`` / ``series_date`` / ``detached``: an occurrence, its local
  date, and whether it was changed on its own (then the series leaves it alone).
- ``webhook_events.series_id``, and ``stream_id`` nullable: a series event names its series,
  not a booking; the ``type`` check admits ``series.created|updated|cancelled``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 18:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_TYPES = (
    "booking.started", "booking.failed", "booking.missed", "booking.cancelled", "stream.live",
    "stream.not_live", "stream.errored", "stream.ended", "stream.stop_failed",
)  # fmt: skip
_NEW_TYPES = (*_OLD_TYPES, "series.created", "series.updated", "series.cancelled")


def _types(values: tuple[str, ...]) -> str:
    return f"type IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "series",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("meeting_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("video_width", sa.Integer(), nullable=True),
        sa.Column("video_height", sa.Integer(), nullable=True),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("exdates", sa.Text(), nullable=False),
        sa.Column("first_date", sa.Date(), nullable=False),
        sa.Column("wall_time", sa.String(length=5), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("start_window", sa.Float(), nullable=False),
        sa.Column("made_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('active', 'cancelled')", name=op.f("ck_series_state")),
        sa.CheckConstraint("duration > 0", name=op.f("ck_series_duration")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_series")),
        sa.UniqueConstraint("ref", name=op.f("uq_series_ref")),
    )
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.create_index("ix_series_state_made_until", ["state", "made_until"], unique=False)
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("series_date", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("detached", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            "ix_scheduled_streams_series_id_series_date",
            ["series_id", "series_date"],
            unique=False,
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_scheduled_streams_series_id_series"), "series", ["series_id"], ["id"]
        )
    _keep_lower_indexes()
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("series_id", sa.Uuid(), nullable=True))
        batch_op.alter_column("stream_id", existing_type=sa.Uuid(), nullable=True)
        batch_op.create_index("ix_webhook_events_series_id", ["series_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_webhook_events_series_id_series"), "series", ["series_id"], ["id"]
        )
        batch_op.drop_constraint(batch_op.f("ck_webhook_events_type"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_webhook_events_type"), _types(_NEW_TYPES))


def downgrade() -> None:
    op.execute("DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT d.id FROM "
               "webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
               "WHERE e.series_id IS NOT NULL)")  # fmt: skip
    op.execute("DELETE FROM webhook_deliveries WHERE event_id IN "
               "(SELECT id FROM webhook_events WHERE series_id IS NOT NULL)")  # fmt: skip
    op.execute("DELETE FROM webhook_events WHERE series_id IS NOT NULL")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_webhook_events_type"), type_="check")
        batch_op.create_check_constraint(batch_op.f("ck_webhook_events_type"), _types(_OLD_TYPES))
        batch_op.drop_constraint(
            batch_op.f("fk_webhook_events_series_id_series"), type_="foreignkey"
        )
        batch_op.drop_index("ix_webhook_events_series_id")
        batch_op.alter_column("stream_id", existing_type=sa.Uuid(), nullable=False)
        batch_op.drop_column("series_id")
    with op.batch_alter_table("scheduled_streams", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_scheduled_streams_series_id_series"), type_="foreignkey"
        )
        batch_op.drop_index("ix_scheduled_streams_series_id_series_date")
        batch_op.drop_column("detached")
        batch_op.drop_column("series_date")
        batch_op.drop_column("series_id")
    _keep_lower_indexes()
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_index("ix_series_state_made_until")
    op.drop_table("series")


def _keep_lower_indexes() -> None:
    """SQLite rebuilds scheduled_streams for the batch above and cannot carry over the
    expression indexes of 0010 (it cannot reflect them): made again, as 0010 made them."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_scheduled_streams_ref_lower ON scheduled_streams (lower(external_ref))"
    )
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_scheduled_streams_name_lower ON scheduled_streams (lower(name))"
    )
