"""Article store: the one idempotent write path and the indexed read queries."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.columns import UTCDateTime
from publisher.content import search
from publisher.content.models import (
    DRAFT,
    PUBLISHED,
    Article,
    ArticleTag,
    SiteState,
)
from publisher.content.sanitize import (
    absolute_url,
    clean_line,
    first_paragraph_text,
    sanitize_html,
)
from publisher.content.slugs import is_slug, slugify, tag_slug
from publisher.errors import InputError, NotFoundError

CONTENT_VERSION = "content_version"
#: Bodies longer than this are sanitized in a worker thread, so a server storing one
#: (the future admin app or API) keeps answering other requests meanwhile.
OFF_LOOP_CHARS = 64 * 1024

Action = Literal["created", "updated", "unchanged"]


@dataclass
class ArticleDraft:
    """What an importer produces: an article before sanitizing and storing."""

    title: str
    body_html: str
    language: str
    body_source: str = ""
    source_format: str = "markdown"
    slug: str = ""
    summary: str = ""
    author: str = ""
    tags: list[str] = field(default_factory=list)
    image_url: str = ""
    image_caption: str = ""
    image_credit: str = ""
    image_type: str = ""
    image_length: int = 0
    image_width: int = 0
    image_height: int = 0
    canonical_url: str = ""
    source_url: str = ""
    origin: str = ""
    external_id: str | None = None
    editors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    draft: bool = False
    published_at: datetime | None = None
    updated_at: datetime | None = None
    #: For a draft: when the store is to publish it (None: not scheduled).
    publish_at: datetime | None = None


@dataclass(frozen=True)
class UpsertResult:
    """The outcome of storing one draft."""

    action: Action
    article: Article


def normalize_tags(tags: Sequence[str]) -> list[str]:
    """Slugify, de-duplicate and keep the order of tags."""
    seen: dict[str, None] = {}
    for tag in tags:
        slug = tag_slug(str(tag))
        if str(tag).strip():
            seen.setdefault(slug, None)
    return list(seen)


def make_guid(base_url: str, slug: str, when: datetime) -> str:
    """Mint a tag: URI (RFC 4151) that stays the article's id for life."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{when:%Y-%m-%d}:{slug}"


def _hash(fields: dict[str, Any]) -> str:
    payload = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ArticleStore:
    """Read and write articles through one session."""

    def __init__(self, session: AsyncSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url

    async def upsert(self, draft: ArticleDraft, now: datetime) -> UpsertResult:
        """Create or update the article for ``draft``; touch nothing when it is unchanged."""
        title = clean_line(draft.title)
        if not title:
            raise InputError("missing title")
        slug = draft.slug.strip() or slugify(title)
        if not is_slug(slug):
            raise InputError(f"invalid slug {slug!r} (use lower-case letters, digits and hyphens)")
        if len(draft.body_html) > OFF_LOOP_CHARS:
            body_html = await asyncio.to_thread(sanitize_html, draft.body_html, self.base_url)
        else:
            body_html = sanitize_html(draft.body_html, self.base_url)
        summary = clean_line(draft.summary) or first_paragraph_text(body_html)
        fields: dict[str, Any] = {
            "slug": slug,
            "title": title,
            "summary": summary,
            "body_html": body_html,
            "body_source": draft.body_source,
            "source_format": draft.source_format,
            "author": clean_line(draft.author),
            "author_slug": slugify(draft.author) if clean_line(draft.author) else "",
            "language": draft.language,
            "tags": normalize_tags(draft.tags),
            "image_url": absolute_url(draft.image_url, self.base_url),
            "image_caption": clean_line(draft.image_caption),
            "image_credit": clean_line(draft.image_credit),
            "image_type": draft.image_type,
            "image_length": draft.image_length,
            "image_width": draft.image_width,
            "image_height": draft.image_height,
            "canonical_url": absolute_url(draft.canonical_url, self.base_url),
            "source_url": draft.source_url.strip(),
            "editors": [clean_line(e) for e in draft.editors if clean_line(e)],
            "extra": draft.extra,
            "status": DRAFT if draft.draft else PUBLISHED,
            "published_at": draft.published_at,
            # Only a draft waits for a time; publishing (or unscheduling) clears it.
            "publish_at": (
                draft.publish_at.astimezone(UTC) if draft.draft and draft.publish_at else None
            ),
        }
        existing = await self._match(draft, slug)
        if existing is not None and not draft.slug.strip():
            # A derived slug stays put when the title is edited, so links keep working.
            fields["slug"] = existing.slug
        content_hash = _hash(fields)
        if existing is None:
            published_at = draft.published_at or (None if draft.draft else now)
            article = Article(
                **{**fields, "published_at": published_at},
                guid=make_guid(self.base_url, slug, published_at or now),
                origin=draft.origin,
                external_id=draft.external_id,
                updated_at=draft.updated_at or published_at or now,
                created_at=now,
                content_hash=content_hash,
            )
            self.session.add(article)
            await self.session.flush()
            await self._sync_tags(article, fresh=True)
            await search.index_article(self.session, article, fresh=True)
            await self.bump_version()
            return UpsertResult("created", article)
        if existing.content_hash == content_hash and existing.origin == draft.origin:
            return UpsertResult("unchanged", existing)
        if fields["published_at"] is None:
            # An undated re-import keeps the first publication time.
            fields["published_at"] = existing.published_at or (None if draft.draft else now)
        for name, value in fields.items():
            setattr(existing, name, value)
        existing.origin = draft.origin
        existing.external_id = draft.external_id
        existing.updated_at = draft.updated_at or now
        existing.content_hash = content_hash
        await self.session.flush()
        await self._sync_tags(existing)
        await search.index_article(self.session, existing)
        await self.bump_version()
        return UpsertResult("updated", existing)

    async def _match(self, draft: ArticleDraft, slug: str) -> Article | None:
        if draft.external_id:
            found = await self.session.scalar(
                sa.select(Article).where(Article.external_id == draft.external_id)
            )
            if found is not None:
                return found
        condition = Article.slug == slug
        if draft.origin and not draft.external_id:
            # The same file or page under a new title or slug is the same article (same
            # guid); one query fetches both candidates. Feed entries match on external_id.
            condition = sa.or_(condition, Article.origin == draft.origin)
        candidates = list(await self.session.scalars(sa.select(Article).where(condition)))
        found = next((a for a in candidates if a.slug == slug), None)
        if found is None:
            return candidates[0] if candidates else None
        if found.origin and draft.origin and found.origin != draft.origin:
            # A file that moved may take its slug along; a different live file may not.
            still_there = not found.origin.startswith(("http:", "https:")) and os.path.exists(
                found.origin
            )
            if still_there or draft.external_id or found.external_id:
                raise InputError(f"slug {slug!r} is already used by {found.origin}")
        return found

    async def _sync_tags(self, article: Article, *, fresh: bool = False) -> None:
        if not fresh:  # a new article has no tag rows yet: skip a round trip per import
            await self.session.execute(
                sa.delete(ArticleTag).where(ArticleTag.article_id == article.id)
            )
        if article.tags:
            await self.session.execute(
                sa.insert(ArticleTag),
                [
                    {
                        "article_id": article.id,
                        "tag": tag,
                        "status": article.status,
                        "published_at": article.published_at,
                    }
                    for tag in article.tags
                ],
            )

    async def next_publish_at(self) -> datetime | None:
        """Return the earliest time a scheduled draft is due (read from its index)."""
        found: datetime | None = await self.session.scalar(
            sa.select(sa.func.min(Article.publish_at))
        )
        return found

    async def publish_due(self, now: datetime) -> list[Article]:
        """Publish every scheduled draft whose time has come, dated at its scheduled time.

        The article is a draft until this runs (no feed, page or digest sees it); it
        then reads as published at ``publish_at``, so a late run dates it as an on-time
        one would have. Safe to run from several processes at once: a second run finds
        nothing due, or writes the same values.
        """
        due = list(
            await self.session.scalars(
                sa.select(Article)
                .where(Article.publish_at <= sa.literal(now, UTCDateTime()))
                .order_by(Article.publish_at, Article.id)
            )
        )
        for article in due:
            when = article.publish_at
            assert when is not None  # selected by publish_at <= now
            article.status = PUBLISHED
            article.published_at = when
            article.publish_at = None
            article.updated_at = max(article.updated_at, when)
            # Changed outside upsert: an empty hash makes the next upsert of it write.
            article.content_hash = ""
            await self.session.flush()
            await self._sync_tags(article)
            # PostgreSQL's title index keeps its own copy of the status and date.
            await search.index_article(self.session, article)
        if due:
            await self.bump_version()
        return due

    async def bump_version(self) -> None:
        """Move the content version so caches (feeds, pages) know to rebuild."""
        updated = await self.session.execute(
            sa.update(SiteState)
            .where(SiteState.key == CONTENT_VERSION)
            .values(value=SiteState.value + 1)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            self.session.add(SiteState(key=CONTENT_VERSION, value=1))
            await self.session.flush()

    async def version(self) -> int:
        """Return the current content version (0 for an empty store)."""
        value = await self.session.scalar(
            sa.select(SiteState.value).where(SiteState.key == CONTENT_VERSION)
        )
        return int(value or 0)

    async def get(self, slug: str) -> Article | None:
        """Return the article with this slug, if any."""
        found: Article | None = await self.session.scalar(
            sa.select(Article).where(Article.slug == slug)
        )
        return found

    async def require(self, slug: str) -> Article:
        """Return the article with this slug or raise NotFoundError."""
        article = await self.get(slug)
        if article is None:
            raise NotFoundError(f"no article with slug {slug!r}")
        return article

    async def remove(self, slug: str) -> Article:
        """Delete an article (its tags go with it)."""
        article = await self.require(slug)
        await self.session.delete(article)
        await self.session.flush()
        await self.bump_version()
        return article

    async def latest(
        self,
        limit: int,
        *,
        tag: str | None = None,
        author_slug: str | None = None,
        before: tuple[datetime, int] | None = None,
        include_drafts: bool = False,
    ) -> list[Article]:
        """Return the newest published articles, newest first, read from an index.

        ``before`` is a keyset cursor (published_at, id) for paging and archives.
        """
        if tag is not None:
            query = (
                sa.select(Article)
                .join(ArticleTag, ArticleTag.article_id == Article.id)
                .where(ArticleTag.tag == tag, ArticleTag.status == PUBLISHED)
                .order_by(ArticleTag.published_at.desc(), ArticleTag.article_id.desc())
            )
            published, ident = ArticleTag.published_at, ArticleTag.article_id
        else:
            query = sa.select(Article).order_by(Article.published_at.desc(), Article.id.desc())
            if not include_drafts:
                query = query.where(Article.status == PUBLISHED)
            if author_slug is not None:
                query = query.where(Article.author_slug == author_slug)
            published, ident = Article.published_at, Article.id
        if before is not None:
            query = query.where(
                sa.tuple_(published, ident)
                < sa.tuple_(sa.literal(before[0], UTCDateTime()), sa.literal(before[1]))
            )
        result = await self.session.scalars(query.limit(limit))
        return list(result)

    async def published_between(
        self, since: datetime | None, until: datetime, *, tags: Sequence[str] = (), limit: int = 0
    ) -> list[Article]:
        """Return articles published in (since, until], newest first, optionally by tags."""
        query = sa.select(Article).where(Article.status == PUBLISHED, Article.published_at <= until)
        if since is not None:
            query = query.where(Article.published_at > since)
        if tags:
            # A semi-join keeps the ORDER BY on the articles index (no DISTINCT, no sort);
            # the tag side is a range search of the tag index bounded the same way.
            tagged = sa.select(ArticleTag.article_id).where(
                ArticleTag.tag.in_(list(tags)),
                ArticleTag.status == PUBLISHED,
                ArticleTag.published_at <= until,
            )
            if since is not None:
                tagged = tagged.where(ArticleTag.published_at > since)
            query = query.where(Article.id.in_(tagged))
        query = query.order_by(Article.published_at.desc(), Article.id.desc())
        if limit:
            query = query.limit(limit)
        return list(await self.session.scalars(query))

    async def count_published(self) -> int:
        """Return how many articles are published."""
        value = await self.session.scalar(
            sa.select(sa.func.count()).select_from(Article).where(Article.status == PUBLISHED)
        )
        return int(value or 0)

    async def tags(self) -> list[tuple[str, int]]:
        """Return every tag of a published article with its count, most used first."""
        rows = await self.session.execute(
            sa.select(ArticleTag.tag, sa.func.count())
            .where(ArticleTag.status == PUBLISHED)
            .group_by(ArticleTag.tag)
            .order_by(sa.func.count().desc(), ArticleTag.tag)
        )
        return [(tag, int(count)) for tag, count in rows.tuples()]

    async def authors(self) -> list[tuple[str, str]]:
        """Return (slug, name) of every author with a published article."""
        rows = await self.session.execute(
            sa.select(Article.author_slug, sa.func.max(Article.author))
            .where(Article.status == PUBLISHED, Article.author_slug != "")
            .group_by(Article.author_slug)
            .order_by(Article.author_slug)
        )
        return [(slug, name) for slug, name in rows.tuples()]


def article_to_dict(article: Article) -> dict[str, Any]:
    """Return the JSON form of an article (for --json output and the API)."""
    data = {column.key: getattr(article, column.key) for column in Article.__table__.columns}
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data
