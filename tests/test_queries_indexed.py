"""The feed and digest queries are answered from indexes: no full scans, no sorts.

Each test runs the real ArticleStore method, records the SELECT it sends, and asks
the database for that statement's plan (EXPLAIN QUERY PLAN on SQLite; EXPLAIN with
sequential scans disabled on PostgreSQL, so a missing index shows up as a plan
that still scans or sorts).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from publisher.content.models import Article
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import is_sqlite, transaction
from publisher.site import Site

START = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = START + timedelta(days=60)

Query = Callable[[ArticleStore], Awaitable[list[Article]]]

QUERIES: dict[str, Query] = {
    "latest": lambda store: store.latest(10),
    "latest-by-tag": lambda store: store.latest(10, tag="ekonomi"),
    "latest-by-author": lambda store: store.latest(10, author_slug="rina-wulandari"),
    "latest-page-2": lambda store: store.latest(10, before=(START + timedelta(days=30), 31)),
    "latest-by-tag-page-2": lambda store: store.latest(
        10, tag="ekonomi", before=(START + timedelta(days=30), 31)
    ),
    "published-between": lambda store: store.published_between(
        START + timedelta(days=10), START + timedelta(days=20)
    ),
    "published-until": lambda store: store.published_between(None, UNTIL, limit=10),
    "published-between-by-tags": lambda store: store.published_between(
        START + timedelta(days=10), START + timedelta(days=20), tags=["ekonomi", "budaya"]
    ),
}


@pytest.fixture
async def filled(site: Site) -> Site:
    """A store with published articles, drafts, several tags and authors."""
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        for number in range(60):
            await store.upsert(
                ArticleDraft(
                    title=f"Berita {number}",
                    body_html=f"<p>Isi {number}.</p>",
                    language="id",
                    tags=[["ekonomi"], ["budaya", "ekonomi"], ["olahraga"]][number % 3],
                    author=["Rina Wulandari", "Andi Saputra"][number % 2],
                    draft=number % 10 == 0,
                    published_at=START + timedelta(days=number),
                ),
                site.clock.now(),
            )
    return site


async def plan_of(site: Site, query: Query) -> tuple[list[str], list[Article]]:
    """Run ``query`` and return the database's plan for the SELECT it sent."""
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(site.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with transaction(site.engine) as session:
            found = await query(ArticleStore(session, site.settings.site.base_url))
    finally:
        event.remove(site.engine.sync_engine, "before_cursor_execute", record)
    assert len(sent) == 1, sent
    statement, parameters = sent[0]
    async with transaction(site.engine) as session:
        connection = await session.connection()
        if is_sqlite(site.settings.database.url):
            rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [str(row[-1]) for row in rows]
        else:
            # With this few rows PostgreSQL would rightly scan; forbid it so the plan
            # shows whether an index can serve the query at all.
            await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
            rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            lines = [str(row[0]) for row in rows]
    return lines, found


@pytest.mark.parametrize("name", list(QUERIES))
async def test_query_is_served_by_an_index(filled: Site, name: str) -> None:
    lines, found = await plan_of(filled, QUERIES[name])
    assert found, "the query should return rows"
    text = "\n".join(lines)
    if is_sqlite(filled.settings.database.url):
        assert any("USING INDEX" in line or "USING COVERING INDEX" in line for line in lines), text
        assert not any(line.startswith("SCAN") for line in lines), text
        assert "TEMP B-TREE" not in text, text
    else:
        assert "Index" in text, text
        assert "Seq Scan" not in text, text
        assert "Sort" not in text, text
        assert "disabled" not in text.lower(), text


async def test_query_results_are_right(filled: Site) -> None:
    async with transaction(filled.engine) as session:
        store = ArticleStore(session, filled.settings.site.base_url)
        latest = await store.latest(3)
        assert [a.title for a in latest] == ["Berita 59", "Berita 58", "Berita 57"]
        by_tag = await store.latest(3, tag="olahraga")
        assert [a.title for a in by_tag] == ["Berita 59", "Berita 56", "Berita 53"]
        by_author = await store.latest(2, author_slug="andi-saputra")
        assert [a.title for a in by_author] == ["Berita 59", "Berita 57"]
        cursor = latest[-1].published_at
        assert cursor is not None
        page = await store.latest(2, before=(cursor, latest[-1].id))
        assert [a.title for a in page] == ["Berita 56", "Berita 55"]
        window = await store.published_between(
            START + timedelta(days=9), START + timedelta(days=14)
        )
        assert [a.title for a in window] == ["Berita 14", "Berita 13", "Berita 12", "Berita 11"]
        tagged = await store.published_between(
            START + timedelta(days=9), START + timedelta(days=16), tags=["budaya", "olahraga"]
        )
        # 10 is a draft; 13 and 16 are "budaya"+"ekonomi", 11 and 14 are "olahraga".
        assert [a.title for a in tagged] == ["Berita 16", "Berita 14", "Berita 13", "Berita 11"]
        assert len(await store.published_between(None, UNTIL)) == 54
