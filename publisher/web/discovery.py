"""What crawlers and feed readers look for: /sitemap.xml (every public page), /feeds.opml."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime

import sqlalchemy as sa
from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from publisher.config import Settings
from publisher.content.models import PUBLISHED, Article
from publisher.content.sanitize import strip_controls
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.delivery import archive
from publisher.feeds.model import EPOCH
from publisher.planning import archive_path
from publisher.site import Site
from publisher.web.cache import ContentCache
from publisher.web.conditional import respond

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
#: The sitemap protocol's limit of URLs per file.
SITEMAP_LIMIT = 50_000
SITEMAP_TYPE = "application/xml; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"
FEED_FILES = (("rss", "feed.xml"), ("atom", "atom.xml"), ("json", "feed.json"))

Built = tuple[bytes, str, datetime] | None


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


async def sitemap_document(session: AsyncSession, settings: Settings) -> tuple[bytes, datetime]:
    """Return the sitemap of every public page and when the newest of them changed."""
    base = settings.site.base_url
    store = ArticleStore(session, base)
    entries: list[tuple[str, datetime | None]] = [
        (f"{base}/", None),
        (f"{base}/archive", None),
        (f"{base}/subscribe", None),
        (f"{base}/digests/", None),
    ]
    rows = await session.execute(
        sa.select(Article.slug, Article.updated_at, Article.published_at)
        .where(Article.status == PUBLISHED)
        .order_by(Article.published_at.desc(), Article.id.desc())
        .limit(SITEMAP_LIMIT)
    )
    months: Counter[str] = Counter()
    newest = EPOCH
    for slug, updated, published in rows:
        entries.append((f"{base}/articles/{slug}", updated))
        newest = max(newest, updated)
        if published is not None:
            months[published.astimezone(settings.tz).strftime("%Y-%m")] += 1
    entries += [(f"{base}/archive/{month}", None) for month in sorted(months, reverse=True)]
    entries += [(f"{base}/tags/{tag}", None) for tag, _count in await store.tags()]
    entries += [(f"{base}/authors/{slug}", None) for slug, _name in await store.authors()]
    for edition in await archive.every_digest(session, settings.tz):
        for language in edition.languages:
            entries.append((f"{base}{archive_path(edition.period_key, language)}", edition.sent_at))
            newest = max(newest, edition.sent_at)
    root = ET.Element("urlset", xmlns=SITEMAP_NS)
    for location, modified in entries[:SITEMAP_LIMIT]:
        url = ET.SubElement(root, "url")
        ET.SubElement(url, "loc").text = location
        if modified is not None:
            ET.SubElement(url, "lastmod").text = modified.isoformat(timespec="seconds")
    return _xml(root), newest


async def opml_document(session: AsyncSession, settings: Settings) -> tuple[bytes, datetime]:
    """Return an OPML 2.0 list of every feed: the site's, each tag's and author's, the archive's."""
    base = settings.site.base_url
    title = strip_controls(settings.site.title)
    store = ArticleStore(session, base)
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")

    def group(text: str, home: str, prefix: str) -> None:
        outline = ET.SubElement(body, "outline", text=text, title=text)
        for kind, file_name in FEED_FILES:
            label = f"{text} ({kind.upper() if kind != 'json' else 'JSON Feed'})"
            ET.SubElement(
                outline,
                "outline",
                type="rss",
                text=label,
                title=label,
                xmlUrl=f"{base}/{prefix}{file_name}",
                htmlUrl=home,
                language=settings.site.language,
            )

    group(title, f"{base}/", "")
    for tag, _count in await store.tags():
        group(f"{title} · #{tag}", f"{base}/tags/{tag}", f"tags/{tag}/")
    for slug, name in await store.authors():
        group(f"{title} · {strip_controls(name)}", f"{base}/authors/{slug}", f"authors/{slug}/")
    digests = ET.SubElement(body, "outline", text=f"{title} · digests", title=f"{title} · digests")
    for kind, file_name in FEED_FILES[:2]:
        label = f"{title} · digests ({kind.upper()})"
        ET.SubElement(
            digests,
            "outline",
            type="rss",
            text=label,
            title=label,
            xmlUrl=f"{base}/digests/{file_name}",
            htmlUrl=f"{base}/digests/",
        )
    return _xml(root), EPOCH


Document = Callable[[AsyncSession, Settings], Awaitable[tuple[bytes, datetime]]]


async def _serve(request: Request, key: str, build: Document) -> Response:
    site: Site = request.app.state.site
    cache: ContentCache = request.app.state.cache
    async with transaction(site.engine) as session:
        state = await archive.state(session)

    async def run() -> Built:
        async with transaction(site.engine) as session:
            body, modified = await build(session, site.settings)
        media = SITEMAP_TYPE if key == "sitemap" else OPML_TYPE
        return body, media, modified

    cached = await cache.get(f"{key}:{state}", run)
    if cached is None:
        raise HTTPException(404)
    return respond(request, cached, site.settings.web.feed_cache_seconds)


async def sitemap(request: Request) -> Response:
    """Serve /sitemap.xml."""
    return await _serve(request, "sitemap", sitemap_document)


async def opml(request: Request) -> Response:
    """Serve /feeds.opml."""
    return await _serve(request, "opml", opml_document)


router = APIRouter()
router.add_route("/sitemap.xml", sitemap, methods=["GET", "HEAD"], include_in_schema=False)
router.add_route("/feeds.opml", opml, methods=["GET", "HEAD"], include_in_schema=False)
