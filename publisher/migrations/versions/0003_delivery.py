"""Delivery: editions, their variants, the outbox and persisted rate windows.

Revision ID: 0003_delivery
Revises: 0002_subscribers
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_delivery"
down_revision = "0002_subscribers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "editions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("period_key", sa.String(100), nullable=False, unique=True),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=True),
        sa.Column("window_end", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("paused_until", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_table(
        "edition_variants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "edition_id",
            sa.Integer,
            sa.ForeignKey("editions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("variant_key", sa.String(64), nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("article_ids", sa.JSON, nullable=False),
        sa.Column("more_count", sa.Integer, nullable=False),
        sa.UniqueConstraint("edition_id", "variant_key", name="uq_edition_variants_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "edition_id",
            sa.Integer,
            sa.ForeignKey("editions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("variant_id", sa.Integer, sa.ForeignKey("edition_variants.id"), nullable=False),
        sa.Column(
            "subscriber_id",
            sa.Integer,
            sa.ForeignKey("subscribers.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime, nullable=True),
        sa.Column("first_attempt_at", sa.DateTime, nullable=True),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("claimed_by", sa.String(100), nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=True),
        sa.Column("smtp_code", sa.Integer, nullable=True),
        sa.Column("smtp_response", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("window_end", sa.DateTime, nullable=False),
        sa.UniqueConstraint("edition_id", "subscriber_id", name="uq_outbox_edition_subscriber"),
    )
    op.create_index("ix_outbox_status_next", "outbox", ["status", "next_attempt_at", "id"])
    op.create_index("ix_outbox_edition_status", "outbox", ["edition_id", "status"])
    op.create_table(
        "rate_windows",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_index("ix_outbox_edition_status", "outbox")
    op.drop_index("ix_outbox_status_next", "outbox")
    op.drop_table("outbox")
    op.drop_table("edition_variants")
    op.drop_table("editions")
