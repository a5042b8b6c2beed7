"""Render a digest once per variant: Jinja → MJML → HTML (+ inlined CSS) and plain text."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from publisher.config import Settings
from publisher.content.models import Article
from publisher.content.sanitize import clean_line
from publisher.planning import archive_path
from publisher.render import plaintext
from publisher.render.i18n import choose_language, long_date, translations
from publisher.render.mjml import compile_mjml
from publisher.render.templates import environment, render, template_source

DIGEST_TEMPLATE = "digest.mjml.j2"
#: Gmail clips messages at about 102 KB; stay under this many bytes of HTML.
HTML_LIMIT = 100_000
#: Room kept for the reader's own values (name, address, links) replacing the tokens.
SLOT_RESERVE = 1_500
#: The lead image's display width: 600 px body minus 24 px padding either side.
IMAGE_WIDTH = 552
#: Assumed aspect ratio (3:2) when an article does not say how big its image is.
DEFAULT_IMAGE_RATIO = (3, 2)
COMPACT_SUMMARY = 240
TITLE_MAX = 300
SUMMARY_MAX = 1200

#: Per-reader values: every compiled email carries one random token for each.
SLOTS = ("greeting", "email", "unsubscribe_url", "preferences_url", "action_url")

COLORS = {
    "page": "#f1f1ef",
    "card": "#ffffff",
    "text": "#1d1d1f",
    "muted": "#5c6066",
    "link": "#0b57d0",
    "rule": "#d9d9d6",
    "dark_page": "#121212",
    "dark_card": "#1e1f21",
    "dark_text": "#e8e8e6",
    "dark_muted": "#a9abb0",
    "dark_link": "#8ab4f8",
    "dark_rule": "#3c3d40",
}


@dataclass
class Digest:
    """One edition's content for one variant: articles, language and the reader-local date."""

    articles: list[Article]
    language: str
    edition_key: str
    edition_date: date
    tz: ZoneInfo
    more_count: int = 0
    frequency: str = "daily"
    #: "More on our website" target; the site's home page when empty.
    web_url: str = ""
    #: The reader-neutral web version (the archive page): no reader slots, no reader links.
    public: bool = False


@dataclass(frozen=True)
class CompiledDigest:
    """A rendered variant: subject, HTML and text holding one token per reader slot."""

    subject: str
    html: str
    text: str
    language: str
    edition_key: str
    frequency: str
    #: slot name → the random token standing for it in ``html`` and ``text``.
    tokens: Mapping[str, str]
    #: Translated greetings: with a ``%(name)s`` and without a name.
    greeting_named: str
    greeting_anonymous: str
    #: How many articles were shortened to title and summary to stay under HTML_LIMIT.
    compacted: int = 0
    article_ids: tuple[int, ...] = ()

    def greeting(self, name: str) -> str:
        """Return the greeting line for a reader's (already cleaned) name."""
        return self.greeting_named % {"name": name} if name else self.greeting_anonymous

    def fill(self, values: Mapping[str, str]) -> tuple[str, str]:
        """Return (html, text) with the slots replaced, HTML-escaped in the HTML (for previews)."""
        from html import escape

        html, text = self.html, self.text
        for slot, token in self.tokens.items():
            value = values.get(slot, "")
            html = html.replace(token, escape(value, quote=True))
            text = text.replace(token, value)
        return html, text


@dataclass(frozen=True)
class ImageView:
    """The lead image as the template shows it."""

    url: str
    width: int
    height: int
    alt: str
    caption: str
    credit: str


@dataclass(frozen=True)
class ArticleView:
    """An article reduced to what an email shows, cleaned of line breaks and controls."""

    title: str
    summary: str
    url: str
    byline: str
    image: ImageView | None = None
    compact: bool = False


@dataclass
class _Variant:
    settings: Settings
    digest: Digest
    tokens: dict[str, str] = field(default_factory=dict)


def new_tokens() -> dict[str, str]:
    """Mint one unguessable, markup-neutral token per slot (letters and digits only)."""
    nonce = secrets.token_hex(8)
    return {slot: f"pub{nonce}{slot.replace('_', '')}x" for slot in SLOTS}


def article_url(settings: Settings, article: Article) -> str:
    """Return where "read more" goes: the canonical URL, else the article's page on this site."""
    if article.canonical_url:
        return article.canonical_url
    return f"{settings.site.base_url}/articles/{quote(article.slug)}"


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut if len(cut) > limit // 2 else text[:limit]).rstrip(" ,.;:") + "…"


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")


def alt_text(caption: str, title: str) -> str:
    """Return an image's alt text: what it shows, never a copy of the caption shown below it.

    The caption's first sentence when the caption has more than one, else the title;
    empty (a decorative image) when even the title is the caption word for word.
    """
    first = _SENTENCE_END.split(caption, maxsplit=1)[0].strip() if caption else ""
    if first and first != caption:
        return _truncate(first, 250)
    if title and title != caption:
        return _truncate(title, 250)
    return ""


def _image(article: Article) -> ImageView | None:
    if not article.image_url:
        return None
    natural_width, natural_height = article.image_width or 0, article.image_height or 0
    if natural_width > 0 and natural_height > 0:
        width = min(natural_width, IMAGE_WIDTH)
        height = max(1, round(width * natural_height / natural_width))
    else:
        width = IMAGE_WIDTH
        height = round(IMAGE_WIDTH * DEFAULT_IMAGE_RATIO[1] / DEFAULT_IMAGE_RATIO[0])
    caption = clean_line(article.image_caption or "")
    return ImageView(
        url=article.image_url,
        width=width,
        height=height,
        alt=alt_text(caption, clean_line(article.title or "")),
        caption=caption,
        credit=clean_line(article.image_credit or ""),
    )


def article_view(settings: Settings, article: Article, *, lead: bool, compact: bool) -> ArticleView:
    """Build what the templates show of one article."""
    summary = clean_line(article.summary or "")
    return ArticleView(
        title=_truncate(clean_line(article.title or ""), TITLE_MAX),
        summary=_truncate(summary, COMPACT_SUMMARY if compact else SUMMARY_MAX),
        url=article_url(settings, article),
        byline=clean_line(article.author or ""),
        image=_image(article) if lead else None,
        compact=compact,
    )


def render_digest(settings: Settings, digest: Digest) -> CompiledDigest:
    """Render one digest variant to HTML and text with per-reader placeholders.

    Called once per (article set × language × template), never per reader. When the HTML
    would pass HTML_LIMIT, articles from the end are shortened to title and summary.
    """
    user_dir = settings.site.templates_dir
    language = choose_language(digest.language, settings.site.language, user_dir=user_dir)
    digest = replace(digest, language=language)
    tokens = new_tokens()
    env = environment(settings.site.templates_dir, language)
    source, path = template_source(env, DIGEST_TEMPLATE)

    def attempt(full_count: int, keep: int | None = None) -> tuple[dict[str, Any], str]:
        context = _context(settings, digest, tokens, full_count=full_count, keep=keep)
        html = compile_mjml(
            render(env, DIGEST_TEMPLATE, context), template=path, template_text=source
        )
        return context, html

    context, html = attempt(len(digest.articles))
    if _size(html) > HTML_LIMIT:
        # Shorten articles from the end to title and summary, keeping the lead whole:
        # find the most full articles that still fit (size grows with that number).
        low, high = 1, len(digest.articles) - 1
        best = attempt(1)
        while low < high:
            middle = (low + high + 1) // 2
            trial = attempt(middle)
            if _size(trial[1]) <= HTML_LIMIT:
                low, best = middle, trial
            else:
                high = middle - 1
        context, html = best
    keep = len(digest.articles)
    while _size(html) > HTML_LIMIT and keep > 1:
        # Even titles and summaries do not fit: list fewer and link to the rest.
        keep = max(1, keep * 3 // 4)
        context, html = attempt(0, keep)
    text = plaintext.digest_text(context)
    return CompiledDigest(
        subject=context["subject"],
        html=html,
        text=text,
        language=language,
        edition_key=digest.edition_key,
        frequency=digest.frequency,
        tokens=tokens,
        greeting_named=context["greeting_named"],
        greeting_anonymous=context["greeting_anonymous"],
        compacted=context["compacted"],
        article_ids=tuple(a.id for a in digest.articles if a.id is not None),
    )


def _size(html: str) -> int:
    return len(html.encode("utf-8")) + SLOT_RESERVE


def email_site_title(settings: Settings) -> str:
    """Return the site title as emails show it (one clean line, never empty)."""
    return clean_line(settings.site.title) or "Publisher"


def chrome_context(
    settings: Settings, tokens: Mapping[str, str], _: Callable[[str], str]
) -> dict[str, Any]:
    """Return the template values every email shares: the site, colours and greeting."""
    return {
        "site": {
            "title": email_site_title(settings),
            "url": settings.site.base_url + "/",
            "postal_address": clean_line(settings.mail.postal_address),
        },
        "colors": COLORS,
        "greeting": tokens["greeting"],
        "greeting_named": _("Hello, %(name)s!"),
        "greeting_anonymous": _("Hello!"),
    }


def _context(
    settings: Settings,
    digest: Digest,
    tokens: Mapping[str, str],
    *,
    full_count: int,
    keep: int | None = None,
) -> dict[str, Any]:
    catalog = translations(digest.language, "email", settings.site.templates_dir)
    _ = catalog.gettext
    articles: Sequence[Article] = digest.articles if keep is None else digest.articles[:keep]
    more_count = digest.more_count + (len(digest.articles) - len(articles))
    views = [
        article_view(settings, article, lead=index == 0, compact=index >= max(full_count, 1))
        for index, article in enumerate(articles)
    ]
    lead = views[0] if views else None
    site_title = email_site_title(settings)
    if lead is not None:
        subject = _("%(site)s: %(headline)s") % {"site": site_title, "headline": lead.title}
    else:
        subject = site_title
    subject = _truncate(subject, 200)
    frequency = _("daily") if digest.frequency == "daily" else _("weekly")
    base = settings.site.base_url
    preheader = lead.summary if lead is not None else ""
    return {
        "language": digest.language,
        "subject": subject,
        "preheader": _truncate(preheader, 140),
        "date_line": long_date(digest.edition_date, digest.language),
        **chrome_context(settings, tokens, _),
        "intro": (
            _("Here is your daily digest.")
            if digest.frequency == "daily"
            else _("Here is your weekly digest.")
        ),
        "email": tokens["email"],
        "why": _(
            "You are receiving this email because you subscribed to the %(frequency)s "
            "digest of %(site)s with this address:"
        )
        % {"frequency": frequency, "site": site_title},
        "lead": lead,
        "rest": views[1:],
        "more_count": more_count,
        "compacted": sum(1 for view in views if view.compact),
        "public": digest.public,
        "public_note": _("This is the web version of the %(frequency)s digest of %(site)s.")
        % {"frequency": frequency, "site": site_title},
        "links": {
            "unsubscribe": tokens["unsubscribe_url"],
            "preferences": tokens["preferences_url"],
            "web": digest.web_url or base + "/",
            # "View in browser": this edition's page in the public archive.
            "archive": f"{base}{archive_path(digest.edition_key, digest.language)}",
            "subscribe": f"{base}/subscribe",
            "digests": f"{base}/digests/",
        },
        "labels": {
            "read_more": _("Read more"),
            "links": _("Links"),
            "unsubscribe": _("Unsubscribe"),
            "preferences": _("Manage preferences"),
            "web": _("View in browser"),
            "more": catalog.ngettext(
                "%(num)d more article on our website",
                "%(num)d more articles on our website",
                more_count,
            )
            % {"num": more_count},
            "full": _("Read the full digest on our website"),
            "subscribe": _("Subscribe"),
            "digests": _("Past digests"),
        },
    }
