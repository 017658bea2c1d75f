"""Number webhook deliveries, so one installation's leave one at a time, in order.

Revision ID: installation_0003
Revises: installation_0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "installation_0003"
down_revision: str | None = "installation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "installation"


def upgrade() -> None:
    table = f"{S}.webhook_deliveries"
    # Rows already there are numbered in their order of creation (a table scan's order is not
    # that once rows have been updated), and new ones after them.
    op.add_column("webhook_deliveries", sa.Column("seq", sa.BigInteger()), schema=S)
    op.execute(
        f"UPDATE {table} d SET seq = o.n FROM "
        f"(SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM {table}) o WHERE d.id = o.id"
    )
    op.execute(f"ALTER TABLE {table} ALTER COLUMN seq SET NOT NULL")
    op.execute(f"ALTER TABLE {table} ALTER COLUMN seq ADD GENERATED ALWAYS AS IDENTITY")
    op.execute(
        f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), coalesce(max(seq), 0) + 1, false) FROM {table}"
    )
    # What decides whether a delivery must wait: an earlier pending one of the same installation.
    op.execute(
        f"CREATE INDEX ix_webhook_deliveries_pending_order ON {table} (installation_id, seq) WHERE status = 'pending'"
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending_order", "webhook_deliveries", schema=S)
    op.drop_column("webhook_deliveries", "seq", schema=S)
