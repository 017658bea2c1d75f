"""Revocations every process applies to access tokens: one row per account whose tokens changed.

``users.token_version`` counts the changes that affect an account's tokens (roles, disabled,
sessions ended); access tokens carry it as ``ver``. A row of ``auth.revocations`` says, as of
``version``, the account's roles, whether it is disabled, and below which ``ver`` its tokens
are refused (except those of ``kept_session``, the session that changed the password). Every
write NOTIFYs ``cathouse_revocations`` (delivered at commit); processes also read the rows
changed lately on a timer, by ``changed_at``.

Revision ID: auth_0003
Revises: auth_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "auth_0003"
down_revision: str | None = "auth_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False), schema="auth")
    # Who rotated a refresh token (a hash of User-Agent and address), for the grace of a retry.
    op.add_column("refresh_tokens", sa.Column("used_by", sa.LargeBinary(32)), schema="auth")
    op.create_table(
        "revocations",
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("auth.users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("roles", postgresql.ARRAY(sa.String(16)), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("valid_from", sa.Integer(), nullable=False),
        sa.Column("kept_session", postgresql.UUID(as_uuid=True)),
        sa.Column(
            "changed_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        schema="auth",
    )
    op.create_index("ix_revocations_changed_at", "revocations", ["changed_at"], schema="auth")
    op.execute("""
        CREATE FUNCTION auth.notify_revocations() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cathouse_revocations', '');
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER revocations_notify AFTER INSERT OR UPDATE ON auth.revocations
        FOR EACH STATEMENT EXECUTE FUNCTION auth.notify_revocations()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS revocations_notify ON auth.revocations")
    op.execute("DROP FUNCTION IF EXISTS auth.notify_revocations()")
    op.drop_table("revocations", schema="auth")
    op.drop_column("refresh_tokens", "used_by", schema="auth")
    op.drop_column("users", "token_version", schema="auth")
