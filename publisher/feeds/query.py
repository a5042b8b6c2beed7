"""Read the articles feeds and pages need, newest first, through the (published_at, id) indexes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from publisher.columns import UTCDateTime
from publisher.content.models import PUBLISHED, Article, ArticleTag
from publisher.content.store import ArticleStore
from publisher.feeds.model import Scope

# Feeds never need the Markdown source, often the largest column.
_LOAD = (defer(Article.body_source), defer(Article.extra))


def _ordered(scope: Scope, *, ascending: bool) -> sa.Select[tuple[Article]]:
    if scope.kind == "tag":
        query = (
            sa.select(Article)
            .join(ArticleTag, ArticleTag.article_id == Article.id)
            .where(ArticleTag.tag == scope.key, ArticleTag.status == PUBLISHED)
        )
        keys = (ArticleTag.published_at, ArticleTag.article_id)
    else:
        query = sa.select(Article).where(Article.status == PUBLISHED)
        if scope.kind == "author":
            query = query.where(Article.author_slug == scope.key)
        keys = (Article.published_at, Article.id)
    order = [key.asc() if ascending else key.desc() for key in keys]
    return query.options(*_LOAD).order_by(*order)


async def newest(
    session: AsyncSession,
    scope: Scope,
    limit: int,
    *,
    at_or_before: tuple[datetime, int] | None = None,
) -> list[Article]:
    """Return up to ``limit`` articles of the scope, newest first, optionally from a keyset key."""
    query = _ordered(scope, ascending=False)
    if at_or_before is not None:
        keys = (
            (ArticleTag.published_at, ArticleTag.article_id)
            if scope.kind == "tag"
            else (Article.published_at, Article.id)
        )
        query = query.where(sa.tuple_(*keys) <= sa.tuple_(*_literal(at_or_before)))
    return list(await session.scalars(query.limit(limit)))


async def count(session: AsyncSession, scope: Scope) -> int:
    """Return how many published articles the scope has (for page counts of HTML lists)."""
    if scope.kind == "tag":
        query = sa.select(sa.func.count()).where(
            ArticleTag.tag == scope.key, ArticleTag.status == PUBLISHED
        )
    else:
        query = sa.select(sa.func.count()).where(Article.status == PUBLISHED)
        if scope.kind == "author":
            query = query.where(Article.author_slug == scope.key)
    return int(await session.scalar(query) or 0)


def _literal(key: tuple[datetime, int]) -> tuple[sa.ColumnElement[datetime], sa.ColumnElement[int]]:
    return sa.literal(key[0], UTCDateTime()), sa.literal(key[1])


async def scopes(session: AsyncSession, base_url: str) -> list[Scope]:
    """Return the site scope and one scope per tag and per author with published articles."""
    store = ArticleStore(session, base_url)
    found = [Scope()]
    found += [Scope("tag", tag) for tag, _count in await store.tags()]
    found += [Scope("author", slug) for slug, _name in await store.authors()]
    return found


async def author_name(session: AsyncSession, slug: str) -> str:
    """Return the display name of an author slug ("" when nobody has it)."""
    name = await session.scalar(
        sa.select(sa.func.max(Article.author)).where(
            Article.author_slug == slug, Article.status == PUBLISHED
        )
    )
    return str(name or "")


async def page(session: AsyncSession, scope: Scope, offset: int, limit: int) -> list[Article]:
    """Return ``limit`` articles of the scope after skipping the ``offset`` newest."""
    query = _ordered(scope, ascending=False).offset(offset).limit(limit)
    return list(await session.scalars(query))


async def publication_times(session: AsyncSession) -> list[datetime]:
    """Return the publication time of every published article (one narrow column)."""
    rows = await session.scalars(sa.select(Article.published_at).where(Article.status == PUBLISHED))
    return [when for when in rows if when is not None]


async def published_in(session: AsyncSession, start: datetime, end: datetime) -> list[Article]:
    """Return the articles published in [start, end), newest first."""
    query = (
        sa.select(Article)
        .options(*_LOAD)
        .where(
            Article.status == PUBLISHED,
            Article.published_at >= sa.literal(start, UTCDateTime()),
            Article.published_at < sa.literal(end, UTCDateTime()),
        )
        .order_by(Article.published_at.desc(), Article.id.desc())
    )
    return list(await session.scalars(query))
