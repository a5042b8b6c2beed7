"""Editions and their recipients: who gets which articles, written to the outbox in batches."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from publisher import planning
from publisher.columns import hmac_sha256_hex
from publisher.content.models import PUBLISHED, Article
from publisher.content.publishing import publish_due
from publisher.db import is_sqlite, transaction
from publisher.delivery import store
from publisher.delivery.models import (
    Edition,
)
from publisher.errors import UsageError
from publisher.site import Site
from subscribers import repository

#: Subscriber ids per chunk of an enqueue (one transaction each): small enough that a
#: SQLite write lock is short and a crash loses little work, large enough to be cheap.
CHUNK_IDS = 50_000
#: Chunks written side by side on PostgreSQL (each on its own connection).
ENQUEUE_CONNECTIONS = 2
#: Tries per chunk when a concurrent enqueue of the same edition makes PostgreSQL refuse it.
CHUNK_ATTEMPTS = 5
#: However long ago someone's last digest was, look no further back than this.
MAX_LOOKBACK = timedelta(days=31)
DEFAULT_WINDOW = {planning.DAILY: timedelta(hours=24), planning.WEEKLY: timedelta(days=7)}


@dataclass
class EnqueueReport:
    """What writing an edition's recipients did."""

    edition_id: int | None
    period_key: str
    considered: int = 0
    queued: int = 0
    already_queued: int = 0
    nothing_new: int = 0
    suppressed: int = 0
    other_zone: int = 0
    #: Recipients per variant key ("language:article ids").
    variants: dict[str, int] = field(default_factory=dict)

    def add(self, other: EnqueueReport) -> None:
        """Add another (partial) report's counts to this one."""
        for name in (
            "considered",
            "queued",
            "already_queued",
            "nothing_new",
            "suppressed",
            "other_zone",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, count in other.variants.items():
            self.variants[key] = self.variants.get(key, 0) + count

    def __str__(self) -> str:
        return (
            f"{self.period_key}: {self.queued} queued, {self.already_queued} already queued, "
            f"{self.nothing_new} with nothing new, {self.suppressed} suppressed, "
            f"{len(self.variants)} variant(s)"
        )


@dataclass(frozen=True)
class Plan:
    """The articles one reader gets: the variant's identity."""

    language: str
    article_ids: tuple[int, ...]
    more_count: int

    @property
    def key(self) -> str:
        """Return a short stable key for (language, articles, more)."""
        raw = f"{self.language}|{','.join(map(str, self.article_ids))}|{self.more_count}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def describe(self) -> str:
        """Return ``language:ids`` for reports."""
        return f"{self.language}:{','.join(map(str, self.article_ids))}"


@dataclass(frozen=True, slots=True)
class _Candidate:
    id: int
    published_at: datetime
    language: str
    tags: frozenset[str]


def edition_date(frequency: str, local_day: date, weekly_day: str) -> date:
    """Return the date an edition is keyed by: the day itself, or the week's digest day."""
    if frequency == planning.WEEKLY:
        weekday = planning.WEEKDAYS.index(weekly_day)
        return local_day - timedelta(days=(local_day.weekday() - weekday) % 7)
    return local_day


def current_edition_date(site: Site, frequency: str, now: datetime) -> date:
    """Return the date of the edition a send at ``now`` belongs to, in the site's time zone."""
    local = planning.local_date(now, site.settings.tz)
    return edition_date(frequency, local, site.settings.digest.weekly_day)


def message_id(site: Site, period_key: str, subscriber_id: int) -> str:
    """Return the stable Message-ID of one subscriber's copy of one edition."""
    return MessageIds(site, period_key)(subscriber_id)


class MessageIds:
    """Mint stable Message-IDs for one edition: same edition and reader, same id."""

    def __init__(self, site: Site, period_key: str) -> None:
        self.domain = mail_domain(site)
        self.key = hmac.new(
            site.settings.web.secret_key.encode() or b"publisher", period_key.encode(), "sha256"
        ).digest()
        self.slug = period_key.replace(":", ".")

    def __call__(self, subscriber_id: int) -> str:
        tag = hmac.new(self.key, str(subscriber_id).encode(), hashlib.sha256).hexdigest()[:12]
        return f"<{self.slug}.{subscriber_id}.{tag}@{self.domain}>"

    def sql(self, subscriber_id: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
        """Return the same Message-ID computed by the database, for INSERT ... SELECT."""
        number = sa.cast(subscriber_id, sa.String)
        tag = sa.func.substr(hmac_sha256_hex(sa.literal(self.key.hex(), sa.String), number), 1, 12)
        parts: list[sa.ColumnElement[str]] = [
            sa.literal(f"<{self.slug}.", sa.String),
            number,
            sa.literal(".", sa.String),
            tag,
            sa.literal(f"@{self.domain}>", sa.String),
        ]
        return _joined(parts)


def _joined(parts: list[sa.ColumnElement[str]]) -> sa.ColumnElement[str]:
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + part  # || on both backends (String + String)
    return joined


def mail_domain(site: Site) -> str:
    """Return the domain of Message-IDs: the From address's, else the site's host."""
    address = parseaddr(site.settings.mail.from_)[1]
    domain = address.rpartition("@")[2]
    if not domain:
        domain = urlsplit(site.settings.site.base_url).hostname or "localhost"
    return domain.encode("idna").decode("ascii").lower()


async def open_edition(
    site: Site, frequency: str, local_date: date, now: datetime, *, enqueuing: bool = False
) -> Edition:
    """Return the edition of ``frequency`` for ``local_date``, creating it once.

    ``enqueuing`` (a send to every zone) marks it for resumption in the same transaction
    that opens it: once anything of the send is on disk, `digest send --resume` finishes
    it. Opening first and marking later left a moment where a killed send had created
    an edition that --resume ignored and the next plain send mailed.
    """
    if frequency not in planning.FREQUENCIES:
        raise UsageError(f"not a digest frequency: {frequency!r} (use daily or weekly)")
    key = planning.period_key(frequency, local_date)
    return await store.open_edition_row(site, key, frequency, now, enqueuing=enqueuing)


async def get_edition(site: Site, period_key: str | None = None) -> Edition | None:
    """Return the named edition, or the most recently created one."""
    return await store.get_edition(site, period_key)


async def _candidates(site: Site, since: datetime, now: datetime) -> list[_Candidate]:
    async with transaction(site.engine) as session:
        rows = await session.execute(
            sa.select(Article.id, Article.published_at, Article.language, Article.tags)
            .where(Article.status == PUBLISHED)
            .where(Article.published_at > since)
            .where(Article.published_at <= now)
            .order_by(Article.published_at.desc(), Article.id.desc())
        )
        return [
            _Candidate(id, published_at, _primary(language), frozenset(_tags(tags)))
            for id, published_at, language, tags in rows
            if published_at is not None
        ]


def _primary(language: str) -> str:
    return (language or "").split("-")[0].lower()


def _tags(tags: Any) -> list[str]:
    if isinstance(tags, str):  # some drivers hand JSON back as text
        tags = json.loads(tags)
    return [str(t).lower() for t in tags or []]


class Planner:
    """Choose each reader's articles: new since their last digest, in their language and topics."""

    def __init__(
        self, site: Site, frequency: str, now: datetime, candidates: Sequence[_Candidate]
    ) -> None:
        self.now = now
        self.default_since = now - DEFAULT_WINDOW[frequency]
        self.floor = now - MAX_LOOKBACK
        self.max_articles = site.settings.digest.max_articles
        self.site_language = _primary(site.settings.site.language)
        self.candidates = candidates
        self.languages = {c.language for c in candidates}
        self._cache: dict[tuple[datetime, str, tuple[str, ...]], Plan | None] = {}

    def window_start(self, last_digest_at: datetime | None) -> datetime:
        """Return where a reader's content window starts."""
        return max(last_digest_at or self.default_since, self.floor)

    def plan(self, last_digest_at: datetime | None, language: str, topics: Any) -> Plan | None:
        """Return the reader's variant, or None when nothing is new for them."""
        since = self.window_start(last_digest_at)
        language = _primary(language) or self.site_language
        wanted = tuple(sorted(_tags(topics)))
        key = (since, language, wanted)
        if key in self._cache:
            return self._cache[key]
        # A language nobody publishes in would mean no digest ever: such readers get all.
        match_language = language in self.languages
        chosen = [
            c.id
            for c in self.candidates
            if c.published_at > since
            and (not match_language or c.language == language)
            and (not wanted or c.tags.intersection(wanted))
        ]
        plan = None
        if chosen:
            plan = Plan(
                language=language,
                article_ids=tuple(chosen[: self.max_articles]),
                more_count=max(0, len(chosen) - self.max_articles),
            )
        self._cache[key] = plan
        return plan


async def plan_next(
    site: Site,
    frequency: str,
    now: datetime,
    *,
    language: str,
    topics: Any,
    last_digest_at: datetime | None,
    send_at: datetime | None = None,
) -> Plan | None:
    """Return what one reader would get in a digest enqueued at ``now`` (the same choice).

    With ``send_at`` (a later send instant): the digest that send will carry, with what
    has been published up to ``now`` (its window ends at ``send_at``, not ``now``).
    """
    if frequency not in planning.FREQUENCIES:
        raise UsageError(f"not a digest frequency: {frequency!r} (use daily or weekly)")
    closes = max(send_at or now, now)
    candidates = await _candidates(site, closes - MAX_LOOKBACK, now)
    return Planner(site, frequency, closes, candidates).plan(last_digest_at, language, topics)


async def latest_in_language(site: Site, language: str, limit: int, now: datetime) -> list[int]:
    """Return the ids of the newest published articles in ``language`` (else in any)."""
    wanted = _primary(language) or _primary(site.settings.site.language)
    stored = sa.func.lower(Article.language)
    query = (
        sa.select(Article.id)
        .where(Article.status == PUBLISHED)
        .where(Article.published_at <= now)
        .order_by(Article.published_at.desc(), Article.id.desc())
        .limit(limit)
    )
    async with transaction(site.engine) as session:
        ids = list(
            await session.scalars(query.where(sa.or_(stored == wanted, stored.like(f"{wanted}-%"))))
        )
        # As in a digest: a language the site never publishes in gets every language.
        return ids or list(await session.scalars(query))


async def enqueue(
    site: Site,
    edition: Edition,
    now: datetime,
    *,
    timezones: Sequence[str] | None = None,
    dry_run: bool = False,
) -> EnqueueReport:
    """Write one outbox row per due subscriber of the edition, set-based, never twice.

    Takes active, unsuppressed subscribers of the edition's frequency who joined before
    ``now`` (optionally only those whose effective time zone is in ``timezones``), in
    chunks of subscriber ids. Per chunk, in one transaction: the readers are grouped by
    what their digest depends on (language, topics, last digest), each group is planned
    once, and each variant's rows are written by one INSERT ... SELECT under the
    (edition, subscriber) unique constraint. ``dry_run`` only counts.
    """
    report = EnqueueReport(edition.id, edition.period_key)
    if not dry_run:
        # A draft scheduled before this moment belongs in the digest, published or not yet.
        await publish_due(site.engine, site.settings.site.base_url, site.clock.now())
    zones = set(timezones) if timezones is not None else None
    candidates = await _candidates(site, now - MAX_LOOKBACK, now)
    planner = Planner(site, edition.frequency, now, candidates)
    variant_ids: dict[str, int] = {}
    if not dry_run:
        variant_ids = await store.variant_ids(site, edition.id)
    ids = MessageIds(site, edition.period_key)
    # Only an enqueue for every zone marks the edition for resumption: deliver() finishes
    # it for every zone. A zone-limited one (a scheduler tick) is redone by the next tick,
    # which knows which zones are due; resuming it for all would mail readers early.
    if not dry_run and timezones is None:
        await store.mark_enqueuing(site, edition, now)
    async with transaction(site.engine) as session:
        span = await repository.due_id_span(session, frequency=edition.frequency, joined_before=now)
    first, last = span or (1, 0)
    chunks = [
        _Chunk(edition, now, start, start + CHUNK_IDS, zones is not None)
        for start in range(first, last + 1, CHUNK_IDS)
    ]
    earliest: datetime | None = None

    async def run(chunk: _Chunk) -> None:
        nonlocal earliest
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            # Variants written by a transaction that is rolled back must be forgotten.
            known = dict(variant_ids)
            part = EnqueueReport(edition.id, edition.period_key)
            try:
                async with store.enqueue_transaction(site) as session:
                    start = await _enqueue_chunk(
                        site, session, chunk, planner, part, known, ids, zones, dry_run
                    )
                break
            except DBAPIError as exc:
                # Two enqueues of one edition at once (a tick and a `digest send`, or two
                # chunks adding one variant) may collide under REPEATABLE READ on
                # PostgreSQL; the chunk is redone.
                if attempt == CHUNK_ATTEMPTS or not _serialization_failure(exc):
                    raise
        variant_ids.update(known)
        report.add(part)
        if start is not None:
            earliest = start if earliest is None else min(earliest, start)

    # The first chunk alone (it usually adds every variant), then the rest side by side
    # on PostgreSQL, where the database works while Python waits; SQLite has one writer.
    lanes = 1 if is_sqlite(site.settings.database.url) else ENQUEUE_CONNECTIONS
    slots = asyncio.Semaphore(lanes)

    async def in_lane(chunk: _Chunk) -> None:
        async with slots:
            await run(chunk)

    if chunks:
        await run(chunks[0])
        # Every chunk finishes (or fails) before an error is raised: what is on disk
        # then does not depend on timing.
        results = await asyncio.gather(
            *(in_lane(chunk) for chunk in chunks[1:]), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
    if not dry_run and edition.id is not None:
        await store.mark_sending(
            site, edition, earliest, now, report.queued > 0, zone_limited=timezones is not None
        )
    return report


async def _enqueue_chunk(
    site: Site,
    session: AsyncSession,
    chunk: _Chunk,
    planner: Planner,
    report: EnqueueReport,
    variant_ids: dict[str, int],
    ids: MessageIds,
    zones: set[str] | None,
    dry_run: bool,
) -> datetime | None:
    """Plan one chunk's groups and write each variant's rows; return the earliest window."""
    site_zone = site.settings.site.timezone
    earliest: datetime | None = None
    variants: dict[str, tuple[Plan, list[repository.DigestGroup]]] = {}
    for group in await chunk.groups(session):
        if zones is not None and planning.effective_zone(group.timezone, site_zone) not in zones:
            report.other_zone += group.readers
            continue
        report.considered += group.readers
        report.suppressed += group.suppressed
        report.already_queued += group.taken
        waiting = group.readers - group.suppressed - group.taken
        if waiting <= 0:
            continue
        plan = planner.plan(group.last_digest_at, group.language, group.topics)
        if plan is None:
            report.nothing_new += waiting
            continue
        report.variants[plan.describe()] = report.variants.get(plan.describe(), 0) + waiting
        start = planner.window_start(group.last_digest_at)
        earliest = start if earliest is None else min(earliest, start)
        variants.setdefault(plan.key, (plan, []))[1].append(group)
        if dry_run:
            report.queued += waiting
    if dry_run or chunk.edition.id is None:
        return earliest
    for key, (plan, members) in variants.items():
        variant_id = variant_ids.get(key)
        if variant_id is None:
            variant_id = await store.add_variant(
                site,
                session,
                chunk.edition.id,
                plan.key,
                plan.language,
                plan.article_ids,
                plan.more_count,
            )
            variant_ids[key] = variant_id
        report.queued += await store.insert_digests(
            session,
            chunk.recipients(members),
            edition_id=chunk.edition.id,
            variant_id=variant_id,
            message_id=ids.sql,
            window_end=chunk.now,
            now=chunk.now,
        )
    return earliest


def _serialization_failure(exc: DBAPIError) -> bool:
    """Tell whether PostgreSQL refused a transaction for a concurrent one (SQLSTATE 40001)."""
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code == "40001"


@dataclass(frozen=True)
class _Chunk:
    """One range of subscriber ids of one enqueue."""

    edition: Edition
    now: datetime
    id_from: int
    id_to: int
    by_zone: bool

    async def groups(self, session: AsyncSession) -> list[repository.DigestGroup]:
        return await repository.digest_groups(
            session,
            frequency=self.edition.frequency,
            joined_before=self.now,
            id_from=self.id_from,
            id_to=self.id_to,
            by_zone=self.by_zone,
            taken=store.taken_in(self.edition.id),
        )

    def recipients(self, groups: list[repository.DigestGroup]) -> sa.Select[tuple[int, str]]:
        return repository.digest_recipients(
            frequency=self.edition.frequency,
            joined_before=self.now,
            id_from=self.id_from,
            id_to=self.id_to,
            groups=groups,
            by_zone=self.by_zone,
        )


async def resume_enqueues(site: Site) -> list[EnqueueReport]:
    """Finish writing the recipients of editions whose enqueue was interrupted."""
    unfinished = await store.enqueuing_editions(site)
    return [await enqueue(site, edition, edition.window_end) for edition in unfinished]
