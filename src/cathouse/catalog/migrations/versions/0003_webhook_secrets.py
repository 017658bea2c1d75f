"""Per-cat webhook signing secrets.

Revision ID: catalog_0003
Revises: catalog_0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "catalog_0003"
down_revision: str | None = "catalog_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("cat_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_secrets"),
        sa.ForeignKeyConstraint(
            ["cat_id"], ["catalog.cats.id"], name="fk_webhook_secrets_cat_id_cats", ondelete="CASCADE"
        ),
        schema="catalog",
    )
    op.create_index("ix_webhook_secrets_cat_id", "webhook_secrets", ["cat_id"], schema="catalog")


def downgrade() -> None:
    op.drop_table("webhook_secrets", schema="catalog")
