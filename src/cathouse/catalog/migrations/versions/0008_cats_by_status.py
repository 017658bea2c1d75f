"""Cats by status, in slug order: the admins' review queue without reading every cat.

The queue lists the cats waiting for review a page at a time by slug. Without this index
PostgreSQL walks the slug index past every published cat to find the few waiting: 74 ms a page
at 100,000 cats (bench/web.py), growing with the catalog.

Revision ID: catalog_0008
Revises: catalog_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "catalog_0008"
down_revision: str | None = "catalog_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cats_status_slug", "cats", ["status", "slug"], schema="catalog")


def downgrade() -> None:
    op.drop_index("ix_cats_status_slug", table_name="cats", schema="catalog")
