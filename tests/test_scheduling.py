"""The scheduler process: its lock, its jobs, start/stop and `publisher schedule`."""

from __future__ import annotations

import asyncio
import copy
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from publisher import db
from publisher.cli import cli
from publisher.clock import FrozenClock
from publisher.config import SourceSettings, load_settings
from publisher.content.models import Article
from publisher.errors import LockedError
from publisher.planning import TICK, next_tick
from publisher.scheduling import (
    ADVISORY_KEY,
    SOURCES_JOB,
    TICK_JOB,
    ScheduleRunner,
    job_specs,
    lock_file_for,
    overview,
    schedule_lines,
    take_lock,
)
from publisher.site import Site
from tests.scheduling_helpers import add_reader


async def test_second_lock_is_refused_until_the_first_is_released(site: Site) -> None:
    first = await take_lock(site)
    try:
        with pytest.raises(LockedError, match="another scheduler is already running"):
            await take_lock(site)
    finally:
        await first.release()
    again = await take_lock(site)
    await again.verify()
    await again.release()
    # Releasing twice is harmless.
    await again.release()


async def test_sqlite_lock_file_sits_beside_the_database_and_names_the_holder(site: Site) -> None:
    if not db.is_sqlite(site.settings.database.url):
        pytest.skip("lock file is the SQLite lock")
    database = db.sqlite_path(site.settings.database.url)
    assert database is not None
    path = lock_file_for(site.settings)
    assert path.parent == database.parent
    assert path.name == database.name + ".scheduler.lock"
    async with await take_lock(site):
        with pytest.raises(LockedError) as caught:
            await take_lock(site)
        assert str(path) in str(caught.value)
        assert f"held by pid {os.getpid()}" in str(caught.value)
    # The file stays (deleting it would let two schedulers in, see publisher/locks.py).
    assert path.exists()


async def test_postgres_lock_names_the_holding_backend(site: Site) -> None:
    if db.is_sqlite(site.settings.database.url):
        pytest.skip("advisory lock is the PostgreSQL lock")
    async with await take_lock(site):
        with pytest.raises(LockedError, match=r"advisory lock .* held by backend pid \d+"):
            await take_lock(site)


async def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a condition the scheduler's own loop will make true (no time-driving sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def apscheduler_tables(url: str) -> set[str]:
    """Return the tables whose name says APScheduler made them."""
    engine = db.create_sync_engine(url)
    try:
        return {name for name in sa.inspect(engine).get_table_names() if "apscheduler" in name}
    finally:
        engine.dispose()


async def test_runner_ticks_at_once_then_on_the_quarter_hours_and_stops_cleanly(
    site: Site, clock: FrozenClock
) -> None:
    runner = ScheduleRunner(site)
    await runner.start()
    try:
        await wait_for(lambda: len(runner.ticks) == 1)
        assert runner.ticks[0].now == clock.now()
        runs = runner.next_runs()
        assert set(runs) == {TICK_JOB}
        next_run = runs[TICK_JOB]
        assert next_run is not None
        # Ticks land on planning's tick grid (quarter hours), less than a tick from now.
        assert next_run == next_tick(datetime.now(UTC))
        assert next_run.minute % 15 == 0
        assert next_run.second == 0
        assert timedelta(0) < next_run - datetime.now(UTC) <= TICK
        # A second scheduler on the same database refuses to start, and says why.
        other = Site.from_settings(load_settings(site.settings.config_path), clock=clock)
        with pytest.raises(LockedError, match="already running"):
            await ScheduleRunner(other).start()
        await other.aclose()
    finally:
        await runner.stop()
    assert runner.next_runs() == {}
    # Stopped: the lock is free again and a new scheduler starts.
    again = ScheduleRunner(site)
    await again.start()
    try:
        await wait_for(lambda: len(again.ticks) == 1)
        assert set(again.next_runs()) == {TICK_JOB}
    finally:
        await again.stop()
    # Nothing about the schedule is kept in the database: idempotency lives in the data.
    assert apscheduler_tables(site.settings.database.url) == set()


async def test_a_job_already_running_is_not_started_twice(site: Site) -> None:
    runner = ScheduleRunner(site)
    await runner.start()
    try:
        await wait_for(lambda: len(runner.ticks) == 1)
        # Both at once (the start's run and a scheduled one): the second finds it busy.
        await asyncio.gather(runner.run_job(TICK_JOB), runner.run_job(TICK_JOB))
        assert len(runner.ticks) == 2
    finally:
        await runner.stop()
    # Stopped: a late firing does nothing.
    await runner.run_job(TICK_JOB)
    assert len(runner.ticks) == 2


def test_sources_job_only_when_sources_are_configured(site: Site) -> None:
    assert [(spec.id, spec.every) for spec in job_specs(site.settings)] == [(TICK_JOB, TICK)]
    settings = copy.deepcopy(site.settings)
    settings.sources = [SourceSettings(url="https://example.org/feed.xml")]
    specs = job_specs(settings)
    assert [spec.id for spec in specs] == [TICK_JOB, SOURCES_JOB]


async def test_overview_and_schedule_lines(site: Site, clock: FrozenClock) -> None:
    clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    await add_reader(site, "wib@example.org", "Asia/Jakarta")
    await add_reader(site, "wit@example.org", "Asia/Jayapura")
    await add_reader(site, "wit2@example.org", "Asia/Jayapura")
    await add_reader(site, "weekly@example.org", "Asia/Makassar", frequency="weekly")
    await add_reader(site, "pending@example.org", "Asia/Makassar", status="pending")
    view = await overview(site)
    assert [job.id for job in view.jobs] == [TICK_JOB]
    assert view.jobs[0].next_run == datetime(2026, 11, 24, 21, 30, tzinfo=UTC)
    clock.set(datetime(2026, 11, 24, 21, 30, 1, tzinfo=UTC))
    assert (await overview(site)).jobs[0].next_run == datetime(2026, 11, 24, 21, 45, tzinfo=UTC)
    clock.set(datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    sends = [(plan.frequency, plan.timezone, plan.send_at, plan.subscribers) for plan in view.sends]
    # Soonest first; the site's own zone is listed even with nobody in it; pending
    # readers are not counted.
    assert sends == [
        ("daily", "Asia/Jayapura", datetime(2026, 11, 24, 22, 0, tzinfo=UTC), 2),
        ("daily", "Asia/Jakarta", datetime(2026, 11, 25, 0, 0, tzinfo=UTC), 1),
        ("weekly", "Asia/Makassar", datetime(2026, 11, 29, 23, 0, tzinfo=UTC), 1),
        ("weekly", "Asia/Jakarta", datetime(2026, 11, 30, 0, 0, tzinfo=UTC), 0),
    ]
    lines = await schedule_lines(site)
    assert "07:00 in each reader's own time zone" in lines[0]
    assert "checks every 15 minutes" in lines[0]
    assert any("Asia/Jayapura" in line and "2 subscribers" in line for line in lines)
    assert any("job digest-tick: next run 2026-11-24 21:30 UTC" in line for line in lines)


def test_schedule_show_command(site_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--config", str(site_dir / "publisher.toml"), "schedule", "show"]
    )
    assert result.exit_code == 0, result.output
    assert "digest-tick" in result.output
    assert "every 15 minutes" in result.output
    assert "Asia/Jakarta" in result.output


def _spawn(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(config), "schedule", "run"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_two_scheduler_processes_started_at_once(site_dir: Path, tmp_path: Path) -> None:
    config = site_dir / "publisher.toml"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    processes = [_spawn(config, log) for log in logs]
    try:
        deadline = time.monotonic() + 180  # process start-up is slow on a busy machine
        while all(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        refused = [i for i, p in enumerate(processes) if p.poll() is not None]
        assert len(refused) == 1, [log.read_text() for log in logs]
        loser, winner = processes[refused[0]], processes[1 - refused[0]]
        assert loser.returncode == 1
        message = logs[refused[0]].read_text()
        assert message.startswith("error: another scheduler is already running"), message
        assert "Traceback" not in message
        # The winner really runs: it logs its start and its first tick.
        deadline = time.monotonic() + 180  # process start-up is slow on a busy machine
        while "tick " not in logs[1 - refused[0]].read_text():
            assert winner.poll() is None, logs[1 - refused[0]].read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        winner.send_signal(signal.SIGTERM)
        assert winner.wait(timeout=90) == 0
        output = logs[1 - refused[0]].read_text()
        assert "scheduler stopped" in output
        assert "Traceback" not in output
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    # The lock went with the process: a new scheduler starts.
    third = _spawn(config, tmp_path / "c.log")
    try:
        deadline = time.monotonic() + 180  # process start-up is slow on a busy machine
        while "scheduler started" not in (tmp_path / "c.log").read_text():
            assert third.poll() is None, (tmp_path / "c.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        third.send_signal(signal.SIGINT)
        assert third.wait(timeout=90) == 0
    finally:
        if third.poll() is None:
            third.kill()
            third.wait()


RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Kabar Mitra</title><link>http://127.0.0.1/</link>
<description>mitra</description>
<item><title>Pelabuhan Ambon diperluas</title><link>http://127.0.0.1/a</link>
<guid>mitra-a</guid><pubDate>Tue, 24 Nov 2026 03:00:00 +0000</pubDate>
<description>Pelabuhan Ambon diperluas untuk kapal feri yang lebih besar.</description></item>
<item><title>Festival kopi Toraja</title><link>http://127.0.0.1/b</link>
<guid>mitra-b</guid><pubDate>Tue, 24 Nov 2026 04:00:00 +0000</pubDate>
<description>Petani kopi Toraja memamerkan panen terbaik mereka.</description></item>
</channel></rss>
"""


class _Partner(http.server.BaseHTTPRequestHandler):
    """A partner site serving an RSS feed, and a WebSub hub recording publish pings."""

    pings: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = RSS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        self.pings.append(form["hub.url"][0])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_sources_job_imports_followed_feeds_and_pings_the_hub(site: Site) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Partner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Partner.pings.clear()
    site.settings.sources = [SourceSettings(url=f"{base}/feed.xml", tags=["mitra"])]
    site.settings.web.websub_hub = f"{base}/hub"
    # The partner feed is served on loopback, which a real site refuses to fetch from.
    site.settings.fetch.allow_private_addresses = True
    runner = ScheduleRunner(site)
    try:
        await runner.start()
        try:
            assert set(runner.next_runs()) == {TICK_JOB, SOURCES_JOB}
            await wait_for(lambda: len(runner.source_runs) == 1)
            await runner.pinger.wait()
        finally:
            await runner.stop()
    finally:
        server.shutdown()
        thread.join()
    report = runner.source_runs[0]
    assert report.count("created") == 2
    async with db.transaction(site.engine) as session:
        titles = set(await session.scalars(sa.select(Article.title)))
    assert {"Pelabuhan Ambon diperluas", "Festival kopi Toraja"} <= titles
    # The hub heard about the site's feeds once the import changed them.
    assert f"{site.settings.site.base_url}/feed.xml" in _Partner.pings


async def test_lost_postgres_lock_stops_the_scheduler(site: Site) -> None:
    if db.is_sqlite(site.settings.database.url):
        pytest.skip("only a PostgreSQL lock lives on a connection that can be lost")
    runner = ScheduleRunner(site)
    task = asyncio.create_task(runner.run_until_stopped())
    await wait_for(lambda: len(runner.ticks) == 1)
    # Kill the backend holding the advisory lock, as a database restart would.
    engine = db.create_sync_engine(site.settings.database.url)
    with engine.begin() as connection:
        killed = (
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :low"
                ),
                {"low": ADVISORY_KEY & 0xFFFFFFFF},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert list(killed) == [True]
    await runner.run_job(TICK_JOB)  # the next job notices
    with pytest.raises(LockedError, match="connection lost"):
        await asyncio.wait_for(task, timeout=30)
    # Another scheduler may now take over.
    async with await take_lock(site):
        pass
