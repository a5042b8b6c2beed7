"""HTML pages: home (paged), article, tag, author and the monthly archive; cached like feeds."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from publisher.config import Settings
from publisher.content.models import Article
from publisher.content.sanitize import clean_line
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.feeds import query
from publisher.feeds.model import EPOCH, Scope, absolutize_srcset
from publisher.render.i18n import medium_datetime
from publisher.site import Site
from publisher.web.cache import ContentCache
from publisher.web.conditional import respond
from publisher.web.templating import HTML_TYPE, PageRenderer

PAGE_SIZE = 20
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# ASCII digits only ("²".isdigit() is true) and few of them (int() refuses 4,301 digits).
_PAGE = re.compile(r"[1-9][0-9]{0,5}", re.ASCII)


@dataclass(frozen=True)
class Card:
    """What a template needs to show one article."""

    slug: str
    url: str
    title: str
    summary: str
    language: str
    published_iso: str
    published_text: str
    updated_iso: str
    author: str
    author_url: str
    tags: list[tuple[str, str]]
    image_url: str
    image_caption: str
    image_credit: str
    image_width: int
    image_height: int
    canonical_url: str
    body_html: str = ""


def _card(article: Article, settings: Settings, language: str, *, body: bool = False) -> Card:
    base = settings.site.base_url
    assert article.published_at is not None
    local = article.published_at.astimezone(settings.tz)
    html = ""
    if body:
        # Sanitized once, on the way into the store; the request path only reads it.
        html = absolutize_srcset(article.body_html, base)
    return Card(
        slug=article.slug,
        url=f"{base}/articles/{article.slug}",
        title=clean_line(article.title),
        summary=clean_line(article.summary),
        language=article.language,
        published_iso=local.isoformat(),
        published_text=f"{medium_datetime(local, settings.tz, language)} {local.tzname()}",
        updated_iso=article.updated_at.astimezone(settings.tz).isoformat(),
        author=clean_line(article.author),
        author_url=f"{base}/authors/{article.author_slug}" if article.author_slug else "",
        tags=[(tag, f"{base}/tags/{tag}") for tag in article.tags],
        image_url=article.image_url,
        image_caption=clean_line(article.image_caption),
        image_credit=clean_line(article.image_credit),
        image_width=article.image_width,
        image_height=article.image_height,
        canonical_url=article.canonical_url,
        body_html=html,
    )


def _modified(articles: list[Article]) -> datetime:
    return max((a.updated_at for a in articles), default=EPOCH)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not _PAGE.fullmatch(raw):
        raise HTTPException(404)
    return int(raw)


Built = tuple[bytes, str, datetime] | None


class Pages:
    """Build each page from the store; the cache decides when."""

    def __init__(self, site: Site, renderer: PageRenderer) -> None:
        self.site = site
        self.settings = site.settings
        self.renderer = renderer

    async def _html(self, name: str, context: dict[str, Any], language: str | None = None) -> bytes:
        # In a worker thread: a long article must not hold up other requests meanwhile.
        text = await asyncio.to_thread(self.renderer.render, name, context, language)
        return text.encode("utf-8")

    async def listing(
        self, session: AsyncSession, scope: Scope, number: int, template: str, path: str
    ) -> Built:
        """Build a paged list of a scope's articles (home, tag or author page)."""
        total = await query.count(session, scope)
        if total == 0 and scope.kind != "site":
            return None
        pages = max(1, -(-total // PAGE_SIZE))
        if number > pages:
            return None
        articles = await query.page(session, scope, (number - 1) * PAGE_SIZE, PAGE_SIZE)
        base = self.settings.site.base_url
        context: dict[str, Any] = {
            "cards": [_card(a, self.settings, self.settings.site.language) for a in articles],
            "page": number,
            "pages": pages,
            "total": total,
            "page_url": f"{base}{path}",
            "scope": scope,
            "feed_base": f"{base}/{scope.prefix}",
        }
        if scope.kind == "author":
            context["author_name"] = await query.author_name(session, scope.key) or scope.key
        return await self._html(template, context), HTML_TYPE, _modified(articles)

    async def article(self, session: AsyncSession, slug: str) -> Built:
        """Build one article's page."""
        article = await ArticleStore(session, self.settings.site.base_url).get(slug)
        if article is None or not article.is_published:
            return None
        card = _card(article, self.settings, article.language, body=True)
        body = await self._html("article.html", {"article": card}, article.language)
        return body, HTML_TYPE, article.updated_at

    async def archive_index(self, session: AsyncSession) -> Built:
        """Build the list of months with their article counts."""
        tz = self.settings.tz
        months = Counter(
            when.astimezone(tz).strftime("%Y-%m") for when in await query.publication_times(session)
        )
        context = {"months": sorted(months.items(), reverse=True)}
        return await self._html("archive.html", context), HTML_TYPE, EPOCH

    async def archive_month(self, session: AsyncSession, month: str) -> Built:
        """Build the list of one month's articles (in the site's time zone)."""
        match = _MONTH.match(month)
        if match is None:
            return None
        year, number = int(match[1]), int(match[2])
        tz = self.settings.tz
        start = datetime(year, number, 1, tzinfo=tz)
        end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
        articles = await query.published_in(session, start, end)
        if not articles:
            return None
        context = {
            "month": month,
            "cards": [_card(a, self.settings, self.settings.site.language) for a in articles],
        }
        return await self._html("archive.html", context), HTML_TYPE, _modified(articles)


async def _serve(request: Request, key: str, build: Any) -> Response:
    site: Site = request.app.state.site
    cache: ContentCache = request.app.state.cache

    async def run() -> Built:
        async with transaction(site.engine) as session:
            built: Built = await build(session)
            return built

    cached = await cache.get("page:" + key, run)
    if cached is None:
        raise HTTPException(404)
    return respond(request, cached, site.settings.web.feed_cache_seconds)


def _pages(request: Request) -> Pages:
    pages: Pages = request.app.state.page_builder
    return pages


async def home(request: Request) -> Response:
    """Show the newest articles, paged."""
    number = _page_number(request)
    pages = _pages(request)
    return await _serve(
        request,
        f"/?page={number}",
        lambda s: pages.listing(s, Scope(), number, "home.html", "/"),
    )


async def article(request: Request) -> Response:
    """Show one article."""
    slug = request.path_params["slug"]
    if not _SLUG.match(slug):
        raise HTTPException(404)
    pages = _pages(request)
    return await _serve(request, f"/articles/{slug}", lambda s: pages.article(s, slug))


async def tag(request: Request) -> Response:
    """Show a tag's articles, paged."""
    return await _scoped_listing(request, Scope("tag", request.path_params["tag"]))


async def author(request: Request) -> Response:
    """Show an author's articles, paged."""
    return await _scoped_listing(request, Scope("author", request.path_params["slug"]))


async def _scoped_listing(request: Request, scope: Scope) -> Response:
    if not _SLUG.match(scope.key):
        raise HTTPException(404)
    number = _page_number(request)
    pages = _pages(request)
    path = "/" + scope.prefix.rstrip("/")
    return await _serve(
        request,
        f"{path}?page={number}",
        lambda s: pages.listing(s, scope, number, f"{scope.kind}.html", path),
    )


async def archive(request: Request) -> Response:
    """Show the months that have articles."""
    pages = _pages(request)
    return await _serve(request, "/archive", pages.archive_index)


async def archive_month(request: Request) -> Response:
    """Show one month's articles."""
    month = request.path_params["month"]
    pages = _pages(request)
    return await _serve(request, f"/archive/{month}", lambda s: pages.archive_month(s, month))


router = APIRouter()
for _path, _endpoint in (
    ("/", home),
    ("/articles/{slug}", article),
    ("/tags/{tag}", tag),
    ("/authors/{slug}", author),
    ("/archive", archive),
    ("/archive/{month}", archive_month),
):
    router.add_route(_path, _endpoint, methods=["GET", "HEAD"], include_in_schema=False)
