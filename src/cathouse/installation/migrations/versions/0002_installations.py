"""Installations, consent, master-key versions, data keys, credentials, API keys, webhook deliveries.

Revision ID: installation_0002
Revises: installation_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "installation_0002"
down_revision: str | None = "installation_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
S = "installation"
STATUSES = (
    "'pending', 'provisioning', 'active', 'failed', 'suspended', 'permissions_pending', "
    "'credentials_invalid', 'uninstalling', 'uninstalled'"
)


def _installation_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["installation_id"],
        [f"{S}.installations.id"],
        name=f"fk_{table}_installation_id_installations",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "installations",
        sa.Column("id", UUID, nullable=False),
        sa.Column("user_id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("version_id", UUID, nullable=False),
        sa.Column("target_version_id", UUID),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("status_reason", sa.String(500)),
        sa.Column("settings", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("activated_at", TS),
        sa.Column("uninstalled_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_installations"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_installations_user_id_users"),
        sa.ForeignKeyConstraint(["cat_id"], ["catalog.cats.id"], name="fk_installations_cat_id_cats"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["catalog.cat_versions.id"], name="fk_installations_version_id_cat_versions"
        ),
        sa.ForeignKeyConstraint(
            ["target_version_id"], ["catalog.cat_versions.id"], name="fk_installations_target_version_id_cat_versions"
        ),
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_installations_status"),
        schema=S,
    )
    op.create_index("ix_installations_user_id", "installations", ["user_id", "created_at"], schema=S)
    op.create_index("ix_installations_cat_id", "installations", ["cat_id", "status"], schema=S)
    # A name is unique among a user's installations that still exist.
    op.execute(
        f"CREATE UNIQUE INDEX uq_installations_user_name ON {S}.installations (user_id, lower(name)) "
        "WHERE status <> 'uninstalled'"
    )
    op.create_table(
        "installation_permissions",
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("permission", sa.String(64), nullable=False),
        sa.Column("granted_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("granted_by", UUID, nullable=False),
        sa.PrimaryKeyConstraint("installation_id", "permission", name="pk_installation_permissions"),
        _installation_fk("installation_permissions"),
        schema=S,
    )
    op.create_table(
        "master_key_versions",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("retired_at", TS),
        sa.PrimaryKeyConstraint("version", name="pk_master_key_versions"),
        schema=S,
    )
    op.create_table(
        "data_keys",
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary()),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("destroyed_at", TS),
        sa.PrimaryKeyConstraint("installation_id", name="pk_data_keys"),
        _installation_fk("data_keys"),
        sa.ForeignKeyConstraint(
            ["key_version"], [f"{S}.master_key_versions.version"], name="fk_data_keys_key_version_master_key_versions"
        ),
        sa.CheckConstraint("(wrapped_key IS NULL) = (destroyed_at IS NOT NULL)", name="ck_data_keys_destroyed"),
        schema=S,
    )
    op.create_index("ix_data_keys_key_version", "data_keys", ["key_version"], schema=S)
    op.create_table(
        "credentials",
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("set_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("installation_id", "field", name="pk_credentials"),
        _installation_fk("credentials"),
        schema=S,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", UUID, nullable=False),
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(24), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("created_by", UUID, nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("last_used_at", TS),
        sa.Column("revoked_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
        _installation_fk("api_keys"),
        schema=S,
    )
    op.create_index("ix_api_keys_installation_id", "api_keys", ["installation_id"], schema=S)
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", UUID, nullable=False),
        sa.Column("installation_id", UUID, nullable=False),
        sa.Column("cat_id", UUID, nullable=False),
        sa.Column("source_event_id", UUID, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("last_status", sa.SmallInteger()),
        sa.Column("last_latency_ms", sa.Integer()),
        sa.Column("last_error", sa.String(500)),
        sa.Column("response_excerpt", sa.String(500)),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", TS),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
        sa.UniqueConstraint("source_event_id", name="uq_webhook_deliveries_source_event_id"),
        _installation_fk("webhook_deliveries"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_webhook_deliveries_status"),
        schema=S,
    )
    op.create_index("ix_webhook_deliveries_installation_id", "webhook_deliveries", ["installation_id"], schema=S)
    op.create_index("ix_webhook_deliveries_cat_id", "webhook_deliveries", ["cat_id"], schema=S)
    op.execute(
        f"CREATE INDEX ix_webhook_deliveries_due ON {S}.webhook_deliveries (next_attempt_at) WHERE status = 'pending'"
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("delivery_id", UUID, nullable=False),
        sa.Column("attempted_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("status", sa.SmallInteger()),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(500)),
        sa.Column("response_excerpt", sa.String(500)),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [f"{S}.webhook_deliveries.id"],
            name="fk_webhook_attempts_delivery_id_webhook_deliveries",
            ondelete="CASCADE",
        ),
        schema=S,
    )
    op.create_index("ix_webhook_attempts_delivery_id", "webhook_attempts", ["delivery_id"], schema=S)


def downgrade() -> None:
    for table in (
        "webhook_attempts",
        "webhook_deliveries",
        "api_keys",
        "credentials",
        "data_keys",
        "master_key_versions",
        "installation_permissions",
        "installations",
    ):
        op.drop_table(table, schema=S)
