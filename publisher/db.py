"""SQLAlchemy engines and sessions, and Alembic migrations for every table."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from publisher.columns import register_sqlite_functions
from publisher.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Return a session maker whose objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """Open a session inside one transaction: commit on success, roll back on error."""
    async with session_factory(engine)() as session, session.begin():
        yield session


def _alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest migration's revision id."""
    heads = ScriptDirectory.from_config(_alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise StoreError(f"migrations have {len(heads)} heads, expected one: {heads}")
    return heads[0]


def current_revision(url: str) -> str | None:
    """Return the revision the database is at, or None when it has no schema yet."""
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"database {_redacted(url)}: {error_line(exc)}") from exc
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> str:
    """Apply pending migrations up to ``revision`` (tests stop early); return the head."""
    config = _alembic_config(url)
    engine = create_sync_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"database {_redacted(url)}: migration failed: {error_line(exc)}") from exc
    finally:
        engine.dispose()
    return head_revision()


def ensure_schema(url: str) -> None:
    """Upgrade the database if it is behind the code (the "automatic on first use" path)."""
    if current_revision(url) != head_revision():
        upgrade(url)


def error_line(exc: SQLAlchemyError) -> str:
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
