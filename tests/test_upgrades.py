"""`db upgrade --check`, the migration lock timeout, and a worker surviving an expand migration."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from publisher import db
from publisher.db import transaction
from publisher.delivery.models import Edition, OutboxRow
from publisher.errors import StoreError
from tests.clirunner import ROOT, invoke
from tests.delivery_helpers import postgres_edition, start_worker
from tests.services import free_port
from tests.smtp_servers import RecordingHandler, smtp_server

NEWER = "0999_newer_release"

#: A newer release's migration, following the expand rule of docs/development.md: a
#: nullable column, and an index built CONCURRENTLY outside the migration's transaction.
EXPAND_MIGRATION = '''
"""Rehearse a newer release's expand migration (test only)."""

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("relay_note", sa.String(200), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # An earlier run stopped by the lock timeout may have left it INVALID.
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_outbox_relay_note")
            op.create_index(
                "ix_outbox_relay_note", "outbox", ["relay_note"], postgresql_concurrently=True
            )
    else:
        op.create_index("ix_outbox_relay_note", "outbox", ["relay_note"])


def downgrade() -> None:
    op.drop_index("ix_outbox_relay_note", "outbox")
    op.drop_column("outbox", "relay_note")
'''


def newer_release(directory: Path) -> Path:
    """Write the newer release's migration into its own version folder."""
    directory.mkdir(parents=True, exist_ok=True)
    text = EXPAND_MIGRATION.format(revision=NEWER, down=db.head_revision())
    (directory / f"{NEWER}.py").write_text(text)
    return directory


def set_revision(url: str, revision: str) -> None:
    engine = db.create_sync_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
            )
    finally:
        engine.dispose()


def empty_database_like(url: str, tmp_path: Path) -> str:
    if db.is_sqlite(url):
        return f"sqlite:///{tmp_path / 'empty.db'}"
    from tests.services import fresh_postgres_database

    return fresh_postgres_database(url)


def test_upgrade_check_tells_head_pending_ahead_and_unreachable(
    site_dir: Path,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = site_dir / "publisher.toml"
    head = db.head_revision()
    at_head = invoke(capsys, "--config", config, "db", "upgrade", "--check")
    assert (at_head.exit_code, at_head.stdout.strip()) == (0, f"database at head {head}")

    # Behind: one line listing what would be applied, and nothing applied.
    set_revision(database_url, "0004_outbox_kinds")
    behind = invoke(capsys, "--config", config, "db", "upgrade", "--check")
    assert behind.exit_code == 1, behind
    assert behind.stdout.count("\n") == 1
    assert behind.stdout.startswith("database at 0004_outbox_kinds, pending: 0005_accounts ")
    assert behind.stdout.split()[-1] == head
    assert db.current_revision(database_url) == "0004_outbox_kinds"

    # Ahead: a newer release migrated; this one says so, refuses to "upgrade", still runs.
    set_revision(database_url, NEWER)
    ahead = invoke(capsys, "--config", config, "db", "upgrade", "--check")
    assert ahead.exit_code == 3, ahead
    assert len(ahead.error_lines) == 1
    assert NEWER in ahead.stderr
    assert "newer release" in ahead.stderr
    refused = invoke(capsys, "--config", config, "db", "upgrade")
    assert refused.exit_code == 1
    assert len(refused.error_lines) == 1
    assert NEWER in refused.stderr
    listed = invoke(capsys, "--config", config, "articles", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert db.current_revision(database_url) == NEWER
    set_revision(database_url, head)

    # An empty database: every migration is pending, and --check creates no table.
    empty = empty_database_like(database_url, tmp_path)
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", empty)
    fresh = invoke(capsys, "--config", config, "db", "upgrade", "--check")
    assert fresh.exit_code == 1, fresh
    assert fresh.stdout.startswith("database at no schema, pending: 0001_content ")
    assert db.current_revision(empty) is None
    applied = invoke(capsys, "--config", config, "db", "upgrade")
    assert applied.exit_code == 0, applied.stderr
    assert applied.stdout.strip() == f"database upgraded from empty to {head}"
    assert invoke(capsys, "--config", config, "db", "upgrade", "--check").exit_code == 0

    # Unreachable: its own status, one line naming the database (no password).
    monkeypatch.setenv(
        "PUBLISHER_DATABASE__URL", f"postgresql://deploy:hunter2@127.0.0.1:{free_port()}/gone"
    )
    gone = invoke(capsys, "--config", config, "db", "upgrade", "--check")
    assert gone.exit_code == 4, gone
    assert len(gone.error_lines) == 1
    assert "127.0.0.1" in gone.stderr
    assert "hunter2" not in gone.stderr


def test_expand_migration_applies_on_top_of_this_release(
    site_dir: Path, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = newer_release(tmp_path / "newer")
    assert db.upgrade(database_url, version_dirs=[versions]) == db.head_revision()
    assert db.current_revision(database_url) == NEWER
    assert db.schema_status(database_url).state is db.SchemaState.AHEAD
    # This release's code opens (no automatic "upgrade") and works on the newer schema.
    config = site_dir / "publisher.toml"
    added = invoke(capsys, "--config", config, "subscribers", "add", "ani@example.org")
    assert added.exit_code == 0, added.stderr
    listed = invoke(capsys, "--config", config, "subscribers", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [row["email"] for row in listed.json()] == ["ani@example.org"]


@pytest.mark.postgres
def test_migration_gives_up_on_a_held_lock_with_one_line(
    tmp_path: Path, postgres_server: str | None
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    database_url = fresh_postgres_database(postgres_server)
    db.upgrade(database_url)
    versions = newer_release(tmp_path / "newer")
    holder_engine = db.create_sync_engine(database_url)
    try:
        with holder_engine.connect() as holder:
            # A transaction left open after reading the outbox (ACCESS SHARE) blocks
            # ALTER TABLE: without a lock timeout `db upgrade` would wait for ever.
            holder.execute(sa.text("SELECT count(*) FROM outbox"))
            started = time.monotonic()
            with pytest.raises(StoreError) as caught:
                db.upgrade(database_url, lock_timeout=1.0, version_dirs=[versions])
            waited = time.monotonic() - started
            holder.rollback()
    finally:
        holder_engine.dispose()
    message = str(caught.value)
    assert "\n" not in message
    assert "waiting 1 s for a lock" in message
    assert "ALTER TABLE outbox ADD COLUMN relay_note" in message
    assert waited < 20
    assert db.current_revision(database_url) == db.head_revision()  # nothing half-applied
    assert db.upgrade(database_url, lock_timeout=1.0, version_dirs=[versions])
    assert db.current_revision(database_url) == NEWER


READERS = 1200


@pytest.mark.postgres
@pytest.mark.slow
async def test_worker_keeps_sending_while_a_newer_release_expands_the_schema(
    tmp_path: Path, postgres_server: str | None
) -> None:
    site_dir, url, site, edition = await postgres_edition(
        tmp_path, postgres_server, articles=3, readers=READERS
    )
    versions = newer_release(tmp_path / "newer")

    async def sent() -> int:
        async with transaction(site.engine) as session:
            count = await session.scalar(
                sa.select(sa.func.count()).select_from(OutboxRow).where(OutboxRow.status == "sent")
            )
        return int(count or 0)

    # 10+ s of sending at the least, so the migration surely lands in the middle.
    handler = RecordingHandler(data_delay=0.015)
    async with smtp_server(handler) as port:
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            PUBLISHER_DATABASE__URL=url,
            PUBLISHER_MAIL__SMTP_URL=f"smtp://127.0.0.1:{port}",
            PUBLISHER_MAIL__CONNECTIONS="2",
        )

        workers = [await start_worker(site_dir, env)]
        deadline = time.monotonic() + 60
        while await sent() < 50:
            assert time.monotonic() < deadline, "the worker never started sending"
            await asyncio.sleep(0.1)
        # The newer release migrates from another process, mid-send.
        migration = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from publisher import db; "
            "db.upgrade(sys.argv[1], version_dirs=[Path(sys.argv[2])])",
            url,
            str(versions),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, migration_err = await asyncio.wait_for(migration.communicate(), timeout=60)
        assert migration.returncode == 0, migration_err.decode()
        during = await sent()
        assert during < READERS, "the send finished before the migration: nothing was proven"
        # A worker of this release started on the newer schema works too (a restart).
        workers.append(await start_worker(site_dir, env))
        deadline = time.monotonic() + 120
        while await sent() < READERS:
            assert time.monotonic() < deadline, f"stuck at {await sent()} of {READERS}"
            for worker in workers:
                assert worker.returncode is None, "a worker died"
            await asyncio.sleep(0.2)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(w.communicate(), timeout=30) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
        assert b"worker stopped:" in out
    counts = Counter({address: len(copies) for address, copies in handler.delivered.items()})
    assert len(counts) == READERS
    assert set(counts.values()) == {1}, counts.most_common(3)
    async with transaction(site.engine) as session:
        stored = await session.get(Edition, edition.id)
        columns = await session.scalar(
            sa.text(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'outbox' AND column_name = 'relay_note'"
            )
        )
        valid = await session.scalar(
            sa.text(
                "SELECT indisvalid FROM pg_index "
                "WHERE indexrelid = 'ix_outbox_relay_note'::regclass"
            )
        )
    await site.aclose()
    assert stored is not None
    assert stored.status == "done"
    assert columns == 1
    assert valid is True
    assert db.current_revision(url) == NEWER


def test_the_cli_default_lock_timeout_is_the_runners() -> None:
    from publisher.cli import database

    assert database.LOCK_TIMEOUT == db.LOCK_TIMEOUT
