"""The public digest archive: /digests/ (paged), each edition's web version, and its feeds."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from publisher.config import Settings
from publisher.db import transaction
from publisher.delivery import announcements, archive
from publisher.delivery.archive import ArchivedDigest, ArchivedEdition
from publisher.feeds.model import EPOCH, MEDIA_TYPES, Format, Item
from publisher.feeds.xml import listing_feed_bytes
from publisher.planning import ANNOUNCEMENT, archive_path, period_key_of
from publisher.render.announcement import AnnouncementContent, render_announcement
from publisher.render.digest import Digest, render_digest
from publisher.render.i18n import long_date, translations
from publisher.site import Site
from publisher.web.cache import ContentCache
from publisher.web.conditional import respond
from publisher.web.templating import HTML_TYPE, PageRenderer

PAGE_SIZE = 20
_LANGUAGE = re.compile(r"[a-z]{2,3}")
#: Editions the archive feeds carry.
FEED_ITEMS = 50
FEEDS: dict[str, Format] = {"feed.xml": "rss", "atom.xml": "atom"}

Built = tuple[bytes, str, datetime] | None


def edition_title(settings: Settings, edition: ArchivedEdition, language: str) -> str:
    """Return "Daily digest of 25 November 2026" in ``language``."""
    gettext = translations(language, "web", settings.site.templates_dir).gettext
    if edition.frequency == ANNOUNCEMENT:
        return gettext("Announcement of %(date)s") % {
            "date": long_date(edition.local_date, language)
        }
    frequency = gettext("daily") if edition.frequency == "daily" else gettext("weekly")
    return gettext("%(frequency)s digest of %(date)s") % {
        "frequency": frequency,
        "date": long_date(edition.local_date, language),
    }


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")[:12]
    if not raw.isdigit() or raw != str(int(raw)) or int(raw) < 1:
        raise HTTPException(404)
    return int(raw)


async def _archive_state(site: Site) -> str:
    async with transaction(site.engine) as session:
        return await archive.state(session)


async def _serve(request: Request, key: str, build: Any) -> Response:
    site: Site = request.app.state.site
    cache: ContentCache = request.app.state.cache
    # The content cache empties when articles change; sends change the archive, so its
    # state is part of the key (one small indexed query per request).
    key = f"digests:{await _archive_state(site)}:{key}"

    async def run() -> Built:
        async with transaction(site.engine) as session:
            built: Built = await build(session)
            return built

    cached = await cache.get(key, run)
    if cached is None:
        raise HTTPException(404)
    return respond(request, cached, site.settings.web.feed_cache_seconds)


def _renderer(request: Request) -> PageRenderer:
    renderer: PageRenderer = request.app.state.pages
    return renderer


async def index(request: Request) -> Response:
    """List sent editions, newest first, paged."""
    number = _page_number(request)
    renderer = _renderer(request)
    settings = renderer.settings

    async def build(session: AsyncSession) -> Built:
        total = await archive.count_sent(session)
        pages = max(1, -(-total // PAGE_SIZE))
        if number > pages:
            return None
        editions = await archive.sent_editions(
            session, (number - 1) * PAGE_SIZE, PAGE_SIZE, settings.tz
        )
        language = settings.site.language
        base = settings.site.base_url
        rows = [
            {
                "title": edition_title(settings, edition, language),
                "date": edition.local_date.isoformat(),
                "slug": edition.slug,
                "links": [
                    (code, f"{base}{archive_path(_key(edition), code)}")
                    for code in edition.languages
                ],
            }
            for edition in editions
        ]
        context = {
            "editions": rows,
            "page": number,
            "pages": pages,
            "page_url": f"{base}/digests/",
        }
        modified = max((e.sent_at for e in editions), default=EPOCH)
        body = renderer.render("digests.html", context).encode("utf-8")
        return body, HTML_TYPE, modified

    return await _serve(request, f"/digests/?page={number}", build)


def _key(edition: ArchivedEdition) -> str:
    return edition.period_key


def web_version(settings: Settings, found: ArchivedDigest) -> str:
    """Render an archived digest as sent, reader-neutral: no greeting, address or links."""
    digest = Digest(
        articles=found.articles,
        language=found.language,
        edition_key=_key(found.edition),
        edition_date=found.edition.local_date,
        tz=settings.tz,
        more_count=found.more_count,
        frequency=found.edition.frequency,
        public=True,
    )
    compiled = render_digest(settings, digest)
    # Every reader slot becomes empty: whatever a custom template puts there, no one shows.
    html, _text = compiled.fill({})
    return html


def announcement_web_version(settings: Settings, content: AnnouncementContent) -> str:
    """Render a sent announcement reader-neutral: no greeting, address or links."""
    html, _text = render_announcement(settings, content).fill({})
    return html


async def edition_page(request: Request) -> Response:
    """Show one edition's digest in one language, as sent."""
    slug = request.path_params["edition"]
    language = request.path_params["lang"]
    # Checked before the cache: made-up paths must not crowd real pages out of it.
    if period_key_of(slug) is None or not _LANGUAGE.fullmatch(language):
        raise HTTPException(404)
    site: Site = request.app.state.site
    settings = site.settings

    async def announced(session: AsyncSession) -> Built:
        found = await archive.archived_announcement(session, slug, language, settings.tz)
        if found is None:
            return None
        edition, announcement = found
        content = announcements.content_of(site, announcement, public=True)
        html = await asyncio.to_thread(announcement_web_version, settings, content)
        return html.encode("utf-8"), HTML_TYPE, edition.sent_at

    if slug.startswith(f"{ANNOUNCEMENT}-"):
        return await _serve(request, f"/digests/{slug}/{language}", announced)

    async def build(session: AsyncSession) -> Built:
        found = await archive.archived_digest(
            session, slug, language, settings.digest.max_articles, settings.tz
        )
        if found is None:
            return None
        html = await asyncio.to_thread(web_version, settings, found)
        return html.encode("utf-8"), HTML_TYPE, found.edition.sent_at

    return await _serve(request, f"/digests/{slug}/{language}", build)


async def feed(request: Request) -> Response:
    """Serve the archive as RSS or Atom: one entry per edition and language."""
    kind = FEEDS[request.url.path.rsplit("/", 1)[1]]
    site: Site = request.app.state.site
    settings = site.settings

    async def build(session: AsyncSession) -> Built:
        editions = await archive.sent_editions(session, 0, FEED_ITEMS, settings.tz)
        body = archive_feed(settings, editions, kind)
        modified = max((e.sent_at for e in editions), default=EPOCH)
        return body, MEDIA_TYPES[kind], modified

    return await _serve(request, f"/digests/{kind}", build)


def archive_feed(settings: Settings, editions: list[ArchivedEdition], kind: Format) -> bytes:
    """Return the RSS or Atom document of the archive."""
    base = settings.site.base_url
    site_language = settings.site.language
    gettext = translations(site_language, "web", settings.site.templates_dir).gettext
    author = settings.site.author or settings.site.title
    items = []
    for edition in editions:
        for language in edition.languages:
            url = f"{base}{archive_path(_key(edition), language)}"
            title = edition_title(settings, edition, language)
            items.append(
                Item(
                    id=url,
                    url=url,
                    title=f"{settings.site.title}: {title}",
                    summary=title,
                    content_html="",
                    published=edition.sent_at,
                    updated=edition.sent_at,
                    author=author,
                    author_url="",
                    language=language,
                    tags=(),
                    image=None,
                )
            )
    name = "feed.xml" if kind == "rss" else "atom.xml"
    return listing_feed_bytes(
        kind,
        title=f"{settings.site.title} · {gettext('Past digests')}",
        description=settings.site.description,
        home_url=f"{base}/digests/",
        self_url=f"{base}/digests/{name}",
        language=site_language,
        author=author,
        updated=max((e.sent_at for e in editions), default=EPOCH),
        items=items,
        tz=settings.tz,
    )


router = APIRouter()
for _path, _endpoint in (
    ("/digests/", index),
    ("/digests/feed.xml", feed),
    ("/digests/atom.xml", feed),
    ("/digests/{edition}/{lang}", edition_page),
):
    router.add_route(_path, _endpoint, methods=["GET", "HEAD"], include_in_schema=False)
