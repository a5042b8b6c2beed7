"""Articles scheduled to be published at a given time.

Revision ID: 0008_publish_at
Revises: 0007_search
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_publish_at"
down_revision = "0007_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Naive UTC, like every other time column (publisher.columns.UTCDateTime).
    op.add_column("articles", sa.Column("publish_at", sa.DateTime, nullable=True))
    # The due check reads the earliest scheduled time from this index, never the table.
    op.create_index("ix_articles_publish_at", "articles", ["publish_at"])


def downgrade() -> None:
    op.drop_index("ix_articles_publish_at", "articles")
    # Not batch mode: recreating the table would drop 0007's search triggers on it.
    op.drop_column("articles", "publish_at")
