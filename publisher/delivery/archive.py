"""The public archive of sent digests: which editions went out, in which languages, and what.

An edition (and each of its languages) is public once at least one reader's copy in that
language was sent: drafts, dry runs and editions still waiting in the outbox never are.
The archive shows the union of the edition's variants in a language, without any reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.content.models import PUBLISHED, Article
from publisher.delivery.models import SENT, Announcement, Edition, EditionVariant, OutboxRow
from publisher.planning import ANNOUNCEMENT, WEEKLY, edition_slug, period_key_of

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
#: The sitemap and the archive feeds list at most this many editions.
MAX_LISTED = 5000


@dataclass(frozen=True)
class ArchivedEdition:
    """One sent edition as the archive lists it."""

    slug: str
    period_key: str
    frequency: str
    #: The date the digest shows (see sent_on).
    local_date: date
    languages: tuple[str, ...]
    sent_at: datetime


@dataclass(frozen=True)
class ArchivedDigest:
    """What one archived digest page shows: the edition and its articles in one language."""

    edition: ArchivedEdition
    language: str
    articles: list[Article]
    more_count: int
    #: The variants shown: a new variant sent later in the day changes the page.
    variant_ids: tuple[int, ...]


def sent_on(edition: Edition, tz: ZoneInfo) -> date:
    """Return the date a digest shows: its day, or the day a late weekly digest went out.

    A weekly edition is keyed by its week's digest day; sent on another day of that week
    (``digest send --frequency weekly`` on a Tuesday), it is dated the day it was sent.
    """
    if edition.frequency == ANNOUNCEMENT:
        return edition.created_at.astimezone(tz).date()
    keyed = date.fromisoformat(edition.local_date)
    if edition.frequency != WEEKLY:
        return keyed
    return max(keyed, edition.created_at.astimezone(tz).date())


def _sent_variants() -> sa.Select[tuple[int, int, str]]:
    """Select (edition id, variant id, language) of variants with at least one sent copy."""
    sent = (
        sa.select(OutboxRow.id)
        .where(OutboxRow.variant_id == EditionVariant.id)
        .where(OutboxRow.edition_id == EditionVariant.edition_id)
        .where(OutboxRow.status == SENT)
        .limit(1)
    )
    return sa.select(EditionVariant.edition_id, EditionVariant.id, EditionVariant.language).where(
        sent.exists()
    )


def _public_editions() -> sa.Select[tuple[Edition]]:
    sent = (
        sa.select(OutboxRow.id)
        .where(OutboxRow.edition_id == Edition.id)
        .where(OutboxRow.status == SENT)
        .limit(1)
    )
    return sa.select(Edition).where(sent.exists())


async def count_sent(session: AsyncSession) -> int:
    """Return how many editions have been sent (to anyone)."""
    subquery = _public_editions().subquery()
    return int(await session.scalar(sa.select(sa.func.count()).select_from(subquery)) or 0)


async def sent_editions(
    session: AsyncSession, offset: int, limit: int, tz: ZoneInfo
) -> list[ArchivedEdition]:
    """Return sent editions, newest first, with the languages they went out in."""
    editions = list(
        await session.scalars(
            _public_editions()
            .order_by(Edition.created_at.desc(), Edition.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    if not editions:
        return []
    rows = await session.execute(
        _sent_variants().where(EditionVariant.edition_id.in_([e.id for e in editions]))
    )
    languages: dict[int, set[str]] = {}
    for edition_id, _variant_id, language in rows:
        languages.setdefault(edition_id, set()).add(language)
    return [_archived(e, languages.get(e.id, set()), tz) for e in editions]


def _archived(edition: Edition, languages: set[str], tz: ZoneInfo) -> ArchivedEdition:
    return ArchivedEdition(
        slug=edition_slug(edition.period_key),
        period_key=edition.period_key,
        frequency=edition.frequency,
        local_date=sent_on(edition, tz),
        languages=tuple(sorted(languages)),
        sent_at=edition.finished_at or edition.created_at,
    )


async def archived_digest(
    session: AsyncSession, slug: str, language: str, max_articles: int, tz: ZoneInfo
) -> ArchivedDigest | None:
    """Return the digest of an edition in ``language`` as sent, or None when not public."""
    key = period_key_of(slug)
    if key is None or not _LANGUAGE.match(language):
        return None
    edition = await session.scalar(_public_editions().where(Edition.period_key == key))
    if edition is None:
        return None
    rows = (
        await session.execute(_sent_variants().where(EditionVariant.edition_id == edition.id))
    ).all()
    languages = {row[2] for row in rows}
    wanted = [row[1] for row in rows if row[2] == language]
    if not wanted:
        return None
    variants = list(
        await session.scalars(
            sa.select(EditionVariant)
            .where(EditionVariant.id.in_(wanted))
            .order_by(EditionVariant.id)
        )
    )
    ids: list[int] = []
    more = 0
    for variant in variants:
        ids.extend(int(i) for i in variant.article_ids if int(i) not in ids)
        more = max(more, variant.more_count)
    found = {
        a.id: a
        for a in await session.scalars(
            sa.select(Article).where(Article.id.in_(ids)).where(Article.status == PUBLISHED)
        )
    }
    # Newest first, as a digest lists them; withdrawn articles stay withdrawn.
    articles = sorted(
        (found[i] for i in ids if i in found),
        key=lambda a: (a.published_at or edition.created_at, a.id),
        reverse=True,
    )
    if not articles:
        return None
    extra = max(0, len(articles) - max_articles)
    return ArchivedDigest(
        edition=_archived(edition, languages, tz),
        language=language,
        articles=articles[:max_articles],
        more_count=more + extra,
        variant_ids=tuple(v.id for v in variants),
    )


async def archived_announcement(
    session: AsyncSession, slug: str, language: str, tz: ZoneInfo
) -> tuple[ArchivedEdition, Announcement] | None:
    """Return a sent announcement's edition and the announcement, or None when not public."""
    key = period_key_of(slug)
    if key is None or not key.startswith(f"{ANNOUNCEMENT}:") or not _LANGUAGE.match(language):
        return None
    edition = await session.scalar(_public_editions().where(Edition.period_key == key))
    if edition is None:
        return None
    rows = (
        await session.execute(_sent_variants().where(EditionVariant.edition_id == edition.id))
    ).all()
    languages = {row[2] for row in rows}
    found = await session.scalar(
        sa.select(Announcement).where(Announcement.edition_id == edition.id)
    )
    if found is None or language not in languages:
        return None
    return _archived(edition, languages, tz), found


async def state(session: AsyncSession) -> str:
    """Return a short token that changes whenever the archive gains an edition or a language."""
    subquery = _sent_variants().subquery()
    count, newest = (
        await session.execute(sa.select(sa.func.count(), sa.func.max(subquery.c.id)))
    ).one()
    return f"{count}.{newest or 0}"


async def every_digest(session: AsyncSession, tz: ZoneInfo) -> list[ArchivedEdition]:
    """Return every sent edition, newest first (sitemap and feeds; one row per edition)."""
    return await sent_editions(session, 0, MAX_LISTED, tz)
