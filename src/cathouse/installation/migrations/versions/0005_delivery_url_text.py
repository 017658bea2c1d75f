"""A delivery's URL is the cat version's webhook URL, which the catalog now stores as text.

Revision ID: installation_0005
Revises: installation_0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "installation_0005"
down_revision: str | None = "installation_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("webhook_deliveries", "url", type_=sa.Text(), schema="installation")


def downgrade() -> None:
    op.alter_column("webhook_deliveries", "url", type_=sa.String(2048), schema="installation")
