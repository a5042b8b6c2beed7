"""Who an announcement goes to: readers chosen by language, topic and frequency, or everyone."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subscribers import suppression
from subscribers.errors import InvalidInput
from subscribers.models import ACTIVE, FREQUENCIES, Subscriber

#: An audience names at most this many languages, topics; each this long at most.
MAX_LANGUAGES = 20
MAX_TOPICS = 50
MAX_TOPIC_LENGTH = 60
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def _primary(language: str | None) -> str:
    return (language or "").split("-")[0].strip().lower()


def _topics_of(value: Any) -> list[str]:
    if isinstance(value, str):  # some drivers hand JSON back as text
        value = json.loads(value)
    return [str(t).lower() for t in value or []]


@dataclass(frozen=True)
class Audience:
    """Which active readers: in these languages, following these topics, of these frequencies.

    An empty choice means "any": an audience choosing nothing is everyone. A reader who
    follows no particular topic follows them all, and is in every topic's audience.
    """

    languages: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    frequencies: tuple[str, ...] = ()

    @property
    def everyone(self) -> bool:
        """Tell whether the audience is every active reader."""
        return not (self.languages or self.topics or self.frequencies)

    @classmethod
    def parse(
        cls,
        languages: Iterable[str] = (),
        topics: Iterable[str] = (),
        frequencies: Iterable[str] = (),
    ) -> Audience:
        """Return a checked audience, or raise InvalidInput naming the bad value."""
        langs = sorted({_primary(x) for x in languages if x.strip()})
        if len(langs) > MAX_LANGUAGES:
            raise InvalidInput(f"audience: at most {MAX_LANGUAGES} languages")
        for language in langs:
            if not _LANGUAGE.match(language):
                raise InvalidInput(f"audience: {language[:30]!r} is not a language code")
        tops = sorted({t.strip().lower() for t in topics if t.strip()})
        if len(tops) > MAX_TOPICS:
            raise InvalidInput(f"audience: at most {MAX_TOPICS} topics")
        for topic in tops:
            if len(topic) > MAX_TOPIC_LENGTH or not topic.isprintable():
                raise InvalidInput(f"audience: topic {topic[:30]!r} is too long or not text")
        freqs = sorted({f.strip().lower() for f in frequencies if f.strip()})
        for frequency in freqs:
            if frequency not in FREQUENCIES:
                raise InvalidInput(
                    f"audience: {frequency[:30]!r} is not a frequency ({', '.join(FREQUENCIES)})"
                )
        return cls(tuple(langs), tuple(tops), tuple(freqs))

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | str | None) -> Audience:
        """Return the audience stored as JSON (re-checked: the store is input too)."""
        stored: Any = json.loads(value) if isinstance(value, str) else value
        if not isinstance(stored, Mapping):
            stored = {}
        return cls.parse(
            [str(x) for x in stored.get("languages", [])],
            [str(x) for x in stored.get("topics", [])],
            [str(x) for x in stored.get("frequencies", [])],
        )

    def to_json(self) -> dict[str, list[str]]:
        """Return the audience as stored."""
        return {
            "languages": list(self.languages),
            "topics": list(self.topics),
            "frequencies": list(self.frequencies),
        }

    def matches(self, language: str | None, topics: Any, site_language: str) -> bool:
        """Tell whether a reader with this language and these topics is in the audience."""
        if self.languages and (_primary(language) or _primary(site_language)) not in (
            self.languages
        ):
            return False
        if self.topics:
            followed = _topics_of(topics)
            if followed and not set(followed).intersection(self.topics):
                return False
        return True

    def describe(self) -> str:
        """Return the audience in a few words ("everyone", "languages id; topics ekonomi")."""
        if self.everyone:
            return "everyone"
        parts = []
        for name in ("languages", "topics", "frequencies"):
            chosen = getattr(self, name)
            if chosen:
                parts.append(f"{name} {', '.join(chosen)}")
        return "; ".join(parts)


async def members(
    session: AsyncSession,
    audience: Audience,
    *,
    confirmed_before: datetime,
    site_language: str,
    after_id: int,
    limit: int,
) -> tuple[list[sa.Row[Any]], int]:
    """Return the next batch of the audience (id, email, language, timezone) after ``after_id``.

    Only active readers who confirmed before ``confirmed_before``; pending, unsubscribed,
    bounced and complained readers never are. Also returns the last id read, to page on
    (0 when the table has no more rows).
    """
    query = (
        sa.select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.language,
            Subscriber.timezone,
            Subscriber.topics,
        )
        .where(Subscriber.id > after_id)
        .where(Subscriber.status == ACTIVE)
        .where(Subscriber.confirmed_at.is_not(None))
        .where(Subscriber.confirmed_at < confirmed_before)
        .order_by(Subscriber.id)
        .limit(limit)
    )
    if audience.frequencies:
        query = query.where(Subscriber.frequency.in_(audience.frequencies))
    rows = list((await session.execute(query)).all())
    last = rows[-1].id if rows else 0
    chosen = [r for r in rows if audience.matches(r.language, r.topics, site_language)]
    return chosen, last


async def count(
    session: AsyncSession,
    audience: Audience,
    *,
    confirmed_before: datetime,
    site_language: str,
    batch: int = 5000,
) -> int:
    """Count the readers an announcement to ``audience`` would go to now (unsuppressed)."""
    total = 0
    after = 0
    while True:
        rows, after = await members(
            session,
            audience,
            confirmed_before=confirmed_before,
            site_language=site_language,
            after_id=after,
            limit=batch,
        )
        hashes = {row.id: suppression.email_hash(row.email) for row in rows}
        blocked = await suppression.suppressed_among(session, hashes.values())
        total += sum(1 for row in rows if hashes[row.id] not in blocked)
        if not after:
            return total
