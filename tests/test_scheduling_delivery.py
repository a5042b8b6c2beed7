"""The digest tick end to end: real database, real editions and outbox, a real SMTP sink.

Time is driven by the site's FrozenClock, one quarter-hour tick after another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from publisher import db
from publisher.clock import FrozenClock
from publisher.delivery import editions
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.mailsink import MailSink
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.worker import deliver
from publisher.planning import TICK
from publisher.scheduling import ScheduleRunner, run_tick
from publisher.site import Site
from tests.scheduling_helpers import (
    add_reader,
    move_reader,
    publish,
    recipients,
    text_part,
    tick_spans,
    tick_through,
)
from tests.smtp_servers import RecordingHandler, smtp_server

WIB, WITA, WIT = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"
QUARTER, HOUR = TICK, timedelta(hours=1)
#: Scenarios whose point is time, not the database: SQLite only, to keep the suite fast.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    """A real SMTP server on loopback saving every message."""
    server = MailSink(tmp_path / "mail", port=0)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def mailing(site: Site, sink: MailSink) -> Site:
    """The test site, sending to the sink."""
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{sink.port}"
    site.settings.mail.retry_initial = timedelta(seconds=1)
    return site


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    """Return an aware UTC instant."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def test_each_indonesian_zone_gets_its_digest_at_its_own_seven(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "wib@example.org", WIB)
    await add_reader(mailing, "wita@example.org", WITA)
    await add_reader(mailing, "wit@example.org", WIT)
    await publish(mailing, "Feri baru Makassar–Ambon mulai berlayar", at=at(24, 5))
    await publish(mailing, "Panen raya padi di Klaten", at=at(24, 12))
    await publish(mailing, "Perpustakaan Ternate dibuka kembali", at=at(25, 4))

    timeline = await tick_spans(
        mailing,
        sink,
        (at(24, 20), at(25, 2), QUARTER),
        (at(25, 2), at(25, 20), HOUR),
        (at(25, 20), at(26, 2), QUARTER),
    )
    # 07:00 WIT = 22:00 UTC, 07:00 WITA = 23:00 UTC, 07:00 WIB = 00:00 UTC; the
    # next day each gets the article published on the 25th, again at their 07:00.
    assert timeline == {
        "wit@example.org": [at(24, 22), at(25, 22)],
        "wita@example.org": [at(24, 23), at(25, 23)],
        "wib@example.org": [at(25, 0), at(26, 0)],
    }
    wib = [m for m in sink.messages if m.recipients == ("wib@example.org",)]
    first, second = (text_part(m.path) for m in wib)
    assert "Panen raya padi di Klaten" in first
    assert "Feri baru" in first
    assert "Perpustakaan Ternate" not in first
    # The second digest covers only what came since the first.
    assert "Perpustakaan Ternate" in second
    assert "Panen raya" not in second


@SQLITE_ONLY
async def test_quarter_hour_zones_are_sent_on_their_tick(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "kolkata@example.org", "Asia/Kolkata")
    await add_reader(mailing, "kathmandu@example.org", "Asia/Kathmandu")
    await publish(mailing, "Bootcamp pemrograman Jayapura", at=at(24, 12))
    timeline, _ = await tick_through(mailing, sink, at(24, 20), at(25, 3))
    assert timeline == {
        "kathmandu@example.org": [at(25, 1, 15)],
        "kolkata@example.org": [at(25, 1, 30)],
    }


@SQLITE_ONLY
@pytest.mark.slow
async def test_berlin_reader_across_both_dst_changes(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    mailing.settings.digest.send_time = clock_time(2, 30)
    reader = "berlin@example.org"

    async def days(first: datetime, count: int) -> list[datetime]:
        clock.set(first - timedelta(days=1))
        sent: list[datetime] = []
        for day in range(count):
            # Something new every day, published at noon UTC the day before.
            await publish(
                mailing,
                f"Kabar hari {first.date()} +{day}",
                at=first + timedelta(days=day - 1, hours=12),
            )
        for day in range(count):
            start = first + timedelta(days=day)
            timeline, _ = await tick_through(mailing, sink, start, start + timedelta(hours=4))
            sent.extend(timeline.get(reader, []))
            # The rest of the day: one tick an hour is enough to prove nothing more goes out.
            for hour in range(4, 24):
                clock.set(start + timedelta(hours=hour))
                before = len(sink.messages)
                await run_tick(mailing)
                assert len(sink.messages) == before
        return sent

    clock.set(at(20, 12, month=10))
    await add_reader(mailing, reader, "Europe/Berlin")
    # Fall back, Sunday 2026-10-25: 02:30 happens twice (00:30 and 01:30 UTC); sent once.
    assert await days(at(24, 0, month=10), 3) == [
        at(24, 0, 30, month=10),
        at(25, 0, 30, month=10),
        at(26, 1, 30, month=10),
    ]
    # Spring forward, Sunday 2027-03-28: 02:30 never happens; sent once, at 03:00 CEST.
    assert await days(at(27, 0, month=3, year=2027), 3) == [
        at(27, 1, 30, month=3, year=2027),
        at(28, 1, 0, month=3, year=2027),
        at(29, 0, 30, month=3, year=2027),
    ]
    assert recipients(sink) == {reader: 6}


@SQLITE_ONLY
async def test_weekly_reader_gets_one_digest_on_the_weekly_day(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(20, 12))
    await add_reader(mailing, "weekly@example.org", WIT, frequency="weekly")
    await add_reader(mailing, "daily@example.org", WIT)
    for day in range(21, 30):
        await publish(mailing, f"Kabar tanggal {day}", at=at(day, 3))
    # Monday 2026-11-30 07:00 WIT is Sunday 22:00 UTC.
    clock.set(at(29, 3))
    before = recipients(sink)["weekly@example.org"]
    timeline, _ = await tick_through(mailing, sink, at(29, 18), at(30, 4))
    assert timeline["weekly@example.org"] == [at(29, 22)]
    assert before == 0
    weekly = next(m for m in sink.messages if m.recipients == ("weekly@example.org",))
    body = text_part(weekly.path)
    # A first weekly digest covers the last 7 days.
    assert "Kabar tanggal 29" in body
    assert "Kabar tanggal 23" in body
    assert "Kabar tanggal 22" not in body


@SQLITE_ONLY
async def test_no_new_articles_means_no_digest(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "wib@example.org", WIB)
    await publish(mailing, "Berita lama sekali", at=at(20, 6))
    _, reports = await tick_through(mailing, sink, at(24, 23), at(25, 3))
    assert sink.messages == []
    due = [result for report in reports for result in report.groups]
    assert due, "the zone was due; it simply had nothing to send"
    # Known without a pass over the readers, and no empty edition is opened.
    assert all(result.enqueued is None and result.edition_id is None for result in due)
    # Something new the next day is sent at the next 07:00, once.
    await publish(mailing, "Akhirnya ada kabar", at=at(25, 12))
    timeline, _ = await tick_through(mailing, sink, at(25, 20), at(26, 3))
    assert timeline == {"wib@example.org": [at(26, 0)]}


async def test_double_firing_and_concurrent_ticks_send_once(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    for n in range(5):
        await add_reader(mailing, f"r{n}@example.org", WIB)
    await publish(mailing, "Jakarta siaga banjir", at=at(24, 12))
    clock.set(at(25, 0, 5))
    await run_tick(mailing)
    await run_tick(mailing)
    clock.set(at(25, 0, 1))  # the clock steps back (NTP correction)
    await asyncio.gather(run_tick(mailing), run_tick(mailing))
    clock.set(at(25, 9))  # and jumps forward hours later the same day
    await run_tick(mailing)
    assert recipients(sink) == {f"r{n}@example.org": 1 for n in range(5)}


@SQLITE_ONLY
async def test_reader_changing_time_zone_during_the_day(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "east@example.org", WIB)
    await add_reader(mailing, "west@example.org", "Europe/London")
    await add_reader(mailing, "early@example.org", "Europe/London")
    await publish(mailing, "Pameran batik pesisir Semarang", at=at(24, 12))

    # 07:00 WIB: east gets the 25th's digest.
    await tick_through(mailing, sink, at(24, 23), at(25, 1))
    assert recipients(sink) == {"east@example.org": 1}
    # Later that day east moves to London and west to Jayapura, where 07:00 on the
    # 25th is long past; early moves to Jakarta before London's 07:00 too.
    await publish(mailing, "Fun run mangrove Surabaya", at=at(25, 2))
    await move_reader(mailing, "east@example.org", "Europe/London")
    await move_reader(mailing, "west@example.org", WIT)
    await move_reader(mailing, "early@example.org", WIB)
    timeline = await tick_spans(
        mailing, sink, (at(25, 3), at(25, 8), QUARTER), (at(25, 8), at(25, 21), HOUR)
    )
    # west and early get the 25th's digest at the next tick in their new zone;
    # east, who already has the 25th's, gets nothing more at London's 07:00.
    assert timeline == {
        "west@example.org": [at(25, 3)],
        "early@example.org": [at(25, 3)],
    }
    assert recipients(sink) == {
        "east@example.org": 1,
        "west@example.org": 1,
        "early@example.org": 1,
    }
    # On the 26th each gets exactly one, at their new zone's 07:00
    # (07:00 WIT on the 26th is 22:00 UTC on the 25th).
    await publish(mailing, "Skuter tukar baterai Denpasar", at=at(25, 20))
    timeline = await tick_spans(
        mailing,
        sink,
        (at(25, 21), at(26, 1), QUARTER),
        (at(26, 1), at(26, 6), HOUR),
        (at(26, 6), at(26, 8), QUARTER),
    )
    assert timeline == {
        "west@example.org": [at(25, 22)],
        "early@example.org": [at(26, 0)],
        "east@example.org": [at(26, 7)],
    }


@SQLITE_ONLY
async def test_reader_moving_west_across_the_date_line_is_not_sent_twice(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "traveller@example.org", WIB)
    await publish(mailing, "Panen raya padi", at=at(24, 12))
    await tick_through(mailing, sink, at(24, 23, 45), at(25, 0, 15))
    assert recipients(sink) == {"traveller@example.org": 1}
    # At 01:00 UTC it is 17:00 on the 24th in Los Angeles: 07:00 there has passed,
    # but the reader already had a digest during that local day.
    await publish(mailing, "Kabar baru sore ini", at=at(25, 0, 30))
    await move_reader(mailing, "traveller@example.org", "America/Los_Angeles")
    timeline = await tick_spans(
        mailing,
        sink,
        (at(25, 1), at(25, 17), QUARTER),
        (at(25, 17), at(26, 13), HOUR),
        (at(26, 13), at(26, 16), QUARTER),
    )
    # Nor does Los Angeles' 25th (15:00 UTC) send again: edition daily:2026-11-25
    # already went to this reader. The next one is the 26th, at 07:00 in Los Angeles.
    assert timeline == {"traveller@example.org": [at(26, 15)]}


@SQLITE_ONLY
async def test_scheduler_restarted_after_missing_seven_sends_the_same_day(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    await add_reader(mailing, "wib@example.org", WIB)
    await add_reader(mailing, "wit@example.org", WIT)
    await publish(mailing, "Feri baru berlayar", at=at(24, 12))

    async def run_scheduler_once() -> list[str]:
        runner = ScheduleRunner(mailing)
        await runner.start()
        try:
            deadline = time.monotonic() + 30
            while not runner.ticks:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            await runner.stop()
        return [r.summary() for r in runner.ticks]

    # The scheduler runs at 22:10 UTC: WIT's 07:00 has passed, it sends at once.
    clock.set(at(24, 22, 10))
    await run_scheduler_once()
    assert recipients(sink) == {"wit@example.org": 1}
    # It is down over 07:00 WIB (00:00 UTC) and comes back at 10:20 WIB.
    clock.set(at(25, 3, 20))
    summaries = await run_scheduler_once()
    assert "daily:2026-11-25" in summaries[0]
    assert recipients(sink) == {"wit@example.org": 1, "wib@example.org": 1}
    # Down for a whole local day (the 26th): that day is not sent late after
    # midnight, and the next digest carries everything since the last one.
    await publish(mailing, "Berita tanggal 26", at=at(26, 3))
    clock.set(at(26, 18))
    await run_scheduler_once()
    assert recipients(sink) == {"wit@example.org": 1, "wib@example.org": 1}
    clock.set(at(27, 0, 30))
    await run_scheduler_once()
    assert recipients(sink) == {"wit@example.org": 2, "wib@example.org": 2}


async def test_content_window_topics_order_and_more_link(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    mailing.settings.digest.max_articles = 3
    clock.set(at(23, 6))
    await add_reader(mailing, "ekonomi@example.org", WIB, topics=["ekonomi"])
    await add_reader(mailing, "semua@example.org", WIB)
    for hour in range(1, 7):
        await publish(mailing, f"Ekonomi jam {hour:02d}", at=at(24, hour), tags=["ekonomi"])
    await publish(mailing, "Olahraga jam 05", at=at(24, 5), tags=["olahraga"])
    # Older than 24 h before the first digest: outside the first window.
    await publish(mailing, "Ekonomi kemarin dulu", at=at(23, 23), tags=["ekonomi"])
    clock.set(at(25, 0))
    await run_tick(mailing)
    assert recipients(sink) == {"ekonomi@example.org": 1, "semua@example.org": 1}
    by_reader = {m.recipients[0]: text_part(m.path) for m in sink.messages}
    topical = by_reader["ekonomi@example.org"]
    positions = [topical.find(f"Ekonomi jam {h:02d}") for h in (6, 5, 4)]
    assert all(p >= 0 for p in positions), topical
    assert positions == sorted(positions), "newest first"
    for absent in ("Ekonomi jam 03", "Olahraga", "kemarin dulu"):
        assert absent not in topical
    # Three more matched than fit: the digest says so and links to the site.
    assert "3" in topical
    assert "https://news.example.org" in topical
    everyone = by_reader["semua@example.org"]
    assert "Ekonomi jam 06" in everyone
    assert "Olahraga jam 05" in everyone


@SQLITE_ONLY
async def test_stop_mid_delivery_finishes_in_flight_and_restart_sends_the_rest(
    site: Site, clock: FrozenClock
) -> None:
    clock.set(at(24, 6))
    readers = [f"r{n:02d}@example.org" for n in range(40)]
    for email in readers:
        await add_reader(site, email, WIB)
    await publish(site, "Jakarta siaga banjir", at=at(24, 12))
    clock.set(at(25, 0, 5))
    handler = RecordingHandler(data_delay=0.05)
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        runner = ScheduleRunner(site)
        await runner.start()
        deadline = time.monotonic() + 30
        while handler.total() < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await runner.stop()  # what SIGTERM does
        assert time.monotonic() - started < 10
        first_run = handler.total()
        assert 5 <= first_run < len(readers), "stopped part-way"
        async with db.transaction(site.engine) as session:
            rows = await session.execute(
                sa.select(OutboxRow.status, sa.func.count()).group_by(OutboxRow.status)
            )
            statuses = {status: int(count) for status, count in rows.all()}
        # Whatever was handed to the server is recorded as sent; nothing is left claimed.
        assert statuses.get("sent", 0) == first_run
        assert "claimed" not in statuses
        # Back up later the same morning: the rest go out, nobody twice.
        clock.set(at(25, 1, 40))
        again = ScheduleRunner(site)
        await again.start()
        deadline = time.monotonic() + 30
        while handler.total() < len(readers):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await again.stop()
    assert {email: handler.count(email) for email in readers} == dict.fromkeys(readers, 1)


async def _fail_outbox_insert_for(site: Site, email: str) -> None:
    """Make writing ``email``'s outbox row fail, as a crash mid-enqueue would."""
    async with db.transaction(site.engine) as session:
        if db.is_sqlite(site.settings.database.url):
            await session.execute(
                sa.text(
                    "CREATE TRIGGER stop_enqueue BEFORE INSERT ON outbox "
                    f"WHEN NEW.email = '{email}' BEGIN SELECT RAISE(ABORT, 'interrupted'); END"
                )
            )
        else:
            await session.execute(
                sa.text(
                    "CREATE FUNCTION stop_enqueue() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.email = '{email}' THEN RAISE EXCEPTION 'interrupted'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            await session.execute(
                sa.text(
                    "CREATE TRIGGER stop_enqueue BEFORE INSERT ON outbox "
                    "FOR EACH ROW EXECUTE FUNCTION stop_enqueue()"
                )
            )


async def _allow_outbox_inserts(site: Site) -> None:
    async with db.transaction(site.engine) as session:
        if db.is_sqlite(site.settings.database.url):
            await session.execute(sa.text("DROP TRIGGER stop_enqueue"))
        else:
            await session.execute(sa.text("DROP TRIGGER stop_enqueue ON outbox"))


async def _interrupted(site: Site, edition: Edition, now: datetime, **kwargs: Any) -> None:
    with pytest.raises(SQLAlchemyError, match="interrupted"):
        await enqueue(site, edition, now, **kwargs)


async def test_interrupted_zone_enqueue_never_mails_zones_not_yet_due(
    mailing: Site, sink: MailSink, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: deliver() resumed an interrupted WIT-only enqueue for every zone, and
    # WIB readers got their digest at 05:15 local.
    monkeypatch.setattr(editions, "CHUNK_IDS", 2)
    clock.set(at(24, 6))
    for n in range(4):
        await add_reader(mailing, f"wit{n}@example.org", WIT)
        await add_reader(mailing, f"wib{n}@example.org", WIB)
    await publish(mailing, "Pelabuhan Jayapura diperluas", at=at(24, 12))
    clock.set(at(24, 22, 15))
    edition = await open_edition(
        mailing, "daily", at(24, 22).date() + timedelta(days=1), at(24, 22)
    )
    await _fail_outbox_insert_for(mailing, "wit3@example.org")
    await _interrupted(mailing, edition, at(24, 22), timezones=[WIT])
    await _allow_outbox_inserts(mailing)
    await deliver(mailing)
    # Three chunks of two were written before the crash; only their WIT readers are mailed.
    assert recipients(sink) == {f"wit{n}@example.org": 1 for n in range(3)}
    # The next tick finishes the WIT group; WIB still waits for its own 07:00.
    await run_tick(mailing)
    assert recipients(sink) == {f"wit{n}@example.org": 1 for n in range(4)}
    timeline, _ = await tick_through(mailing, sink, at(24, 22, 30), at(25, 1))
    assert timeline == {f"wib{n}@example.org": [at(25, 0)] for n in range(4)}


async def test_zone_tick_keeps_an_interrupted_full_enqueue_resumable(
    mailing: Site, sink: MailSink, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `digest send` (every zone) is interrupted at 21:00; a WIT tick at 22:00 must neither
    # clear its mark (WIB readers were never queued) nor move its cutoff (a reader who
    # joined at 21:30 was not part of that send).
    monkeypatch.setattr(editions, "CHUNK_IDS", 2)
    clock.set(at(24, 6))
    # Two per chunk: wib0 and wib1 are written, the chunk of wit and wib2 is lost.
    await add_reader(mailing, "wib0@example.org", WIB)
    await add_reader(mailing, "wib1@example.org", WIB)
    await add_reader(mailing, "wit@example.org", WIT)
    await add_reader(mailing, "wib2@example.org", WIB)
    await publish(mailing, "Festival Danau Sentani", at=at(24, 12))
    clock.set(at(24, 21))
    edition = await open_edition(mailing, "daily", at(25, 0).date(), at(24, 21))
    await _fail_outbox_insert_for(mailing, "wib2@example.org")
    await _interrupted(mailing, edition, at(24, 21))
    await _allow_outbox_inserts(mailing)
    await add_reader(mailing, "late@example.org", WIB, joined=at(24, 21, 30))
    clock.set(at(24, 22))
    await run_tick(mailing)
    assert recipients(sink) == {
        "wit@example.org": 1,
        "wib0@example.org": 1,
        "wib1@example.org": 1,
        "wib2@example.org": 1,
    }
    async with db.transaction(mailing.engine) as session:
        found = await session.get(Edition, edition.id)
    assert found is not None
    assert found.status != "enqueuing"
