"""Articles written by a person (the editors' app, the API): Markdown in, the store's upsert out.

Importers turn files and pages into ArticleDrafts; this module does the same for a
form or a JSON body, then stores them through the same ArticleStore.upsert, so an
article saved here reaches the feeds and pages exactly like an imported one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from publisher.content.markdown import render_markdown
from publisher.content.models import DRAFT, PUBLISHED
from publisher.content.sanitize import clean_line
from publisher.content.slugs import is_slug, slugify
from publisher.content.store import ArticleDraft, ArticleStore, UpsertResult
from publisher.errors import InputError

MAX_TITLE = 500
MAX_BODY = 500_000  # characters of Markdown: a long feature is ~50,000; forms stay under 1 MiB
MAX_TAGS = 30
MAX_LINE = 2000  # author, image URL, caption, credit
#: Where articles written here come from (importers use paths and URLs).
ORIGIN_PREFIX = "editor:"


class ArticleStatus(StrEnum):
    """Whether readers can see an article."""

    DRAFT = DRAFT
    PUBLISHED = PUBLISHED


@dataclass
class ArticleInput:
    """What an editor submits for one article."""

    title: str
    body_markdown: str
    language: str
    tags: list[str] = field(default_factory=list)
    status: ArticleStatus = ArticleStatus.DRAFT
    published_at: datetime | None = None
    author: str = ""
    summary: str = ""
    image_url: str = ""
    image_caption: str = ""
    image_credit: str = ""
    #: Keep the article a draft until this time, then publish it (status must be draft).
    publish_at: datetime | None = None


def parse_tags(text: str) -> list[str]:
    """Split comma-separated tags, dropping empty ones."""
    return [tag.strip() for tag in text.split(",") if tag.strip()]


def parse_status(value: str) -> ArticleStatus:
    """Return the status named by a string, or raise naming the choices."""
    try:
        return ArticleStatus(value.strip().lower())
    except ValueError:
        raise InputError(f"status: {value[:40]!r} is not draft or published") from None


def check(article: ArticleInput) -> list[tuple[str, str]]:
    """Return (field, message) for every problem in an input (empty when it can be saved)."""
    problems: list[tuple[str, str]] = []
    if not clean_line(article.title):
        problems.append(("title", "a title is required"))
    elif len(article.title) > MAX_TITLE:
        problems.append(("title", f"at most {MAX_TITLE} characters"))
    if not article.body_markdown.strip():
        problems.append(("body_markdown", "the article has no text"))
    elif len(article.body_markdown) > MAX_BODY:
        problems.append(("body_markdown", f"at most {MAX_BODY:,} characters"))
    language = article.language.strip()
    if not language or len(language) > 20 or not language.replace("-", "").isalnum():
        problems.append(("lang", "a language tag such as id or en"))
    if len(article.tags) > MAX_TAGS:
        problems.append(("tags", f"at most {MAX_TAGS} tags"))
    elif any(len(tag) > 60 for tag in article.tags):
        problems.append(("tags", "each tag at most 60 characters"))
    for name in ("author", "summary", "image_url", "image_caption", "image_credit"):
        if len(getattr(article, name)) > MAX_LINE:
            problems.append((name, f"at most {MAX_LINE} characters"))
    if article.published_at is not None and article.published_at.tzinfo is None:
        problems.append(("published_at", "needs a time zone"))
    if article.publish_at is not None:
        if article.publish_at.tzinfo is None:
            problems.append(("publish_at", "needs a time zone"))
        elif article.status is not ArticleStatus.DRAFT:
            problems.append(("publish_at", "only a draft is published at a time; choose draft"))
    return problems


def check_schedule(article: ArticleInput, now: datetime) -> list[tuple[str, str]]:
    """Return a problem when the publication time has already passed."""
    if article.publish_at is not None and article.publish_at.tzinfo and article.publish_at <= now:
        return [("publish_at", "that time has passed; publish now instead")]
    return []


def to_draft(article: ArticleInput, *, slug: str, origin: str) -> ArticleDraft:
    """Render the Markdown and build the draft the store takes (sanitizing happens there)."""
    return ArticleDraft(
        title=article.title,
        slug=slug,
        body_html=render_markdown(article.body_markdown),
        body_source=article.body_markdown,
        source_format="markdown",
        summary=article.summary,
        author=article.author,
        language=article.language.strip(),
        tags=list(article.tags),
        image_url=article.image_url.strip(),
        image_caption=article.image_caption,
        image_credit=article.image_credit,
        origin=origin,
        draft=article.status is ArticleStatus.DRAFT,
        published_at=article.published_at,
        publish_at=article.publish_at,
    )


async def free_slug(store: ArticleStore, title: str) -> str:
    """Return a slug for a new article's title that no article uses yet (-2, -3, ...)."""
    base = slugify(title) or "article"
    candidate = base
    for number in range(2, 1000):
        if await store.get(candidate) is None:
            return candidate
        suffix = f"-{number}"
        candidate = base[: 200 - len(suffix)] + suffix
    raise InputError(f"title {title[:60]!r}: too many articles share its slug")


async def create(store: ArticleStore, article: ArticleInput, now: datetime) -> UpsertResult:
    """Store a new article under a slug of its own (never overwriting another one)."""
    problems = check(article) + check_schedule(article, now)
    if problems:
        raise InputError("; ".join(f"{name}: {message}" for name, message in problems))
    slug = await free_slug(store, article.title)
    return await store.upsert(to_draft(article, slug=slug, origin=ORIGIN_PREFIX + slug), now)


async def update(
    store: ArticleStore, slug: str, article: ArticleInput, now: datetime
) -> UpsertResult:
    """Replace an existing article's fields; its slug, guid and links stay."""
    problems = check(article) + check_schedule(article, now)
    if problems:
        raise InputError("; ".join(f"{name}: {message}" for name, message in problems))
    existing = await store.require(slug)
    if article.published_at is None and article.status is ArticleStatus.PUBLISHED:
        # Publishing a draft dates it now; re-saving a published one keeps its date.
        article.published_at = existing.published_at if existing.is_published else now
    draft = to_draft(article, slug=existing.slug, origin=existing.origin)
    draft.external_id = existing.external_id
    draft.canonical_url = existing.canonical_url
    draft.source_url = existing.source_url
    return await store.upsert(draft, now)


def valid_slug(slug: str) -> bool:
    """Tell whether a path segment can be an article slug."""
    return is_slug(slug)


def tags_text(tags: Sequence[str]) -> str:
    """Join tags for a comma-separated form field."""
    return ", ".join(tags)
