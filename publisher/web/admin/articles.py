"""Articles: the searchable list, the Markdown editor and its live preview."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from publisher.accounts import audit
from publisher.content import authoring, listing
from publisher.content.authoring import ArticleInput, ArticleStatus
from publisher.content.markdown import render_markdown
from publisher.content.models import Article
from publisher.content.sanitize import clean_line, first_paragraph_text, sanitize_html
from publisher.content.store import ArticleStore, normalize_tags
from publisher.db import transaction
from publisher.errors import InputError, PublisherError
from publisher.render.digest import Digest, render_digest
from publisher.site import Site
from publisher.web.admin.auth import (
    Editor,
    PostsAnything,
    PostsContent,
    Reading,
    client_ip,
    site_of,
)
from publisher.web.admin.paging import (
    PAGE_SIZE,
    article_cursor,
    encode_article_cursor,
    search_text,
)
from publisher.web.admin.rendering import page

router = APIRouter()


@router.get("/articles")
async def article_list(request: Request, editor: Reading) -> Response:
    """List articles (undated drafts, then newest first) by title words, status and language."""
    site = site_of(request)
    raw_q = request.query_params.get("q", "")
    q = search_text(raw_q)
    status = request.query_params.get("status", "")
    lang = request.query_params.get("lang", "")[:20]
    after = article_cursor(request.query_params.get("after"))
    wanted = listing.ArticleFilter(
        status=status if status in (ArticleStatus.DRAFT, ArticleStatus.PUBLISHED) else None,
        language=lang or None,
        text=" ".join(raw_q.split()) or None,
    )
    rows: list[Article] = []
    error = ""
    try:
        async with transaction(site.engine) as session:
            rows = await listing.page(session, wanted, PAGE_SIZE + 1, after)
    except listing.SearchError as exc:
        error = str(exc)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return page(
        request,
        "admin/articles.html",
        {
            "editor": editor,
            "rows": rows,
            "q": q,
            "error": error,
            "status": status,
            "lang": lang,
            "next_after": encode_article_cursor(listing.key_of(rows[-1])) if more else None,
        },
        status_code=422 if error else 200,
    )


def _local_input(site: Site, moment: datetime | None) -> str:
    """Format a moment for an <input type=datetime-local> in the site's zone."""
    if moment is None:
        return ""
    return moment.astimezone(site.settings.tz).strftime("%Y-%m-%dT%H:%M")


def _parse_local(site: Site, text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"published_at: {text[:30]!r} is not a date and time") from None
    return naive.replace(tzinfo=site.settings.tz) if naive.tzinfo is None else naive


def _input(site: Site, form: dict[str, str]) -> tuple[ArticleInput, list[tuple[str, str]]]:
    """Read the editor form into an ArticleInput and the problems found."""
    problems: list[tuple[str, str]] = []
    try:
        status = authoring.parse_status(form.get("status", "draft"))
    except InputError as exc:
        problems.append(("status", str(exc)))
        status = ArticleStatus.DRAFT
    try:
        published_at = _parse_local(site, form.get("published_at", ""))
    except InputError as exc:
        problems.append(("published_at", str(exc)))
        published_at = None
    article = ArticleInput(
        title=form.get("title", ""),
        body_markdown=form.get("body_markdown", "").replace("\r\n", "\n"),
        language=form.get("lang", "").strip() or site.settings.site.language,
        tags=authoring.parse_tags(form.get("tags", "")),
        status=status,
        published_at=published_at,
        author=form.get("author", ""),
        summary=form.get("summary", ""),
        image_url=form.get("image_url", ""),
        image_caption=form.get("image_caption", ""),
        image_credit=form.get("image_credit", ""),
    )
    return article, problems + authoring.check(article)


def _form_values(site: Site, article: Article | None) -> dict[str, Any]:
    if article is None:
        return {
            "title": "",
            "body_markdown": "",
            "lang": site.settings.site.language,
            "tags": "",
            "status": "draft",
            "author": site.settings.site.author,
            "summary": "",
            "image_url": "",
            "image_caption": "",
            "image_credit": "",
            "published_at": "",
        }
    return {
        "title": article.title,
        "body_markdown": article.body_source if article.source_format == "markdown" else "",
        "lang": article.language,
        "tags": authoring.tags_text(article.tags),
        "status": article.status,
        "author": article.author,
        "summary": article.summary,
        "image_url": article.image_url,
        "image_caption": article.image_caption,
        "image_credit": article.image_credit,
        "published_at": _local_input(site, article.published_at),
    }


def _editor_page(
    request: Request,
    editor: Editor,
    values: dict[str, Any],
    *,
    article: Article | None,
    problems: list[tuple[str, str]] | None = None,
    notice: str = "",
    status_code: int = 200,
) -> Response:
    site = site_of(request)
    shown, _problems = _input(site, {k: str(v) for k, v in values.items()})
    return page(
        request,
        "admin/article_edit.html",
        {
            "editor": editor,
            "preview": _preview_context(site, shown) if shown.body_markdown.strip() else None,
            "values": values,
            "article": article,
            "problems": problems or [],
            "notice": notice,
            "languages": ("id", "en"),
            "html_source": article is not None and article.source_format != "markdown",
        },
        status_code=status_code,
    )


@router.get("/articles/new")
async def new_article(request: Request, editor: Reading) -> Response:
    """Show an empty editor."""
    return _editor_page(request, editor, _form_values(site_of(request), None), article=None)


@router.post("/articles/new")
async def create_article(request: Request, posted: PostsContent) -> Response:
    """Create an article through the store's one write path; it is in the feeds at once."""
    site = site_of(request)
    article, problems = _input(site, posted.form)
    if problems:
        return _editor_page(
            request, posted.editor, posted.form, article=None, problems=problems, status_code=422
        )
    now = site.clock.now()
    try:
        async with transaction(site.engine) as session:
            result = await authoring.create(
                ArticleStore(session, site.settings.site.base_url), article, now
            )
            await audit.record(
                session,
                actor=posted.editor.user.email,
                action="article.create",
                target=result.article.slug,
                source=client_ip(request),
                detail=result.article.status,
                at=now,
            )
            slug = result.article.slug
    except InputError as exc:
        return _editor_page(
            request,
            posted.editor,
            posted.form,
            article=None,
            problems=[("", str(exc))],
            status_code=422,
        )
    return RedirectResponse(f"/admin/articles/{slug}?saved=1", status_code=303)


async def _load(site: Site, slug: str) -> Article:
    if not authoring.valid_slug(slug):
        raise HTTPException(404)
    async with transaction(site.engine) as session:
        found = await ArticleStore(session, site.settings.site.base_url).get(slug)
    if found is None:
        raise HTTPException(404)
    return found


@router.get("/articles/{slug}")
async def edit_article(slug: str, request: Request, editor: Reading) -> Response:
    """Show the editor filled with an article."""
    site = site_of(request)
    article = await _load(site, slug)
    notice = "saved" if request.query_params.get("saved") else ""
    return _editor_page(
        request, editor, _form_values(site, article), article=article, notice=notice
    )


@router.post("/articles/{slug}")
async def save_article(slug: str, request: Request, posted: PostsContent) -> Response:
    """Save an edited article (same slug, guid and links)."""
    site = site_of(request)
    existing = await _load(site, slug)
    article, problems = _input(site, posted.form)
    if problems:
        return _editor_page(
            request,
            posted.editor,
            posted.form,
            article=existing,
            problems=problems,
            status_code=422,
        )
    now = site.clock.now()
    try:
        async with transaction(site.engine) as session:
            result = await authoring.update(
                ArticleStore(session, site.settings.site.base_url), slug, article, now
            )
            if result.action != "unchanged":
                await audit.record(
                    session,
                    actor=posted.editor.user.email,
                    action="article.update",
                    target=slug,
                    source=client_ip(request),
                    detail=result.article.status,
                    at=now,
                )
    except InputError as exc:
        return _editor_page(
            request,
            posted.editor,
            posted.form,
            article=existing,
            problems=[("", str(exc))],
            status_code=422,
        )
    return RedirectResponse(f"/admin/articles/{slug}?saved=1", status_code=303)


@router.post("/articles/{slug}/delete")
async def delete_article(slug: str, request: Request, posted: PostsContent) -> Response:
    """Delete an article (it leaves the feeds at once)."""
    site = site_of(request)
    await _load(site, slug)
    now = site.clock.now()
    async with transaction(site.engine) as session:
        await ArticleStore(session, site.settings.site.base_url).remove(slug)
        await audit.record(
            session,
            actor=posted.editor.user.email,
            action="article.delete",
            target=slug,
            source=client_ip(request),
            at=now,
        )
    return RedirectResponse("/admin/articles", status_code=303)


@router.post("/articles-preview")
async def preview(request: Request, posted: PostsAnything) -> Response:
    """Render the editor's current text as the page and as the digest card (htmx fragment)."""
    site = site_of(request)
    article, _problems = _input(site, posted.form)
    return page(request, "admin/_article_preview.html", _preview_context(site, article))


def _preview_context(site: Site, article: ArticleInput) -> dict[str, Any]:
    """Build the preview of an unsaved article: sanitized like the store, rendered like delivery."""
    body = article.body_markdown[: authoring.MAX_BODY]
    base = site.settings.site.base_url
    body_html = sanitize_html(render_markdown(body), base)
    now = site.clock.now()
    transient = Article(
        slug="preview",
        guid="preview",
        title=clean_line(article.title)[: authoring.MAX_TITLE] or "(untitled)",
        summary=clean_line(article.summary) or first_paragraph_text(body_html),
        body_html=body_html,
        author=clean_line(article.author),
        language=article.language,
        tags=normalize_tags(article.tags[: authoring.MAX_TAGS]),
        image_url=article.image_url.strip()[: authoring.MAX_LINE],
        image_caption=clean_line(article.image_caption),
        image_credit=clean_line(article.image_credit),
        image_width=0,
        image_height=0,
        canonical_url="",
        status=article.status,
        published_at=article.published_at or now,
        updated_at=now,
        created_at=now,
    )
    digest_html = ""
    if body.strip() and clean_line(article.title):
        try:
            compiled = render_digest(
                site.settings,
                Digest(
                    articles=[transient],
                    language=article.language,
                    edition_key="preview",
                    edition_date=now.astimezone(site.settings.tz).date(),
                    tz=site.settings.tz,
                ),
            )
            digest_html, _text = compiled.fill(
                {
                    "greeting": compiled.greeting(""),
                    "email": "",
                    "unsubscribe_url": "#",
                    "preferences_url": "#",
                }
            )
        except PublisherError:  # a half-typed article must not break the editor
            digest_html = ""
    return {"article": transient, "digest_html": digest_html}
