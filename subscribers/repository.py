"""Queries on the subscriber list: add, get, list, stream in batches, update and remove."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
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


async def due_for_digest(
    session: AsyncSession, *, frequency: str, joined_before: datetime, after_id: int, limit: int
) -> list[sa.Row[Any]]:
    """Return the next batch (by id, after ``after_id``) of active readers of a frequency
    who joined before a moment: id, email, language, timezone, topics, last_digest_at,
    created_at and confirmed_at."""
    result = await session.execute(
        sa.select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.language,
            Subscriber.timezone,
            Subscriber.topics,
            Subscriber.last_digest_at,
            Subscriber.created_at,
            Subscriber.confirmed_at,
        )
        .where(Subscriber.id > after_id)
        .where(Subscriber.status == ACTIVE)
        .where(Subscriber.frequency == frequency)
        .where(Subscriber.created_at < joined_before)
        .order_by(Subscriber.id)
        .limit(limit)
    )
    return list(result.all())


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
