"""`publisher digest send`, `digest status` and `publisher worker`, run as a user runs them.

Mail goes to a real aiosmtpd MailSink on loopback (in its own thread, since the command
runs its own event loop); the worker is a real subprocess stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa

from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.editions import current_edition_date, enqueue, open_edition
from publisher.delivery.mailsink import MailSink
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.store import open_store
from publisher.site import Site
from subscribers.models import Subscriber
from tests.clirunner import ROOT, invoke
from tests.delivery_helpers import add_articles, add_subscribers

# What is under test is the command, not the database: SQLite keeps the file fast.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

T = TypeVar("T")
ACTIVE_READERS = {f"reader{n}@example.net" for n in range(3)}


@pytest.fixture
def sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MailSink]:
    """A MailSink on loopback, served from its own thread; the site sends to it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = MailSink(tmp_path / "mail", port=0)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", f"smtp://127.0.0.1:{server.port}")
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def on_site(site_dir: Path, work: Callable[[Site], Awaitable[T]]) -> T:
    """Run ``work`` against the site as the command sees it (settings, env, real clock)."""

    async def go() -> T:
        site = Site.from_settings(load_settings(site_dir / "publisher.toml"))
        try:
            return await work(site)
        finally:
            await site.aclose()

    return asyncio.run(go())


@pytest.fixture
def config(site_dir: Path, sink: MailSink) -> Path:
    """A site with two articles, three active readers and one who left."""

    async def seed(site: Site) -> None:
        await add_articles(site, 2)
        await add_subscribers(site, 3)
        await add_subscribers(site, 1, start=3, status="unsubscribed")

    on_site(site_dir, seed)
    return site_dir / "publisher.toml"


def sent_to(sink: MailSink) -> list[str]:
    """Return every envelope recipient the sink received, sorted."""
    return sorted(r for message in sink.messages for r in message.recipients)


def delivery_state(site_dir: Path) -> tuple[int, int, list[datetime | None]]:
    """Return (editions, outbox rows, each subscriber's last_digest_at)."""

    async def read(site: Site) -> tuple[int, int, list[datetime | None]]:
        async with transaction(site.engine) as session:
            editions = await session.scalar(sa.select(sa.func.count()).select_from(Edition))
            rows = await session.scalar(sa.select(sa.func.count()).select_from(OutboxRow))
            last = list(
                await session.scalars(sa.select(Subscriber.last_digest_at).order_by(Subscriber.id))
            )
        return int(editions or 0), int(rows or 0), last

    return on_site(site_dir, read)


def test_send_mails_active_readers_once(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    first = invoke(capsys, "--config", config, "digest", "send")
    assert first.exit_code == 0, first.stderr
    assert "3 queued now" in first.stdout
    assert sent_to(sink) == sorted(ACTIVE_READERS)
    assert all(message.subject for message in sink.messages)
    _, _, last = delivery_state(site_dir)
    assert sum(when is not None for when in last) == 3

    again = invoke(capsys, "--config", config, "digest", "send")
    assert again.exit_code == 0, again.stderr
    assert "0 queued now, 3 already queued" in again.stdout
    assert len(sink.messages) == 3


def test_dry_run_writes_and_sends_nothing(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    result = invoke(capsys, "--config", config, "digest", "send", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would send 3 message(s)" in result.stdout
    assert "nothing was sent or written" in result.stdout
    assert sink.messages == []
    assert delivery_state(site_dir) == (0, 0, [None] * 4)


def test_to_sends_one_test_copy_and_touches_no_state(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    result = invoke(capsys, "--config", config, "digest", "send", "--to", "editor@example.com")
    assert result.exit_code == 0, result.stderr
    assert "no subscriber was touched" in result.stdout
    assert sent_to(sink) == ["editor@example.com"]
    assert "Artikel 0" in sink.messages[0].path.read_text(encoding="utf-8")
    # One outbox row (the test copy, sent); no edition, no reader's window moved.
    assert delivery_state(site_dir) == (0, 1, [None] * 4)


def test_resume_finishes_queued_rows_and_queues_nobody_new(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    async def queue_then_add_a_reader(site: Site) -> None:
        now = site.clock.now()
        edition = await open_edition(site, "daily", now.date(), now)
        report = await enqueue(site, edition, now)
        assert report.queued == 3
        await add_subscribers(site, 1, start=9, created_at=now - timedelta(days=1))

    on_site(site_dir, queue_then_add_a_reader)
    result = invoke(capsys, "--config", config, "digest", "send", "--resume")
    assert result.exit_code == 0, result.stderr
    assert sent_to(sink) == sorted(ACTIVE_READERS)
    assert "queued now" not in result.stdout
    assert "3 sent" in result.stdout


def test_status_counts_by_status_as_text_and_json(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink
) -> None:
    missing = invoke(capsys, "--config", config, "digest", "status")
    assert (missing.exit_code, missing.error_lines) == (2, ["error: no editions yet"])
    assert invoke(capsys, "--config", config, "digest", "send").exit_code == 0

    document = invoke(capsys, "--config", config, "digest", "status", "--json").json()
    key = document["edition"]
    assert key.startswith("daily:")
    assert document["counts"] == {
        "queued": 0,
        "claimed": 0,
        "retrying": 0,
        "sent": 3,
        "failed": 0,
        "cancelled": 0,
    }
    assert (document["total"], document["errors"]) == (3, [])

    named = invoke(capsys, "--config", config, "digest", "status", key)
    assert named.exit_code == 0, named.stderr
    assert f"edition {key}: done" in named.stdout
    lines = {line.split()[0]: line.split()[-1] for line in named.stdout.splitlines()[1:] if line}
    assert (lines["sent"], lines["queued"], lines["total"]) == ("3", "0", "3")

    unknown = invoke(capsys, "--config", config, "digest", "status", "daily:1999-01-01")
    assert unknown.exit_code == 2
    assert unknown.error_lines == [
        "error: no edition 'daily:1999-01-01' (keys look like daily:2026-11-25)"
    ]


def test_status_shows_transactional_mail_waiting_or_failed(
    capsys: pytest.CaptureFixture[str], config: Path, site_dir: Path
) -> None:
    from publisher.delivery import store
    from publisher.delivery.models import FAILED, MailKind

    async def queue_notices(site: Site) -> None:
        now = site.clock.now()
        await add_subscribers(site, 3, start=500, status="pending")
        async with transaction(site.engine) as session:
            ids = list(
                await session.scalars(
                    sa.select(Subscriber.id).where(Subscriber.status == "pending")
                )
            )
            for subscriber_id in ids:
                await store.queue_notice(
                    session,
                    MailKind.CONFIRMATION,
                    subscriber_id,
                    f"p{subscriber_id}@example.net",
                    now,
                    domain="example.net",
                )
            await store.queue_notice(
                session, MailKind.WELCOME, ids[0], "w@example.net", now, domain="example.net"
            )
            await session.execute(
                sa.update(OutboxRow)
                .where(OutboxRow.kind == MailKind.CONFIRMATION)
                .where(OutboxRow.subscriber_id == ids[0])
                .values(status=FAILED)
            )

    on_site(site_dir, queue_notices)
    # No edition yet: the notices alone are worth showing.
    document = invoke(capsys, "--config", config, "digest", "status", "--json").json()
    assert document["edition"] is None
    assert document["notices"] == {
        "confirmation": {"queued": 2, "retrying": 0, "claimed": 0, "failed": 1},
        "welcome": {"queued": 1, "retrying": 0, "claimed": 0, "failed": 0},
    }
    text = invoke(capsys, "--config", config, "digest", "status")
    assert text.exit_code == 0, text.stderr
    cells = [line.replace("│", " ").split() for line in text.stdout.splitlines()]
    rows = {cell[0]: cell[1:] for cell in cells if cell}
    assert rows["confirmation"] == ["2", "0", "0", "1"]
    assert rows["welcome"] == ["1", "0", "0", "0"]


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_worker_sends_queued_mail_and_exits_cleanly_on_sigterm(
    config: Path, sink: MailSink, site_dir: Path
) -> None:
    async def queue(site: Site) -> None:
        now = site.clock.now()
        await enqueue(site, await open_edition(site, "daily", now.date(), now), now)

    on_site(site_dir, queue)
    env: dict[str, Any] = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    worker = subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(config), "worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert _wait_for(lambda: len(sink.messages) == 3, 30), "worker sent nothing"
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
    assert worker.returncode == 0, stderr
    assert sent_to(sink) == sorted(ACTIVE_READERS)
    assert "worker started" in stdout
    assert "worker stopped" in stdout
    assert "Traceback" not in stderr
    _, _, last = delivery_state(site_dir)
    assert sum(when is not None for when in last) == 3


def test_dry_run_counts_equal_the_real_runs_after_a_partial_send(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    async def queue_then_add_a_reader(site: Site) -> None:
        now = site.clock.now()
        # The edition `digest send` opens: today in the site's zone, not in UTC.
        today = current_edition_date(site, "daily", now)
        edition = await open_edition(site, "daily", today, now)
        assert (await enqueue(site, edition, now)).queued == 3
        await add_subscribers(site, 1, start=9, created_at=now - timedelta(days=1))

    on_site(site_dir, queue_then_add_a_reader)
    dry = invoke(capsys, "--config", config, "digest", "send", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "would send 1 message(s); 3 already queued" in dry.stdout
    real = invoke(capsys, "--config", config, "digest", "send")
    assert real.exit_code == 0, real.stderr
    assert "1 queued now, 3 already queued" in real.stdout


def test_retry_now_lifts_a_pause(
    capsys: pytest.CaptureFixture[str], config: Path, sink: MailSink, site_dir: Path
) -> None:
    async def queue_and_pause(site: Site) -> None:
        now = site.clock.now()
        edition = await open_edition(site, "daily", now.date(), now)
        await enqueue(site, edition, now)
        await open_store(site).pause(now + timedelta(hours=1), "server was down")

    on_site(site_dir, queue_and_pause)
    waiting = invoke(capsys, "--config", config, "digest", "send", "--resume")
    assert waiting.exit_code == 0, waiting.stderr
    assert sink.messages == []  # paused for another hour: nothing is claimed
    now = invoke(capsys, "--config", config, "digest", "send", "--resume", "--retry-now")
    assert now.exit_code == 0, now.stderr
    assert sent_to(sink) == sorted(ACTIVE_READERS)
