"""The lock helper: mutual exclusion between real processes, holders named, files kept."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import db
from publisher.errors import LockBusy, LockedError
from publisher.locks import AdvisoryLock, FileLock, lock_file, try_transaction_lock

ROOT = Path(__file__).resolve().parent.parent
RACERS = 3
ITERATIONS = 200


def race(kind: str, target: str, tmp_path: Path, *, key: int = 0x7075_6274) -> list[dict[str, int]]:
    """Start RACERS processes contending for one lock; return each one's counts."""
    seed = int(os.environ.get("PUBLISHER_LOCK_SEED", random.randrange(2**32)))
    rounds = tmp_path / "rounds"
    rounds.mkdir(exist_ok=True)
    here = Path(tempfile.mkdtemp(dir=rounds))
    go = here / "go"
    marker = here / "inside"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.lock_racer",
                kind,
                target,
                f"--marker={marker}",
                f"--go={go}",
                f"--racers={RACERS}",
                f"--iterations={ITERATIONS}",
                f"--seed={seed + n}",
                f"--key={key}",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(RACERS)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"seed {seed}: {err.decode()}"
        results.append(json.loads(out))
    print(f"lock race {kind}: seed {seed}: {results}")
    return results


@pytest.mark.slow
def test_processes_racing_for_a_file_lock_never_hold_it_together(tmp_path: Path) -> None:
    path = tmp_path / "publisher.db.send-lock"
    results = race("file", str(path), tmp_path)
    assert [r["violations"] for r in results] == [0] * RACERS, results
    assert all(r["acquired"] == ITERATIONS for r in results)
    # They really contended: some takes found the lock held.
    assert sum(r["busy"] for r in results) > 0, results
    # The file stays for the next holder, unlocked and with no holder named.
    assert path.exists()
    assert path.read_bytes() == b""


@pytest.mark.slow
def test_the_race_catches_a_lock_that_unlinks_before_unlocking(tmp_path: Path) -> None:
    # The send lock before publisher/locks.py: proof that the race above can fail. On a
    # loaded machine one round may interleave too little, so up to five rounds.
    seen = []
    for _ in range(5):
        results = race("unlink-before-unlock", str(tmp_path / "old.send-lock"), tmp_path)
        seen.append(results)
        if sum(r["violations"] for r in results) > 0:
            return
    raise AssertionError(f"no violation in {len(seen)} rounds: {seen}")


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_racing_for_an_advisory_lock_never_hold_it_together(
    postgres_server: str | None, tmp_path: Path
) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    results = race("advisory", url, tmp_path)
    assert [r["violations"] for r in results] == [0] * RACERS, results
    assert all(r["acquired"] == ITERATIONS for r in results)
    assert sum(r["busy"] for r in results) > 0, results


def test_lock_file_sits_beside_a_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'news.db'}"
    assert lock_file(url, ".send-lock") == tmp_path / "news.db.send-lock"
    assert lock_file("postgresql://db.example.org/news", ".send-lock") is None


async def test_file_lock_names_its_holder_and_stays_after_release(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.lock"
    held = FileLock.take(path, "worker host:42:abc")
    with pytest.raises(LockBusy) as caught:
        FileLock.take(path, "someone else")
    assert caught.value.holder == "worker host:42:abc"
    assert caught.value.where == f"lock file {path}"
    await held.verify()
    await held.release()
    await held.release()  # harmless twice
    with pytest.raises(LockedError, match="released"):
        await held.verify()
    assert path.exists()
    again = FileLock.take(path, "pid 7")
    assert path.read_text() == "pid 7"
    await again.release()


async def test_file_lock_notices_its_file_removed(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    held = FileLock.take(path, "pid 1")
    path.unlink()
    # Someone else may now lock a new file under the name: the holder must find out.
    with pytest.raises(LockedError, match="removed or replaced"):
        await held.verify()
    other = FileLock.take(path, "pid 2")
    await other.release()
    await held.release()


async def test_file_lock_error_names_an_unusable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LockedError, match=str(blocker / "x.lock")):
        FileLock.take(blocker / "x.lock", "pid 1")


@pytest.fixture
async def postgres_engine(postgres_server: str | None) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh PostgreSQL database (or skip)."""
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    engine = db.create_engine(fresh_postgres_database(postgres_server))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_advisory_lock_names_the_backend_and_survives_nothing(
    postgres_engine: AsyncEngine,
) -> None:
    engine = postgres_engine
    for key in (-(2**62) - 5, (-5, 123)):
        held = await AdvisoryLock.take(engine, key)
        with pytest.raises(LockBusy, match=r"advisory lock .* held by backend pid \d+"):
            await AdvisoryLock.take(engine, key)
        assert await AdvisoryLock.try_take(engine, key) is None
        await held.verify()
        await held.release()
        again = await AdvisoryLock.take(engine, key)
        # A lost connection (a database restart) is noticed, and the lock is free.
        async with engine.connect() as other:
            await other.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
            await other.commit()
        deadline = time.monotonic() + 30
        while (taken := await AdvisoryLock.try_take(engine, key)) is None:
            assert time.monotonic() < deadline
        with pytest.raises(LockedError, match="connection lost"):
            await again.verify()
        await again.release()
        await taken.release()


@pytest.mark.postgres
async def test_a_transaction_lock_lasts_until_its_transaction_ends(
    postgres_engine: AsyncEngine,
) -> None:
    engine = postgres_engine
    key = (0x7075_6232, 7)
    async with db.transaction(engine) as first:
        assert await try_transaction_lock(first, key)
        async with db.transaction(engine) as second:
            assert not await try_transaction_lock(second, key)
        # A session-level taker sees it held too: one key space.
        assert await AdvisoryLock.try_take(engine, key) is None
    async with db.transaction(engine) as third:  # the first transaction ended
        assert await try_transaction_lock(third, key)
