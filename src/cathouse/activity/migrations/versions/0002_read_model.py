"""The read model: feed entries, the state and counters projected from events, applied event ids.

Revision ID: activity_0002
Revises: activity_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "activity_0002"
down_revision: str | None = "activity_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
S = "activity"
CAT_COUNTERS = (
    "installs_total",
    "installs_active",
    "rating_count",
    "rating_sum",
    "rating_1",
    "rating_2",
    "rating_3",
    "rating_4",
    "rating_5",
)


def upgrade() -> None:
    op.create_table(
        "applied_events",
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("applied_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_applied_events"),
        schema=S,
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("cat_id", UUID),
        sa.Column("user_id", UUID),
        sa.Column("audience", postgresql.ARRAY(UUID), server_default="{}", nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("anonymous", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_entries"),
        sa.UniqueConstraint("event_id", name="uq_entries_event_id"),
        schema=S,
    )
    # The three ways feeds are read, newest first: public, a cat's public ones, a user's own.
    op.create_index("ix_entries_public", "entries", ["id"], schema=S, postgresql_where=sa.text("public"))
    op.create_index("ix_entries_cat_id", "entries", ["cat_id", "id"], schema=S, postgresql_where=sa.text("public"))
    op.create_index("ix_entries_audience", "entries", ["audience"], schema=S, postgresql_using="gin")
    op.create_table(
        "cat_state",
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("publisher_id", UUID),
        sa.Column("status", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("cat_id", name="pk_cat_state"),
        schema=S,
    )
    op.create_table(
        "installation_state",
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("installation_id", name="pk_installation_state"),
        schema=S,
    )
    op.create_table(
        "review_state",
        sa.Column("review_id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("visible", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("review_id", name="pk_review_state"),
        schema=S,
    )
    op.create_table(
        "cat_stats",
        sa.Column("cat_id", UUID, nullable=False),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in CAT_COUNTERS),
        sa.PrimaryKeyConstraint("cat_id", name="pk_cat_stats"),
        schema=S,
    )
    op.create_table(
        "platform_stats",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_platform_stats"),
        schema=S,
    )


def downgrade() -> None:
    for table in (
        "platform_stats",
        "cat_stats",
        "review_state",
        "installation_state",
        "cat_state",
        "entries",
        "applied_events",
    ):
        op.drop_table(table, schema=S)
