"""Two real `publisher serve` processes on one PostgreSQL database: one limit, one content."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from publisher.cli.init import init_site
from tests.clirunner import run_module
from tests.serve_processes import serve_processes
from tests.smtp_servers import RecordingHandler, threaded_smtp_server

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

IP_LIMIT = 10
ADDRESS_LIMIT = 3


def make_site(tmp_path: Path, postgres_server: str | None) -> Path:
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    site_dir = tmp_path / "site"
    init_site(site_dir, title="Kabar", base_url="https://news.example.org")
    config = site_dir / "publisher.toml"
    text = config.read_text().replace('url = "sqlite:///publisher.db"', f'url = "{url}"')
    assert url in text
    config.write_text(text)
    assert run_module("--config", config, "db", "upgrade").exit_code == 0
    return config


async def subscribe_all(
    urls: list[str], emails: list[str], ips: list[str] | None = None
) -> list[httpx.Response]:
    """Post every subscription at once, alternating between the servers."""
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(n: int, email: str) -> httpx.Response:
            headers = {"X-Forwarded-For": ips[n]} if ips else {}
            return await client.post(
                f"{urls[n % len(urls)]}/api/subscribe", json={"email": email}, headers=headers
            )

        return list(await asyncio.gather(*(one(n, e) for n, e in enumerate(emails))))


async def test_subscribe_limits_hold_exactly_across_two_servers_and_a_restart(
    tmp_path: Path, postgres_server: str | None
) -> None:
    config = make_site(tmp_path, postgres_server)
    handler = RecordingHandler()
    with threaded_smtp_server(handler) as port:
        env = {"PUBLISHER_MAIL__SMTP_URL": f"smtp://127.0.0.1:{port}"}
        with serve_processes(config, 2, env=env) as urls:
            # One client address, 40 readers at once across both servers: exactly 10 pass.
            emails = [f"reader{n}@example.org" for n in range(40)]
            answers = await subscribe_all(urls, emails)
            codes = [a.status_code for a in answers]
            assert codes.count(202) == IP_LIMIT, codes
            assert codes.count(429) == len(emails) - IP_LIMIT, codes
            for answer in answers:
                if answer.status_code == 429:
                    assert 1 <= int(answer.headers["retry-after"]) <= 600
            # One address from 12 client addresses: exactly 3 pass.
            ips = [f"198.51.100.{n}" for n in range(12)]
            answers = await subscribe_all(urls, ["same@example.org"] * 12, ips)
            codes = [a.status_code for a in answers]
            assert codes.count(202) == ADDRESS_LIMIT, codes
            deadline = time.monotonic() + 60
            while handler.total() < IP_LIMIT + 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            # Ten confirmations, plus one for the repeated address (its repeats are quiet).
            assert handler.total() == IP_LIMIT + 1
        # A restart forgets nothing: the limit is in the database.
        with serve_processes(config, 1, env=env) as urls:
            again = await subscribe_all(urls, ["late@example.org"])
            assert again[0].status_code == 429


async def test_page_and_feed_caches_follow_content_changed_by_the_cli(
    tmp_path: Path, postgres_server: str | None
) -> None:
    config = make_site(tmp_path, postgres_server)
    article = tmp_path / "kabar.md"
    article.write_text("---\ntitle: Pelabuhan baru dibuka\n---\n\nKapal pertama tiba pagi ini.\n")
    with serve_processes(config, 2) as urls:
        async with httpx.AsyncClient(timeout=30) as client:
            for url in urls:
                before = await client.get(f"{url}/feed.xml")
                assert before.status_code == 200
                assert "Pelabuhan baru dibuka" not in before.text
                assert (await client.get(f"{url}/")).status_code == 200
            added = await asyncio.to_thread(
                run_module, "--config", config, "articles", "add", article
            )
            assert added.exit_code == 0, added.stderr
            for url in urls:
                deadline = time.monotonic() + 15
                while True:
                    feed = await client.get(f"{url}/feed.xml")
                    page = await client.get(f"{url}/")
                    if (
                        "Pelabuhan baru dibuka" in feed.text
                        and "Pelabuhan baru dibuka" in page.text
                    ):
                        break
                    assert time.monotonic() < deadline, f"{url} still serves the old content"
                    await asyncio.sleep(0.2)
