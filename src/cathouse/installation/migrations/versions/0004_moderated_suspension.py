"""Remember who suspended an installation: what an admin suspended, its owner cannot resume.

Revision ID: installation_0004
Revises: installation_0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "installation_0004"
down_revision: str | None = "installation_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "installation"


def upgrade() -> None:
    # Installations suspended before this revision count as their owner's own pause.
    op.add_column(
        "installations",
        sa.Column("suspended_by_moderator", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.drop_column("installations", "suspended_by_moderator", schema=S)
