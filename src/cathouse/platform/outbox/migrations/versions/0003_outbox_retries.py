"""Deliveries a consumer group failed, parked for that group alone.

Without a broker the relay hands each event to every worker's handlers in process. One group's
failing handler must not hold back the others, so an event a group could not take is marked
published all the same and parked here for that group; the group's later events of the same
aggregate queue behind it, and the relay retries the head of each queue with a backoff.

Revision ID: events_0003
Revises: events_0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "events_0003"
down_revision: str | None = "events_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retries",
        sa.Column("group_name", sa.String(64), nullable=False),
        sa.Column("event_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("aggregate_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.outbox.id"], name=op.f("fk_retries_event_id_outbox"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("group_name", "event_id", name=op.f("pk_retries")),
        schema="events",
    )
    op.create_index(
        "ix_retries_queue", "retries", ["group_name", "aggregate_type", "aggregate_id", "seq"], schema="events"
    )


def downgrade() -> None:
    op.drop_index("ix_retries_queue", table_name="retries", schema="events")
    op.drop_table("retries", schema="events")
