"""Announcements end to end: drafts, audiences, the outbox, a real worker and a real SMTP sink,
local-time sends across three zones with a frozen clock, hostile subjects and bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher import db
from publisher.clock import FrozenClock
from publisher.delivery import announcements, store
from publisher.delivery.announcements import AnnouncementInput, parse_audience
from publisher.delivery.mailsink import MailSink
from publisher.delivery.models import (
    Announcement,
    AnnouncementStatus,
    Edition,
    MailKind,
    OutboxRow,
)
from publisher.delivery.testcopy import send_announcement_test
from publisher.delivery.worker import deliver
from publisher.errors import InputError, UsageError
from publisher.planning import TICK
from publisher.scheduling import run_tick
from publisher.site import Site
from subscribers import suppression
from tests.scheduling_helpers import (
    add_reader,
    move_reader,
    parsed,
    recipients,
    text_part,
    tick_through,
)

pytestmark = pytest.mark.postgres

WIB, WITA, WIT = "Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"
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


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Return an aware UTC instant in November 2026."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def draft(**audience: list[str]) -> AnnouncementInput:
    """Return an announcement in Indonesian to the given audience."""
    return AnnouncementInput(
        subject="Kabar Test kini punya aplikasi",
        body_markdown="Halo pembaca!\n\nKami meluncurkan **aplikasi** baru. [Unduh](/app)\n",
        language="id",
        audience=parse_audience(**audience),
    )


async def _outbox(site: Site) -> list[OutboxRow]:
    async with db.transaction(site.engine) as session:
        return list(await session.scalars(sa.select(OutboxRow).order_by(OutboxRow.id)))


async def test_worker_delivers_to_the_chosen_audience_only_exactly_once(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(25, 1))
    await add_reader(mailing, "id-ekonomi@example.org", WIB, topics=["ekonomi"])
    await add_reader(mailing, "id-all@example.org", WITA)  # no topics: follows every topic
    await add_reader(mailing, "id-bola@example.org", WIB, topics=["olahraga"])
    await add_reader(mailing, "en-ekonomi@example.org", WIB, topics=["ekonomi"], language="en")
    await add_reader(mailing, "weekly@example.org", WIB, frequency="weekly")
    await add_reader(mailing, "pending@example.org", WIB, status="pending")
    await add_reader(mailing, "gone@example.org", WIB, status="unsubscribed")
    await add_reader(mailing, "suppressed@example.org", WIB)
    async with db.transaction(mailing.engine) as session:
        await suppression.suppress(session, "suppressed@example.org", "manual", clock.now())
    chosen = parse_audience(languages=["id"], topics=["ekonomi"], frequencies=["daily"])
    assert await announcements.audience_size(mailing, chosen) == 2
    assert await announcements.audience_size(mailing, parse_audience()) == 5

    created = await announcements.create(
        mailing, draft(languages=["id"], topics=["ekonomi"], frequencies=["daily"]), "ed@x.org"
    )
    assert created.status == AnnouncementStatus.DRAFT
    assert "<strong>aplikasi</strong>" in created.body_html
    assert 'href="https://news.example.org/app"' in created.body_html  # made absolute
    sent = await announcements.send(mailing, created.id)
    assert sent.status == AnnouncementStatus.SENDING
    rows = await _outbox(mailing)
    assert sorted(r.email for r in rows) == ["id-all@example.org", "id-ekonomi@example.org"]
    assert {r.kind for r in rows} == {MailKind.ANNOUNCEMENT}
    # Sending again, a tick, a worker restart: nobody is queued twice.
    with pytest.raises(UsageError, match="only a draft"):
        await announcements.send(mailing, created.id)
    await run_tick(mailing, now=clock.now())
    await deliver(mailing, until_idle=True)
    await deliver(mailing, until_idle=True)
    assert recipients(sink) == {"id-ekonomi@example.org": 1, "id-all@example.org": 1}
    done = await announcements.get(mailing, created.id)
    assert done.status == AnnouncementStatus.SENT
    assert done.sent_at is not None

    message = parsed(sink.messages[0].path)
    assert message["Subject"] == "Kabar Test kini punya aplikasi"
    assert message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"]
    assert "<announcement.news.example.org>" in message["List-Id"]
    assert message["Content-Language"] == "id"
    text = text_part(sink.messages[0].path)
    assert "KABAR TEST KINI PUNYA APLIKASI" in text
    assert "Kami meluncurkan aplikasi baru." in text
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    body = str(html.get_content())
    assert "<strong>aplikasi</strong>" in body
    # "View in browser" leads to the archive, where the sent announcement is public.
    assert f"/digests/announcement-{created.id}/id" in body
    # VERP: the envelope sender names the reader and the edition.
    assert "+" in sink.messages[0].sender


async def test_pending_and_suppressed_readers_at_claim_time_are_skipped(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(25, 1))
    await add_reader(mailing, "a@example.org", WIB)
    await add_reader(mailing, "b@example.org", WIB)
    created = await announcements.create(mailing, draft(), "ed@x.org")
    await announcements.send(mailing, created.id)
    async with db.transaction(mailing.engine) as session:
        await suppression.suppress(session, "b@example.org", "complaint", clock.now())
    await deliver(mailing, until_idle=True)
    assert recipients(sink) == {"a@example.org": 1}


@SQLITE_ONLY
async def test_local_time_send_reaches_each_zone_at_its_own_time(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    clock.set(at(24, 12))
    await add_reader(mailing, "wib@example.org", WIB)
    await add_reader(mailing, "wita@example.org", WITA)
    await add_reader(mailing, "wit@example.org", WIT)
    await add_reader(mailing, "london@example.org", "Europe/London")
    created = await announcements.create(mailing, draft(), "ed@x.org")
    scheduled = await announcements.send(
        mailing, created.id, at_local=(date(2026, 11, 25), "09:00")
    )
    assert scheduled.status == AnnouncementStatus.SCHEDULED
    assert await _outbox(mailing) == []
    # 09:00 WIT = 00:00 UTC, 09:00 WITA = 01:00 UTC, 09:00 WIB = 02:00 UTC.
    timeline, _reports = await tick_through(mailing, sink, at(24, 23), at(25, 3))
    assert timeline == {
        "wit@example.org": [at(25, 0)],
        "wita@example.org": [at(25, 1)],
        "wib@example.org": [at(25, 2)],
    }
    stored = await announcements.get(mailing, created.id)
    assert stored.status == AnnouncementStatus.SCHEDULED
    assert sorted(stored.zones_queued) == sorted([WIB, WITA, WIT])
    # A reader of a zone still to come moves into one already done: the last pass has them.
    await move_reader(mailing, "london@example.org", WIB)
    # A restart, a repeated tick, a second scheduler at the same instant: nobody twice.
    await run_tick(mailing, now=at(25, 2))
    await run_tick(mailing, now=at(25, 2))
    # Once 09:00 has come in every zone of the Earth, the send is complete.
    clock.set(at(25, 21, 15))
    await run_tick(mailing)
    assert (await announcements.get(mailing, created.id)).status == AnnouncementStatus.SENT
    assert recipients(sink) == {
        "wib@example.org": 1,
        "wita@example.org": 1,
        "wit@example.org": 1,
        "london@example.org": 1,
    }
    async with db.transaction(mailing.engine) as session:
        editions = list(await session.scalars(sa.select(Edition)))
    assert [e.period_key for e in editions] == [f"announcement:{created.id}"]


async def test_a_send_cut_short_is_finished_by_the_next_worker(
    mailing: Site, sink: MailSink, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock.set(at(25, 1))
    for n in range(5):
        await add_reader(mailing, f"r{n}@example.org", WIB)
    created = await announcements.create(mailing, draft(), "ed@x.org")
    calls = 0
    real = store.queue_announcements

    async def dies_after_first_batch(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("killed")
        await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(announcements, "BATCH_SIZE", 2)
    monkeypatch.setattr(store, "queue_announcements", dies_after_first_batch)
    with pytest.raises(RuntimeError, match="killed"):
        await announcements.send(mailing, created.id)
    assert len(await _outbox(mailing)) == 2
    monkeypatch.setattr(store, "queue_announcements", real)
    await deliver(mailing, until_idle=True)
    assert recipients(sink) == {f"r{n}@example.org": 1 for n in range(5)}
    assert (await announcements.get(mailing, created.id)).status == AnnouncementStatus.SENT


async def test_test_copy_goes_through_the_outbox_marked_test(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    await add_reader(mailing, "reader@example.org", WIB)
    created = await announcements.create(mailing, draft(), "ed@x.org")
    await send_announcement_test(mailing, created.id, "editor@example.org")
    assert recipients(sink) == {"editor@example.org": 1}
    assert parsed(sink.messages[0].path)["Subject"] == "[test] Kabar Test kini punya aplikasi"
    assert (await announcements.get(mailing, created.id)).status == AnnouncementStatus.DRAFT


async def test_cancel_a_scheduled_announcement(site: Site, clock: FrozenClock) -> None:
    clock.set(at(24, 12))
    await add_reader(site, "wib@example.org", WIB)
    created = await announcements.create(site, draft(), "ed@x.org")
    await announcements.send(site, created.id, at_local=(date(2026, 11, 25), "09:00"))
    cancelled = await announcements.cancel(site, created.id)
    assert cancelled.status == AnnouncementStatus.CANCELLED
    await run_tick(site, now=at(25, 12))
    assert await _outbox(site) == []
    with pytest.raises(UsageError, match="too late"):
        await announcements.cancel(site, created.id)


async def test_hostile_subjects_and_bodies_are_refused_or_defused(
    site: Site, clock: FrozenClock
) -> None:
    def hostile(subject: str, body: str = "Isi.") -> AnnouncementInput:
        return AnnouncementInput(subject, body, "id", parse_audience())

    for subject in ("Halo\r\nBcc: victim@example.org", "Halo\nX-Evil: 1", "Halo\rX"):
        with pytest.raises(InputError, match=r"^subject: line breaks are not allowed"):
            await announcements.create(site, hostile(subject), "ed@x.org")
    with pytest.raises(InputError, match="at most 200"):
        await announcements.create(site, hostile("x" * 201), "ed@x.org")
    with pytest.raises(InputError, match="body_markdown: at most 50,000"):
        await announcements.create(site, hostile("Halo", "a" * 50_001), "ed@x.org")
    with pytest.raises(InputError, match="nested"):
        await announcements.create(site, hostile("Halo", "<div>" * 500), "ed@x.org")
    with pytest.raises(InputError, match="no text"):
        await announcements.create(site, hostile("Halo", "   "), "ed@x.org")
    with pytest.raises(InputError, match="language"):
        await announcements.create(
            site, AnnouncementInput("Halo", "Isi", "../../x", parse_audience()), "ed@x.org"
        )
    with pytest.raises(InputError, match="audience"):
        parse_audience(frequencies=["hourly"])
    with pytest.raises(InputError, match="audience"):
        parse_audience(topics=["x" * 61])
    with pytest.raises(InputError, match="send_time"):
        await announcements.send(site, 1, at_local=(date(2026, 11, 26), "09:07"))
    with pytest.raises(InputError, match="passed in every time zone"):
        await announcements.send(site, 1, at_local=(date(2026, 11, 20), "09:00"))
    # Script, event handlers and javascript: links never survive; control characters go.
    found = await announcements.create(
        site,
        hostile(
            "Halo\x00 \u202e dunia",
            "<script>alert(1)</script><img src=x onerror=alert(1)> [a](javascript:alert(1))",
        ),
        "ed@x.org",
    )
    assert found.subject == "Halo dunia"
    assert "<script" not in found.body_html
    assert "onerror" not in found.body_html
    assert 'href="javascript' not in found.body_html
    # Non-ASCII subjects are encoded as RFC 2047 words, never raw 8-bit headers.
    from publisher.render.announcement import AnnouncementContent, render_announcement
    from publisher.render.message import build_digest_template

    compiled = render_announcement(
        site.settings,
        AnnouncementContent(
            "Ünïcode — 日本語 subject", "<p>x</p>", "id", "announcement:1", date(2026, 11, 25)
        ),
    )
    template = build_digest_template(site.settings, compiled)
    raw = template.fill(
        email="a@example.org",
        name="",
        message_id="<m@x>",
        urls={"unsubscribe_url": "https://x/u", "preferences_url": "https://x/p"},
    )
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == "Ünïcode — 日本語 subject"
    async with db.transaction(site.engine) as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(Announcement))
    assert count == 1


async def test_tick_rule_is_on_quarter_hours(site: Site) -> None:
    assert timedelta(minutes=15) == TICK
    assert announcements.check_time("07:45").minute == 45


async def test_a_sent_announcement_is_in_the_public_archive_without_reader_data(
    mailing: Site, sink: MailSink, clock: FrozenClock
) -> None:
    import httpx

    from publisher.web.app import create_app

    clock.set(at(25, 1))
    await add_reader(mailing, "siti@example.org", WIB)
    created = await announcements.create(mailing, draft(), "ed@x.org")
    waiting = await announcements.create(mailing, draft(), "ed@x.org")
    await announcements.send(mailing, waiting.id, at_local=(date(2026, 11, 27), "09:00"))
    app = create_app(mailing)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://x") as http:
            path = f"/digests/announcement-{created.id}/id"
            assert (await http.get(path)).status_code == 404  # a draft is not public
            await announcements.send(mailing, created.id)
            await deliver(mailing, until_idle=True)
            page = await http.get(path)
            assert page.status_code == 200
            assert "<strong>aplikasi</strong>" in page.text
            assert "siti@example.org" not in page.text
            assert "/unsubscribe/" not in page.text
            listing = await http.get("/digests/")
            assert f"announcement-{created.id}/id" in listing.text
            assert f"announcement-{waiting.id}" not in listing.text
            for hostile in (
                f"/digests/announcement-{created.id}/en",
                f"/digests/announcement-{waiting.id}/id",
                "/digests/announcement-0/id",
                "/digests/announcement-" + "9" * 40 + "/id",
                "/digests/announcement-x/id",
            ):
                assert (await http.get(hostile)).status_code == 404, hostile


async def test_two_schedulers_writing_at_once_queue_each_reader_once(
    site: Site, clock: FrozenClock, site_dir: Path
) -> None:
    import asyncio

    from publisher.config import load_settings

    clock.set(at(24, 23))
    for n in range(40):
        await add_reader(site, f"r{n}@example.org", (WIB, WITA, WIT)[n % 3])
    created = await announcements.create(site, draft(), "ed@x.org")
    await announcements.send(site, created.id, at_local=(date(2026, 11, 25), "09:00"))
    other = Site.from_settings(load_settings(site_dir / "publisher.toml"), clock=clock)
    try:
        for moment in (at(25, 0), at(25, 1), at(25, 2), at(25, 21, 15)):
            await asyncio.gather(
                announcements.run_due(site, moment), announcements.run_due(other, moment)
            )
    finally:
        await other.aclose()
    rows = await _outbox(site)
    assert len(rows) == 40
    assert len({r.subscriber_id for r in rows}) == 40
