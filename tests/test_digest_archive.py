"""The public digest archive: only sent editions, reader-neutral pages, feeds, sitemap, OPML."""

from __future__ import annotations

import email
import email.policy
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import date, timedelta

import feedparser
import httpx
import pytest

from publisher.clock import FrozenClock
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.worker import deliver
from publisher.site import Site
from publisher.web import digests
from publisher.web.app import create_app
from tests.delivery_helpers import add_articles, add_subscribers
from tests.smtp_servers import RecordingHandler, smtp_server

BASE = "https://news.example.org"
PAGE = "/digests/daily-2026-11-25/id"


@pytest.fixture
async def client(site: Site) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(site)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            yield http


async def send_edition(site: Site, day: date, handler: RecordingHandler) -> None:
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        now = site.clock.now()
        edition = await open_edition(site, "daily", day, now)
        await enqueue(site, edition, now)
        report = await deliver(site)
        assert report.failed == 0


async def test_only_sent_editions_are_public_and_pages_carry_no_reader_data(
    site: Site, clock: FrozenClock, client: httpx.AsyncClient
) -> None:
    await add_articles(site, 3, language="id")
    await add_articles(site, 2, language="en", prefix="story")
    await add_subscribers(site, 4, languages=("id", "en"))
    # Enqueued but not sent: a draft of an edition is never public.
    edition = await open_edition(site, "daily", date(2026, 11, 25), clock.now())
    await enqueue(site, edition, clock.now())
    assert (await client.get(PAGE)).status_code == 404
    listing = await client.get("/digests/")
    assert listing.status_code == 200
    assert "daily-2026-11-25" not in listing.text
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        assert (await deliver(site)).sent == 4
    sent = [
        email.message_from_bytes(raw, policy=email.policy.default)
        for raws in handler.delivered.values()
        for raw in raws
    ]
    message = next(m for m in sent if m["Content-Language"] == "id")
    assert message["List-Archive"] == f"<{BASE}/digests/>"
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f'href="{BASE}{PAGE}"' in html  # "view in browser"
    assert f"{BASE}{PAGE}" in text
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert "Artikel 0: jalan baru di pesisir utara" in page.text
    for private in ("@example.net", "/unsubscribe/", "/preferences/", "Pembaca", "Halo"):
        assert private not in page.text, private
    assert not re.search(r"pub[0-9a-f]{16}", page.text)  # no reader slot left behind
    assert f'href="{BASE}/subscribe"' in page.text
    english = await client.get("/digests/daily-2026-11-25/en")
    assert english.status_code == 200
    assert "Story 0" in english.text
    listing = await client.get("/digests/")
    assert f'href="{BASE}{PAGE}"' in listing.text
    assert f'href="{BASE}/digests/daily-2026-11-25/en"' in listing.text
    for name in ("feed.xml", "atom.xml"):
        parsed = feedparser.parse((await client.get(f"/digests/{name}")).content)
        assert not parsed.bozo, parsed.bozo_exception
        assert {entry.link for entry in parsed.entries} == {
            f"{BASE}{PAGE}",
            f"{BASE}/digests/daily-2026-11-25/en",
        }
    sitemap = ET.fromstring((await client.get("/sitemap.xml")).content)  # noqa: S314
    locations = {e.text for e in sitemap.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")}
    assert f"{BASE}{PAGE}" in locations
    assert f"{BASE}/articles/artikel-id-0" in locations
    assert {f"{BASE}/", f"{BASE}/digests/", f"{BASE}/subscribe", f"{BASE}/tags/berita"} <= locations
    opml = ET.fromstring((await client.get("/feeds.opml")).content)  # noqa: S314
    feeds = {o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")}
    assert {f"{BASE}/feed.xml", f"{BASE}/digests/atom.xml", f"{BASE}/tags/berita/atom.xml"} <= feeds
    assert f"{BASE}/authors/andi-saputra/feed.json" in feeds


async def test_archive_is_newest_first_and_paged(
    site: Site, clock: FrozenClock, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digests, "PAGE_SIZE", 1)
    await add_subscribers(site, 1, created_at=clock.now() - timedelta(days=9))
    handler = RecordingHandler()
    await add_articles(site, 1, published=clock.now() - timedelta(hours=2), prefix="pertama")
    await send_edition(site, date(2026, 11, 25), handler)
    clock.advance(timedelta(days=1))
    await add_articles(site, 1, published=clock.now() - timedelta(hours=2), prefix="kedua")
    await send_edition(site, date(2026, 11, 26), handler)
    first = (await client.get("/digests/")).text
    assert "daily-2026-11-26" in first
    assert "daily-2026-11-25" not in first
    second = await client.get("/digests/?page=2")
    assert "daily-2026-11-25" in second.text
    assert (await client.get("/digests/?page=3")).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/digests/daily-2026-13-45/id",
        "/digests/daily-2026-11-25/xx",
        "/digests/monthly-2026-11-25/id",
        "/digests/daily-2026-11-25/" + "i" * 5000,
        "/digests/%2e%2e/%2e%2e",
        "/digests/?page=abc",
        "/digests/?page=0",
        "/digests/?page=" + "9" * 40,
    ],
)
async def test_hostile_archive_paths_get_404(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404
