"""The OAuth 2.0 client of each cat that declares ``credentials.type: oauth2``.

Revision ID: catalog_0009
Revises: catalog_0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "catalog_0009"
down_revision: str | None = "catalog_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("cat_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("cat_id", name="pk_oauth_clients"),
        sa.ForeignKeyConstraint(
            ["cat_id"], ["catalog.cats.id"], name="fk_oauth_clients_cat_id_cats", ondelete="CASCADE"
        ),
        schema="catalog",
    )


def downgrade() -> None:
    op.drop_table("oauth_clients", schema="catalog")
