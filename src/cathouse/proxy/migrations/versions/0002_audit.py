"""The audit log and the head of its hash chain.

Revision ID: proxy_0002
Revises: proxy_0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "proxy_0002"
down_revision: str | None = "proxy_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
S = "proxy"
# The chain's genesis: the first record's prev_hash (cathouse.proxy.audit.GENESIS_HASH).
GENESIS = "decode(repeat('00', 32), 'hex')"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("user_id", UUID),
        sa.Column("owner_id", UUID),
        sa.Column("installation_id", UUID),
        sa.Column("cat_id", UUID),
        sa.Column("api_key_id", UUID),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("upstream_status", sa.Integer()),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        schema=S,
    )
    op.create_index("ix_audit_log_owner_id", "audit_log", ["owner_id", "seq"], schema=S)
    op.create_index("ix_audit_log_installation_id", "audit_log", ["installation_id", "seq"], schema=S)
    op.create_index("ix_audit_log_at", "audit_log", ["at"], schema=S)
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("pruned_through_seq", sa.BigInteger(), nullable=False),
        sa.Column("pruned_through_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain"),
        # One chain, one head: every writer serializes on this row.
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_chain_single_row")),
        schema=S,
    )
    op.execute(
        f"INSERT INTO {S}.audit_chain (id, last_seq, last_hash, pruned_through_seq, pruned_through_hash) "
        f"VALUES (1, 0, {GENESIS}, 0, {GENESIS})"
    )


def downgrade() -> None:
    op.drop_table("audit_chain", schema=S)
    op.drop_table("audit_log", schema=S)
