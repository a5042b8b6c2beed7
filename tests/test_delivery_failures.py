"""Failure handling of a send: per-recipient retries, bounces, pauses and rate limits."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from publisher.clock import FrozenClock, SystemClock
from publisher.db import transaction
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.models import Edition, OutboxRow, RateWindow
from publisher.delivery.retry import RetryPolicy
from publisher.delivery.store import bounce_kind
from publisher.delivery.worker import deliver
from publisher.site import Site
from subscribers import suppression
from subscribers.models import Subscriber
from tests.delivery_helpers import add_articles, add_subscribers
from tests.services import free_port
from tests.smtp_servers import (
    RecordingHandler,
    dropping_server,
    password_authenticator,
    smtp_server,
)


async def _prepare(site: Site, count: int) -> Edition:
    await add_articles(site, 2)
    await add_subscribers(site, count)
    now = site.clock.now()
    edition = await open_edition(site, "daily", now.date(), now)
    await enqueue(site, edition, now)
    return edition


async def _rows(site: Site) -> dict[str, OutboxRow]:
    async with transaction(site.engine) as session:
        return {r.email: r for r in await session.scalars(sa.select(OutboxRow))}


def test_retry_policy_backs_off_with_jitter_and_gives_up() -> None:
    policy = RetryPolicy(timedelta(seconds=60), timedelta(hours=1), rng=random.Random(7))
    first = datetime(2026, 11, 25, tzinfo=UTC)
    delays = [policy.delay(n) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        base = timedelta(seconds=60 * 2 ** (n - 1))
        assert base / 2 <= delay <= base
    assert len({d.total_seconds() for d in delays}) == 5
    assert policy.next_attempt(1, first, first) is not None
    # Never past the deadline, and nothing once it has passed.
    late = policy.next_attempt(9, first, first + timedelta(minutes=59))
    assert late == first + timedelta(hours=1)
    assert policy.next_attempt(10, first, first + timedelta(hours=1)) is None


def test_bounce_kind_reads_enhanced_status() -> None:
    assert bounce_kind("550 5.1.1 no such user") == "hard"
    assert bounce_kind("552 5.2.2 mailbox over quota") == "soft"
    assert bounce_kind("554 rejected") == "hard"


async def test_per_recipient_retries_and_permanent_failures(site: Site, clock: FrozenClock) -> None:
    site.settings.mail.retry_initial = timedelta(seconds=60)
    site.settings.mail.retry_for = timedelta(minutes=30)
    edition = await _prepare(site, 6)
    handler = RecordingHandler(
        rcpt_replies={
            "reader0@example.net": ["421 4.3.2 shutting down"],
            "reader1@example.net": ["451 4.3.0 greylisted", "451 4.3.0 greylisted"],
            "reader2@example.net": ["452 4.2.2 mailbox full"] * 50,
            "reader3@example.net": ["550 5.1.1 no such user"],
            "reader4@example.net": ["552 5.2.2 over quota"],
        }
    )
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        first = await deliver(site)
        assert (first.sent, first.failed, first.retrying) == (1, 2, 3)
        rows = await _rows(site)
        assert rows["reader1@example.net"].status == "retrying"
        assert rows["reader1@example.net"].smtp_code == 451
        due = rows["reader1@example.net"].next_attempt_at
        assert due is not None
        assert timedelta(seconds=30) <= due - clock.now() <= timedelta(seconds=60)
        assert rows["reader3@example.net"].status == "failed"
        assert rows["reader3@example.net"].smtp_code == 550
        # Nothing is due yet with the clock standing still.
        assert (await deliver(site)).retrying == 0
        for _ in range(12):
            clock.advance(timedelta(minutes=4))
            await deliver(site)
    rows = await _rows(site)
    assert rows["reader0@example.net"].status == "sent"
    assert rows["reader1@example.net"].status == "sent"
    assert rows["reader1@example.net"].attempts == 3
    assert rows["reader2@example.net"].status == "failed"
    assert rows["reader2@example.net"].smtp_response.startswith("gave up after")
    assert rows["reader5@example.net"].attempts == 1
    for n in (0, 1, 5):
        assert handler.count(f"reader{n}@example.net") == 1
    async with transaction(site.engine) as session:
        statuses = dict(
            (await session.execute(sa.select(Subscriber.email, Subscriber.status))).tuples().all()
        )
        assert await suppression.is_suppressed(session, "reader3@example.net")
        assert not await suppression.is_suppressed(session, "reader4@example.net")
        assert not await suppression.is_suppressed(session, "reader2@example.net")
        stored = await session.get(Edition, edition.id)
    assert statuses["reader3@example.net"] == "bounced"  # 5.1.1: hard bounce
    assert statuses["reader4@example.net"] == "active"  # 5.2.2: a soft bounce, counted
    assert stored is not None
    assert stored.status == "done"


async def test_data_stage_failures_drops_and_stalls_are_retried(
    site: Site, clock: FrozenClock
) -> None:
    site.settings.mail.connections = 1
    await _prepare(site, 3)
    handler = RecordingHandler(data_replies=["451 4.3.0 queue full", "554 5.7.1 spam"])
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        report = await deliver(site)
    assert (report.sent, report.failed, report.retrying) == (1, 1, 1)
    clock.advance(timedelta(hours=1))
    async with dropping_server() as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        dropped = await deliver(site)
    assert dropped.retrying == 1
    rows = await _rows(site)
    assert rows["reader0@example.net"].smtp_code is None
    assert "connection lost" in rows["reader0@example.net"].smtp_response
    clock.advance(timedelta(hours=1))
    site.settings.mail.timeout = timedelta(seconds=0.5)
    stalled = RecordingHandler(data_delay=3)
    async with smtp_server(stalled) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        report = await deliver(site)
    assert report.retrying == 1
    assert "timed out" in (await _rows(site))["reader0@example.net"].smtp_response
    clock.advance(timedelta(hours=1))
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        assert (await deliver(site)).sent == 1
    assert handler.total() == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_server_down_or_bad_login_pauses_without_failing(
    site: Site, clock: FrozenClock
) -> None:
    edition = await _prepare(site, 5)
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{free_port()}"
    report = await deliver(site)
    assert report.paused is not None
    assert "cannot connect" in report.paused
    assert (report.sent, report.failed, report.retrying) == (0, 0, 0)
    rows = await _rows(site)
    assert {r.status for r in rows.values()} == {"queued"}
    assert {r.attempts for r in rows.values()} == {0}
    async with transaction(site.engine) as session:
        stored = await session.get(Edition, edition.id)
    assert stored is not None
    assert stored.paused_until is not None
    assert stored.paused_until > clock.now()
    assert "cannot connect" in stored.last_error
    # Paused: even a working server gets nothing until the pause ends.
    handler = RecordingHandler()
    authenticator = password_authenticator("news", "right")
    async with smtp_server(
        handler, authenticator=authenticator, auth_required=True, auth_require_tls=False
    ) as port:
        site.settings.mail.smtp_url = f"smtp://news:wrong@127.0.0.1:{port}?auth=plain-insecure"
        assert (await deliver(site)).sent == 0
        clock.advance(timedelta(hours=1))
        refused = await deliver(site)
        assert refused.paused is not None
        assert "authentication failed: 535" in refused.paused
        assert {r.status for r in (await _rows(site)).values()} == {"queued"}
        clock.advance(timedelta(hours=1))
        site.settings.mail.smtp_url = f"smtp://news:right@127.0.0.1:{port}?auth=plain-insecure"
        fixed = await deliver(site)
    assert fixed.sent == 5
    assert fixed.paused is None
    assert handler.total() == 5


async def test_hourly_limit_is_shared_and_survives_restart(site: Site, clock: FrozenClock) -> None:
    site.clock = SystemClock()
    site.settings.mail.rate_per_hour = 4
    await _prepare(site, 7)
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        for _ in range(2):  # a restart must not grant a fresh hour
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(1.0, stop.set)
            report = await deliver(site, stop=stop, until_idle=False)
            assert report.failed == 0
    assert handler.total() == 4
    async with transaction(site.engine) as session:
        window = await session.get(RateWindow, "hour")
        rows = await _rows(site)
    assert window is not None
    assert window.count == 4
    assert sum(r.status == "queued" for r in rows.values()) == 3


async def test_per_second_limit_paces_sending(site: Site) -> None:
    site.clock = SystemClock()
    site.settings.mail.rate_per_second = 10
    await _prepare(site, 25)
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        started = time.monotonic()
        report = await deliver(site)
        elapsed = time.monotonic() - started
    assert report.sent == 25
    assert elapsed >= 1.0  # 25 messages at 10/s span at least three one-second windows
    await site.aclose()


async def test_two_sends_of_one_edition_date_share_it(site: Site, clock: FrozenClock) -> None:
    await _prepare(site, 2)
    again = await open_edition(site, "daily", date(2026, 11, 25), clock.now())
    report = await enqueue(site, again, clock.now())
    assert report.already_queued == 2
