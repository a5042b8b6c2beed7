"""Outbox tallies: each edition's counts by status, kept by triggers, equal the rows'.

Whoever writes the outbox (the store's statements, raw SQL, an executemany, a cascade
from a deleted edition), the tallies sum to the rows' own GROUP BY, and folding them
(compact_tallies) beside concurrent writers changes no sum. Random writes: replay a
failure with TALLY_SEED=<seed printed by the failing run>.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import db
from publisher.db import transaction
from publisher.delivery import store
from publisher.delivery.models import OUTBOX_STATUSES
from publisher.site import Site
from tests.delivery_helpers import add_articles, add_subscribers
from tests.test_migration_search import downgrade, table_names

NOW = datetime(2026, 11, 25, 0, 0)
STATUSES = [str(status) for status in OUTBOX_STATUSES]
#: An edition and its one variant, written by SQL as any release would have.
NEW_EDITION = sa.text(
    "INSERT INTO editions (period_key, frequency, status, window_end, created_at, "
    "last_error) VALUES (:key, 'daily', 'sending', :now, :now, '') RETURNING id"
)
NEW_VARIANT = sa.text(
    "INSERT INTO edition_variants (edition_id, variant_key, language, article_ids, "
    "more_count) VALUES (:e, 'id', 'id', '[]', 0)"
)


async def add_edition(engine: AsyncEngine, key: str) -> int:
    """Insert an edition and one variant by SQL; return the edition's id."""
    async with engine.begin() as connection:
        edition_id = (await connection.execute(NEW_EDITION, {"key": key, "now": NOW})).scalar_one()
        await connection.execute(NEW_VARIANT, {"e": edition_id})
    return int(edition_id)


async def insert_rows(engine: AsyncEngine, edition_id: int | None, count: int, first: int) -> None:
    """Insert ``count`` queued rows in one statement (an edition's, or notices)."""
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO outbox (kind, edition_id, email, status, attempts, claimed_by, "
                "smtp_response, message_id) VALUES (:kind, :e, :email, 'queued', 0, '', '', :m)"
            ),
            [
                {
                    "kind": "digest" if edition_id else "confirmation",
                    "e": edition_id,
                    "email": f"r{first + n}@example.org",
                    "m": f"<{first + n}@example.org>",
                }
                for n in range(count)
            ],
        )


async def row_counts(engine: AsyncEngine) -> dict[int, Counter[str]]:
    """Count every edition's rows by status the slow way: the rows themselves."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT edition_id, status, count(*) FROM outbox "
                "WHERE edition_id IS NOT NULL GROUP BY edition_id, status"
            )
        )
        found: dict[int, Counter[str]] = {}
        for edition_id, status, count in rows.tuples():
            found.setdefault(int(edition_id), Counter())[str(status)] = int(count)
    return found


async def tallies(site: Site) -> dict[int, Counter[str]]:
    """Read every edition's counts from the tallies, as the commands do."""
    async with transaction(site.engine) as session:
        ids = list(await session.scalars(sa.text("SELECT id FROM editions")))
        return await store.edition_counts(session, ids)


async def random_write(
    engine: AsyncEngine, rng: random.Random, editions: list[int], share: tuple[int, int] = (0, 1)
) -> str:
    """Make one random change to the outbox by plain SQL; return what it was.

    ``share`` (r, n): change only rows whose id is r modulo n, as concurrent workers
    change only the rows they claimed (two writers of one row could deadlock).
    """
    choice = rng.random()
    async with engine.begin() as connection:
        ids = list(
            await connection.scalars(
                sa.text("SELECT id FROM outbox WHERE id % :n = :r ORDER BY id"),
                {"r": share[0], "n": share[1]},
            )
        )
        if not ids or choice < 0.12:
            edition = rng.choice([*editions, None])
            count = rng.randint(1, 30)
            await connection.execute(
                sa.text(
                    "INSERT INTO outbox (kind, edition_id, email, status, attempts, claimed_by, "
                    "smtp_response, message_id) SELECT 'digest', :e, 'x@example.org', :s, 0, "
                    "'', '', 'm' FROM outbox WHERE id IN (SELECT id FROM outbox LIMIT :n)"
                ),
                {"e": edition, "s": rng.choice(STATUSES), "n": count},
            )
            return f"insert-select {count} into {edition}"
        if choice < 0.2:
            # As enqueues and announcements insert: readers who have theirs are skipped.
            edition = rng.choice(editions)
            readers = rng.randint(1, 20)
            await connection.execute(
                sa.text(
                    "INSERT INTO outbox (kind, edition_id, subscriber_id, email, status, "
                    "attempts, claimed_by, smtp_response, message_id) SELECT 'digest', :e, id, "
                    "email, 'queued', 0, '', '', 'm' FROM subscribers WHERE id <= :n "
                    "ON CONFLICT DO NOTHING"
                ),
                {"e": edition, "n": readers},
            )
            return f"insert up to {readers} readers into {edition}, skipping theirs"
        chosen = rng.sample(ids, min(len(ids), rng.randint(1, 40)))
        if choice < 0.5:
            status = rng.choice(STATUSES)
            await connection.execute(
                sa.text("UPDATE outbox SET status = :s WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"s": status, "ids": chosen},
            )
            return f"update {len(chosen)} to {status}"
        if choice < 0.75:
            # One statement per row, as the store's executemany writes results.
            await connection.execute(
                sa.text("UPDATE outbox SET status = :s, attempts = attempts + 1 WHERE id = :i"),
                [{"s": rng.choice(STATUSES), "i": row_id} for row_id in chosen],
            )
            return f"executemany {len(chosen)}"
        if choice < 0.85:
            edition = rng.choice([*editions, None])
            await connection.execute(
                sa.text(
                    "UPDATE outbox SET edition_id = :e WHERE id IN :ids AND subscriber_id IS NULL"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"e": edition, "ids": chosen},
            )
            return f"move {len(chosen)} to {edition}"
        if choice < 0.93:
            await connection.execute(
                sa.text("DELETE FROM outbox WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": chosen},
            )
            return f"delete {len(chosen)}"
        # Rows of the same edition that did not change status: no tally moves.
        await connection.execute(
            sa.text("UPDATE outbox SET smtp_response = 'seen' WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": chosen},
        )
        return f"touch {len(chosen)}"


async def test_tallies_equal_the_rows_after_any_writes(site: Site) -> None:
    seed = int(os.environ.get("TALLY_SEED", random.randrange(1 << 30)))
    print(f"TALLY_SEED={seed}")
    rng = random.Random(seed)
    engine = site.engine
    outbox = store.open_store(site)
    editions = [await add_edition(engine, f"daily:2026-11-{day}") for day in (24, 25, 26)]
    await add_subscribers(site, 20)
    await insert_rows(engine, editions[0], 50, 0)
    await insert_rows(engine, None, 5, 100)
    for step in range(120):
        what = await random_write(engine, rng, editions)
        if rng.random() < 0.1:
            await outbox.compact_tallies()
            what += ", compacted"
        assert await tallies(site) == await row_counts(engine), f"seed {seed} step {step}: {what}"
    # Compaction leaves at most one row per status and edition, with the same sums.
    await outbox.compact_tallies()
    assert await tallies(site) == await row_counts(engine), f"seed {seed}"
    async with engine.connect() as connection:
        per_edition = (
            await connection.execute(
                sa.text("SELECT edition_id, count(*) FROM outbox_tallies GROUP BY edition_id")
            )
        ).all()
    assert all(rows <= store.TALLY_ROWS_KEPT for _, rows in per_edition)
    # A deleted edition takes its rows and its tallies with it.
    async with engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM editions WHERE id = :e"), {"e": editions[0]})
        left = await connection.scalar(
            sa.text("SELECT count(*) FROM outbox_tallies WHERE edition_id = :e"),
            {"e": editions[0]},
        )
    assert left == 0
    assert await tallies(site) == await row_counts(engine), f"seed {seed}"


async def test_compaction_beside_concurrent_writers_changes_no_sum(site: Site) -> None:
    """Two compactions and three writers at once (PostgreSQL: real concurrency)."""
    seed = int(os.environ.get("TALLY_SEED", random.randrange(1 << 30)))
    print(f"TALLY_SEED={seed}")
    engine = site.engine
    edition = await add_edition(engine, "daily:2026-11-25")
    await insert_rows(engine, edition, 300, 0)
    outboxes = [store.open_store(site), store.open_store(site)]

    async def writer(number: int) -> None:
        rng = random.Random(seed + number)
        for _ in range(40):
            await random_write(engine, rng, [edition], (number, 3))

    async def compactor(number: int) -> None:
        for _ in range(40):
            await outboxes[number].compact_tallies()
            await asyncio.sleep(0)

    if db.is_sqlite(site.settings.database.url):
        # One writer at a time on SQLite: interleaved, not parallel.
        await asyncio.gather(writer(1), compactor(0))
    else:
        await asyncio.gather(writer(0), writer(1), writer(2), compactor(0), compactor(1))
    assert await tallies(site) == await row_counts(engine), f"seed {seed}"
    await outboxes[0].compact_tallies()
    assert await tallies(site) == await row_counts(engine), f"seed {seed}"


async def test_digest_status_counts_come_from_the_tallies(site: Site) -> None:
    edition = await add_edition(site.engine, "daily:2026-11-25")
    await insert_rows(site.engine, edition, 7, 0)
    async with site.engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE outbox SET status = 'sent' WHERE id IN (SELECT id FROM outbox LIMIT 3)")
        )
    assert await store.status_counts(site, edition) == Counter({"queued": 4, "sent": 3})
    # It reads the tallies, not the rows: a changed tally shows in the count.
    async with site.engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO outbox_tallies (edition_id, status, messages) VALUES (:e, 'sent', 100)"
            ),
            {"e": edition},
        )
    assert (await store.status_counts(site, edition))["sent"] == 103


def test_upgrade_counts_existing_rows_and_downgrade_removes_the_tallies(
    database_url: str,
) -> None:
    db.upgrade(database_url, "0009_announcements")
    engine = db.create_sync_engine(database_url)
    with engine.begin() as connection:
        edition_id = connection.execute(
            NEW_EDITION, {"key": "daily:2026-11-25", "now": NOW}
        ).scalar_one()
        connection.execute(NEW_VARIANT, {"e": edition_id})
        connection.execute(
            sa.text(
                "INSERT INTO outbox (kind, edition_id, email, status, attempts, claimed_by, "
                "smtp_response, message_id) VALUES ('digest', :e, :email, :s, 0, '', '', 'm')"
            ),
            [
                {"e": edition_id, "email": f"r{n}@example.org", "s": "sent" if n < 3 else "queued"}
                for n in range(5)
            ],
        )
    engine.dispose()
    db.upgrade(database_url)

    def sums() -> dict[str, int]:
        engine = db.create_sync_engine(database_url)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT status, sum(messages) FROM outbox_tallies GROUP BY status")
            ).all()
        engine.dispose()
        return {str(status): int(total) for status, total in rows}

    assert sums() == {"sent": 3, "queued": 2}
    downgrade(database_url, "0009_announcements")
    assert "outbox_tallies" not in table_names(database_url)
    engine = db.create_sync_engine(database_url)
    with engine.begin() as connection:  # writing without the triggers' table works
        connection.execute(sa.text("UPDATE outbox SET status = 'sent'"))
    engine.dispose()
    db.upgrade(database_url)
    assert sums() == {"sent": 5}


async def test_a_delivery_leaves_one_folded_tally_row_per_status(site: Site) -> None:
    """A real send (claims, results, refusals) through the worker; it folds the deltas."""
    from publisher.delivery.editions import enqueue, open_edition
    from publisher.delivery.worker import deliver
    from tests.smtp_servers import RecordingHandler, smtp_server

    await add_articles(site, 2, language="id")
    await add_subscribers(site, 30)
    now = site.clock.now()
    edition = await open_edition(site, "daily", now.date(), now)
    await enqueue(site, edition, now)
    handler = RecordingHandler(
        rcpt_replies={
            "reader3@example.net": ["550 5.1.1 no such user"],  # a bounce: the slow path
            "reader4@example.net": ["451 4.3.0 try again later"],
        }
    )
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        report = await deliver(site)
    assert (report.sent, report.failed, report.retrying) == (28, 1, 1)
    assert (
        await tallies(site)
        == await row_counts(site.engine)
        == {edition.id: Counter({"sent": 28, "failed": 1, "retrying": 1})}
    )
    async with site.engine.connect() as connection:
        rows = await connection.scalar(
            sa.text("SELECT count(*) FROM outbox_tallies WHERE edition_id = :e"),
            {"e": edition.id},
        )
    assert rows <= store.TALLY_ROWS_KEPT


def test_sqlite_migration_holds_writers_out_until_it_has_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender of the previous release writing while 0010 runs waits: its row is not
    counted by both the new trigger and the backfill."""
    path = tmp_path / "site.db"
    url = f"sqlite:///{path}"
    db.upgrade(url, "0009_announcements")
    other = sqlite3.connect(path, isolation_level=None, timeout=0.2)
    other.execute(
        "INSERT INTO editions (period_key, frequency, status, window_end, created_at, "
        "last_error) VALUES ('daily:2026-11-25', 'daily', 'sending', '2026-11-25', "
        "'2026-11-25', '')"
    )
    insert = (
        "INSERT INTO outbox (kind, edition_id, email, status, attempts, claimed_by, "
        "smtp_response, message_id) VALUES ('digest', 1, ?, 'queued', 0, '', '', 'm')"
    )
    other.execute(insert, ("a@example.org",))
    refused: list[str] = []
    create_sync_engine = db.create_sync_engine

    def engine_with_a_rival_writer(url: str, **kwargs: Any) -> sa.Engine:
        engine = create_sync_engine(url, **kwargs)

        def rival(*args: Any) -> None:
            if args[2].startswith("INSERT INTO outbox_tallies"):  # the backfill
                try:
                    other.execute(insert, ("b@example.org",))
                except sqlite3.OperationalError as exc:
                    refused.append(str(exc))

        sa.event.listen(engine, "before_cursor_execute", rival)
        return engine

    monkeypatch.setattr(db, "create_sync_engine", engine_with_a_rival_writer)
    db.upgrade(url, "0010_outbox_tallies")
    assert refused == ["database is locked"]
    other.execute(insert, ("b@example.org",))  # after the migration: the trigger counts it
    assert other.execute("SELECT status, count(*) FROM outbox GROUP BY 1").fetchall() == [
        ("queued", 2)
    ]
    assert other.execute(
        "SELECT status, sum(messages) FROM outbox_tallies GROUP BY 1"
    ).fetchall() == [("queued", 2)]
    other.close()
