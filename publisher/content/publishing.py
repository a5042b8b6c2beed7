"""Publish scheduled drafts when their time comes (the scheduler, senders and servers call it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher.content.store import ArticleStore
from publisher.db import transaction


async def publish_due(engine: AsyncEngine, base_url: str, now: datetime) -> list[str]:
    """Publish every draft scheduled at or before ``now``; return their slugs.

    A read of the publish_at index comes first, so the common case (nothing due)
    costs one indexed query and no write transaction.
    """
    async with transaction(engine) as session:
        earliest = await ArticleStore(session, base_url).next_publish_at()
    if earliest is None or earliest > now:
        return []
    async with transaction(engine) as session:
        published = await ArticleStore(session, base_url).publish_due(now)
        return [article.slug for article in published]


async def next_due(engine: AsyncEngine, base_url: str) -> datetime | None:
    """Return when the next scheduled draft is due, if any."""
    async with transaction(engine) as session:
        return await ArticleStore(session, base_url).next_publish_at()
