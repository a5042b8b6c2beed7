"""Keyset pages of articles for editors (drafts included), each read from an index."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.columns import UTCDateTime
from publisher.content.models import DRAFT, PUBLISHED, Article, ArticleTag

#: Where a page ends: (published_at, id); undated drafts have published_at None.
ArticleKey = tuple[datetime | None, int]


@dataclass(frozen=True)
class ArticleFilter:
    """What an editor narrowed the list to; None means any."""

    status: str | None = None
    language: str | None = None
    tag: str | None = None
    author_slug: str | None = None
    #: Case-insensitive substring of the title.
    text: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page(
    session: AsyncSession, wanted: ArticleFilter, limit: int, after: ArticleKey | None = None
) -> list[Article]:
    """Return up to ``limit`` articles after ``after``: undated drafts first, then newest first.

    Every query walks an index in order (no sort, no count). The tag and author indexes
    lead with the status, so without a status filter each status is read on its own and
    the two short lists are merged here.
    """
    if wanted.status is None and (wanted.tag is not None or wanted.author_slug is not None):
        found: list[Article] = []
        for status in (DRAFT, PUBLISHED):
            found.extend(await _page(session, replace(wanted, status=status), limit, after))
        found.sort(key=_order)
        return found[:limit]
    return await _page(session, wanted, limit, after)


def _order(article: Article) -> tuple[bool, float, int]:
    """Sort key of the list order: undated first, then newest first, ties by newest id."""
    when = article.published_at
    return (when is not None, -when.timestamp() if when is not None else 0.0, -article.id)


async def _page(
    session: AsyncSession, wanted: ArticleFilter, limit: int, after: ArticleKey | None
) -> list[Article]:
    if wanted.tag is not None:
        base = (
            sa.select(Article)
            .join(ArticleTag, ArticleTag.article_id == Article.id)
            .where(ArticleTag.tag == wanted.tag)
        )
        published, ident, status = ArticleTag.published_at, ArticleTag.article_id, ArticleTag.status
    else:
        base = sa.select(Article)
        published, ident, status = Article.published_at, Article.id, Article.status
    if wanted.author_slug is not None:
        base = base.where(Article.author_slug == wanted.author_slug)
    if wanted.status is not None:
        base = base.where(status == wanted.status)
    if wanted.language is not None:
        stored = sa.func.lower(Article.language)
        code = wanted.language.lower()
        base = base.where(sa.or_(stored == code, stored.like(f"{_escape_like(code)}-%", "\\")))
    if wanted.text:
        base = base.where(Article.title.ilike(f"%{_escape_like(wanted.text)}%", escape="\\"))
    found: list[Article] = []
    if after is None or after[0] is None:
        # Published articles always have a date (the store sets one): only drafts lack it.
        if wanted.status != PUBLISHED:
            undated = base.where(published.is_(None))
            if after is not None:
                undated = undated.where(ident < after[1])
            # All NULL: ordering on the date too keeps the walk in the index's order.
            undated = undated.order_by(published.desc(), ident.desc()).limit(limit)
            found = list(await session.scalars(undated))
        after = None
    if len(found) < limit:
        dated = base.where(published.is_not(None))
        if after is not None:
            dated = dated.where(
                sa.tuple_(published, ident)
                < sa.tuple_(sa.literal(after[0], UTCDateTime()), sa.literal(after[1]))
            )
        query = dated.order_by(published.desc(), ident.desc()).limit(limit - len(found))
        found.extend(await session.scalars(query))
    return found


def key_of(article: Article) -> ArticleKey:
    """Return the position of ``article`` in the list, for the next page's cursor."""
    return (article.published_at, article.id)
