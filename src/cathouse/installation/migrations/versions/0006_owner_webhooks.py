"""The owner's own notification webhook, and deliveries that go to it as well as to cats.

Revision ID: installation_0006
Revises: installation_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "installation_0006"
down_revision: str | None = "installation_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
S = "installation"


def upgrade() -> None:
    # The services' role gets its privileges on the new table from `cathouse migrate`'s grants
    # (platform.roles), which run after every migration, as for every earlier table.
    op.create_table(
        "owner_webhooks",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_owner_webhooks"),
        sa.ForeignKeyConstraint(["user_id"], ["auth.users.id"], name="fk_owner_webhooks_user_id_users"),
        schema=S,
    )
    # Every delivery made so far went to a cat.
    op.add_column(
        "webhook_deliveries",
        sa.Column("recipient", sa.String(8), server_default="cat", nullable=False),
        schema=S,
    )
    # op.f: the name as written, not run through the naming convention a second time.
    op.create_check_constraint(
        op.f("ck_webhook_deliveries_recipient"), "webhook_deliveries", "recipient IN ('cat', 'owner')", schema=S
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM {S}.webhook_deliveries WHERE recipient = 'owner'")
    op.drop_constraint(op.f("ck_webhook_deliveries_recipient"), "webhook_deliveries", schema=S)
    op.drop_column("webhook_deliveries", "recipient", schema=S)
    op.drop_table("owner_webhooks", schema=S)
