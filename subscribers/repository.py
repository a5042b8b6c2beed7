"""Queries on the subscriber list: add, get, list, stream in batches, update and remove."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from subscribers import preferences as prefs
from subscribers import suppression
from subscribers.addresses import Address, lookup_key, normalize
from subscribers.errors import SubscriberExists, SubscriberNotFound
from subscribers.models import (
    ACTIVE,
    DAILY,
    FREQUENCIES,
    PENDING,
    STATUSES,
    UNSUBSCRIBED,
    Subscriber,
    SubscriberTopic,
)


@dataclass(frozen=True)
class Preferences:
    """What a reader chose: validated name, language, time zone, frequency and topics."""

    name: str = ""
    language: str = ""
    timezone: str = ""
    frequency: str = DAILY
    topics: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(
        cls,
        *,
        name: str = "",
        language: str = "",
        timezone: str = "",
        frequency: str = "",
        topics: Iterable[str] = (),
        languages: Iterable[str] = prefs.LANGUAGES,
    ) -> Preferences:
        """Validate raw values, raising InvalidInput naming the bad one."""
        return cls(
            name=prefs.clean_name(name),
            language=prefs.language(language, languages),
            timezone=prefs.timezone(timezone),
            frequency=prefs.frequency(frequency),
            topics=tuple(prefs.topics(topics)),
        )

    def apply(self, subscriber: Subscriber) -> bool:
        """Copy these preferences onto a subscriber; tell whether anything changed."""
        changed = False
        for key, value in (
            ("name", self.name),
            ("language", self.language),
            ("timezone", self.timezone),
            ("frequency", self.frequency),
            ("topics", list(self.topics)),
        ):
            if getattr(subscriber, key) != value:
                setattr(subscriber, key, value)
                changed = True
        return changed


@dataclass(frozen=True)
class Consent:
    """How and when a reader agreed: source, IP, user agent, time and the wording shown."""

    source: str
    at: datetime
    ip: str = ""
    user_agent: str = ""
    text: str = ""

    def apply(self, subscriber: Subscriber) -> None:
        """Record this consent on a subscriber."""
        subscriber.consent_source = self.source[:50]
        subscriber.consent_at = self.at
        subscriber.consent_ip = self.ip[:64]
        subscriber.consent_user_agent = self.user_agent[:1000]
        subscriber.consent_text = self.text[:4000]


async def get(session: AsyncSession, subscriber_id: int) -> Subscriber | None:
    """Return a subscriber by id."""
    return await session.get(Subscriber, subscriber_id)


async def get_by_email(session: AsyncSession, email: str) -> Subscriber | None:
    """Return a subscriber by address, case-insensitively."""
    key = lookup_key(email)
    found = await session.scalars(sa.select(Subscriber).where(Subscriber.email_key == key))
    return found.first()


async def add(
    session: AsyncSession,
    email: str | Address,
    preferences: Preferences,
    consent: Consent,
    now: datetime,
    *,
    status: str = PENDING,
) -> Subscriber:
    """Insert a new subscriber; raise SubscriberExists when the address is taken."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    address = email if isinstance(email, Address) else normalize(email)
    existing = await get_by_email(session, address.key)
    if existing is not None:
        raise SubscriberExists(f"{address.email} is already on the list ({existing.status})")
    subscriber = Subscriber(
        email=address.email,
        email_key=address.key,
        status=status,
        created_at=now,
        confirmed_at=now if status == ACTIVE else None,
        soft_bounces=0,
        hard_bounces=0,
    )
    preferences.apply(subscriber)
    consent.apply(subscriber)
    session.add(subscriber)
    await session.flush()
    return subscriber


async def list_subscribers(
    session: AsyncSession, *, status: str | None = None, limit: int | None = None
) -> list[Subscriber]:
    """Return subscribers in id order, optionally of one status (small lists and the CLI)."""
    query = sa.select(Subscriber).order_by(Subscriber.id)
    if status is not None:
        query = query.where(Subscriber.status == status)
    if limit is not None:
        query = query.limit(limit)
    return list(await session.scalars(query))


async def stream(
    session: AsyncSession,
    *,
    status: str | None = None,
    frequency: str | None = None,
    joined_before: datetime | None = None,
    batch_size: int = 1000,
) -> AsyncIterator[Subscriber]:
    """Yield subscribers in id order, one batch query at a time (keyset pagination)."""
    last_id = 0
    while True:
        query = (
            sa.select(Subscriber)
            .where(Subscriber.id > last_id)
            .order_by(Subscriber.id)
            .limit(batch_size)
        )
        if status is not None:
            query = query.where(Subscriber.status == status)
        if frequency is not None:
            query = query.where(Subscriber.frequency == frequency)
        if joined_before is not None:
            query = query.where(Subscriber.created_at < joined_before)
        batch = list(await session.scalars(query))
        for subscriber in batch:
            yield subscriber
        if len(batch) < batch_size:
            return
        # The identity map holds objects weakly, so earlier batches can be collected.
        last_id = batch[-1].id


async def remove(session: AsyncSession, email: str) -> Subscriber:
    """Delete a subscriber (any suppression of the address stays)."""
    subscriber = await get_by_email(session, email)
    if subscriber is None:
        raise SubscriberNotFound(f"no subscriber {email.strip()!r}")
    await session.delete(subscriber)
    await session.flush()
    return subscriber


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """Count subscribers per status."""
    rows = await session.execute(
        sa.select(Subscriber.status, sa.func.count()).group_by(Subscriber.status)
    )
    return {status: int(n) for status, n in rows.tuples()}


def to_dict(subscriber: Subscriber) -> dict[str, Any]:
    """Return a subscriber as plain data (JSON output and CSV export)."""

    def iso(value: datetime | None) -> str:
        return value.isoformat() if value is not None else ""

    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "timezone": subscriber.timezone,
        "frequency": subscriber.frequency,
        "topics": list(subscriber.topics or []),
        "status": subscriber.status,
        "created_at": iso(subscriber.created_at),
        "confirmed_at": iso(subscriber.confirmed_at),
        "unsubscribed_at": iso(subscriber.unsubscribed_at),
        "consent_source": subscriber.consent_source,
        "consent_at": iso(subscriber.consent_at),
        "consent_ip": subscriber.consent_ip,
        "consent_user_agent": subscriber.consent_user_agent,
        "consent_text": subscriber.consent_text,
        "soft_bounces": subscriber.soft_bounces,
        "hard_bounces": subscriber.hard_bounces,
        "last_bounce_at": iso(subscriber.last_bounce_at),
    }


# -- what delivery asks of the subscriber list ------------------------------------------

_TABLE = cast(sa.Table, Subscriber.__table__)


@dataclass(frozen=True)
class DigestGroup:
    """Due readers who share everything a digest's content depends on, and how many."""

    language: str
    #: The stored zone; "" when the groups were not split by zone.
    timezone: str
    #: The topics as stored (JSON text): the key recipients() matches on.
    topics_key: str
    last_digest_at: datetime | None
    readers: int
    #: Of ``readers``: how many are suppressed, and how many (not suppressed) are taken.
    suppressed: int
    taken: int

    @property
    def topics(self) -> list[str]:
        """Return the topics as a list."""
        found = json.loads(self.topics_key) if self.topics_key else []
        return [str(topic) for topic in found] if isinstance(found, list) else []


#: Subscriber ids (a column) -> whether each already has what is being sent (the caller's SQL).
Taken = Callable[[sa.ColumnElement[int]], sa.ColumnElement[bool]]


def _topics_key() -> sa.ColumnElement[str]:
    return sa.func.coalesce(sa.cast(_TABLE.c.topics, sa.Text), "")


def _due(frequency: str, joined_before: datetime, id_from: int, id_to: int) -> list[Any]:
    """Active readers of a frequency in an id range who had joined (and confirmed) before
    a moment: those who join while a send is being prepared wait for the next one."""
    return [
        _TABLE.c.status == ACTIVE,
        _TABLE.c.frequency == frequency,
        _TABLE.c.id >= id_from,
        _TABLE.c.id < id_to,
        _TABLE.c.created_at < joined_before,
        sa.or_(_TABLE.c.confirmed_at.is_(None), _TABLE.c.confirmed_at < joined_before),
    ]


async def due_id_span(
    session: AsyncSession, *, frequency: str, joined_before: datetime
) -> tuple[int, int] | None:
    """Return the lowest and highest id of active readers of a frequency, or None."""
    row = (
        await session.execute(
            sa.select(sa.func.min(_TABLE.c.id), sa.func.max(_TABLE.c.id))
            .where(_TABLE.c.status == ACTIVE)
            .where(_TABLE.c.frequency == frequency)
            .where(_TABLE.c.created_at < joined_before)
        )
    ).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


async def digest_groups(
    session: AsyncSession,
    *,
    frequency: str,
    joined_before: datetime,
    id_from: int,
    id_to: int,
    by_zone: bool,
    taken: Taken,
) -> list[DigestGroup]:
    """Group the due readers with ids in [id_from, id_to) by language, topics, last
    digest (and stored zone with ``by_zone``), counting the suppressed and those
    ``taken`` says already have theirs: the caller plans once per group, not per reader."""
    blocked = suppression.suppressed_sql(_TABLE.c.email_key)
    has = taken(_TABLE.c.id)
    zone = _TABLE.c.timezone if by_zone else sa.literal("", sa.String)
    topics = _topics_key()
    keys = [_TABLE.c.language, zone, topics, _TABLE.c.last_digest_at]
    grouped = [key for key in keys if by_zone or key is not zone]
    rows = await session.execute(
        sa.select(
            *keys,
            sa.func.count(),
            sa.func.sum(sa.case((blocked, 1), else_=0)),
            # `has` first: the hash behind `blocked` (a Python function on SQLite) then
            # runs only for readers already queued, none on a first enqueue.
            sa.func.sum(sa.case((sa.and_(has, ~blocked), 1), else_=0)),
        )
        .where(*_due(frequency, joined_before, id_from, id_to))
        .group_by(*grouped)
    )
    return [
        DigestGroup(
            language or "",
            zone_name or "",
            topics_key or "",
            last,
            int(n),
            int(s or 0),
            int(t or 0),
        )
        for language, zone_name, topics_key, last, n, s, t in rows.tuples()
    ]


def digest_recipients(
    *,
    frequency: str,
    joined_before: datetime,
    id_from: int,
    id_to: int,
    groups: Iterable[DigestGroup],
    by_zone: bool,
) -> sa.Select[tuple[int, str]]:
    """Return a select of (id, email) of the unsuppressed due readers in [id_from, id_to)
    who belong to one of ``groups`` (as digest_groups() returned them)."""
    wanted: dict[tuple[str, str, str], list[datetime | None]] = {}
    for group in groups:
        key = (group.language, group.timezone if by_zone else "", group.topics_key)
        wanted.setdefault(key, []).append(group.last_digest_at)
    topics = _topics_key()
    matches = []
    for (language, zone, topics_key), lasts in wanted.items():
        known = [last for last in lasts if last is not None]
        last_matches = [_TABLE.c.last_digest_at.in_(known)] if known else []
        if len(known) < len(lasts):
            last_matches.append(_TABLE.c.last_digest_at.is_(None))
        matches.append(
            sa.and_(
                _TABLE.c.language == language,
                _TABLE.c.timezone == zone if by_zone else sa.true(),
                topics == topics_key,
                sa.or_(*last_matches),
            )
        )
    return (
        sa.select(_TABLE.c.id, _TABLE.c.email)
        .where(*_due(frequency, joined_before, id_from, id_to))
        .where(sa.or_(*matches) if matches else sa.false())
        .where(~suppression.suppressed_sql(_TABLE.c.email_key))
    )


async def delivery_profiles(session: AsyncSession, ids: Iterable[int]) -> dict[int, Any]:
    """Return id, name, language and status of the given subscribers, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = await session.execute(
        sa.select(Subscriber.id, Subscriber.name, Subscriber.language, Subscriber.status).where(
            Subscriber.id.in_(wanted)
        )
    )
    return {row.id: row for row in rows}


def advance_last_digest() -> sa.Update:
    """Return the statement moving readers' last digest mark forward, never back
    (executemany parameters: b_id, b_until)."""
    until = sa.bindparam("b_until", type_=_TABLE.c.last_digest_at.type)
    return (
        sa.update(_TABLE)
        .where(_TABLE.c.id == sa.bindparam("b_id"))
        .where(sa.or_(_TABLE.c.last_digest_at.is_(None), _TABLE.c.last_digest_at < until))
        .values(last_digest_at=until)
    )


async def active_counts(session: AsyncSession) -> list[tuple[str, str, int]]:
    """Count active subscribers per (frequency, stored time zone)."""
    rows = await session.execute(
        sa.select(Subscriber.frequency, Subscriber.timezone, sa.func.count())
        .where(Subscriber.status == ACTIVE)
        .group_by(Subscriber.frequency, Subscriber.timezone)
    )
    return [(frequency, zone, int(count)) for frequency, zone, count in rows.tuples()]


async def any_due(
    session: AsyncSession,
    *,
    frequency: str,
    timezones: Iterable[str],
    joined_before: datetime,
    newest: datetime,
    never_sent_too: bool,
    excluded: sa.Select[Any],
) -> bool:
    """Tell whether an active reader of these stored zones, who joined in time, is not
    among ``excluded`` (a select of subscriber ids) and had a last digest before
    ``newest`` (or, with ``never_sent_too``, none yet)."""
    window_holds_news = Subscriber.last_digest_at < newest
    if never_sent_too:
        window_holds_news = sa.or_(window_holds_news, Subscriber.last_digest_at.is_(None))
    found = await session.scalar(
        sa.select(Subscriber.id)
        .where(Subscriber.status == ACTIVE)
        .where(Subscriber.frequency == frequency)
        .where(Subscriber.timezone.in_(sorted(timezones)))
        .where(Subscriber.created_at < joined_before)
        .where(window_holds_news)
        .where(Subscriber.id.not_in(excluded))
        .limit(1)
    )
    return found is not None


# --- Keyset pages for the API and the editors' app (no COUNT, index order) ---

#: One character above every other: ``prefix + _TOP`` bounds the addresses starting with prefix.
_TOP = "\U0010ffff"


@dataclass(frozen=True)
class SubscriberFilter:
    """What an editor narrowed the subscriber list to; None means any."""

    status: str | None = None
    language: str | None = None
    timezone: str | None = None
    frequency: str | None = None
    #: One topic slug (letters, digits and hyphens) the reader follows.
    topic: str | None = None
    #: Start of the address, case-insensitive; the page is then in address order.
    email_prefix: str | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def page(
    session: AsyncSession, wanted: SubscriberFilter, limit: int, after: int | str | None = None
) -> list[Subscriber]:
    """Return up to ``limit`` subscribers after ``after``.

    Newest first (``after`` is an id), or in address order when searching by prefix
    (``after`` is the last address key), so the unique address index serves the search.
    The status index continues with the frequency, so a status without a frequency reads
    each frequency on its own and merges the two short lists here. A topic walks the
    (topic, reader) index newest reader first, the other filters checked on each row.
    """
    if (
        wanted.status is not None
        and wanted.frequency is None
        and wanted.email_prefix is None
        and wanted.topic is None
    ):
        found: list[Subscriber] = []
        for frequency in FREQUENCIES:
            found.extend(await _page(session, replace(wanted, frequency=frequency), limit, after))
        found.sort(key=lambda subscriber: -subscriber.id)
        return found[:limit]
    return await _page(session, wanted, limit, after)


async def _page(
    session: AsyncSession, wanted: SubscriberFilter, limit: int, after: int | str | None
) -> list[Subscriber]:
    query = sa.select(Subscriber)
    ident: InstrumentedAttribute[int] = Subscriber.id
    for column, value in (
        (Subscriber.status, wanted.status),
        (Subscriber.language, wanted.language),
        (Subscriber.timezone, wanted.timezone),
        (Subscriber.frequency, wanted.frequency),
    ):
        if value is not None:
            query = query.where(column == value)
    if wanted.topic is not None:
        slugs = prefs.topics([wanted.topic])
        topic = slugs[0] if slugs else ""  # a blank topic matches no reader
        if wanted.email_prefix is not None:
            # The address index leads; the topic is one primary-key probe per row.
            query = query.where(
                sa.exists().where(
                    SubscriberTopic.topic == topic, SubscriberTopic.subscriber_id == Subscriber.id
                )
            )
        else:
            query = query.join(
                SubscriberTopic, SubscriberTopic.subscriber_id == Subscriber.id
            ).where(SubscriberTopic.topic == topic)
            ident = SubscriberTopic.subscriber_id
    if wanted.email_prefix is not None:
        prefix = wanted.email_prefix.strip().lower()
        # The range uses the index; LIKE keeps the match exact under any collation.
        query = query.where(
            Subscriber.email_key >= prefix,
            Subscriber.email_key < prefix + _TOP,
            Subscriber.email_key.like(f"{_escape_like(prefix)}%", escape="\\"),
        )
        if after is not None:
            query = query.where(Subscriber.email_key > str(after))
        query = query.order_by(Subscriber.email_key)
    else:
        if after is not None:
            query = query.where(ident < int(after))
        query = query.order_by(ident.desc())
    return list(await session.scalars(query.limit(limit)))


async def suppress(
    session: AsyncSession, subscriber: Subscriber, now: datetime, *, detail: str = ""
) -> bool:
    """Put a reader on the suppression list by hand; tell whether their status changed.

    Active and pending readers become unsubscribed (nothing is mailed to a suppressed
    address, and the list should say so); only confirming a new subscription lifts it.
    """
    await suppression.suppress(session, subscriber.email, suppression.MANUAL, now, detail)
    if subscriber.status not in (ACTIVE, PENDING):
        return False
    subscriber.status = UNSUBSCRIBED
    subscriber.unsubscribed_at = now
    await session.flush()
    return True
