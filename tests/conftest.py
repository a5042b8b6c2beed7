"""Shared fixtures: a fresh site on SQLite (and PostgreSQL when available)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from publisher.cli.init import init_site
from publisher.clock import FrozenClock
from publisher.config import load_settings
from publisher.site import Site
from tests.services import postgres_url_for_tests

NOW = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str | None]:
    """Yield a PostgreSQL server URL (given, or a throwaway cluster), or None to skip."""
    with postgres_url_for_tests() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Yield a fresh, empty database URL for each backend under test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'publisher.db'}"
    server = request.getfixturevalue("postgres_server")
    if server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    return fresh_postgres_database(server)


@pytest.fixture
def site_dir(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Create a site folder with publisher.toml pointing at the database under test."""
    directory = tmp_path / "site"
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", database_url)
    init_site(directory, title="Kabar Test", base_url="https://news.example.org")
    return directory


@pytest.fixture
def clock() -> FrozenClock:
    """A clock frozen at 2026-11-25 00:00 UTC."""
    return FrozenClock(NOW)


@pytest.fixture
async def site(site_dir: Path, clock: FrozenClock) -> AsyncIterator[Site]:
    """Open the test site with the frozen clock."""
    opened = Site.from_settings(load_settings(site_dir / "publisher.toml"), clock=clock)
    yield opened
    await opened.aclose()


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Module scope, not session: sync Playwright keeps an event loop running in this thread
# while it is open, which would break every later test that calls asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Launch Debian's Chromium through Playwright (fail under CI when it is missing)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("/usr/bin/chromium is missing (make test installs it)")
        pytest.skip("/usr/bin/chromium is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(people: Site) -> Iterator[str]:
    """Serve the web app over HTTP for the module's ``people`` site (the editors' app)."""
    from publisher.web.server import running

    # The server thread has its own event loop: give it its own engine (asyncpg pools
    # belong to one loop).
    served = Site(settings=people.settings, clock=people.clock)
    with running(served, poll_interval=0.2) as base:
        yield base
