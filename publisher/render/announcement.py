"""Render an announcement in the digest's MJML layout: Jinja → MJML → HTML and plain text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from publisher.config import Settings
from publisher.content.sanitize import clean_line, html_to_text
from publisher.planning import archive_path
from publisher.render import plaintext
from publisher.render.digest import (
    HTML_LIMIT,
    SLOT_RESERVE,
    CompiledDigest,
    chrome_context,
    email_site_title,
    new_tokens,
)
from publisher.render.i18n import choose_language, long_date, translations
from publisher.render.mjml import compile_mjml
from publisher.render.templates import environment, render, template_source

ANNOUNCEMENT_TEMPLATE = "announcement.mjml.j2"
#: The List-Id label of announcements ("<announcement.news.example.org>").
LIST_LABEL = "announcement"


class TooLarge(ValueError):
    """The rendered announcement is over the size mail clients show whole."""


@dataclass(frozen=True)
class AnnouncementContent:
    """What one announcement says: subject, sanitized HTML body, language, its edition."""

    subject: str
    body_html: str
    language: str
    edition_key: str
    edition_date: date
    #: The reader-neutral web version (the archive page): no reader slots, no reader links.
    public: bool = False


def render_announcement(settings: Settings, content: AnnouncementContent) -> CompiledDigest:
    """Render an announcement once (not per reader), with per-reader placeholders.

    ``content.body_html`` must already be sanitized (content/sanitize.py). Raise TooLarge
    when the HTML would pass HTML_LIMIT: unlike a digest there is nothing to shorten.
    """
    user_dir = settings.site.templates_dir
    language = choose_language(content.language, settings.site.language, user_dir=user_dir)
    tokens = new_tokens()
    env = environment(user_dir, language)
    source, path = template_source(env, ANNOUNCEMENT_TEMPLATE)
    context = _context(settings, content, language, tokens)
    html = compile_mjml(
        render(env, ANNOUNCEMENT_TEMPLATE, context), template=path, template_text=source
    )
    size = len(html.encode("utf-8")) + SLOT_RESERVE
    if size > HTML_LIMIT:
        raise TooLarge(
            f"the announcement renders to {size:,} bytes of HTML, over the limit of "
            f"{HTML_LIMIT:,} (mail clients clip longer messages); shorten it"
        )
    return CompiledDigest(
        subject=context["subject"],
        html=html,
        text=plaintext.announcement_text(context),
        language=language,
        edition_key=content.edition_key,
        frequency=LIST_LABEL,
        tokens=tokens,
        greeting_named=context["greeting_named"],
        greeting_anonymous=context["greeting_anonymous"],
    )


def _context(
    settings: Settings, content: AnnouncementContent, language: str, tokens: dict[str, str]
) -> dict[str, Any]:
    catalog = translations(language, "email", settings.site.templates_dir)
    _ = catalog.gettext
    site_title = email_site_title(settings)
    base = settings.site.base_url
    body_text = html_to_text(content.body_html)
    subject = clean_line(content.subject) or site_title
    return {
        "language": language,
        "subject": subject,
        "heading": subject,
        "preheader": clean_line(body_text.split("\n", 1)[0])[:140],
        "date_line": long_date(content.edition_date, language),
        **chrome_context(settings, tokens, _),
        "body_html": content.body_html,
        "body_text": body_text,
        "email": tokens["email"],
        "why": _(
            "You are receiving this announcement because you subscribed to %(site)s "
            "with this address:"
        )
        % {"site": site_title},
        "public": content.public,
        "public_note": _("This is the web version of an announcement of %(site)s.")
        % {"site": site_title},
        "links": {
            "unsubscribe": tokens["unsubscribe_url"],
            "preferences": tokens["preferences_url"],
            "archive": f"{base}{archive_path(content.edition_key, language)}",
            "subscribe": f"{base}/subscribe",
            "digests": f"{base}/digests/",
        },
        "labels": {
            "links": _("Links"),
            "unsubscribe": _("Unsubscribe"),
            "preferences": _("Manage preferences"),
            "web": _("View in browser"),
            "subscribe": _("Subscribe"),
            "digests": _("Past digests"),
        },
    }
