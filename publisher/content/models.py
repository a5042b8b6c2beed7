"""The Article table and its companions (tags, followed sources, change counter)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from publisher.columns import UTCDateTime
from publisher.db import Base

DRAFT = "draft"
PUBLISHED = "published"


class Article(Base):
    """One article: its identity, content, media and publication state."""

    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(200), unique=True)
    # Never changes once assigned, even when slug or title change: feed readers key on it.
    guid: Mapped[str] = mapped_column(sa.String(300), unique=True)
    title: Mapped[str] = mapped_column(sa.Text)
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    body_html: Mapped[str] = mapped_column(sa.Text, default="")
    body_source: Mapped[str] = mapped_column(sa.Text, default="")
    source_format: Mapped[str] = mapped_column(sa.String(20), default="markdown")
    author: Mapped[str] = mapped_column(sa.String(200), default="")
    author_slug: Mapped[str] = mapped_column(sa.String(200), default="")
    language: Mapped[str] = mapped_column(sa.String(20))
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    image_url: Mapped[str] = mapped_column(sa.Text, default="")
    image_caption: Mapped[str] = mapped_column(sa.Text, default="")
    image_credit: Mapped[str] = mapped_column(sa.Text, default="")
    image_type: Mapped[str] = mapped_column(sa.String(100), default="")
    image_length: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    image_width: Mapped[int] = mapped_column(sa.Integer, default=0)
    image_height: Mapped[int] = mapped_column(sa.Integer, default=0)
    canonical_url: Mapped[str] = mapped_column(sa.Text, default="")
    source_url: Mapped[str] = mapped_column(sa.Text, default="")
    # Where the article came from: a file path, page URL or feed entry id; re-imports match on it.
    origin: Mapped[str] = mapped_column(sa.Text, default="")
    external_id: Mapped[str | None] = mapped_column(sa.String(1000), nullable=True, index=True)
    editors: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    extra: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default=DRAFT)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A draft with a publish_at is scheduled: the store publishes it once the time comes
    # (ArticleStore.publish_due); until then it is a draft everywhere readers look.
    publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(sa.String(64))

    tag_rows: Mapped[list[ArticleTag]] = relationship(
        back_populates="article", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        sa.Index("ix_articles_status_published", "status", "published_at", "id"),
        sa.Index("ix_articles_author_published", "author_slug", "status", "published_at", "id"),
        sa.Index("ix_articles_origin", "origin"),
        # `articles list` shows drafts too, newest first.
        sa.Index("ix_articles_published", "published_at", "id"),
        sa.Index("ix_articles_publish_at", "publish_at"),
    )

    @property
    def is_published(self) -> bool:
        """Tell whether readers can see this article."""
        return self.status == PUBLISHED


class ArticleTag(Base):
    """One (article, tag) pair, with the sort keys copied so tag feeds read one index."""

    __tablename__ = "article_tags"

    article_id: Mapped[int] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(20))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    article: Mapped[Article] = relationship(back_populates="tag_rows")

    __table_args__ = (
        sa.Index("ix_article_tags_tag_published", "tag", "status", "published_at", "article_id"),
    )


class TSVector(sa.types.UserDefinedType[str]):
    """PostgreSQL's ``tsvector``, named without importing PostgreSQL's dialect.

    The dialect costs every command on a SQLite site ~50 ms at start-up; the column only
    needs its name in SQL (no value converts: words are written by SQL functions).
    """

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        """Return the type's name in DDL and casts."""
        return "TSVECTOR"


class ArticleSearch(Base):
    """PostgreSQL's title index: an article's title words, with its sort keys copied.

    A narrow table so a search walks small rows whichever plan runs (GIN lookup then sort,
    or the date index filtered); SQLite uses an FTS5 table instead (content/search.py).
    """

    __tablename__ = "article_search"

    article_id: Mapped[int] = mapped_column(
        sa.ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(sa.String(20))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    words: Mapped[Any] = mapped_column(TSVector)

    __table_args__ = (
        # A GIN index (migration 0007 makes it). `postgresql_using="gin"` is left out
        # here: a dialect option makes SQLAlchemy import that dialect with the model.
        sa.Index("ix_article_search_words", "words"),
        sa.Index("ix_article_search_published", "published_at", "article_id"),
        sa.Index("ix_article_search_status_published", "status", "published_at", "article_id"),
    )


class FeedSource(Base):
    """A followed feed: its conditional-GET validators and last outcome."""

    __tablename__ = "feed_sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.Text, unique=True)
    etag: Mapped[str] = mapped_column(sa.Text, default="")
    last_modified: Mapped[str] = mapped_column(sa.Text, default="")
    last_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(sa.Text, default="")


class SiteState(Base):
    """Small named counters; ``content_version`` moves on every article change."""

    __tablename__ = "site_state"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger, default=0)
