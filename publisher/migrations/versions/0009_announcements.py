"""Announcements: an editor's one-off emails, sent through the editions and the outbox.

Revision ID: 0009_announcements
Revises: 0007_search
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_announcements"
down_revision = "0007_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        # "announcement" is the frequency of an announcement's edition; SQLite does not
        # enforce VARCHAR lengths, PostgreSQL does.
        op.alter_column("editions", "frequency", type_=sa.String(20), existing_type=sa.String(10))
    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body_markdown", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("audience", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("send_mode", sa.String(10), nullable=False),
        sa.Column("send_date", sa.Date, nullable=True),
        sa.Column("send_time", sa.String(5), nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("queued_at", sa.DateTime, nullable=True),
        sa.Column("zones_queued", sa.JSON, nullable=False),
        sa.Column("enqueued_at", sa.DateTime, nullable=True),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.Column(
            "edition_id",
            sa.Integer,
            sa.ForeignKey("editions.id", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    op.create_index("ix_announcements_status", "announcements", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_announcements_status", "announcements")
    op.drop_table("announcements")
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("editions", "frequency", type_=sa.String(10), existing_type=sa.String(20))
