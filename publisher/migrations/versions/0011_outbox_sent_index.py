"""PostgreSQL: a partial index of sent messages by time, for /metrics' send rate.

The send rate counts messages sent in the last minute. Without this index the only
way in was every sent row of the outbox (status = 'sent' on the claim index), half a
second per scrape at a million; with it, a range of the last minute. Partial: only
sent rows are indexed, and a row enters it once, when its result is written. SQLite
gets none: its planner, without statistics, would still pick the status index, and
its lists are the smaller ones.

Revision ID: 0011_outbox_sent_index
Revises: 0010_outbox_tallies
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_outbox_sent_index"
down_revision = "0010_outbox_tallies"
branch_labels = None
depends_on = None

_SENT = sa.text("status = 'sent'")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A big outbox: built without blocking the workers' writes.
        with op.get_context().autocommit_block():
            # An interrupted run leaves the index INVALID: build it again.
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_outbox_sent_at")
            op.create_index(
                "ix_outbox_sent_at",
                "outbox",
                ["sent_at"],
                postgresql_where=_SENT,
                postgresql_concurrently=True,
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_outbox_sent_at", "outbox")
