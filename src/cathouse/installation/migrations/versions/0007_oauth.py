"""OAuth 2.0 installations: the ``authorizing`` status, sealed tokens and single-use states.

Revision ID: installation_0007
Revises: installation_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "installation_0007"
down_revision: str | None = "installation_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
S = "installation"
BEFORE = (
    "'pending', 'provisioning', 'active', 'failed', 'suspended', 'permissions_pending', "
    "'credentials_invalid', 'uninstalling', 'uninstalled'"
)
STATUSES = BEFORE + ", 'authorizing'"
CHECK = "ck_installations_ck_installations_status"  # as the naming convention spelled it in 0002


def _statuses(allowed: str) -> None:
    op.execute(f"ALTER TABLE {S}.installations DROP CONSTRAINT {CHECK}")
    op.execute(f"ALTER TABLE {S}.installations ADD CONSTRAINT {CHECK} CHECK (status IN ({allowed}))")


def _installation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["installation_id"],
        [f"{S}.installations.id"],
        name=f"fk_{table}_installation_id_installations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    _statuses(STATUSES)
    op.create_table(
        "oauth_tokens",
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("access_token", sa.LargeBinary(), nullable=False),
        sa.Column("refresh_token", sa.LargeBinary()),
        sa.Column("token_type", sa.String(32), nullable=False),
        sa.Column("scope", sa.Text()),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS),
        sa.Column("generation", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("installation_id", name="pk_oauth_tokens"),
        _installation_fk("oauth_tokens"),
        schema=S,
    )
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("sealed_verifier", sa.LargeBinary()),
        sa.Column("return_to", sa.String(500)),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS),
        sa.PrimaryKeyConstraint("state_hash", name="pk_oauth_states"),
        _installation_fk("oauth_states"),
        schema=S,
    )
    op.create_index("ix_oauth_states_installation_id", "oauth_states", ["installation_id"], schema=S)


def downgrade() -> None:
    op.drop_table("oauth_states", schema=S)
    op.drop_table("oauth_tokens", schema=S)
    op.execute(f"UPDATE {S}.installations SET status = 'failed' WHERE status = 'authorizing'")
    _statuses(BEFORE)
