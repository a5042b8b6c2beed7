"""Subscribers, suppression list and bounce events.

Revision ID: 0002_subscribers
Revises: 0001_content
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_subscribers"
down_revision = "0001_content"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("confirmed_at", sa.DateTime, nullable=True),
        sa.Column("unsubscribed_at", sa.DateTime, nullable=True),
        sa.Column("consent_source", sa.String(50), nullable=False),
        sa.Column("consent_ip", sa.String(64), nullable=False),
        sa.Column("consent_user_agent", sa.Text, nullable=False),
        sa.Column("consent_at", sa.DateTime, nullable=True),
        sa.Column("consent_text", sa.Text, nullable=False),
        sa.Column("confirmation_sent_at", sa.DateTime, nullable=True),
        sa.Column("soft_bounces", sa.Integer, nullable=False),
        sa.Column("hard_bounces", sa.Integer, nullable=False),
        sa.Column("last_bounce_at", sa.DateTime, nullable=True),
        sa.Column("last_digest_at", sa.DateTime, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_subscribers_status_frequency", "subscribers", ["status", "frequency", "id"])
    op.create_table(
        "suppressions",
        sa.Column("email_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("report_id", sa.String(300), nullable=True),
        sa.UniqueConstraint("email_hash", "report_id", name="uq_bounce_report"),
    )
    op.create_index("ix_bounce_events_email_hash", "bounce_events", ["email_hash"])


def downgrade() -> None:
    op.drop_table("bounce_events")
    op.drop_table("suppressions")
    op.drop_index("ix_subscribers_status_frequency", "subscribers")
    op.drop_table("subscribers")
