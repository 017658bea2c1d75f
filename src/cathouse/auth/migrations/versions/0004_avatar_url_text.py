"""An avatar URL is stored as normalised, which may be longer than it was sent.

The API limits the URL as sent (2,048 characters, as its schema says); the stored form adds a
trailing slash to an empty path and percent-encodes what needs it, so a limit on the column
turned a valid request into a 500. Changing varchar to text rewrites no rows.

Revision ID: auth_0004
Revises: auth_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "auth_0004"
down_revision: str | None = "auth_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("users", "avatar_url", type_=sa.Text(), schema="auth")


def downgrade() -> None:
    op.alter_column("users", "avatar_url", type_=sa.String(2048), schema="auth")
