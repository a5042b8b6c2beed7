"""Outbox tallies: each edition's messages by status, kept by triggers as delta rows.

Counting a million-row edition by status walks a million index entries, and during a
send, whose updates clear PostgreSQL's visibility map, their heap rows too: half a
second for every `digest status`, editions page or API read. ``outbox_tallies`` holds
signed deltas (edition, status, messages) that sum to the same counts. Triggers write
them, so every writer is counted: the store's statements, SQLite's direct-driver fast
path, workers still running the previous release during an upgrade. Deltas, not one
counter row per (edition, status): two workers would queue on that row's lock, and a
claim and a result touching two counters in opposite orders would deadlock. Workers
fold the deltas back into one row per status every so often (store.compact_tallies).

Revision ID: 0010_outbox_tallies
Revises: 0009_announcements
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_outbox_tallies"
down_revision = "0009_announcements"
branch_labels = None
depends_on = None

# SQLite has row triggers only: one or two delta rows per changed row. A cascade from a
# deleted edition deletes its tallies too, so a deleted row of a gone edition adds none.
_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox
    WHEN NEW.edition_id IS NOT NULL
    BEGIN
        INSERT INTO outbox_tallies (edition_id, status, messages)
        VALUES (NEW.edition_id, NEW.status, 1);
    END
    """,
    """
    CREATE TRIGGER outbox_tally_update AFTER UPDATE OF status, edition_id ON outbox
    WHEN OLD.status IS NOT NEW.status OR OLD.edition_id IS NOT NEW.edition_id
    BEGIN
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT OLD.edition_id, OLD.status, -1 WHERE OLD.edition_id IS NOT NULL;
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT NEW.edition_id, NEW.status, 1 WHERE NEW.edition_id IS NOT NULL;
    END
    """,
    """
    CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox
    WHEN OLD.edition_id IS NOT NULL
    BEGIN
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT OLD.edition_id, OLD.status, -1
        WHERE EXISTS (SELECT 1 FROM editions WHERE id = OLD.edition_id);
    END
    """,
)

# PostgreSQL: statement triggers over the transition tables, one grouped insert per
# statement (an enqueue of a million rows adds one delta row, a claim of 200 two).
_POSTGRES_FUNCTION = """
CREATE FUNCTION outbox_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT edition_id, status, count(*) FROM new_rows
        WHERE edition_id IS NOT NULL GROUP BY edition_id, status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT edition_id, status, -count(*) FROM old_rows
        WHERE edition_id IN (SELECT id FROM editions) GROUP BY edition_id, status;
    ELSE
        INSERT INTO outbox_tallies (edition_id, status, messages)
        SELECT edition_id, status, sum(change) FROM (
            SELECT edition_id, status, -1 AS change FROM old_rows
            WHERE edition_id IS NOT NULL
            UNION ALL
            SELECT edition_id, status, 1 FROM new_rows WHERE edition_id IS NOT NULL
        ) AS changes
        GROUP BY edition_id, status HAVING sum(change) <> 0;
    END IF;
    RETURN NULL;
END $$
"""

_POSTGRES_TRIGGERS = (
    _POSTGRES_FUNCTION,
    """
    CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION outbox_tally()
    """,
    """
    CREATE TRIGGER outbox_tally_update AFTER UPDATE ON outbox
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_tally()
    """,
    """
    CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION outbox_tally()
    """,
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "outbox_tallies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "edition_id",
            sa.Integer,
            sa.ForeignKey("editions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("messages", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_outbox_tallies_edition", "outbox_tallies", ["edition_id"])
    # Triggers first, then the rows already there: on PostgreSQL creating a trigger locks
    # out the outbox's writers until this transaction commits, so nothing falls between.
    for statement in _SQLITE_TRIGGERS if sqlite else _POSTGRES_TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO outbox_tallies (edition_id, status, messages) "
        "SELECT edition_id, status, count(*) FROM outbox "
        "WHERE edition_id IS NOT NULL GROUP BY edition_id, status"
    )


def downgrade() -> None:
    for name in ("insert", "update", "delete"):
        if op.get_bind().dialect.name == "sqlite":
            op.execute(f"DROP TRIGGER outbox_tally_{name}")
        else:
            op.execute(f"DROP TRIGGER outbox_tally_{name} ON outbox")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION outbox_tally()")
    op.drop_index("ix_outbox_tallies_edition", "outbox_tallies")
    op.drop_table("outbox_tallies")
