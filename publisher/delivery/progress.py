"""How far editions have got: pages of editions with their outbox counts by status."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from publisher.db import transaction
from publisher.delivery.models import Edition, EditionVariant
from publisher.delivery.store import edition_counts
from publisher.site import Site


@dataclass
class Progress:
    """One edition, its messages by outbox status, and its variants' languages."""

    edition: Edition
    counts: Counter[str] = field(default_factory=Counter)
    languages: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Return how many messages the edition has."""
        return sum(self.counts.values())


async def progress_page(site: Site, limit: int, before_id: int | None = None) -> list[Progress]:
    """Return up to ``limit`` editions older than ``before_id``, newest first, with counts.

    One query for the editions, one over their tallies and one for their languages.
    """
    async with transaction(site.engine) as session:
        query = sa.select(Edition).order_by(Edition.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(Edition.id < before_id)
        editions = list(await session.scalars(query))
        found = {e.id: Progress(e) for e in editions}
        if not found:
            return []
        for edition_id, counts in (await edition_counts(session, list(found))).items():
            found[edition_id].counts = counts
        variants = await session.execute(
            sa.select(EditionVariant.edition_id, EditionVariant.language)
            .where(EditionVariant.edition_id.in_(list(found)))
            .order_by(EditionVariant.id)
        )
        for edition_id, language in variants.tuples():
            if language not in found[edition_id].languages:
                found[edition_id].languages.append(language)
    return [found[e.id] for e in editions]


async def progress_of(site: Site, period_key: str) -> Progress | None:
    """Return one edition's progress by its period key (``daily:2026-11-25``)."""
    async with transaction(site.engine) as session:
        edition_id = await session.scalar(
            sa.select(Edition.id).where(Edition.period_key == period_key)
        )
    if edition_id is None:
        return None
    found = await progress_page(site, 1, before_id=edition_id + 1)
    return found[0] if found else None
