"""Accounts: users, login sessions, API tokens, login throttles, the audit log; admin indexes.

Revision ID: 0005_accounts
Revises: 0004_outbox_kinds
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_accounts"
down_revision = "0004_outbox_kinds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("email_key", sa.String(320), nullable=False, unique=True),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("totp_secret", sa.String(64), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_login_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "login_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_seen_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("user_agent", sa.String(300), nullable=False),
    )
    op.create_index("ix_login_sessions_user_id", "login_sessions", ["user_id"])
    op.create_index("ix_login_sessions_expires_at", "login_sessions", ["expires_at"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column(
            "user_id",
            sa.Integer,
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("last_used_at", sa.DateTime, nullable=True),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_api_tokens_name", "api_tokens", ["name"])
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start", sa.DateTime, nullable=False),
        sa.Column("locked_until", sa.DateTime, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        # Ids only grow, so the log pages by id without gaps or repeats.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target", "id"])
    # The editors' dashboard: growth by day, unsubscribes and bounces after an edition,
    # and active readers per zone, each read from an index instead of the whole table.
    op.create_index("ix_subscribers_created_at", "subscribers", ["created_at"])
    op.create_index("ix_subscribers_unsubscribed_at", "subscribers", ["unsubscribed_at"])
    op.create_index(
        "ix_subscribers_status_frequency_timezone",
        "subscribers",
        ["status", "frequency", "timezone"],
    )
    op.create_index("ix_bounce_events_created_at", "bounce_events", ["created_at"])
    op.create_index("ix_outbox_subscriber", "outbox", ["subscriber_id", "id"])
    # The articles list filtered by status or language, newest first.
    op.create_index("ix_articles_status_id", "articles", ["status", "id"])
    op.create_index("ix_articles_language_id", "articles", ["language", "id"])


def downgrade() -> None:
    op.drop_index("ix_articles_language_id", "articles")
    op.drop_index("ix_articles_status_id", "articles")
    op.drop_index("ix_outbox_subscriber", "outbox")
    op.drop_index("ix_bounce_events_created_at", "bounce_events")
    op.drop_index("ix_subscribers_status_frequency_timezone", "subscribers")
    op.drop_index("ix_subscribers_unsubscribed_at", "subscribers")
    op.drop_index("ix_subscribers_created_at", "subscribers")
    op.drop_index("ix_audit_log_target", "audit_log")
    op.drop_table("audit_log")
    op.drop_table("login_throttles")
    op.drop_index("ix_api_tokens_user_id", "api_tokens")
    op.drop_index("ix_api_tokens_name", "api_tokens")
    op.drop_table("api_tokens")
    op.drop_index("ix_login_sessions_expires_at", "login_sessions")
    op.drop_index("ix_login_sessions_user_id", "login_sessions")
    op.drop_table("login_sessions")
    op.drop_table("users")
