"""Assemble feed documents from the store: the current page and RFC 5005 archive pages.

The scope's history is cut into archive pages of ``feeds.archive_size`` articles
counted from the oldest, so a complete page keeps its entries as new articles
arrive. The current (subscription) document holds the newest ``feeds.items``
articles, and more when the articles newer than the last complete archive page
outnumber that, so that a reader walking prev-archive links sees every article.
"""

from __future__ import annotations

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
    item_from_article,
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

    async def channel(
        self, session: AsyncSession, where: FeedPath, *, total: int | None = None
    ) -> Channel | None:
        """Read what ``where`` holds; None when the scope or archive page does not exist."""
        size = self.settings.feeds.archive_size
        if total is None:
            total = await query.count(session, where.scope)
        if total == 0 and where.scope.kind != "site":
            return None
        complete = total // size
        if where.archive > complete:
            return None
        if where.archive:
            articles = await query.archive_page(session, where.scope, where.archive, size)
        else:
            limit = max(self.settings.feeds.items, total - complete * size)
            articles = await query.newest(session, where.scope, limit)
        return await self._channel(session, where, self.items(articles), complete)

    async def _channel(
        self, session: AsyncSession, where: FeedPath, items: list[Item], complete: int
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
            archive_count=complete,
            hub=self.settings.web.websub_hub,
        )

    async def document(self, session: AsyncSession, where: FeedPath) -> Document | None:
        """Build one feed document, or None when it does not exist."""
        channel = await self.channel(session, where)
        return None if channel is None else self.render(channel)

    async def scope_documents(self, session: AsyncSession, scope: Scope) -> list[Document]:
        """Build every document of a scope: current and archives, in all three formats."""
        size = self.settings.feeds.archive_size
        total = await query.count(session, scope)
        complete = total // size
        documents: list[Document] = []
        current = await self.channel(session, FeedPath(scope, "rss"), total=total)
        if current is None:
            return documents
        for fmt in FORMATS:
            current.where = FeedPath(scope, fmt)
            documents.append(self.render(current))
        page = 0
        async for articles in query.pages_ascending(session, scope, size):
            page += 1
            if page > complete:
                break
            articles.reverse()
            channel = await self._channel(
                session, FeedPath(scope, "rss", page), self.items(articles), complete
            )
            for fmt in FORMATS:
                channel.where = FeedPath(scope, fmt, page)
                documents.append(self.render(channel))
        return documents
