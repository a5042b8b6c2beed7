"""Content store: articles, tags, followed feed sources, change counter.

Revision ID: 0001_content
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_content"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("slug", sa.String(200), nullable=False, unique=True),
        sa.Column("guid", sa.String(300), nullable=False, unique=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=False),
        sa.Column("body_source", sa.Text, nullable=False),
        sa.Column("source_format", sa.String(20), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("author_slug", sa.String(200), nullable=False),
        sa.Column("language", sa.String(20), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("image_url", sa.Text, nullable=False),
        sa.Column("image_caption", sa.Text, nullable=False),
        sa.Column("image_credit", sa.Text, nullable=False),
        sa.Column("image_type", sa.String(100), nullable=False),
        sa.Column("image_length", sa.BigInteger, nullable=False),
        sa.Column("image_width", sa.Integer, nullable=False),
        sa.Column("image_height", sa.Integer, nullable=False),
        sa.Column("canonical_url", sa.Text, nullable=False),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("external_id", sa.String(1000), nullable=True),
        sa.Column("editors", sa.JSON, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_articles_external_id", "articles", ["external_id"])
    op.create_index("ix_articles_status_published", "articles", ["status", "published_at", "id"])
    op.create_index(
        "ix_articles_author_published", "articles", ["author_slug", "status", "published_at", "id"]
    )
    op.create_index("ix_articles_origin", "articles", ["origin"])
    op.create_index("ix_articles_published", "articles", ["published_at", "id"])
    op.create_table(
        "article_tags",
        sa.Column(
            "article_id",
            sa.Integer,
            sa.ForeignKey("articles.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tag", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=True),
    )
    op.create_index(
        "ix_article_tags_tag_published",
        "article_tags",
        ["tag", "status", "published_at", "article_id"],
    )
    op.create_table(
        "feed_sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False, unique=True),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("last_modified", sa.Text, nullable=False),
        sa.Column("last_fetched_at", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_table(
        "site_state",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("site_state")
    op.drop_table("feed_sources")
    op.drop_index("ix_article_tags_tag_published", "article_tags")
    op.drop_table("article_tags")
    op.drop_table("articles")
