"""Helpers for the scheduler tests: readers, articles, a loopback mail sink and a tick loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa

from publisher import db
from publisher.content.store import ArticleDraft, ArticleStore
from publisher.delivery.mailsink import MailSink
from publisher.planning import TICK, next_tick
from publisher.scheduling import TickReport, run_tick
from publisher.site import Site
from subscribers import repository
from subscribers.models import ACTIVE, Subscriber


async def add_reader(
    site: Site,
    email: str,
    timezone: str,
    *,
    frequency: str = "daily",
    topics: Iterable[str] = (),
    language: str = "id",
    status: str = ACTIVE,
    joined: datetime | None = None,
) -> int:
    """Add a confirmed reader (joined a week ago unless told) and return their id."""
    now = joined or site.clock.now() - timedelta(days=7)
    async with db.transaction(site.engine) as session:
        subscriber = await repository.add(
            session,
            email,
            repository.Preferences(
                language=language, timezone=timezone, frequency=frequency, topics=tuple(topics)
            ),
            repository.Consent(source="test", at=now),
            now,
            status=status,
        )
        return subscriber.id


async def move_reader(site: Site, email: str, timezone: str) -> None:
    """Change a reader's time zone, as the preferences page does."""
    async with db.transaction(site.engine) as session:
        await session.execute(
            sa.update(Subscriber).where(Subscriber.email == email).values(timezone=timezone)
        )


async def publish(
    site: Site, title: str, *, at: datetime | None = None, tags: Iterable[str] = ()
) -> None:
    """Publish an article at ``at`` (default: the clock's now)."""
    when = at or site.clock.now()
    async with db.transaction(site.engine) as session:
        await ArticleStore(session, site.settings.site.base_url).upsert(
            ArticleDraft(
                title=title,
                body_html=f"<p>{title}: isi berita yang cukup panjang untuk dibaca.</p>",
                language="id",
                tags=list(tags),
                published_at=when,
            ),
            when,
        )


def recipients(sink: MailSink) -> Counter[str]:
    """Count the messages the sink received per recipient."""
    return Counter(r for message in sink.messages for r in message.recipients)


def parsed(path: Path) -> EmailMessage:
    """Parse a saved .eml file."""
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_part(path: Path) -> str:
    """Return the text/plain body of a saved message."""
    body = parsed(path).get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


async def tick_through(
    site: Site, sink: MailSink, start: datetime, end: datetime, step: timedelta = TICK
) -> tuple[dict[str, list[datetime]], list[TickReport]]:
    """Tick every ``step`` from start to end; return who got mail at which tick."""
    clock = site.clock
    assert hasattr(clock, "set")
    timeline: dict[str, list[datetime]] = {}
    reports = []
    now = next_tick(start)
    while now < end:
        clock.set(now)
        seen = len(sink.messages)
        reports.append(await run_tick(site))
        for message in sink.messages[seen:]:
            for recipient in message.recipients:
                timeline.setdefault(recipient, []).append(now)
        now += step
    return timeline, reports


async def tick_spans(
    site: Site, sink: MailSink, *spans: tuple[datetime, datetime, timedelta]
) -> dict[str, list[datetime]]:
    """Tick through consecutive spans, each at its own step (quarter hours where sends are
    expected, hours in between); return who got mail at which tick."""
    merged: dict[str, list[datetime]] = {}
    for start, end, step in spans:
        timeline, _ = await tick_through(site, sink, start, end, step)
        for recipient, times in timeline.items():
            merged.setdefault(recipient, []).extend(times)
    return merged
