"""Editions, the outbox and the worker, on SQLite and PostgreSQL, against a real SMTP server."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from publisher.clock import FrozenClock
from publisher.db import sqlite_path, transaction
from publisher.delivery.editions import edition_date, enqueue, open_edition, resume_enqueues
from publisher.delivery.models import (
    DONE,
    ENQUEUING,
    SENDING,
    SENT,
    Edition,
    EditionVariant,
    OutboxRow,
)
from publisher.delivery.store import Outcome, open_store, status_counts
from publisher.delivery.worker import deliver
from publisher.errors import UsageError
from publisher.site import Site
from subscribers import suppression
from subscribers.models import Subscriber
from tests.delivery_helpers import add_articles, add_subscribers
from tests.smtp_servers import RecordingHandler, message_id_of, smtp_server

pytestmark = pytest.mark.postgres


async def _outbox(site: Site) -> list[OutboxRow]:
    async with transaction(site.engine) as session:
        return list(await session.scalars(sa.select(OutboxRow).order_by(OutboxRow.id)))


async def test_edition_is_opened_once_per_period(site: Site, clock: FrozenClock) -> None:
    now = clock.now()
    first = await open_edition(site, "daily", date(2026, 11, 25), now)
    again = await open_edition(site, "daily", date(2026, 11, 25), now + timedelta(hours=1))
    other = await open_edition(site, "weekly", date(2026, 11, 23), now)
    assert first.id == again.id
    assert first.period_key == "daily:2026-11-25"
    assert other.period_key == "weekly:2026-11-23"
    with pytest.raises(UsageError, match="monthly"):
        await open_edition(site, "monthly", date(2026, 11, 25), now)
    # Weekly editions are keyed by the week's digest day, whatever day the send runs.
    assert edition_date("weekly", date(2026, 11, 27), "mon") == date(2026, 11, 23)
    assert edition_date("weekly", date(2026, 11, 23), "mon") == date(2026, 11, 23)
    assert edition_date("daily", date(2026, 11, 27), "mon") == date(2026, 11, 27)


async def test_enqueue_writes_each_subscriber_once_in_variants(
    site: Site, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publisher.delivery import editions

    monkeypatch.setattr(editions, "CHUNK_IDS", 7)  # many chunks for a small list
    await add_articles(site, 3, language="id")
    await add_articles(site, 2, language="en", prefix="story")
    await add_subscribers(site, 40, languages=("id", "en"))
    # Not for this edition: weekly readers, pending ones, people who joined after "now".
    await add_subscribers(site, 5, start=100, frequency="weekly")
    await add_subscribers(site, 5, start=200, status="pending")
    await add_subscribers(site, 5, start=300, created_at=clock.now() + timedelta(seconds=1))
    now = clock.now()
    edition = await open_edition(site, "daily", date(2026, 11, 25), now)
    dry = await enqueue(site, edition, now, dry_run=True)
    assert dry.queued == 40
    assert await _outbox(site) == []
    report = await enqueue(site, edition, now)
    assert report.queued == 40
    assert len(report.variants) == 2
    rows = await _outbox(site)
    assert len(rows) == 40
    assert len({row.subscriber_id for row in rows}) == 40
    assert len({row.message_id for row in rows}) == 40
    # The database mints the same stable Message-IDs Python does.
    assert {row.message_id for row in rows} == {
        editions.message_id(site, edition.period_key, row.subscriber_id or 0) for row in rows
    }
    again = await enqueue(site, edition, now)
    assert (again.queued, again.already_queued) == (0, 40)
    assert len(await _outbox(site)) == 40
    async with transaction(site.engine) as session:
        variants = list(await session.scalars(sa.select(EditionVariant)))
        stored = await session.get(Edition, edition.id)
    assert stored is not None
    assert stored.status == SENDING
    assert sorted(v.language for v in variants) == ["en", "id"]
    by_language = {v.language: v for v in variants}
    assert len(by_language["id"].article_ids) == 3
    assert len(by_language["en"].article_ids) == 2


async def test_enqueue_respects_windows_topics_zones_and_suppression(
    site: Site, clock: FrozenClock
) -> None:
    now = clock.now()
    site.settings.digest.max_articles = 2
    await add_articles(site, 4, tags=["ekonomi"], published=now - timedelta(hours=2))
    await add_articles(
        site, 1, tags=["olahraga"], prefix="bola", published=now - timedelta(minutes=30)
    )
    await add_subscribers(site, 1, start=0)  # everything: 5 articles → 2 + "2 more"... +1
    await add_subscribers(site, 1, start=1, topics=["olahraga"])
    await add_subscribers(site, 1, start=2, timezone="Asia/Jayapura")
    await add_subscribers(site, 1, start=3)
    await add_subscribers(site, 1, start=4)
    async with transaction(site.engine) as session:
        await suppression.suppress(session, "READER3@example.net", "manual", now)
        await session.execute(
            sa.update(Subscriber)
            .where(Subscriber.email == "reader4@example.net")
            .values(last_digest_at=now - timedelta(minutes=10))
        )
    edition = await open_edition(site, "daily", date(2026, 11, 25), now)
    report = await enqueue(site, edition, now, timezones=["Asia/Jakarta"])
    assert report.other_zone == 1
    assert report.suppressed == 1
    assert report.nothing_new == 1
    assert report.queued == 2
    later = await enqueue(site, edition, now, timezones=["Asia/Jayapura"])
    assert later.queued == 1
    async with transaction(site.engine) as session:
        plans = {
            email: (list(ids), more)
            for email, ids, more in await session.execute(
                sa.select(OutboxRow.email, EditionVariant.article_ids, EditionVariant.more_count)
                .join(EditionVariant, EditionVariant.id == OutboxRow.variant_id)
                .order_by(OutboxRow.email)
            )
        }
    assert len(plans["reader0@example.net"][0]) == 2
    assert plans["reader0@example.net"][1] == 3
    assert len(plans["reader1@example.net"][0]) == 1  # topics: only the football story
    assert plans["reader1@example.net"][1] == 0


async def test_deliver_sends_each_once_and_rerun_is_safe(site: Site, clock: FrozenClock) -> None:
    await add_articles(site, 3)
    await add_subscribers(site, 30, languages=("id", "en"))
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        now = clock.now()
        edition = await open_edition(site, "daily", date(2026, 11, 25), now)
        await enqueue(site, edition, now)
        report = await deliver(site)
        assert (report.sent, report.failed, report.retrying) == (30, 0, 0)
        assert report.finished == ["daily:2026-11-25"]
        # A plain re-run: same edition, everybody already queued and sent.
        await enqueue(site, edition, now)
        again = await deliver(site)
        assert again.sent == 0
    assert handler.total() == 30
    assert all(handler.count(f"reader{n}@example.net") == 1 for n in range(30))
    rows = await _outbox(site)
    for row in rows:
        assert row.status == "sent"
        assert row.smtp_code == 250
        assert "queued as test" in row.smtp_response
        assert row.sent_at == now
        (content,) = handler.delivered[row.email]
        assert message_id_of(content) == row.message_id
        assert b"/unsubscribe/" in content
    async with transaction(site.engine) as session:
        stamps = set(await session.scalars(sa.select(Subscriber.last_digest_at)))
        stored = await session.get(Edition, edition.id)
    assert stamps == {now}
    assert stored is not None
    assert stored.status == DONE
    # The next day's edition only carries what is new since.
    clock.advance(timedelta(days=1))
    tomorrow = await open_edition(site, "daily", date(2026, 11, 26), clock.now())
    nothing = await enqueue(site, tomorrow, clock.now())
    assert (nothing.queued, nothing.nothing_new) == (0, 30)


async def test_unsubscribed_after_enqueue_is_cancelled(site: Site, clock: FrozenClock) -> None:
    await add_articles(site, 1)
    await add_subscribers(site, 3)
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        edition = await open_edition(site, "daily", date(2026, 11, 25), clock.now())
        await enqueue(site, edition, clock.now())
        async with transaction(site.engine) as session:
            await session.execute(
                sa.update(Subscriber)
                .where(Subscriber.email == "reader1@example.net")
                .values(status="unsubscribed")
            )
        report = await deliver(site)
    assert (report.sent, report.cancelled) == (2, 1)
    assert handler.count("reader1@example.net") == 0
    counts = await status_counts(site, edition.id)
    assert counts == Counter({"sent": 2, "cancelled": 1})


async def test_interrupted_enqueue_and_orphaned_claims_are_resumed(
    site: Site, clock: FrozenClock
) -> None:
    await add_articles(site, 2)
    await add_subscribers(site, 12)
    now = clock.now()
    edition = await open_edition(site, "daily", date(2026, 11, 25), now)
    await enqueue(site, edition, now)
    # Simulate a crash: half the rows deleted (enqueue never finished) and a dead worker
    # that had claimed a few rows.
    async with transaction(site.engine) as session:
        await session.execute(sa.delete(OutboxRow).where(OutboxRow.subscriber_id > 6))
        await session.execute(
            sa.update(Edition).where(Edition.id == edition.id).values(status=ENQUEUING)
        )
    dead = open_store(site, "deadhost:1:feedbeef")
    claimed = await dead.claim(3, now)
    assert len(claimed) == 3
    await add_subscribers(site, 2, start=50, created_at=now + timedelta(minutes=5))
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        report = await deliver(site)
    assert report.enqueued == 6
    assert report.recovered == 3
    assert report.sent == 12
    assert handler.total() == 12
    assert handler.count("reader50@example.net") == 0  # joined after the send began
    assert await resume_enqueues(site) == []


async def test_sqlite_results_wait_for_a_busy_database(site: Site, clock: FrozenClock) -> None:
    """SQLite's direct result writer: with another process writing, it waits, then writes."""
    path = sqlite_path(site.settings.database.url)
    if path is None:
        pytest.skip("the direct writer is SQLite's")
    await add_articles(site, 1)
    await add_subscribers(site, 3)
    now = clock.now()
    edition = await open_edition(site, "daily", date(2026, 11, 25), now)
    await enqueue(site, edition, now)
    store = open_store(site, "host:1:cafe")
    jobs = await store.claim(3, now)
    assert len(jobs) == 3
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
    writing = asyncio.create_task(
        store.record([Outcome(job, SENT, now, 250, "2.0.0 ok") for job in jobs])
    )
    await asyncio.sleep(0.5)
    assert not writing.done()  # waiting in its thread, not failing, not blocking the loop
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(writing, 30)
    await store.unregister()
    assert await status_counts(site, edition.id) == Counter({"sent": 3})
    async with transaction(site.engine) as session:
        marks = set(await session.scalars(sa.select(Subscriber.last_digest_at)))
    assert marks == {jobs[0].window_end}
