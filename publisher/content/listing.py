"""Keyset pages of articles for editors (drafts included), each read from an index.

The admin list and the API list both build their queries here, title search included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.columns import UTCDateTime
from publisher.content import search
from publisher.content.models import DRAFT, PUBLISHED, Article, ArticleSearch, ArticleTag
from publisher.content.search import SearchError, TitleQuery

__all__ = ["ArticleFilter", "ArticleKey", "SearchError", "key_of", "page"]

#: Where a page ends: (published_at, id); undated drafts have published_at None.
ArticleKey = tuple[datetime | None, int]


@dataclass(frozen=True)
class ArticleFilter:
    """What an editor narrowed the list to; None means any."""

    status: str | None = None
    language: str | None = None
    tag: str | None = None
    author_slug: str | None = None
    #: Search words: each must begin a word of the title (content/search.py).
    text: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page(
    session: AsyncSession, wanted: ArticleFilter, limit: int, after: ArticleKey | None = None
) -> list[Article]:
    """Return up to ``limit`` articles after ``after``: undated drafts first, then newest first.

    Every query walks an index in order (no sort, no count). The tag and author indexes
    lead with the status, so without a status filter each status is read on its own and
    the two short lists are merged here. A title search (``wanted.text``) is matched by
    the full-text index; raises SearchError when the text breaks the search limits.
    """
    if wanted.text is not None:
        TitleQuery.parse(wanted.text)  # fail before any query runs
        # A search walks the title index's order; a tag is then one key probe per row,
        # which spares asking the full-text index once per status.
    elif wanted.status is None and (wanted.tag is not None or wanted.author_slug is not None):
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
    title = TitleQuery.parse(wanted.text) if wanted.text is not None else None
    sqlite = search.is_sqlite_session(session)
    if wanted.tag is not None and title is None:
        base = (
            sa.select(Article)
            .join(ArticleTag, ArticleTag.article_id == Article.id)
            .where(ArticleTag.tag == wanted.tag)
        )
        published, ident, status = ArticleTag.published_at, ArticleTag.article_id, ArticleTag.status
    elif title is not None and not sqlite:
        # PostgreSQL: walk the narrow search table (its GIN index or its own date index,
        # whichever the planner prefers; both read small rows), then fetch the page.
        base = (
            sa.select(Article)
            .join(ArticleSearch, ArticleSearch.article_id == Article.id)
            .where(search.postgres_condition(title))
        )
        published, ident = ArticleSearch.published_at, ArticleSearch.article_id
        status = ArticleSearch.status
    else:
        base = sa.select(Article)
        published, ident, status = Article.published_at, Article.id, Article.status
    if title is not None and sqlite:
        # The FTS5 index gives the matching ids once; "+ 0" keeps SQLite walking the date
        # index in list order and probing that set, instead of sorting every match.
        base = base.where((ident + 0).in_(search.sqlite_matches(title)))
    if title is not None and wanted.tag is not None:
        base = base.where(
            sa.exists().where(ArticleTag.article_id == Article.id, ArticleTag.tag == wanted.tag)
        )
    if wanted.author_slug is not None:
        base = base.where(Article.author_slug == wanted.author_slug)
    if wanted.status is not None:
        base = base.where(status == wanted.status)
    if wanted.language is not None:
        stored = sa.func.lower(Article.language)
        code = wanted.language.lower()
        base = base.where(sa.or_(stored == code, stored.like(f"{_escape_like(code)}-%", "\\")))
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
