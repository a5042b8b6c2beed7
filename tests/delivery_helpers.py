"""Seed a site with articles and subscribers quickly, for delivery tests and the benchmark."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from publisher.cli.init import init_site
from publisher.clock import SystemClock
from publisher.config import load_settings
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.models import Edition
from publisher.site import Site
from subscribers.addresses import lookup_key
from subscribers.models import ACTIVE, PENDING, Subscriber

_SUBSCRIBERS = cast(sa.Table, Subscriber.__table__)

PARAGRAPH = (
    "Pemerintah daerah mengumumkan rencana pembangunan jalan baru yang menghubungkan "
    "tiga kecamatan di pesisir utara. Warga menyambut baik rencana itu, meski sebagian "
    "meminta kejelasan soal ganti rugi lahan dan jadwal pengerjaan. "
)


async def add_articles(
    site: Site,
    count: int,
    *,
    language: str = "id",
    published: datetime | None = None,
    tags: list[str] | None = None,
    prefix: str = "artikel",
    paragraphs: int = 3,
) -> list[int]:
    """Publish ``count`` articles an hour apart ending at ``published``; return their ids."""
    published = published or site.clock.now() - timedelta(hours=1)
    ids: list[int] = []
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        for n in range(count):
            body = "".join(f"<p>{PARAGRAPH}</p>" for _ in range(paragraphs))
            result = await store.upsert(
                ArticleDraft(
                    title=f"{prefix.title()} {n}: jalan baru di pesisir utara",
                    body_html=body,
                    language=language,
                    slug=f"{prefix}-{language}-{n}",
                    summary=PARAGRAPH,
                    tags=list(tags or ["berita"]),
                    author="Andi Saputra",
                    published_at=published - timedelta(minutes=n),
                ),
                site.clock.now(),
            )
            ids.append(result.article.id)
    return ids


async def add_subscribers(
    site: Site,
    count: int,
    *,
    start: int = 0,
    domain: str = "example.net",
    languages: tuple[str, ...] = ("id",),
    frequency: str = "daily",
    timezone: str = "",
    status: str = ACTIVE,
    created_at: datetime | None = None,
    topics: list[str] | None = None,
    batch: int = 5000,
) -> None:
    """Insert ``count`` subscribers reader{start}@domain… in bulk."""
    created = created_at or site.clock.now() - timedelta(days=3)
    rows: list[dict[str, Any]] = []
    async with transaction(site.engine) as session:
        for n in range(start, start + count):
            email = f"reader{n}@{domain}"
            rows.append(
                {
                    "email": email,
                    "email_key": lookup_key(email),
                    "name": f"Pembaca {n}",
                    "status": status,
                    "language": languages[n % len(languages)],
                    "timezone": timezone,
                    "frequency": frequency,
                    "topics": list(topics or []),
                    "created_at": created,
                    "confirmed_at": created if status == ACTIVE else None,
                    "consent_source": "test",
                    "consent_ip": "",
                    "consent_user_agent": "",
                    "consent_text": "",
                    "soft_bounces": 0,
                    "hard_bounces": 0,
                }
            )
            if len(rows) >= batch:
                await session.execute(sa.insert(_SUBSCRIBERS), rows)
                rows = []
        if rows:
            await session.execute(sa.insert(_SUBSCRIBERS), rows)


async def add_pending_with_confirmations(
    site: Site, count: int, *, start: int = 0, domain: str = "example.net"
) -> None:
    """Insert ``count`` pending readers, each with a confirmation queued in the outbox."""
    from publisher.delivery import notices
    from publisher.delivery.models import MailKind

    await add_subscribers(site, count, start=start, domain=domain, status=PENDING)
    async with transaction(site.engine) as session:
        ids = await session.scalars(
            sa.select(Subscriber.id).where(Subscriber.status == PENDING).order_by(Subscriber.id)
        )
        for subscriber_id in list(ids):
            await notices.queue(session, site, MailKind.CONFIRMATION, subscriber_id)


async def postgres_edition(
    directory: Path, server: str | None, *, articles: int, readers: int
) -> tuple[Path, str, Site, Edition]:
    """Make a site in a fresh PostgreSQL database with one enqueued edition (or skip)."""
    if server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(server)
    site_dir = directory / "site"
    init_site(site_dir, title="Kabar", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    settings.database.url = url
    site = Site.from_settings(settings, clock=SystemClock())
    await add_articles(site, articles, language="id")
    await add_subscribers(site, readers)
    now = site.clock.now()
    edition = await open_edition(site, "daily", now.date(), now)
    assert (await enqueue(site, edition, now)).queued == readers
    return site_dir, url, site, edition


async def start_worker(site_dir: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    """Start `publisher worker` on a site, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "publisher",
        "--config",
        str(site_dir / "publisher.toml"),
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
