"""Publish at a time: a scheduled draft stays invisible (feeds, pages, digests) until then."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import httpx
import pytest
import sqlalchemy as sa

from publisher import db
from publisher.accounts.models import AuditEntry
from publisher.clock import FrozenClock
from publisher.content import authoring, listing
from publisher.content.authoring import ArticleInput, ArticleStatus
from publisher.content.listing import ArticleFilter
from publisher.content.models import Article
from publisher.content.publishing import publish_due
from publisher.content.store import ArticleStore
from publisher.delivery.mailsink import MailSink
from publisher.errors import InputError
from publisher.site import Site
from tests.admin_helpers import AdminClient, add_editors
from tests.scheduling_helpers import add_reader, publish, text_part, tick_through

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Return an aware UTC instant in November 2026."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def story(title: str, publish_at: datetime | None) -> ArticleInput:
    """Return a draft scheduled at ``publish_at``."""
    return ArticleInput(
        title=title,
        body_markdown=f"{title}: isi berita yang cukup panjang untuk dibaca.",
        language="id",
        tags=["jadwal"],
        status=ArticleStatus.DRAFT,
        publish_at=publish_at,
    )


async def schedule(site: Site, title: str, when: datetime) -> str:
    """Store a draft scheduled at ``when`` and return its slug."""
    async with db.transaction(site.engine) as session:
        result = await authoring.create(
            ArticleStore(session, site.settings.site.base_url), story(title, when), site.clock.now()
        )
        return result.article.slug


async def article(site: Site, slug: str) -> Article:
    async with db.transaction(site.engine) as session:
        return await ArticleStore(session, site.settings.site.base_url).require(slug)


async def test_due_drafts_are_published_at_their_time_not_before(
    site: Site, clock: FrozenClock
) -> None:
    clock.set(at(24, 1))
    slug = await schedule(site, "Jembatan Suramadu ditutup sementara", at(24, 3))
    async with db.transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        version = await store.version()
        assert await store.next_publish_at() == at(24, 3)
    # A minute early: nothing moves.
    assert await publish_due(site.engine, site.settings.site.base_url, at(24, 2, 59)) == []
    scheduled = await article(site, slug)
    assert (scheduled.status, scheduled.published_at) == ("draft", None)
    # Late (the process was down): published, dated at the scheduled time, not at the run.
    assert await publish_due(site.engine, site.settings.site.base_url, at(24, 5)) == [slug]
    published = await article(site, slug)
    assert published.status == "published"
    assert published.published_at == at(24, 3)
    assert published.publish_at is None
    async with db.transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        assert await store.version() == version + 1
        assert await store.next_publish_at() is None
        # The tag feed's copy of the status moved too.
        assert [a.slug for a in await store.latest(10, tag="jadwal")] == [slug]
    # Running again publishes nothing twice.
    assert await publish_due(site.engine, site.settings.site.base_url, at(24, 6)) == []


async def test_a_published_schedule_is_found_by_title_as_published(
    site: Site, clock: FrozenClock
) -> None:
    """The title index (PostgreSQL keeps status and date there) follows the publication."""
    clock.set(at(24, 1))
    slug = await schedule(site, "Pelabuhan Bitung diperluas", at(24, 3))
    assert await publish_due(site.engine, site.settings.site.base_url, at(24, 4)) == [slug]
    async with db.transaction(site.engine) as session:
        found = await listing.page(session, ArticleFilter(status="published", text="Bitung"), 10)
        drafts = await listing.page(session, ArticleFilter(status="draft", text="Bitung"), 10)
    assert [(a.slug, a.published_at) for a in found] == [(slug, at(24, 3))]
    assert drafts == []


async def test_schedule_rules(site: Site, clock: FrozenClock) -> None:
    clock.set(at(24, 1))
    with pytest.raises(InputError, match="publish_at: that time has passed"):
        await schedule(site, "Terlambat", at(24, 0))
    published = story("Sudah terbit", at(24, 4))
    published.status = ArticleStatus.PUBLISHED
    assert ("publish_at", "only a draft is published at a time; choose draft") in (
        authoring.check(published)
    )
    slug = await schedule(site, "Dijadwalkan lalu diterbitkan", at(24, 4))
    # Publishing now (status published, no time) drops the schedule.
    now_story = story("Dijadwalkan lalu diterbitkan", None)
    now_story.status = ArticleStatus.PUBLISHED
    async with db.transaction(site.engine) as session:
        await authoring.update(
            ArticleStore(session, site.settings.site.base_url), slug, now_story, clock.now()
        )
    again = await article(site, slug)
    assert (again.status, again.publish_at, again.published_at) == ("published", None, at(24, 1))


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[MailSink]:
    server = MailSink(tmp_path / "mail", port=0)
    await server.start()
    yield server
    await server.stop()


@SQLITE_ONLY
async def test_digest_takes_what_was_scheduled_before_its_send_time_only(
    site: Site, sink: MailSink, clock: FrozenClock
) -> None:
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{sink.port}"
    clock.set(at(24, 12))
    await add_reader(site, "wib@example.org", "Asia/Jakarta")
    await publish(site, "Pasar apung Banjarmasin ramai", at=at(24, 12))
    # 06:50 and 07:30 WIB on the 25th; the WIB digest goes at 07:00 WIB (00:00 UTC).
    await schedule(site, "Kereta cepat menambah jadwal", at(24, 23, 50))
    await schedule(site, "Festival Danau Toba dibuka", at(25, 0, 30))
    timeline, reports = await tick_through(site, sink, at(24, 23), at(25, 1))
    assert timeline == {"wib@example.org": [at(25, 0)]}
    first = text_part(sink.messages[0].path)
    assert "Pasar apung" in first
    assert "Kereta cepat" in first
    assert "Festival Danau Toba" not in first
    published = [slug for report in reports for slug in report.published]
    assert published == ["kereta-cepat-menambah-jadwal", "festival-danau-toba-dibuka"]
    # The tick that published the 07:30 article ran at 07:30 WIB, not before.
    assert next(r.now for r in reports if r.published == ["festival-danau-toba-dibuka"]) == at(
        25, 0, 30
    )
    timeline, _ = await tick_through(site, sink, at(25, 23, 45), at(26, 0, 15))
    second = text_part(sink.messages[-1].path)
    assert "Festival Danau Toba" in second
    assert "Kereta cepat" not in second


@pytest.fixture
async def people(site: Site) -> Site:
    await add_editors(site)
    return site


def _feed_titles(base: str) -> list[str]:
    return [e.title for e in feedparser.parse(httpx.get(base + "/feed.xml").content).entries]


async def test_server_publishes_a_scheduled_article_when_its_time_comes(
    server: str, people: Site, clock: FrozenClock
) -> None:
    clock.set(at(24, 1))
    editor = AdminClient(server)
    editor.login("editor@example.org")
    title = "Gerhana bulan terlihat dari Sulawesi"
    form = {
        "title": title,
        "body_markdown": "Langit cerah malam ini.",
        "lang": "id",
        "status": "published",  # "publish at" wins: it stays a draft until then
        "publish_at": "2026-11-24T15:00",  # site zone (Asia/Jakarta) = 08:00 UTC
    }
    created = editor.post("/admin/articles/new", form, csrf_from="/admin/articles/new")
    assert created.status_code == 303, created.text
    slug = created.headers["location"].split("/")[-1].split("?")[0]
    page = editor.get(f"/admin/articles/{slug}")
    assert 'value="2026-11-24T15:00"' in page.text
    listing = editor.get("/admin/articles")
    assert "2026-11-24 15:00" in listing.text
    async with db.transaction(people.engine) as session:
        entry = await session.scalar(
            sa.select(AuditEntry).where(AuditEntry.action == "article.create")
        )
    assert entry is not None
    assert entry.detail == "scheduled 2026-11-24T08:00Z"
    # Not before: the feed, the page and the sitemap do not know it (polls run meanwhile).
    clock.set(at(24, 7, 59))
    time.sleep(1.0)
    assert title not in _feed_titles(server)
    assert httpx.get(f"{server}/articles/{slug}").status_code == 404
    assert slug not in httpx.get(server + "/sitemap.xml").text
    clock.set(at(24, 8))
    deadline = time.monotonic() + 20
    while title not in _feed_titles(server):
        assert time.monotonic() < deadline, "the server did not publish the article"
        time.sleep(0.2)
    assert httpx.get(f"{server}/articles/{slug}").status_code == 200
    stored = await article(people, slug)
    assert stored.published_at == at(24, 8)
    # A past time is refused on the form with the field named.
    late = editor.post(
        "/admin/articles/new",
        {**form, "title": "Terlambat", "publish_at": "2026-11-24T01:00"},
        csrf_from="/admin/articles/new",
    )
    assert late.status_code == 422
    assert "that time has passed" in late.text
    # A viewer cannot schedule.
    viewer = AdminClient(server)
    viewer.login("viewer@example.org")
    denied = viewer.post(
        "/admin/articles/new",
        {**form, "title": "Tidak boleh", "publish_at": "2026-11-30T10:00"},
        csrf_from="/admin/",
    )
    assert denied.status_code == 403
    editor.close()
    viewer.close()


def test_cli_add_publish_at(site_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from publisher.config import DEFAULT_CONFIG
    from tests.clirunner import invoke

    config = site_dir / DEFAULT_CONFIG
    story_file = site_dir / "nanti.md"
    story_file.write_text("---\ntitle: Pengumuman nanti\n---\nIsi pengumuman.\n", encoding="utf-8")
    later = invoke(
        capsys,
        "--config",
        config,
        "articles",
        "add",
        story_file,
        "--publish-at",
        "2099-01-02T06:00",
    )
    assert later.exit_code == 0, later.stderr
    shown = invoke(capsys, "--config", config, "articles", "show", "pengumuman-nanti", "--json")
    data = shown.json()
    assert data["status"] == "draft"
    assert data["publish_at"] == "2099-01-01T23:00:00+00:00"  # 06:00 in Asia/Jakarta
    past = invoke(
        capsys, "--config", config, "articles", "add", story_file, "--publish-at", "2001-01-01"
    )
    assert past.exit_code == 2
    assert "--publish-at: 2001-01-01 has passed" in past.stderr


async def test_api_schedules_keeps_and_ends_a_schedule(site: Site, clock: FrozenClock) -> None:
    from publisher.web.app import create_app
    from tests.test_api import BASE, make_keys

    clock.set(at(24, 1))
    keys = await make_keys(site)
    app = create_app(site)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    headers = {"Authorization": f"Bearer {keys['editor']}"}
    body = {"title": "Rapat DPRD besok pagi", "body_markdown": "Agenda rapat.", "lang": "id"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as api:
        made = await api.post(
            "/api/v1/articles", json={**body, "publish_at": "2026-11-24T10:00:00+07:00"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["status"] == "draft"  # a schedule implies a draft
        assert made.json()["publish_at"].startswith("2026-11-24T03:00:00")
        slug = made.json()["slug"]
        refused = await api.post(
            "/api/v1/articles",
            json={
                **body,
                "title": "Lain",
                "status": "published",
                "publish_at": "2026-11-25T00:00Z",
            },
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", "publish_at"]
        past = await api.post(
            "/api/v1/articles", json={**body, "title": "Lampau", "publish_at": "2026-11-23T00:00Z"}
        )
        assert "that time has passed" in past.json()["detail"][0]["msg"]
        # Another change keeps the schedule; the list shows it.
        changed = await api.patch(f"/api/v1/articles/{slug}", json={"summary": "Ringkas."})
        assert changed.json()["publish_at"].startswith("2026-11-24T03:00:00")
        listed = await api.get("/api/v1/articles", params={"status": "draft"})
        assert [a["publish_at"] is not None for a in listed.json()["items"]] == [True]
        # Publishing now ends it.
        published = await api.post(f"/api/v1/articles/{slug}/publish")
        assert published.json()["status"] == "published"
        assert published.json()["publish_at"] is None
        # Scheduling a published article takes it off the site until then.
        again = await api.patch(
            f"/api/v1/articles/{slug}", json={"publish_at": "2026-11-26T00:00:00Z"}
        )
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["publish_at"][:10]) == ("draft", "2026-11-26")


async def test_server_cache_learns_of_a_schedule_its_own_request_announced(
    site: Site, clock: FrozenClock
) -> None:
    import asyncio

    from publisher.web.cache import ContentCache

    clock.set(at(24, 1))
    cache = ContentCache(site, poll_interval=0.05)
    await cache.start()
    try:
        slug = await schedule(site, "Lampu lalu lintas baru di Makassar", at(24, 2))
        async with db.transaction(site.engine) as session:
            version = await ArticleStore(session, site.settings.site.base_url).version()
        # An API request moves this process's version itself, before the poll sees it.
        cache.check(version)
        deadline = time.monotonic() + 30
        while cache.next_publish is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert cache.next_publish == at(24, 2)
        clock.set(at(24, 2))
        # Published, and the cache has read that nothing else is due.
        while cache.next_publish is not None and time.monotonic() < deadline + 30:
            await asyncio.sleep(0.05)
        assert cache.next_publish is None
        assert (await article(site, slug)).published_at == at(24, 2)
    finally:
        await cache.stop()
