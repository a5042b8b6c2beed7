"""Process locks: the one helper behind the SQLite send lock, the scheduler lock and workers.

Two kinds, one interface (take, verify, release):

- ``FileLock``: an ``flock()``ed file beside a SQLite database;
- ``AdvisoryLock``: a PostgreSQL session-level advisory lock held on a dedicated
  connection.

and, for work that fits in one transaction, ``try_transaction_lock``: a PostgreSQL
advisory lock the transaction itself holds until it ends (no connection of its own).

The kernel or the database server drops either when its holder dies, even after
``kill -9``, so a lock never outlives its process.

Lock files are never deleted. ``flock()`` locks an open file, not a name: a holder that
unlinked its file before unlocking it would let a process that had already opened the
old file lock it, while the next one creates and locks a new file under the same name,
and both would believe they hold the lock. A file left behind is harmless (nobody holds
it, the next taker locks it). For files removed anyway (by hand, or by an older version
of Publisher), taking a lock checks after locking that the name still leads to the file
it locked, and tries again if not; ``verify()`` makes the same check later.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Protocol, Self, TypeAlias

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from publisher.db import error_line, sqlite_path
from publisher.errors import LockBusy, LockedError, StoreError

#: A bigint key, or a pair of int4 keys (PostgreSQL keeps the two forms apart).
AdvisoryKey: TypeAlias = int | tuple[int, int]

#: How many times a lock file that vanished between open and lock is reopened.
_REOPEN_ATTEMPTS = 20
#: The most of a lock file's holder description that is read back.
_HOLDER_BYTES = 256


class HeldLock(Protocol):
    """A lock this process holds until it releases it."""

    @property
    def description(self) -> str:
        """Name the lock (a file path, an advisory key)."""
        ...

    async def verify(self) -> None:
        """Raise LockedError if the lock may have been lost."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...

    async def __aenter__(self) -> Self:
        """Hold the lock for the block."""
        ...

    async def __aexit__(self, *exc: object) -> None:
        """Release the lock when the block ends."""
        ...


def lock_file(database_url: str, suffix: str) -> Path | None:
    """Return the lock file ``suffix`` beside a SQLite database, None for other databases."""
    database = sqlite_path(database_url)
    if database is None:
        return None
    return database.with_name(database.name + suffix)


class FileLock:
    """An exclusive ``flock()`` on a file that stays in place."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def description(self) -> str:
        """Name the lock by its file."""
        return f"lock file {self.path}"

    @classmethod
    def take(cls, path: Path, holder: str) -> FileLock:
        """Lock ``path`` now, writing ``holder`` into it, or raise LockBusy naming who has it."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LockedError(f"{path}: cannot create its folder: {exc.strerror}") from exc
        for _ in range(_REOPEN_ATTEMPTS):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise LockedError(f"{path}: cannot open lock file: {exc.strerror}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                current = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockBusy(f"lock file {path}", current or "another process") from None
                raise LockedError(f"{path}: cannot lock: {exc.strerror}") from exc
            if not _same_file(fd, path):
                # Removed or replaced between open and lock: this lock guards nothing.
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
            return cls(path, fd)
        raise LockedError(f"{path}: lock file keeps disappearing; is something deleting it?")

    async def verify(self) -> None:
        """Raise LockedError if released, or if the file was removed or replaced meanwhile."""
        if self._fd is None:
            raise LockedError(f"{self.description} was released")
        if not _same_file(self._fd, self.path):
            raise LockedError(
                f"{self.description} was removed or replaced while held; "
                "another process may take it"
            )

    async def release(self) -> None:
        """Unlock and close the file; the file itself stays for the next holder."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):  # only the holder's name would stay
            os.ftruncate(fd, 0)
        # Closing the last descriptor drops the flock() lock.
        os.close(fd)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _key_call(function: str, key: AdvisoryKey) -> tuple[sa.TextClause, dict[str, int]]:
    if isinstance(key, tuple):
        return sa.text(f"SELECT {function}(:k1, :k2)"), {"k1": key[0], "k2": key[1]}
    return sa.text(f"SELECT {function}(:k)"), {"k": key}


def _key_text(key: AdvisoryKey) -> str:
    return f"{key[0]},{key[1]}" if isinstance(key, tuple) else str(key)


async def try_transaction_lock(session: AsyncSession, key: AdvisoryKey) -> bool:
    """Lock ``key`` until the session's transaction ends, or return False if it is held."""
    statement, params = _key_call("pg_try_advisory_xact_lock", key)
    return bool(await session.scalar(statement, params))


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock, alive as long as its own connection."""

    def __init__(self, key: AdvisoryKey, connection: AsyncConnection) -> None:
        self.key = key
        self._connection: AsyncConnection | None = connection
        # One connection runs one statement at a time; jobs may verify concurrently.
        self._in_use = asyncio.Lock()

    @property
    def description(self) -> str:
        """Name the lock by its key."""
        return f"PostgreSQL advisory lock {_key_text(self.key)}"

    @classmethod
    async def try_take(cls, engine: AsyncEngine, key: AdvisoryKey) -> AdvisoryLock | None:
        """Lock ``key`` on a connection of its own now, or return None if someone holds it."""
        statement, params = _key_call("pg_try_advisory_lock", key)
        try:
            connection = await engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"advisory lock {_key_text(key)}: {error_line(exc)}") from exc
        try:
            got = bool(await connection.scalar(statement, params))
            await connection.commit()
        except BaseException as exc:
            await _discard(connection)
            if isinstance(exc, SQLAlchemyError):
                raise StoreError(f"advisory lock {_key_text(key)}: {error_line(exc)}") from exc
            raise
        if not got:
            await connection.close()
            return None
        return cls(key, connection)

    @classmethod
    async def take(cls, engine: AsyncEngine, key: AdvisoryKey) -> AdvisoryLock:
        """Lock ``key`` now, or raise LockBusy naming the backend that holds it."""
        held = await cls.try_take(engine, key)
        if held is None:
            pid = await _holder_pid(engine, key)
            raise LockBusy(
                f"PostgreSQL advisory lock {_key_text(key)}",
                f"backend pid {pid if pid is not None else 'unknown'}",
            )
        return held

    async def verify(self) -> None:
        """Raise LockedError if released or if the lock's connection was lost."""
        async with self._in_use:
            await self._ping()

    async def _ping(self) -> None:
        if self._connection is None:
            raise LockedError(f"{self.description} was released")
        try:
            await self._connection.scalar(sa.text("SELECT 1"))
            await self._connection.commit()
        except SQLAlchemyError as exc:
            raise LockedError(
                f"{self.description}: connection lost: {error_line(exc)}; "
                "the database dropped the lock"
            ) from exc

    async def release(self) -> None:
        """Unlock and hand the connection back (or drop it if unlocking failed)."""
        async with self._in_use:
            await self._unlock()

    async def _unlock(self) -> None:
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        statement, params = _key_call("pg_advisory_unlock", self.key)
        try:
            await connection.execute(statement, params)
            await connection.commit()
        except BaseException as exc:
            # A session lock survives a rollback: a connection that may still hold it
            # must never go back to the pool. Dropped, it takes the lock with it.
            await _discard(connection)
            if not isinstance(exc, SQLAlchemyError):
                raise
            return
        await connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def _holder_pid(engine: AsyncEngine, key: AdvisoryKey) -> int | None:
    if isinstance(key, tuple):
        high, low, subid = key[0], key[1], 2
    else:
        high, low, subid = key >> 32, key, 1
    try:
        async with engine.connect() as connection:
            pid = await connection.scalar(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = :subid "
                    "AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"high": high & 0xFFFFFFFF, "low": low & 0xFFFFFFFF, "subid": subid},
            )
    except SQLAlchemyError:
        return None  # only the message loses the pid
    return None if pid is None else int(pid)


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
        await connection.close()
    except SQLAlchemyError:
        pass  # already gone: so is any lock it held
