"""Render the next digest one reader would get, exactly as delivery would choose it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa

from publisher.content.models import Article
from publisher.db import transaction
from publisher.delivery.editions import latest_in_language, plan_next
from publisher.errors import NotFoundError
from publisher.render.digest import Digest, render_digest
from publisher.render.message import Recipient, build_digest_template
from publisher.site import Site
from subscribers import repository
from subscribers.errors import TokenError
from subscribers.tokens import Tokens


@dataclass
class PreviewReader:
    """Who the preview is addressed to."""

    email: str
    name: str
    language: str
    timezone: str
    frequency: str
    unsubscribe_url: str
    preferences_url: str
    topics: tuple[str, ...] = ()
    last_digest_at: datetime | None = None


@dataclass
class NextDigest:
    """The articles a reader's next digest carries, or a labelled sample when none are new."""

    articles: list[Article]
    more_count: int
    #: True when nothing is new for the reader: the newest articles stand in as a sample.
    sample: bool


@dataclass(frozen=True)
class RenderedPreview:
    """One reader's next digest as HTML, text and a complete message."""

    subject: str
    html: str
    text: str
    message: bytes
    sample: bool
    language: str
    timezone: str
    articles: int


async def next_digest(
    site: Site,
    *,
    frequency: str = "daily",
    language: str | None = None,
    topics: Sequence[str] = (),
    last_digest_at: datetime | None = None,
) -> NextDigest:
    """Choose articles exactly as delivery would for this reader at the clock's now."""
    now = site.clock.now()
    language = language or site.settings.site.language
    plan = await plan_next(
        site, frequency, now, language=language, topics=list(topics), last_digest_at=last_digest_at
    )
    if plan is not None:
        ids, more, sample = list(plan.article_ids), plan.more_count, False
    else:
        limit = site.settings.digest.max_articles
        ids, more, sample = await latest_in_language(site, language, limit, now), 0, True
    async with transaction(site.engine) as session:
        found = {
            a.id: a for a in await session.scalars(sa.select(Article).where(Article.id.in_(ids)))
        }
    return NextDigest([found[i] for i in ids if i in found], more, sample)


async def preview_reader(
    site: Site, email: str | None, language: str | None, timezone: str | None = None
) -> PreviewReader:
    """Return the subscriber with this address, or a new reader of ``language``."""
    settings = site.settings
    base = settings.site.base_url
    if email is None:
        return PreviewReader(
            email="reader@example.org",
            name="",
            language=language or settings.site.language,
            timezone=timezone or settings.site.timezone,
            frequency="daily",
            unsubscribe_url=f"{base}/unsubscribe/preview",
            preferences_url=f"{base}/preferences/preview",
        )
    async with transaction(site.engine) as session:
        subscriber = await repository.get_by_email(session, email)
    if subscriber is None:
        raise NotFoundError(f"no subscriber with address {email!r}")
    try:
        tokens = Tokens(settings.web.secret_key)
        unsubscribe = f"{base}/unsubscribe/{tokens.unsubscribe(subscriber.id)}"
        preferences = f"{base}/preferences/{tokens.preferences(subscriber.id)}"
    except TokenError:
        # Without a usable web.secret_key there are no real links; show where they go.
        unsubscribe, preferences = f"{base}/unsubscribe/preview", f"{base}/preferences/preview"
    return PreviewReader(
        email=subscriber.email,
        name=subscriber.name,
        language=language or subscriber.language or settings.site.language,
        timezone=timezone or subscriber.timezone or settings.site.timezone,
        frequency=subscriber.frequency or "daily",
        unsubscribe_url=unsubscribe,
        preferences_url=preferences,
        topics=tuple(subscriber.topics or ()),
        last_digest_at=subscriber.last_digest_at,
    )


async def render_preview(site: Site, reader: PreviewReader) -> RenderedPreview:
    """Render ``reader``'s next digest; a "[sample]" of the newest when nothing is new.

    The articles are those delivery would send that reader now (their language, topics and
    what is new since their last digest); the date is today in the reader's time zone.
    """
    try:
        zone = ZoneInfo(reader.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = site.settings.tz
    chosen = await next_digest(
        site,
        frequency=reader.frequency,
        language=reader.language,
        topics=reader.topics,
        last_digest_at=reader.last_digest_at,
    )
    articles, more = chosen.articles, chosen.more_count
    if not articles:
        raise NotFoundError("no published articles: nothing to preview (add some first)")
    local_date = site.clock.now().astimezone(zone).date()
    edition_key = f"{reader.frequency}:{local_date.isoformat()}"
    compiled = render_digest(
        site.settings,
        Digest(
            articles=articles,
            language=reader.language,
            edition_key=edition_key,
            edition_date=local_date,
            tz=zone,
            more_count=more,
            frequency=reader.frequency,
        ),
    )
    if chosen.sample:
        compiled = replace(compiled, subject=f"[sample] {compiled.subject}")
    host = urlsplit(site.settings.site.base_url).hostname or "localhost"
    recipient = Recipient(
        email=reader.email,
        name=reader.name,
        unsubscribe_url=reader.unsubscribe_url,
        preferences_url=reader.preferences_url,
        message_id=f"<preview.{edition_key.replace(':', '.')}@{host}>",
        language=compiled.language,
    )
    message = build_digest_template(site.settings, compiled, clock=site.clock).personalize(
        recipient
    )
    html, text = compiled.fill(
        {
            "greeting": compiled.greeting(reader.name),
            "email": reader.email,
            "unsubscribe_url": reader.unsubscribe_url,
            "preferences_url": reader.preferences_url,
        }
    )
    return RenderedPreview(
        subject=compiled.subject,
        html=html,
        text=text,
        message=message,
        sample=chosen.sample,
        language=reader.language,
        timezone=zone.key,
        articles=len(articles),
    )
