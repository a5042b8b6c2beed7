"""Backup and restore as docs/operations.md describes them, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from publisher import db
from publisher.cli.init import init_site
from publisher.clock import SystemClock
from publisher.config import load_settings
from publisher.delivery.editions import enqueue, open_edition
from publisher.site import Site
from tests.clirunner import ROOT, CliResult, run_module
from tests.delivery_helpers import add_articles, add_subscribers

#: Readers the writer imports while the backups run; one transaction per 1,000.
IMPORTED = 15_000
BATCH = 1000


async def seeded_site(site_dir: Path, url: str | None = None) -> str:
    """Create a site with articles, readers and one queued edition; return its key."""
    init_site(site_dir, title="Kabar", base_url="https://news.example.org")
    settings = load_settings(site_dir / "publisher.toml")
    if url is not None:
        settings.database.url = url
    site = Site.from_settings(settings, clock=SystemClock())
    try:
        await add_articles(site, 4, language="id")
        await add_subscribers(site, 50)
        now = site.clock.now()
        edition = await open_edition(site, "daily", now.date(), now)
        await enqueue(site, edition, now)
        return edition.period_key
    finally:
        await site.aclose()


def cli(site_dir: Path, *args: str) -> CliResult:
    return run_module("--config", site_dir / "publisher.toml", *args, cwd=site_dir)


def readers_in(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        (count,) = connection.execute("SELECT count(*) FROM subscribers").fetchone()
        (check,) = connection.execute("PRAGMA integrity_check").fetchone()
    assert check == "ok"
    return int(count)


@pytest.mark.slow
async def test_sqlite_online_backup_while_a_writer_runs_then_restore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PUBLISHER_DATABASE__URL", raising=False)
    site_dir = tmp_path / "site"
    edition = await seeded_site(site_dir)
    database = site_dir / "publisher.db"
    articles = cli(site_dir, "articles", "list", "--json").json()
    # The import reads its CSV from a pipe that stays open until both backups are made:
    # it commits batches while they run and cannot finish before, however fast it is.
    csv = tmp_path / "readers.csv"
    os.mkfifo(csv)
    backed_up = threading.Event()

    def feed() -> None:
        with csv.open("w") as pipe:
            pipe.write("email,name\n")
            for start in range(0, IMPORTED, 250):
                pipe.write(
                    "".join(f"new{n}@example.org,Pembaca {n}\n" for n in range(start, start + 250))
                )
                pipe.flush()
                time.sleep(0.05)
            backed_up.wait(timeout=300)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writer = subprocess.Popen(
        [sys.executable, "-m", "publisher", "subscribers", "import", str(csv), "--confirmed"],
        cwd=site_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while readers_in(database) < 50 + BATCH:
            assert writer.poll() is None, writer.communicate()
            assert time.monotonic() < deadline, "the import never committed a batch"
            time.sleep(0.05)
        # The two ways docs/operations.md gives, both while the import commits batches.
        by_sqlite3 = tmp_path / "by-sqlite3.db"
        subprocess.run(
            ["sqlite3", str(database), f".backup '{by_sqlite3}'"], check=True, timeout=120
        )
        by_publisher = tmp_path / "by-publisher.db"
        made = cli(site_dir, "db", "backup", str(by_publisher))
        assert made.exit_code == 0, made.stderr
        assert writer.poll() is None, "the import ended before the backups: nothing was proven"
        backed_up.set()
        _, err = writer.communicate(timeout=300)
    finally:
        backed_up.set()
        feeder.join(timeout=60)
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err.decode()
    final = readers_in(database)
    assert final == 50 + IMPORTED
    assert by_publisher.stat().st_mode & 0o777 == 0o600
    for backup in (by_sqlite3, by_publisher):
        copied = readers_in(backup)
        # A snapshot between two committed batches: never half a batch, never the end.
        assert 50 + BATCH <= copied < final, backup
        assert (copied - 50) % BATCH == 0, (backup, copied)

    # Restore in place, as documented: stop everything, replace the file, drop the old
    # database's -wal and -shm (they belong to the file being replaced).
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(by_publisher, database)
    assert cli(site_dir, "db", "upgrade", "--check").exit_code == 0
    assert cli(site_dir, "articles", "list", "--json").json() == articles
    status = cli(site_dir, "digest", "status", edition, "--json")
    assert status.exit_code == 0, status.stderr
    assert status.json()["total"] == 50
    readers = cli(site_dir, "subscribers", "list", "--json")
    assert readers.exit_code == 0, readers.stderr
    assert len(readers.json()) == readers_in(by_publisher)

    refused = cli(site_dir, "db", "backup", str(by_publisher))
    assert refused.exit_code == 2
    assert refused.error_lines == [f"error: {by_publisher}: already exists; choose a new file name"]


@pytest.mark.postgres
@pytest.mark.slow
async def test_postgres_dump_and_restore_round_trip(
    tmp_path: Path, postgres_server: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    pg_dump, pg_restore = shutil.which("pg_dump"), shutil.which("pg_restore")
    if pg_dump is None or pg_restore is None:
        pytest.skip("pg_dump/pg_restore not installed (.ci/system-deps installs postgresql)")
    source = fresh_postgres_database(postgres_server)
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", source)
    site_dir = tmp_path / "site"
    edition = await seeded_site(site_dir, source)
    articles = cli(site_dir, "articles", "list", "--json").json()
    before = cli(site_dir, "digest", "status", edition, "--json").json()

    dump = tmp_path / "publisher.dump"
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), "-d", source], check=True, timeout=120)
    restored = fresh_postgres_database(postgres_server)
    subprocess.run(
        [pg_restore, "--no-owner", "--exit-on-error", "-d", restored, str(dump)],
        check=True,
        timeout=120,
    )
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", restored)
    assert db.current_revision(restored) == db.head_revision()
    check = cli(site_dir, "db", "upgrade", "--check")
    assert check.exit_code == 0, check.stderr
    assert cli(site_dir, "articles", "list", "--json").json() == articles
    after = cli(site_dir, "digest", "status", edition, "--json")
    assert after.exit_code == 0, after.stderr
    assert after.json() == before
    assert len(cli(site_dir, "subscribers", "list", "--json").json()) == 50
    # The restored copy takes writes (sequences came along with the rows).
    added = cli(site_dir, "subscribers", "add", "baru@example.org", "--confirmed")
    assert added.exit_code == 0, added.stderr
    # db backup is SQLite's: for PostgreSQL it points at pg_dump.
    refused = cli(site_dir, "db", "backup", str(tmp_path / "x.db"))
    assert refused.exit_code == 2
    assert "pg_dump -Fc" in refused.stderr
