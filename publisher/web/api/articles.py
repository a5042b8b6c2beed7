"""/api/v1/articles: list, create, read, change, publish, unpublish and delete articles."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.content import listing
from publisher.content.markdown import render_markdown
from publisher.content.models import DRAFT, PUBLISHED, Article
from publisher.content.sanitize import clean_line
from publisher.content.slugs import slugify
from publisher.content.store import ArticleDraft, ArticleStore, UpsertResult, normalize_tags
from publisher.db import transaction
from publisher.errors import InputError
from publisher.render.digest import article_url
from publisher.site import Site
from publisher.web.api import pagination
from publisher.web.api.auth import Caller, ContentWriter, Reader, site_of
from publisher.web.api.errors import conflict, not_found
from publisher.web.api.limits import MAX_LIST_ITEMS, LimitedRoute
from publisher.web.cache import ContentCache

router = APIRouter(prefix="/articles", tags=["articles"], route_class=LimitedRoute)

LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"
SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CURSOR_KIND = "articles"

Tag = Annotated[str, Field(min_length=1, max_length=100)]
Language = Annotated[str, Field(min_length=2, max_length=20, pattern=LANGUAGE)]
Url = Annotated[str, Field(max_length=2000)]
Caption = Annotated[str, Field(max_length=1000)]
SlugPath = Annotated[str, Path(min_length=1, max_length=200, description="The article's slug.")]


class ArticleStatus(StrEnum):
    """Whether readers can see an article."""

    DRAFT = DRAFT
    PUBLISHED = PUBLISHED


class ArticleFields(BaseModel):
    """Fields an article shares between create and change (all optional in a change)."""

    model_config = ConfigDict(extra="forbid")

    summary: Annotated[str, Field(max_length=2000)] | None = None
    author: Annotated[str, Field(max_length=200)] | None = None
    image_url: Url | None = None
    image_caption: Caption | None = None
    image_credit: Caption | None = None
    canonical_url: Url | None = None


class ArticleCreate(ArticleFields):
    """A new article; Markdown is rendered and sanitized exactly as `articles add` does."""

    title: Annotated[str, Field(min_length=1, max_length=500)]
    body_markdown: Annotated[str, Field(min_length=1, max_length=500_000)]
    lang: Language | None = Field(None, description="Default: site.language.")
    tags: Annotated[list[Tag], Field(max_length=MAX_LIST_ITEMS)] = []
    status: ArticleStatus = ArticleStatus.PUBLISHED
    published_at: AwareDatetime | None = Field(None, description="Default: now when published.")
    slug: Annotated[str, Field(max_length=200, pattern=SLUG)] | None = Field(
        None, description="Default: made from the title."
    )


class ArticleChange(ArticleFields):
    """Changes to an article; omitted fields stay as they are. The slug never changes."""

    title: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    body_markdown: Annotated[str, Field(min_length=1, max_length=500_000)] | None = None
    lang: Language | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_LIST_ITEMS)] | None = None
    status: ArticleStatus | None = None
    published_at: AwareDatetime | None = None


class ArticleSummary(BaseModel):
    """An article in a list (no body)."""

    slug: str
    guid: str
    url: str
    title: str
    summary: str
    lang: str
    tags: list[str]
    status: ArticleStatus
    author: str
    published_at: datetime | None
    updated_at: datetime
    created_at: datetime
    image_url: str
    image_caption: str
    image_credit: str
    canonical_url: str


class ArticleOut(ArticleSummary):
    """One article with its sanitized HTML body and, when written in Markdown, the source."""

    body_html: str
    body_markdown: str | None


def _summary_fields(site: Site, article: Article) -> dict[str, Any]:
    return {
        "slug": article.slug,
        "guid": article.guid,
        "url": article_url(site.settings, article),
        "title": article.title,
        "summary": article.summary,
        "lang": article.language,
        "tags": list(article.tags or []),
        "status": article.status,
        "author": article.author,
        "published_at": article.published_at,
        "updated_at": article.updated_at,
        "created_at": article.created_at,
        "image_url": article.image_url,
        "image_caption": article.image_caption,
        "image_credit": article.image_credit,
        "canonical_url": article.canonical_url,
    }


def to_out(site: Site, article: Article) -> ArticleOut:
    """Return the API form of an article."""
    markdown = article.body_source if article.source_format == "markdown" else None
    return ArticleOut(
        **_summary_fields(site, article), body_html=article.body_html, body_markdown=markdown
    )


def _invalid(exc: InputError, field: str | None = None) -> RequestValidationError:
    loc = ("body", field) if field else ("body",)
    return RequestValidationError([{"loc": loc, "msg": str(exc), "type": "value_error"}])


async def _save(
    request: Request, session: AsyncSession, draft: ArticleDraft
) -> tuple[UpsertResult, int]:
    """Store through the importers' one write path; return the result and content version."""
    site = site_of(request)
    store = ArticleStore(session, site.settings.site.base_url)
    try:
        result = await store.upsert(draft, site.clock.now())
    except InputError as exc:
        raise _invalid(exc) from exc
    return result, await store.version()


def _refresh(request: Request, version: int) -> None:
    """Drop this process's cached feeds and pages now (others notice within a second)."""
    cache: ContentCache = request.app.state.cache
    cache.check(version)


@router.get("", summary="List articles", response_model=pagination.Page[ArticleSummary])
async def list_articles(
    request: Request,
    who: Reader,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.CursorParam = None,
    status: ArticleStatus | None = None,
    lang: Annotated[str | None, Query(max_length=20, pattern=LANGUAGE)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    author: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Words in the title: each must begin a title word "
            "(case and accents ignored; at most 8 words).",
        ),
    ] = None,
) -> pagination.Page[ArticleSummary]:
    """Return articles: undated drafts first, then newest first; filters combine."""
    after: listing.ArticleKey | None = None
    if cursor is not None:
        when, ident = pagination.decode(cursor, CURSOR_KIND, 2)
        try:
            after = (None if when is None else datetime.fromisoformat(when), int(ident))
        except (TypeError, ValueError):
            raise pagination.bad_cursor("not a cursor from this API") from None
        if after[0] is not None and after[0].tzinfo is None:
            raise pagination.bad_cursor("not a cursor from this API")
    tags = normalize_tags([tag]) if tag else []
    wanted = listing.ArticleFilter(
        status=status.value if status else None,
        language=lang,
        tag=tags[0] if tags else None,
        author_slug=slugify(author) if author else None,
        text=q,
    )
    site = site_of(request)
    try:
        async with transaction(site.engine) as session:
            found = await listing.page(session, wanted, limit + 1, after)
    except listing.SearchError as exc:
        error = {"loc": ("query", "q"), "msg": str(exc), "type": "value_error.search"}
        raise RequestValidationError([error]) from exc
    items = [ArticleSummary(**_summary_fields(site, a)) for a in found[:limit]]
    next_cursor = None
    if len(found) > limit:
        when_last, id_last = listing.key_of(found[limit - 1])
        next_cursor = pagination.encode(
            CURSOR_KIND, when_last.isoformat() if when_last else None, id_last
        )
    return pagination.Page[ArticleSummary](items=items, next_cursor=next_cursor)


@router.post("", status_code=201, summary="Create an article")
async def create_article(
    request: Request, response: Response, data: ArticleCreate, who: ContentWriter
) -> ArticleOut:
    """Render the Markdown, sanitize and store it; published articles are in the feeds at once."""
    site = site_of(request)
    title = clean_line(data.title)
    if not title:
        raise _invalid(InputError("title is empty once control characters are removed"), "title")
    slug = data.slug or slugify(title)
    draft = ArticleDraft(
        title=data.title,
        slug=slug,
        body_html=render_markdown(data.body_markdown),
        body_source=data.body_markdown,
        source_format="markdown",
        language=data.lang or site.settings.site.language,
        tags=list(data.tags),
        summary=data.summary or "",
        author=data.author or "",
        image_url=data.image_url or "",
        image_caption=data.image_caption or "",
        image_credit=data.image_credit or "",
        canonical_url=data.canonical_url or "",
        draft=data.status == ArticleStatus.DRAFT,
        published_at=data.published_at,
    )
    async with transaction(site.engine) as session:
        # upsert() would update an article with the same slug: a create must not.
        if await ArticleStore(session, site.settings.site.base_url).get(slug) is not None:
            raise conflict(f"an article with slug {slug!r} exists; choose another slug")
        result, version = await _save(request, session, draft)
        await who.audit(session, site, "article.create", result.article.slug, data.status.value)
        out = to_out(site, result.article)
    _refresh(request, version)
    response.headers["Location"] = f"{request.url.path}/{out.slug}"
    return out


async def _require(session: AsyncSession, site: Site, slug: str) -> Article:
    article = await ArticleStore(session, site.settings.site.base_url).get(slug)
    if article is None:
        raise not_found(f"no article with slug {slug!r}")
    return article


@router.get("/{slug}", summary="Get one article")
async def get_article(request: Request, slug: SlugPath, who: Reader) -> ArticleOut:
    """Return one article, drafts included."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        return to_out(site, await _require(session, site, slug))


def _draft_of(article: Article, change: ArticleChange) -> ArticleDraft:
    """Return the article as a draft with ``change`` applied (for the one write path)."""
    given = change.model_dump(exclude_none=True)
    markdown = article.body_source if article.source_format == "markdown" else None
    body_html = article.body_html
    if change.body_markdown is not None:
        markdown, body_html = change.body_markdown, render_markdown(change.body_markdown)
    status = given.get("status", article.status)
    return ArticleDraft(
        title=given.get("title", article.title),
        slug=article.slug,
        body_html=body_html,
        body_source=markdown if markdown is not None else article.body_source,
        source_format="markdown" if markdown is not None else article.source_format,
        language=given.get("lang", article.language),
        tags=given.get("tags", list(article.tags or [])),
        summary=given.get("summary", article.summary),
        author=given.get("author", article.author),
        image_url=given.get("image_url", article.image_url),
        image_caption=given.get("image_caption", article.image_caption),
        image_credit=given.get("image_credit", article.image_credit),
        image_type=article.image_type,
        image_length=article.image_length,
        image_width=article.image_width,
        image_height=article.image_height,
        canonical_url=given.get("canonical_url", article.canonical_url),
        source_url=article.source_url,
        origin=article.origin,
        external_id=article.external_id,
        editors=list(article.editors or []),
        extra=dict(article.extra or {}),
        draft=status == DRAFT,
        published_at=given.get("published_at", article.published_at),
    )


async def _change(
    request: Request, who: Caller, slug: str, change: ArticleChange, action: str
) -> ArticleOut:
    site = site_of(request)
    async with transaction(site.engine) as session:
        article = await _require(session, site, slug)
        result, version = await _save(request, session, _draft_of(article, change))
        if result.action != "unchanged":
            fields = ", ".join(sorted(change.model_dump(exclude_none=True)))
            await who.audit(session, site, action, slug, fields)
        out = to_out(site, result.article)
    _refresh(request, version)
    return out


@router.patch("/{slug}", summary="Change an article")
async def change_article(
    request: Request, slug: SlugPath, change: ArticleChange, who: ContentWriter
) -> ArticleOut:
    """Change the given fields; the slug and guid stay, so links and feed readers keep up."""
    return await _change(request, who, slug, change, "article.update")


@router.post("/{slug}/publish", summary="Publish an article")
async def publish_article(request: Request, slug: SlugPath, who: ContentWriter) -> ArticleOut:
    """Publish now (or at the publication time it already has)."""
    change = ArticleChange(status=ArticleStatus.PUBLISHED)
    return await _change(request, who, slug, change, "article.publish")


@router.post("/{slug}/unpublish", summary="Unpublish an article")
async def unpublish_article(request: Request, slug: SlugPath, who: ContentWriter) -> ArticleOut:
    """Make an article a draft again: it leaves the site and the feeds."""
    change = ArticleChange(status=ArticleStatus.DRAFT)
    return await _change(request, who, slug, change, "article.unpublish")


@router.delete("/{slug}", status_code=204, summary="Delete an article")
async def delete_article(request: Request, slug: SlugPath, who: ContentWriter) -> Response:
    """Delete an article and its tags."""
    site = site_of(request)
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        await _require(session, site, slug)
        await store.remove(slug)
        await who.audit(session, site, "article.delete", slug)
        version = await store.version()
    _refresh(request, version)
    return Response(status_code=204)
