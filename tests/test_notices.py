"""The subscription flow's mail goes through the outbox: durable, retried, sent once."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from publisher.cli.init import init_site
from publisher.clock import SystemClock
from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.models import OutboxRow
from publisher.site import Site
from publisher.web.app import create_app
from publisher.web.subscription import drain
from subscribers.models import Subscriber
from tests.clirunner import ROOT, invoke
from tests.services import free_port
from tests.smtp_servers import RecordingHandler, smtp_server

BASE = "https://news.example.org"


@pytest.fixture
def serve_site(tmp_path: Path) -> Path:
    root = tmp_path / "serve-site"
    # Plain http: the CSRF cookie of an https site is never sent back over loopback http.
    init_site(root, title="Kabar Notices", base_url="http://news.example.org")
    return root


def _serve(site_dir: Path, port: int, smtp_port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        PUBLISHER_MAIL__SMTP_URL=f"smtp://127.0.0.1:{smtp_port}",
        PUBLISHER_MAIL__RETRY_INITIAL="1s",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publisher",
            "--config",
            str(site_dir / "publisher.toml"),
            "serve",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("publisher serve did not come up")


async def _subscribe(base: str, address: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base) as client:
        page = await client.get("/subscribe")
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return await client.post(
            "/subscribe", data={"csrf": found[1], "email": address, "frequency": "daily"}
        )


@pytest.mark.slow
async def test_confirmation_waits_out_an_smtp_outage_with_only_serve_running(
    serve_site: Path,
) -> None:
    site_dir = serve_site
    smtp_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    handler = RecordingHandler()
    serving = _serve(site_dir, web_port, smtp_port)
    process = next(serving)
    try:
        await _wait_until_up(base, process)
        # The SMTP server is down: the reader is answered as usual, the mail waits.
        response = await _subscribe(base, "Pembaca.Baru@Example.net")
        assert response.status_code == 200, response.text
        await asyncio.sleep(3)
        assert handler.total() == 0
        # Back up: exactly one confirmation arrives, with nothing else running.
        async with smtp_server(handler, port=smtp_port):
            deadline = time.monotonic() + 90
            while handler.total() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(3)  # time for a second copy, were there one
        assert list(handler.delivered) == ["Pembaca.Baru@example.net"]
        assert handler.total() == 1
        copy = handler.delivered["Pembaca.Baru@example.net"][0]
        assert b"/confirm/" in copy
    finally:
        next(serving, None)
    settings = load_settings(site_dir / "publisher.toml")
    site = Site.from_settings(settings, clock=SystemClock())
    async with transaction(site.engine) as session:
        rows = (await session.execute(sa.select(OutboxRow.kind, OutboxRow.status))).all()
    await site.aclose()
    assert [(r.kind, r.status) for r in rows] == [("confirmation", "sent")]


async def test_resend_confirmation_queues_a_fresh_one_for_pending_readers_only(
    capsys: pytest.CaptureFixture[str], serve_site: Path
) -> None:
    site_dir = serve_site
    handler = RecordingHandler()
    config = site_dir / "publisher.toml"
    async with smtp_server(handler) as port:
        os.environ["PUBLISHER_MAIL__SMTP_URL"] = f"smtp://127.0.0.1:{port}"
        try:
            added = await asyncio.to_thread(
                invoke, capsys, "--config", config, "subscribers", "add", "baru@example.net"
            )
            assert added.exit_code == 0, added.stderr
            assert "confirmation email sent" in added.stdout
            again = await asyncio.to_thread(
                invoke,
                capsys,
                "--config",
                config,
                "subscribers",
                "resend-confirmation",
                "BARU@example.net",
            )
            assert again.exit_code == 0, again.stderr
            assert "confirmation email sent" in again.stdout
            missing = await asyncio.to_thread(
                invoke,
                capsys,
                "--config",
                config,
                "subscribers",
                "resend-confirmation",
                "nobody@example.net",
            )
            assert missing.exit_code == 2
            assert missing.error_lines == ["error: no subscriber 'nobody@example.net'"]
            active = await asyncio.to_thread(
                invoke,
                capsys,
                "--config",
                config,
                "subscribers",
                "add",
                "aktif@example.net",
                "--confirmed",
            )
            assert active.exit_code == 0, active.stderr
            refused = await asyncio.to_thread(
                invoke,
                capsys,
                "--config",
                config,
                "subscribers",
                "resend-confirmation",
                "aktif@example.net",
            )
            assert refused.exit_code == 2
            assert "aktif@example.net is active, not pending" in refused.stderr
        finally:
            os.environ.pop("PUBLISHER_MAIL__SMTP_URL", None)
    copies = handler.delivered["baru@example.net"]
    assert len(copies) == 2
    assert all(b"/confirm/" in copy for copy in copies)
    assert list(handler.delivered) == ["baru@example.net"]


@pytest.fixture
async def web(site: Site, tmp_path: Path) -> AsyncIterator[Web]:
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        app = create_app(site)
        transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield Web(app, client, handler, site)
            await drain(app)


@dataclass
class Web:
    app: FastAPI
    client: httpx.AsyncClient
    handler: RecordingHandler
    site: Site

    async def csrf(self, path: str) -> str:
        page = await self.client.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None, page.text
        return found[1]


def _link(copy: bytes, kind: str) -> str:
    text = email.message_from_bytes(copy, policy=email.policy.default)
    body = text.get_body(("plain",))
    assert body is not None
    found = re.search(rf"{re.escape(BASE)}/{kind}/[A-Za-z0-9._-]+", str(body.get_content()))
    assert found is not None
    return found[0].removeprefix(BASE)


async def test_confirming_queues_one_welcome(web: Web) -> None:
    csrf = await web.csrf("/subscribe")
    answer = await web.client.post(
        "/subscribe", data={"csrf": csrf, "email": "baru@example.org", "frequency": "daily"}
    )
    assert answer.status_code == 200
    await drain(web.app)
    [confirmation] = web.handler.delivered["baru@example.org"]
    path = _link(confirmation, "confirm")
    token = await web.csrf(path)
    for _ in range(2):  # a second click on the link welcomes nobody twice
        confirmed = await web.client.post(path, data={"csrf": token})
        assert confirmed.status_code == 200
        await drain(web.app)
    copies = web.handler.delivered["baru@example.org"]
    assert len(copies) == 2
    welcome = email.message_from_bytes(copies[1], policy=email.policy.default)
    assert "Selamat datang" in str(welcome["Subject"])
    assert "/preferences/" in _link(copies[1], "preferences")
    async with transaction(web.site.engine) as session:
        kinds = list(await session.scalars(sa.select(OutboxRow.kind).order_by(OutboxRow.id)))
    assert kinds == ["confirmation", "welcome"]


async def test_concurrent_subscribes_for_one_address_queue_one_confirmation(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    csrf = await web.csrf("/subscribe")
    data = {"csrf": csrf, "email": "Balapan@example.org", "frequency": "daily"}
    answers = await asyncio.gather(*(web.client.post("/subscribe", data=data) for _ in range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200]
    await drain(web.app)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text
    async with transaction(web.site.engine) as session:
        readers = await session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
        kinds = list(await session.scalars(sa.select(OutboxRow.kind)))
    assert readers == 1
    assert kinds == ["confirmation"]
    assert web.handler.total() == 1


async def test_serve_sends_notices_only_and_the_worker_every_kind(site: Site) -> None:
    from publisher.delivery import notices as notice_queue
    from publisher.delivery.editions import enqueue, open_edition
    from publisher.delivery.models import TRANSACTIONAL
    from publisher.delivery.worker import deliver
    from tests.delivery_helpers import add_articles, add_pending_with_confirmations, add_subscribers

    await add_articles(site, 2)
    await add_subscribers(site, 3)
    await add_pending_with_confirmations(site, 2, start=10)
    now = site.clock.now()
    await enqueue(site, await open_edition(site, "daily", now.date(), now), now)
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        first = await notice_queue.deliver_notices(site)
        assert first is not None
        assert sorted(handler.delivered) == ["reader10@example.net", "reader11@example.net"]
        report = await deliver(site)  # what `publisher worker` runs: every kind
    assert report.sent == 3
    assert handler.total() == 5
    async with transaction(site.engine) as session:
        rows = (await session.execute(sa.select(OutboxRow.kind, OutboxRow.status))).all()
    assert sorted((r.kind, r.status) for r in rows) == sorted(
        [("digest", "sent")] * 3 + [("confirmation", "sent")] * 2
    )
    assert set(TRANSACTIONAL) == {"confirmation", "already_subscribed", "unsubscribed", "welcome"}
