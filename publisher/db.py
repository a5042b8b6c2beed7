"""SQLAlchemy engines and sessions, and Alembic migrations for every table."""

from __future__ import annotations

import ast
import asyncio
import functools
import os
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from publisher.columns import register_sqlite_functions
from publisher.errors import InputError, StoreError, UsageError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

_T = TypeVar("_T")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: How long a migration statement waits for a table lock on PostgreSQL before giving up.
LOCK_TIMEOUT = 10.0
#: PostgreSQL's SQLSTATE for "canceling statement due to lock timeout".
_LOCK_NOT_AVAILABLE = "55P03"
#: `revision = "..."` and `down_revision = ...` lines of a migration file, annotated or not.
_REVISION_LINE = re.compile(
    r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*(?:#.*)?$", re.MULTILINE
)


class Base(DeclarativeBase):
    """Declarative base of Publisher's own tables (subscribers/ keeps its own)."""


def _driverless(url: str) -> tuple[str, str]:
    scheme, _, rest = url.partition("://")
    backend = scheme.split("+", 1)[0]
    if backend == "postgres":
        backend = "postgresql"
    return backend, rest


def async_url(url: str) -> str:
    """Return the asyncio-driver form of a database URL (aiosqlite or asyncpg)."""
    backend, rest = _driverless(url)
    driver = "aiosqlite" if backend == "sqlite" else "asyncpg"
    return f"{backend}+{driver}://{rest}"


def sync_url(url: str) -> str:
    """Return the blocking-driver form of a database URL (sqlite3 or psycopg)."""
    backend, rest = _driverless(url)
    driver = "pysqlite" if backend == "sqlite" else "psycopg"
    return f"{backend}+{driver}://{rest}"


def is_sqlite(url: str) -> bool:
    """Tell whether a URL names a SQLite database."""
    return _driverless(url)[0] == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """Return the file behind a SQLite URL, or None for other databases."""
    backend, rest = _driverless(url)
    if backend != "sqlite" or rest in ("", "/:memory:"):
        return None
    return Path(rest.removeprefix("/"))


def apply_sqlite_pragmas(dbapi_connection: Any, busy_ms: int = 30000) -> None:
    """Give a SQLite connection the settings every Publisher connection has."""
    cursor = dbapi_connection.cursor()
    # WAL lets the web server read while a send or import writes; busy_timeout
    # makes concurrent writers wait instead of failing at once.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    apply_sqlite_pragmas(dbapi_connection)
    register_sqlite_functions(dbapi_connection)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the asyncio engine for a database URL, with SQLite pragmas applied."""
    if is_sqlite(url):
        _make_parent(url)
    engine = create_async_engine(async_url(url), **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    return engine


def create_sync_engine(url: str, **kwargs: Any) -> Engine:
    """Create a blocking engine (for migrations)."""
    if is_sqlite(url):
        _make_parent(url)
    engine = sa.create_engine(sync_url(url), **kwargs)
    if is_sqlite(url):
        event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def _migrate_in_sqlite_transactions(engine: Engine) -> None:
    """Make each migration on SQLite one BEGIN IMMEDIATE ... COMMIT, DDL included.

    The stdlib driver commits DDL as it goes (it opens transactions only for DML), so
    a migration's CREATE TRIGGER and its backfill were two transactions, and a row
    another process wrote between them was counted twice; a killed migration left its
    tables behind for the rerun to trip on. SQLite's DDL is transactional: with the
    driver's own handling off, each migration is atomic, and IMMEDIATE takes the write
    lock at its start, so other writers wait (busy_timeout) instead of slipping between.
    """

    def no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    def begin_immediate(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", no_driver_transactions)
    event.listen(engine, "begin", begin_immediate)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session maker whose objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """Open a session inside one transaction: commit on success, roll back on error."""
    async with session_factory(engine)() as session, session.begin():
        yield session


def _alembic_config(
    url: str, migrations: Path = MIGRATIONS_DIR, version_dirs: Sequence[Path] = ()
) -> AlembicConfig:
    # Imported here, like every Alembic import: Alembic costs ~0.3 s at start-up and is
    # needed only when migrations are pending (see ensure_schema).
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    if version_dirs:
        config.set_main_option("path_separator", "os")
        locations = [migrations / "versions", *version_dirs]
        config.set_main_option(
            "version_locations", os.pathsep.join(str(p) for p in locations).replace("%", "%%")
        )
    return config


def alembic_heads(migrations: Path = MIGRATIONS_DIR) -> list[str]:
    """Return the head revisions as Alembic computes them (slow: loads every migration)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(_alembic_config("sqlite://", migrations)).get_heads())


def read_heads(migrations: Path = MIGRATIONS_DIR) -> list[str] | None:
    """Return the head revisions read from the migration files' text, or None if unsure.

    Reads each file's ``revision`` and ``down_revision`` assignments without importing
    Alembic or the migrations, so a command on an up-to-date database starts ~0.3 s
    sooner. None (a file it cannot read that way) sends the caller to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((migrations / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found: dict[str, object] = {}
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            try:
                found.setdefault(match[1], ast.literal_eval(match[2]))
            except (ValueError, SyntaxError):
                return None
        revision, down = found.get("revision"), found.get("down_revision", ...)
        if not isinstance(revision, str) or down is ...:
            return None
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list) and all(isinstance(d, str) for d in down):
            parents.update(down)
        elif down is not None:
            return None
    return sorted(revisions - parents)


@functools.cache
def head_revision() -> str:
    """Return the newest migration's revision id (the files do not change under a process)."""
    heads = read_heads()
    if heads is None or len(heads) != 1:
        heads = alembic_heads()
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def _read_versions(connection: sa.Connection) -> list[str] | None:
    # Read alembic_version the way Alembic's MigrationContext does, without loading
    # Alembic (tests/test_cli_startup.py checks both agree).
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    version = sa.table("alembic_version", sa.column("version_num"))
    return list(connection.execute(sa.select(version.c.version_num)).scalars())


async def _read_versions_async(engine: AsyncEngine) -> list[str] | None:
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_read_versions)
    finally:
        # The connection belongs to this loop; the engine (its dialect initialized,
        # its statements compiled) stays usable by the caller's.
        await engine.dispose()


def _run_apart(work: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, inside a running event loop or not."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    # A loop runs in this thread (the web app, a test): give the work a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


def current_revision(url: str, engine: AsyncEngine | None = None) -> str | None:
    """Return the revision the database is at, or None when it has no schema yet.

    On PostgreSQL it asks through ``engine`` when given (the site's own, so the command
    does not create and initialize a second one), else through a temporary engine.
    """
    try:
        if is_sqlite(url):
            blocking = create_sync_engine(url)
            try:
                with blocking.connect() as connection:
                    rows = _read_versions(connection)
            finally:
                blocking.dispose()
        else:
            # Through asyncpg, which every command loads anyway: the blocking driver
            # (psycopg) costs a PostgreSQL command a fifth of a second to import, and
            # is needed only when migrations run.
            rows = _run_apart(_read_versions_async(engine or create_engine(url)))
    except SQLAlchemyError as exc:
        raise StoreError(f"database {_redacted(url)}: {error_line(exc)}") from exc
    except (OSError, ValueError) as exc:
        # asyncio's "Connect call failed ('127.0.0.1', 5432)" names no reason: the errno
        # does (a resolver's negative codes have their reason in strerror already).
        errno = exc.errno if isinstance(exc, OSError) else None
        if errno is not None and errno > 0:
            reason = os.strerror(errno)
        else:
            reason = getattr(exc, "strerror", None) or str(exc)
        raise StoreError(f"database {_redacted(url)}: {type(exc).__name__}: {reason}") from exc
    except Exception as exc:
        # asyncpg raises its own errors while connecting (an unknown database, a wrong
        # password), unwrapped by SQLAlchemy: report them as the blocking driver would.
        if type(exc).__module__.split(".")[0] != "asyncpg":
            raise
        raise StoreError(f"database {_redacted(url)}: {error_line(exc)}") from exc
    if rows is None:
        return None
    if len(rows) > 1:
        raise StoreError(f"database {_redacted(url)}: at {len(rows)} revisions {sorted(rows)}")
    return rows[0] if rows else None


class SchemaState(StrEnum):
    """Where a database's schema stands against this release's migrations."""

    CURRENT = "current"
    BEHIND = "behind"  # migrations of this release are not applied yet (or no schema)
    AHEAD = "ahead"  # at a revision this release does not know: a newer release migrated it


@dataclass(frozen=True)
class SchemaStatus:
    """A database's revision, this release's head, and what upgrading would apply."""

    current: str | None
    head: str
    state: SchemaState
    pending: tuple[str, ...] = ()


def schema_status(url: str) -> SchemaStatus:
    """Compare the database's revision with this release's migrations (reads only)."""
    return status_of(current_revision(url))


@functools.lru_cache(maxsize=8)  # /readyz asks on every probe
def status_of(current: str | None) -> SchemaStatus:
    """Place a database revision (None: no schema) against this release's migrations."""
    head = head_revision()
    if current == head:
        return SchemaStatus(current, head, SchemaState.CURRENT)
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    scripts = ScriptDirectory.from_config(_alembic_config("sqlite://"))
    if current is not None:
        try:
            scripts.get_revision(current)
        except CommandError:
            return SchemaStatus(current, head, SchemaState.AHEAD)
    lower = current or "base"
    pending = [script.revision for script in scripts.iterate_revisions(head, lower)]
    return SchemaStatus(current, head, SchemaState.BEHIND, tuple(reversed(pending)))


def upgrade(
    url: str,
    revision: str = "head",
    *,
    lock_timeout: float = LOCK_TIMEOUT,
    version_dirs: Sequence[Path] = (),
) -> str:
    """Apply pending migrations up to ``revision`` (tests stop early); return the head.

    On PostgreSQL each statement waits at most ``lock_timeout`` seconds for a table lock:
    an ALTER TABLE queued behind a long transaction would otherwise stall every worker
    and web request behind it, and `db upgrade` itself would hang. ``version_dirs`` adds
    migration folders beside Publisher's own (tests rehearse a newer release's migration).
    """
    from alembic import command
    from alembic.util.exc import CommandError

    config = _alembic_config(url, version_dirs=version_dirs)
    engine = create_sync_engine(url)
    if is_sqlite(url):
        _migrate_in_sqlite_transactions(engine)
    try:
        with engine.connect() as connection:
            if not is_sqlite(url):
                milliseconds = max(1, int(lock_timeout * 1000))
                connection.execute(sa.text(f"SET lock_timeout = {milliseconds}"))
                # A session setting: it outlives this transaction. Alembic then opens one
                # transaction per migration (an index built CONCURRENTLY needs none).
                connection.commit()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            statement = " ".join(str(exc.statement or "").split())[:80]
            raise StoreError(
                f"database {_redacted(url)}: migration gave up after waiting {lock_timeout:g} s "
                f"for a lock ({statement}): a long transaction holds the table; nothing of "
                "this migration was applied, run `publisher db upgrade` again"
            ) from exc
        raise StoreError(f"database {_redacted(url)}: migration failed: {error_line(exc)}") from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"database {_redacted(url)}: migration failed: {error_line(exc)}") from exc
    except CommandError as exc:
        raise StoreError(f"database {_redacted(url)}: migration failed: {exc}") from exc
    finally:
        engine.dispose()
    return head_revision()


def ensure_schema(url: str, engine: AsyncEngine | None = None) -> None:
    """Upgrade the database if it is behind the code (the "automatic on first use" path).

    A database *ahead* of the code is left alone: during a rolling upgrade the new
    release migrates first (expand only), and the old release keeps running on it.
    """
    if status_of(current_revision(url, engine)).state is SchemaState.BEHIND:
        upgrade(url)


def backup_sqlite(url: str, target: Path) -> None:
    """Copy a SQLite database to ``target`` while it is in use (VACUUM INTO, one snapshot)."""
    if sqlite_path(url) is None:
        raise UsageError(
            f"database {_redacted(url)}: `publisher db backup` copies SQLite databases; "
            "back up PostgreSQL with pg_dump -Fc (see docs/operations.md)"
        )
    if not target.parent.is_dir():
        raise InputError(f"{target}: the folder {target.parent} does not exist")
    # The copy holds every reader's address: private from its first byte. VACUUM INTO
    # accepts an empty file, so create one with our mode and no race for the name.
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError as exc:
        raise InputError(f"{target}: already exists; choose a new file name") from exc
    except OSError as exc:
        raise InputError(f"{target}: cannot create: {exc.strerror}") from exc
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("VACUUM INTO :target"), {"target": str(target)})
    except SQLAlchemyError as exc:
        target.unlink(missing_ok=True)
        raise StoreError(f"database {_redacted(url)}: backup failed: {error_line(exc)}") from exc
    finally:
        engine.dispose()


def error_line(exc: Exception) -> str:
    """Describe a driver error in one line (drivers add hints and SQLAlchemy a link)."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else 'failed'}"


def _make_parent(url: str) -> None:
    """Create a SQLite database's folder, and the file itself readable by its owner only."""
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"database {url}: cannot create the folder {path.parent}: {exc.strerror}"
        ) from exc
    # SQLite creates the -wal and -shm files with the database file's mode, so an empty
    # 0600 file made here keeps all three private (sqlite3 alone would use 0644).
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"database {url}: cannot create {path}: {exc.strerror}") from exc


def _redacted(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)
