"""NOTIFY the relay when events commit, so it need not poll hard.

One notification per inserting statement (not per row), on ``cathouse_outbox`` with an empty
payload: the relay only needs to know there is something to claim, and PostgreSQL delivers it
at commit, never for a transaction that rolls back.

Revision ID: events_0002
Revises: events_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "events_0002"
down_revision: str | None = "events_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION events.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('cathouse_outbox', '');
            RETURN NULL;
        END
        $$
    """)
    op.execute("""
        CREATE TRIGGER outbox_notify AFTER INSERT ON events.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION events.notify_outbox()
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON events.outbox")
    op.execute("DROP FUNCTION IF EXISTS events.notify_outbox()")
