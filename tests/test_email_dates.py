"""Dates and times as readers write them: Indonesian dates, weekly digests dated the day
they went out, page times to the minute, og:locale."""

from __future__ import annotations

import email
import email.policy
import json
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import httpx

from publisher.clock import FrozenClock
from publisher.delivery.editions import current_edition_date, enqueue, open_edition
from publisher.delivery.worker import deliver
from publisher.render.i18n import medium_datetime, og_locale
from publisher.site import Site
from publisher.web.app import create_app
from tests.delivery_helpers import add_articles, add_subscribers
from tests.smtp_servers import RecordingHandler, smtp_server


async def test_weekly_digest_sent_on_tuesday_is_dated_tuesday(
    site: Site, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 11, 30, 18, 0, tzinfo=UTC))
    await add_articles(site, 2)
    await add_subscribers(site, 1, frequency="weekly")
    # Tuesday 1 December, 07:30 in Jakarta; the site's weekly day is Monday.
    clock.set(datetime(2026, 12, 1, 0, 30, tzinfo=UTC))
    day = current_edition_date(site, "weekly", clock.now())
    assert day == date(2026, 11, 30)  # the edition is still the week's (sent once a week)
    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        edition = await open_edition(site, "weekly", day, clock.now())
        await enqueue(site, edition, clock.now())
        assert (await deliver(site)).sent == 1
    [raw] = handler.delivered["reader0@example.net"]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    part = message.get_body(("plain",))
    assert part is not None
    text = str(part.get_content())
    assert "1 Desember 2026" in text
    assert "30 November 2026" not in text
    assert "Selasa, 01" not in text


def test_times_have_no_seconds_and_locales_are_complete() -> None:
    moment = datetime(2026, 12, 1, 5, 20, 42, tzinfo=UTC)
    assert medium_datetime(moment, ZoneInfo("Asia/Jakarta"), "id") == "1 Des 2026 12.20"
    assert og_locale("id") == "id_ID"
    assert og_locale("en") == "en_US"
    assert og_locale("") == "en_US"


async def test_article_page_time_and_og_locale(site: Site) -> None:
    await add_articles(site, 1)
    app = create_app(site)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://x.example") as client:
            page = (await client.get("/articles/artikel-id-0")).text
            home = (await client.get("/")).text
    assert '<meta property="og:locale" content="id_ID">' in page
    found = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert found is not None
    data = json.loads(found[1])
    assert data["@type"] == "NewsArticle"
    assert data["headline"] == "Artikel 0: jalan baru di pesisir utara"
    assert data["author"][0]["name"] == "Andi Saputra"
    assert '<meta property="og:locale" content="id_ID">' in home
    shown = re.search(r"<time [^>]*>([^<]+)</time>", page)
    assert shown is not None
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4} \d{2}\.\d{2} WIB", shown[1]), shown[1]
