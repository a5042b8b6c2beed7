"""The API's list queries walk indexes: no full scans and no sorts, on SQLite and PostgreSQL.

Each case runs the real list function, records every SELECT it sends and asks the database
for its plan: EXPLAIN QUERY PLAN on SQLite; EXPLAIN on PostgreSQL with sequential scans,
bitmap scans and sorts disabled, so a plan that still needs one shows it as disabled.
Title words are matched by the full-text index (SQLite FTS5, PostgreSQL GIN) and topics by
the (topic, reader) index; both are checked here. Filters the indexes cannot serve
(language, time zone) are left out: they filter the rows met on an index walk, which the
benchmark times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.content import listing, search
from publisher.content.listing import ArticleFilter
from publisher.content.models import ArticleSearch
from publisher.content.search import TitleQuery
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import is_sqlite, transaction
from publisher.delivery.progress import progress_page
from publisher.site import Site
from subscribers import repository
from subscribers.repository import Consent, Preferences, SubscriberFilter

START = datetime(2026, 1, 1, tzinfo=UTC)
MIDDLE = (START + timedelta(days=20), 21)

Case = Callable[[AsyncSession], Awaitable[list[Any]]]

CASES: dict[str, Case] = {
    "articles": lambda s: listing.page(s, ArticleFilter(), 10),
    "articles-page-2": lambda s: listing.page(s, ArticleFilter(), 10, MIDDLE),
    "articles-after-undated": lambda s: listing.page(s, ArticleFilter(), 10, (None, 50)),
    "articles-drafts": lambda s: listing.page(s, ArticleFilter(status="draft"), 10),
    "articles-published-page-2": lambda s: listing.page(
        s, ArticleFilter(status="published"), 10, MIDDLE
    ),
    "articles-tag": lambda s: listing.page(s, ArticleFilter(tag="ekonomi"), 10),
    "articles-tag-page-2": lambda s: listing.page(s, ArticleFilter(tag="ekonomi"), 10, MIDDLE),
    "articles-tag-drafts": lambda s: listing.page(
        s, ArticleFilter(tag="ekonomi", status="draft"), 5
    ),
    "articles-author": lambda s: listing.page(s, ArticleFilter(author_slug="rina-wulandari"), 10),
    "articles-author-page-2": lambda s: listing.page(
        s, ArticleFilter(author_slug="rina-wulandari"), 10, MIDDLE
    ),
    "articles-search": lambda s: listing.page(s, ArticleFilter(text="berita"), 10),
    "articles-search-page-2": lambda s: listing.page(s, ArticleFilter(text="Berita 2"), 5, MIDDLE),
    "articles-search-drafts": lambda s: listing.page(
        s, ArticleFilter(text="berita", status="draft"), 5
    ),
    "articles-search-tag": lambda s: listing.page(
        s, ArticleFilter(text="berita", tag="ekonomi"), 5
    ),
    "subscribers": lambda s: repository.page(s, SubscriberFilter(), 10),
    "subscribers-page-2": lambda s: repository.page(s, SubscriberFilter(), 10, 30),
    "subscribers-status": lambda s: repository.page(s, SubscriberFilter(status="active"), 10),
    "subscribers-status-frequency": lambda s: repository.page(
        s, SubscriberFilter(status="active", frequency="weekly"), 10, 40
    ),
    "subscribers-topic": lambda s: repository.page(s, SubscriberFilter(topic="ekonomi"), 10),
    "subscribers-topic-page-2": lambda s: repository.page(
        s, SubscriberFilter(topic="ekonomi"), 5, 40
    ),
    "subscribers-topic-status": lambda s: repository.page(
        s, SubscriberFilter(topic="ekonomi", status="active", frequency="daily"), 5
    ),
    "subscribers-prefix": lambda s: repository.page(
        s, SubscriberFilter(email_prefix="Pembaca1"), 5
    ),
    "subscribers-prefix-page-2": lambda s: repository.page(
        s, SubscriberFilter(email_prefix="pembaca1"), 5, "pembaca12@example.org"
    ),
}


@pytest.fixture
async def filled(site: Site) -> Site:
    """Articles (some undated drafts) with tags and authors, and readers of both frequencies."""
    now = site.clock.now()
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
                    published_at=None if number % 20 == 0 else START + timedelta(days=number),
                ),
                now,
            )
        for number in range(60):
            await repository.add(
                session,
                f"pembaca{number}@example.org",
                Preferences(
                    frequency="weekly" if number % 3 == 0 else "daily",
                    topics=("ekonomi",) if number % 2 else (),
                ),
                Consent(source="test", at=now),
                now,
                status="active" if number % 4 else "pending",
            )
    return site


async def plans(site: Site, case: Case) -> tuple[list[list[str]], list[Any]]:
    """Run ``case``; return the plan of each SELECT it sent, and what it returned."""
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            sent.append((args[2], args[3]))

    event.listen(site.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with transaction(site.engine) as session:
            found = await case(session)
    finally:
        event.remove(site.engine.sync_engine, "before_cursor_execute", record)
    found_plans = []
    async with transaction(site.engine) as session:
        connection = await session.connection()
        for statement, parameters in sent:
            if is_sqlite(site.settings.database.url):
                rows = await connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters
                )
                found_plans.append([str(row[-1]) for row in rows])
            else:
                # With this few rows and no statistics, a scan or a sort is cheapest; forbid
                # them so the plan shows whether an index can serve the order at all.
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                    await connection.execute(sa.text(f"SET LOCAL {setting} = off"))
                rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
                found_plans.append([str(row[0]) for row in rows])
    return found_plans, found


def assert_indexed(site: Site, plan: list[str]) -> None:
    text = "\n".join(plan)
    if is_sqlite(site.settings.database.url):
        if plan == ["SCAN subscribers"]:
            # The rowid b-tree walked in id order (the primary key), stopping at LIMIT.
            return
        assert any(
            "USING" in line and ("INDEX" in line or "PRIMARY KEY" in line) for line in plan
        ), text
        # "VIRTUAL TABLE INDEX 0:M" is FTS5 answering a MATCH from its own index.
        assert not any(
            line.startswith("SCAN") and "VIRTUAL TABLE INDEX 0:M" not in line for line in plan
        ), text
        assert "TEMP B-TREE" not in text, text
    else:
        assert "Index" in text, text
        assert "Seq Scan" not in text, text
        assert "Sort" not in text, text
        assert "disabled" not in text.lower(), text


@pytest.mark.parametrize("name", list(CASES))
async def test_list_query_is_served_by_an_index(filled: Site, name: str) -> None:
    found_plans, found = await plans(filled, CASES[name])
    assert found, "the case should return rows"
    assert found_plans
    for plan in found_plans:
        assert_indexed(filled, plan)


async def test_edition_counts_read_the_tallies_index(filled: Site) -> None:
    """Counts come from the edition's tally rows (found by index), never the outbox rows."""
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if "outbox" in args[2]:
            sent.append((args[2], args[3]))

    event.listen(filled.engine.sync_engine, "before_cursor_execute", record)
    try:
        await progress_page(filled, 20)
        from publisher.delivery.editions import open_edition

        await open_edition(filled, "daily", START.date(), filled.clock.now())
        assert len(await progress_page(filled, 20)) == 1
    finally:
        event.remove(filled.engine.sync_engine, "before_cursor_execute", record)
    [(statement, parameters)] = sent
    assert "FROM outbox_tallies" in statement, statement
    async with transaction(filled.engine) as session:
        connection = await session.connection()
        if is_sqlite(filled.settings.database.url):
            rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = [str(row[-1]) for row in rows]
            assert any("ix_outbox_tallies_edition" in line for line in plan), plan
        else:
            await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
            rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            plan = [str(row[0]) for row in rows]
            assert "ix_outbox_tallies_edition" in "\n".join(plan), plan


async def test_title_search_is_answered_by_the_full_text_index(filled: Site) -> None:
    """SQLite asks FTS5 once and walks the date index; PostgreSQL's GIN index can serve it."""
    sqlite = is_sqlite(filled.settings.database.url)
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("SELECT"):
            sent.append((args[2], args[3]))

    event.listen(filled.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with transaction(filled.engine) as session:
            found = await listing.page(session, ArticleFilter(text="berita 4"), 10)
    finally:
        event.remove(filled.engine.sync_engine, "before_cursor_execute", record)
    assert (
        sorted(a.title for a in found) == ["Berita 4", *(f"Berita {n}" for n in range(40, 50))][:10]
        or len(found) == 10
    )
    assert sent
    async with transaction(filled.engine) as session:
        connection = await session.connection()
        for statement, parameters in sent:
            if sqlite:
                rows = await connection.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters
                )
                plan = "\n".join(str(row[-1]) for row in rows)
                assert "article_search_fts VIRTUAL TABLE INDEX 0:M" in plan, plan
                assert "USING INDEX ix_articles_published" in plan, plan
                assert "TEMP B-TREE" not in plan, plan
            else:
                # Only bitmap scans allowed: the plan shows whether GIN can answer the words.
                for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
                    await connection.execute(sa.text(f"SET LOCAL {setting} = off"))
                rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
                plan = "\n".join(str(row[0]) for row in rows)
                assert "Bitmap Index Scan on ix_article_search_" in plan, plan
                assert "Seq Scan" not in plan, plan
    if sqlite:
        return
    # On so few rows the date index may win; the words alone must be GIN's.
    words = sa.select(ArticleSearch.article_id).where(
        search.postgres_condition(TitleQuery.parse("berita 4"))
    )
    sent.clear()
    event.listen(filled.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with transaction(filled.engine) as session:
            await session.execute(words)
    finally:
        event.remove(filled.engine.sync_engine, "before_cursor_execute", record)
    [(statement, parameters)] = sent
    async with transaction(filled.engine) as session:
        connection = await session.connection()
        await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        plan = "\n".join(str(row[0]) for row in rows)
    assert "Bitmap Index Scan on ix_article_search_words" in plan, plan
