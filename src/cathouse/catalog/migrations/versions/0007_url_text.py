"""URLs are stored as normalised, which may be longer than they were sent.

The API limits a URL as sent (2,048 characters, as its schema says); the stored form adds a
trailing slash to an empty path and percent-encodes what needs it, so a limit on the column
turned a valid request into a 500. Changing varchar to text rewrites no rows.

Revision ID: catalog_0007
Revises: catalog_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0007"
down_revision: str | None = "catalog_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {"cats": ("homepage", "support_url"), "cat_versions": ("base_url", "webhook_url")}


def upgrade() -> None:
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text(), schema="catalog")


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.String(2048), schema="catalog")
