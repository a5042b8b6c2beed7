"""Shared helpers of the rendering tests: settings, sample and hostile articles, recipients."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from publisher.clock import FrozenClock
from publisher.config import Settings, settings_from_mapping
from publisher.content.models import PUBLISHED, Article
from publisher.content.sanitize import clean_line, first_paragraph_text, sanitize_html
from publisher.ingest.markdown import parse_markdown
from publisher.ingest.source import read_text_file
from publisher.render import templates, transactional
from publisher.render.digest import Digest
from publisher.render.message import Recipient
from publisher.resources import samples_dir

BASE_URL = "https://news.example.org"
NOW = datetime(2026, 11, 25, 0, 30, tzinfo=UTC)
JAKARTA = ZoneInfo("Asia/Jakarta")


def make_settings(tmp: Path | None = None, **sections: dict[str, Any]) -> Settings:
    """Build settings for a test site, section overrides merged over the defaults."""
    data: dict[str, Any] = {
        "site": {"title": "Kabar Nusantara", "base_url": BASE_URL, "language": "id"},
        "mail": {
            "from": "Kabar Nusantara <redaksi@news.example.org>",
            "reply_to": "Redaksi <balas@news.example.org>",
            "postal_address": "Jl. Merdeka Barat 9, Jakarta 10110, Indonesia",
        },
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    settings = settings_from_mapping(data, tmp / "publisher.toml" if tmp else None)
    templates.clear_cache()
    transactional.clear_cache()
    return settings


def sample_articles() -> list[Article]:
    """Return the published sample articles as unsaved Article objects, newest first."""
    articles = []
    for number, path in enumerate(sorted(samples_dir().glob("*.md")), start=1):
        draft = parse_markdown(read_text_file(path), language="id", tz=JAKARTA)
        if draft.draft:
            continue
        body = sanitize_html(draft.body_html, BASE_URL)
        articles.append(
            Article(
                id=number,
                slug=draft.slug or path.stem,
                title=clean_line(draft.title),
                summary=clean_line(draft.summary) or first_paragraph_text(body),
                body_html=body,
                author=clean_line(draft.author),
                language=draft.language,
                image_url=draft.image_url,
                image_caption=clean_line(draft.image_caption),
                image_credit=clean_line(draft.image_credit),
                image_width=draft.image_width,
                image_height=draft.image_height,
                canonical_url="",
                status=PUBLISHED,
                published_at=draft.published_at,
            )
        )
    articles.sort(key=lambda a: a.published_at or NOW, reverse=True)
    return articles


def hostile_article(number: int = 99) -> Article:
    """Return an article built to break things: markup, header injection, huge words."""
    long_word = "Sangat" + "panjang" * 80
    long_url = "https://example.org/" + "a" * 600 + "?q=" + "b" * 300
    return Article(
        id=number,
        slug=f"hostile-{number}",
        title="<script>alert('x')</script> Judul\r\nBcc: victim@example.com\r\n\r\nInjected",
        summary=(
            f"<style>body{{display:none}}</style> {long_word} {long_url} "
            '"quotes" & ampersands <img src=x onerror=alert(1)> ]]> \u202eRTL\u202c 🎉'
        ),
        author="Eve <eve@example.org>\r\nX-Evil: 1",
        language="id",
        image_url='https://images.example.org/x.jpg" onerror="alert(1)',
        image_caption="Caption <b>bold</b>\nnext line",
        image_credit="Credit & Co",
        canonical_url="",
        status=PUBLISHED,
        published_at=NOW,
    )


def make_digest(articles: list[Article], language: str = "id", **extra: Any) -> Digest:
    """Wrap articles in the digest of 25 November 2026 (Jakarta time)."""
    return Digest(
        articles=articles,
        language=language,
        edition_key="daily:2026-11-25",
        edition_date=date(2026, 11, 25),
        tz=JAKARTA,
        **extra,
    )


def recipient(number: int = 1, **overrides: str) -> Recipient:
    """Return a recipient with distinct links and a stable Message-ID."""
    values = {
        "email": f"pembaca{number}@example.net",
        "name": f"Pembaca {number}",
        "unsubscribe_url": f"{BASE_URL}/unsubscribe/{number}.tok-{number:06d}",
        "preferences_url": f"{BASE_URL}/preferences/{number}.pref-{number:06d}",
        "message_id": f"<daily.2026-11-25.{number}@news.example.org>",
        "language": "id",
    }
    values.update(overrides)
    return Recipient(**values)


def frozen_clock() -> FrozenClock:
    """Return the clock every rendering test uses."""
    return FrozenClock(NOW)
