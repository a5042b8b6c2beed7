"""The wired application: settings, database engine and clock, opened once per command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from publisher import db
from publisher.clock import Clock, SystemClock
from publisher.config import Settings, load_settings


@dataclass
class Site:
    """Everything a command, worker or web request needs to reach the store."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    _engine: AsyncEngine | None = None

    @classmethod
    def open(cls, config_path: str | Path | None = None, *, clock: Clock | None = None) -> Site:
        """Load settings and bring the database schema up to date."""
        settings = load_settings(config_path)
        return cls.from_settings(settings, clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> Site:
        """Wire a site from settings already loaded, migrating the database if needed."""
        url = settings.database.url
        # On PostgreSQL the schema check already needs the engine: the site keeps it.
        engine = None if db.is_sqlite(url) else db.create_engine(url)
        db.ensure_schema(url, engine)
        return cls(settings=settings, clock=clock or SystemClock(), _engine=engine)

    @property
    def engine(self) -> AsyncEngine:
        """Return the asyncio engine, created on first use."""
        if self._engine is None:
            self._engine = db.create_engine(self.settings.database.url)
        return self._engine

    async def aclose(self) -> None:
        """Release database connections."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
