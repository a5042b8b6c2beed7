"""Assemble feed documents from the store: the current feed and RFC 5005 archive pages.

The current (subscription) document holds the newest ``feeds.items`` articles.
Its prev-archive link names the archive page that starts at the next older
article; each archive page holds ``feeds.archive_size`` articles from its key
(the newest entry's publication time and id) back, and links to the page that
starts right after its oldest. A page's key fixes its entries, so an archive
URL always serves the same entries, and every read is an index range scan: the
cost does not grow with the size of the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from publisher.config import Settings
from publisher.content.models import Article
from publisher.feeds import query
from publisher.feeds.jsonfeed import json_bytes
from publisher.feeds.model import (
    FILE_NAMES,
    MEDIA_TYPES,
    Channel,
    FeedPath,
    Format,
    Item,
    Scope,
    archive_key,
    item_from_article,
    parse_archive_key,
)
from publisher.feeds.xml import atom_bytes, rss_bytes

WRITERS: dict[Format, Callable[[Channel, ZoneInfo], bytes]] = {
    "rss": rss_bytes,
    "atom": atom_bytes,
    "json": json_bytes,
}
FORMATS: tuple[Format, ...] = tuple(FILE_NAMES)


@dataclass(frozen=True)
class Document:
    """One rendered feed document: its bytes, type and modification time."""

    path: str
    body: bytes
    media_type: str
    last_modified: datetime


class FeedBuilder:
    """Build feed documents for one site's settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.site.base_url
        self.tz = settings.tz

    def _site_author(self) -> str:
        return self.settings.site.author or self.settings.site.title

    def items(self, articles: list[Article]) -> list[Item]:
        """Turn articles into feed items."""
        author = self._site_author()
        return [item_from_article(a, self.base_url, author) for a in articles]

    async def _describe(self, session: AsyncSession, scope: Scope) -> tuple[str, str]:
        site = self.settings.site
        if scope.kind == "tag":
            return f"{site.title} · #{scope.key}", f"{self.base_url}/tags/{scope.key}"
        if scope.kind == "author":
            name = await query.author_name(session, scope.key) or scope.key
            return f"{site.title} · {name}", f"{self.base_url}/authors/{scope.key}"
        return site.title, f"{self.base_url}/"

    def render(self, channel: Channel) -> Document:
        """Serialize a channel in its format."""
        where = channel.where
        body = WRITERS[where.format](channel, self.tz)
        return Document(where.path(), body, MEDIA_TYPES[where.format], channel.updated)

    async def channel(self, session: AsyncSession, where: FeedPath) -> Channel | None:
        """Read what ``where`` holds; None when the scope or archive page does not exist."""
        if where.archive:
            key = parse_archive_key(where.archive)
            if key is None:
                return None
            size = self.settings.feeds.archive_size
        else:
            key, size = None, self.settings.feeds.items
        # One row more than shown tells where the next older archive page starts.
        articles = await query.newest(session, where.scope, size + 1, at_or_before=key)
        if not articles and (where.scope.kind != "site" or key is not None):
            return None
        if key is not None and _key(articles[0]) != where.archive:
            return None
        older = _key(articles[size]) if len(articles) > size else ""
        return await self._channel(session, where, self.items(articles[:size]), older)

    async def _channel(
        self, session: AsyncSession, where: FeedPath, items: list[Item], older: str
    ) -> Channel:
        title, home = await self._describe(session, where.scope)
        site = self.settings.site
        return Channel(
            where=where,
            base_url=self.base_url,
            title=title,
            description=site.description,
            home_url=home,
            language=site.language,
            author=self._site_author(),
            items=items,
            prev_archive=older,
            hub=self.settings.web.websub_hub,
        )

    async def document(self, session: AsyncSession, where: FeedPath) -> Document | None:
        """Build one feed document, or None when it does not exist."""
        channel = await self.channel(session, where)
        if channel is None:
            return None
        # Serializing fifty long articles takes a while: not on the event loop.
        return await asyncio.to_thread(self.render, channel)

    async def scope_documents(self, session: AsyncSession, scope: Scope) -> list[Document]:
        """Build every document of a scope: the current feed and its archive chain, all formats."""
        documents: list[Document] = []
        where = FeedPath(scope, "rss")
        while True:
            channel = await self.channel(session, where)
            if channel is None:
                return documents
            for fmt in FORMATS:
                channel.where = where.sibling(format=fmt)
                documents.append(self.render(channel))
            if not channel.prev_archive:
                return documents
            where = where.sibling(archive=channel.prev_archive)
            session.expunge_all()


def _key(article: Article) -> str:
    assert article.published_at is not None
    return archive_key(article.published_at, article.id)
