"""Announcements: an editor's one-off emails, written to the outbox as one edition each.

An announcement has one edition ("announcement:<id>") with one variant (its language).
Its recipients are written to the outbox like a digest's, under the same (edition,
subscriber) constraint, so a repeated or concurrent enqueue (a tick, a restart, two
processes) queues nobody twice; the same worker delivers them with the same retries,
pause, rate limits, VERP and List-Unsubscribe. The audience is fixed when the send is
asked for: active readers confirmed before that moment (subscribers.audience).

A local-time send goes to each zone when that zone's wall clock reaches the time on
the date; the scheduler's tick calls ``run_due``, and once the time has come everywhere
(planning.announcement_everywhere_at) a last pass writes anyone left and the
announcement is "sending"; when its edition is done it is "sent".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from publisher import planning
from publisher.content.markdown import render_markdown
from publisher.content.sanitize import clean_line, sanitize_html
from publisher.db import is_sqlite, transaction
from publisher.delivery import store
from publisher.delivery.editions import MessageIds
from publisher.delivery.models import (
    DONE,
    OPEN,
    SENDING,
    Announcement,
    AnnouncementStatus,
    Edition,
    EditionVariant,
    SendMode,
)
from publisher.errors import InputError, NotFoundError, UsageError
from publisher.render.announcement import AnnouncementContent, TooLarge, render_announcement
from publisher.site import Site
from subscribers import audience as audiences
from subscribers import repository, suppression
from subscribers.audience import Audience
from subscribers.errors import InvalidInput

#: Limits on what an editor (or an API client) may send; see docs/security.md.
MAX_SUBJECT = 200
MAX_BODY = 50_000
#: The one variant of an announcement's edition.
VARIANT_KEY = "announcement"
#: A primary language subtag: the archive's URLs and the catalogs know no more.
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

#: Audience members read, and outbox rows written, per transaction.
BATCH_SIZE = 1000


@dataclass
class AnnouncementInput:
    """What an editor writes: subject, Markdown body, language and audience."""

    subject: str
    body_markdown: str
    language: str
    audience: Audience


def check_subject(subject: str) -> str:
    """Return the subject as stored, or raise InputError (line breaks are refused outright)."""
    if "\r" in subject or "\n" in subject:
        raise InputError("subject: line breaks are not allowed in a subject")
    cleaned = clean_line(subject)
    if not cleaned:
        raise InputError("subject: a subject is required")
    if len(cleaned) > MAX_SUBJECT:
        raise InputError(f"subject: at most {MAX_SUBJECT} characters ({len(cleaned):,} given)")
    return cleaned


def check_language(language: str) -> str:
    """Return a language tag as stored, or raise InputError."""
    tag = language.strip().lower()
    if not _LANGUAGE.match(tag):
        raise InputError(f"language: {tag[:30]!r} is not a language tag such as id or en")
    return tag.lower()


def check_time(value: str) -> time:
    """Return an "HH:MM" send time on a quarter hour (the scheduler's tick), or raise."""
    found = _TIME.match(value.strip())
    if found is None:
        raise InputError(f"send_time: {value[:20]!r} is not a time as HH:MM")
    moment = time(int(found[1]), int(found[2]))
    step = int(planning.TICK.total_seconds() // 60)
    if moment.minute % step:
        raise InputError(f"send_time: {value} is not on a quarter hour (the scheduler's tick)")
    return moment


def body_html(site: Site, body_markdown: str) -> str:
    """Render and sanitize a Markdown body as an article's is, or raise InputError."""
    if not body_markdown.strip():
        raise InputError("body_markdown: the announcement has no text")
    if len(body_markdown) > MAX_BODY:
        raise InputError(
            f"body_markdown: at most {MAX_BODY:,} characters ({len(body_markdown):,} given)"
        )
    try:
        return sanitize_html(render_markdown(body_markdown), site.settings.site.base_url)
    except InputError as exc:
        raise InputError(f"body_markdown: {exc}") from exc


def content_of(site: Site, found: Announcement, *, public: bool = False) -> AnnouncementContent:
    """Return what the renderer needs of a stored announcement."""
    day = (found.queued_at or found.created_at).astimezone(site.settings.tz).date()
    if found.send_mode == SendMode.LOCAL and found.send_date is not None:
        day = found.send_date
    return AnnouncementContent(
        subject=found.subject,
        body_html=found.body_html,
        language=found.language,
        edition_key=planning.announcement_key(found.id),
        edition_date=day,
        public=public,
    )


def _checked(site: Site, data: AnnouncementInput) -> dict[str, Any]:
    subject = check_subject(data.subject)
    html = body_html(site, data.body_markdown)
    language = check_language(data.language)
    values: dict[str, Any] = {
        "subject": subject,
        "body_markdown": data.body_markdown,
        "body_html": html,
        "language": language,
        "audience": data.audience.to_json(),
    }
    try:
        # Rendered once now so an email over the size limit is refused while it is written.
        render_announcement(
            site.settings,
            AnnouncementContent(
                subject,
                html,
                language,
                "announcement:0",
                site.clock.now().date(),
            ),
        )
    except TooLarge as exc:
        raise InputError(f"body_markdown: {exc}") from exc
    return values


def parse_audience(
    languages: list[str] | tuple[str, ...] = (),
    topics: list[str] | tuple[str, ...] = (),
    frequencies: list[str] | tuple[str, ...] = (),
) -> Audience:
    """Return a checked audience, or raise InputError naming the bad value."""
    try:
        return Audience.parse(languages, topics, frequencies)
    except InvalidInput as exc:
        raise InputError(str(exc)) from exc


async def create(site: Site, data: AnnouncementInput, author: str) -> Announcement:
    """Store a new draft, checked and sanitized, and return it."""
    values = _checked(site, data)
    now = site.clock.now()
    async with transaction(site.engine) as session:
        found = Announcement(
            **values,
            status=AnnouncementStatus.DRAFT,
            send_mode=SendMode.NOW,
            send_time="",
            zones_queued=[],
            author=author[:320],
            created_at=now,
            updated_at=now,
        )
        session.add(found)
        await session.flush()
    return found


async def update(site: Site, announcement_id: int, data: AnnouncementInput) -> Announcement:
    """Change a draft's subject, body, language or audience (only a draft changes)."""
    values = _checked(site, data)
    async with transaction(site.engine) as session:
        found = await session.get(Announcement, announcement_id, with_for_update=True)
        if found is None:
            raise NotFoundError(f"no announcement {announcement_id}")
        if found.status != AnnouncementStatus.DRAFT:
            raise UsageError(
                f"announcement {announcement_id} is {found.status}: only drafts change"
            )
        for name, value in values.items():
            setattr(found, name, value)
        found.updated_at = site.clock.now()
    return found


async def get(site: Site, announcement_id: int) -> Announcement:
    """Return one announcement (its status brought up to date), or raise NotFoundError."""
    await sync_finished(site)
    async with transaction(site.engine) as session:
        found = await session.get(Announcement, announcement_id)
    if found is None:
        raise NotFoundError(f"no announcement {announcement_id}")
    return found


async def page(site: Site, limit: int, before_id: int | None = None) -> list[Announcement]:
    """Return up to ``limit`` announcements older than ``before_id``, newest first."""
    await sync_finished(site)
    query = sa.select(Announcement).order_by(Announcement.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Announcement.id < before_id)
    async with transaction(site.engine) as session:
        return list(await session.scalars(query))


def audience_of(found: Announcement) -> Audience:
    """Return the stored audience of an announcement."""
    return Audience.from_json(found.audience)


async def audience_size(site: Site, chosen: Audience) -> int:
    """Count the readers an announcement to ``chosen`` would reach if sent now."""
    async with transaction(site.engine) as session:
        return await audiences.count(
            session,
            chosen,
            confirmed_before=site.clock.now(),
            site_language=site.settings.site.language,
        )


async def send(
    site: Site,
    announcement_id: int,
    *,
    at_local: tuple[date, str] | None = None,
) -> Announcement:
    """Send a draft now, or schedule it for a local date and time in each reader's zone.

    Now: every recipient is written to the outbox at once (the worker delivers them).
    Local: the zones whose time has come are written at once, the rest by the ticks.
    """
    await sync_finished(site)
    now = site.clock.now()
    send_date: date | None = None
    send_time = ""
    if at_local is not None:
        send_date, raw_time = at_local
        moment = check_time(raw_time)
        send_time = moment.strftime("%H:%M")
        if now >= planning.announcement_everywhere_at(send_date, moment):
            raise InputError(
                f"send_at: {send_date} {send_time} has already passed in every time zone"
            )
    async with transaction(site.engine) as session:
        found = await session.get(Announcement, announcement_id, with_for_update=True)
        if found is None:
            raise NotFoundError(f"no announcement {announcement_id}")
        if found.status != AnnouncementStatus.DRAFT:
            raise UsageError(
                f"announcement {announcement_id} is {found.status}: only a draft can be sent"
            )
        found.send_mode = SendMode.LOCAL if at_local is not None else SendMode.NOW
        found.send_date = send_date
        found.send_time = send_time
        found.status = (
            AnnouncementStatus.SCHEDULED if at_local is not None else AnnouncementStatus.SENDING
        )
        found.queued_at = now
        found.updated_at = now
    await advance(site, found, now)
    return await get(site, announcement_id)


async def cancel(site: Site, announcement_id: int) -> Announcement:
    """Cancel a draft or a scheduled announcement before any of it was queued."""
    await sync_finished(site)
    async with transaction(site.engine) as session:
        found = await session.get(Announcement, announcement_id, with_for_update=True)
        if found is None:
            raise NotFoundError(f"no announcement {announcement_id}")
        if found.status not in (AnnouncementStatus.DRAFT, AnnouncementStatus.SCHEDULED):
            raise UsageError(
                f"announcement {announcement_id} is {found.status}: too late to cancel"
            )
        if found.edition_id is not None:
            key = planning.announcement_key(found.id)
            raise UsageError(
                f"announcement {announcement_id} is already going out in some time zones; "
                f"pause its edition {key} instead"
            )
        found.status = AnnouncementStatus.CANCELLED
        found.updated_at = site.clock.now()
    return found


# -- writing recipients ------------------------------------------------------------------


async def run_due(site: Site, now: datetime) -> list[str]:
    """Write the recipients of every announcement due at ``now``; return one line for each.

    The scheduler tick calls this; so does a worker starting (to finish a send that a
    crash interrupted). Repeating it is harmless: nobody is queued twice.
    """
    await sync_finished(site)
    async with transaction(site.engine) as session:
        due = list(
            await session.scalars(
                sa.select(Announcement)
                .where(
                    sa.or_(
                        Announcement.status == AnnouncementStatus.SCHEDULED,
                        sa.and_(
                            Announcement.status == AnnouncementStatus.SENDING,
                            Announcement.enqueued_at.is_(None),
                        ),
                    )
                )
                .order_by(Announcement.id)
            )
        )
    return [line for found in due if (line := await advance(site, found, now))]


async def advance(site: Site, found: Announcement, now: datetime) -> str:
    """Write what is due of one announcement's recipients; return what was done, if anything."""
    if found.status == AnnouncementStatus.SCHEDULED:
        assert found.send_date is not None
        moment = check_time(found.send_time)
        if now < planning.announcement_everywhere_at(found.send_date, moment):
            done = set(_zone_list(found.zones_queued))
            zones = planning.announcement_zones_due(
                found.send_date, moment, await _zones_in_use(site) - done, now
            )
            if not zones:
                return ""
            queued = await _enqueue(site, found, now, zones)
            # Remembered so later ticks read only the readers of zones due since; anyone
            # who moved into a zone already done is caught by the last pass.
            found.zones_queued = sorted(done | zones)
            async with transaction(site.engine) as session:
                await session.execute(
                    sa.update(Announcement)
                    .where(Announcement.id == found.id)
                    .values(zones_queued=found.zones_queued, updated_at=now)
                )
            return f"announcement {found.id} [{', '.join(sorted(zones))}]: {queued} queued"
        async with transaction(site.engine) as session:
            await session.execute(
                sa.update(Announcement)
                .where(Announcement.id == found.id)
                .where(Announcement.status == AnnouncementStatus.SCHEDULED)
                .values(status=AnnouncementStatus.SENDING, updated_at=now)
            )
        found.status = AnnouncementStatus.SENDING
    if found.status != AnnouncementStatus.SENDING or found.enqueued_at is not None:
        return ""
    queued = await _enqueue(site, found, now, None)
    async with transaction(site.engine) as session:
        await session.execute(
            sa.update(Announcement)
            .where(Announcement.id == found.id)
            .where(Announcement.enqueued_at.is_(None))
            .values(enqueued_at=now, updated_at=now)
        )
    found.enqueued_at = now
    return f"announcement {found.id}: {queued} queued"


def _zone_list(value: Any) -> list[str]:
    if isinstance(value, str):  # some drivers hand JSON back as text
        value = json.loads(value)
    return [str(z) for z in value or []]


async def _zones_in_use(site: Site) -> set[str]:
    site_zone = site.settings.site.timezone
    async with transaction(site.engine) as session:
        rows = await repository.active_counts(session)
    return {planning.effective_zone(stored, site_zone) for _f, stored, _n in rows} | {site_zone}


async def _enqueue(site: Site, found: Announcement, now: datetime, zones: set[str] | None) -> int:
    """Write the audience (of ``zones``, or all) to the outbox in batches; return how many."""
    edition_id, variant_id = await _edition(site, found, now)
    chosen = Audience.from_json(found.audience)
    cutoff = found.queued_at or now
    key = planning.announcement_key(found.id)
    ids = MessageIds(site, key)
    site_zone = site.settings.site.timezone
    queued = 0
    after = 0
    while True:
        async with transaction(site.engine) as session:
            batch, after = await audiences.members(
                session,
                chosen,
                confirmed_before=cutoff,
                site_language=site.settings.site.language,
                after_id=after,
                limit=BATCH_SIZE,
            )
            if zones is not None:
                batch = [
                    r for r in batch if planning.effective_zone(r.timezone, site_zone) in zones
                ]
            hashes = {row.id: suppression.email_hash(row.email) for row in batch}
            blocked = await suppression.suppressed_among(session, hashes.values())
            existing = await store.queued_among(session, edition_id, [r.id for r in batch])
            rows = [
                {
                    "edition_id": edition_id,
                    "variant_id": variant_id,
                    "subscriber_id": row.id,
                    "email": row.email,
                    "message_id": ids(row.id),
                }
                for row in batch
                if hashes[row.id] not in blocked and row.id not in existing
            ]
            if rows:
                await store.queue_announcements(session, rows, now)
                queued += len(rows)
        if not after:
            break
    if queued or zones is None:
        # Sending again: the worker closes the edition once these rows are final.
        async with transaction(site.engine) as session:
            await session.execute(
                sa.update(Edition)
                .where(Edition.id == edition_id)
                .where(Edition.status.in_((OPEN, DONE)))
                .values(status=SENDING, finished_at=None, window_end=now)
            )
    return queued


async def _edition(site: Site, found: Announcement, now: datetime) -> tuple[int, int]:
    """Return (edition id, variant id) of the announcement, creating them once."""
    key = planning.announcement_key(found.id)
    edition_id: int | None = None
    for _ in range(2):
        async with transaction(site.engine) as session:
            edition_id = await session.scalar(
                sa.select(Edition.id).where(Edition.period_key == key)
            )
        if edition_id is not None:
            break
        try:
            async with transaction(site.engine) as session:
                edition = Edition(
                    period_key=key,
                    frequency=planning.ANNOUNCEMENT,
                    status=OPEN,
                    window_end=now,
                    created_at=now,
                    last_error="",
                )
                session.add(edition)
                await session.flush()
                edition_id = edition.id
            break
        except IntegrityError:
            continue  # another process opened it a moment ago; read theirs
    if edition_id is None:
        raise RuntimeError(f"edition {key} could neither be created nor read")
    values = {
        "edition_id": edition_id,
        "variant_key": VARIANT_KEY,
        "language": found.language,
        "article_ids": [],
        "more_count": 0,
    }
    statement = (
        sqlite.insert(EditionVariant)
        if is_sqlite(site.settings.database.url)
        else postgresql.insert(EditionVariant)
    )
    async with transaction(site.engine) as session:
        await session.execute(statement.values(values).on_conflict_do_nothing())
        variant_id = await session.scalar(
            sa.select(EditionVariant.id)
            .where(EditionVariant.edition_id == edition_id)
            .where(EditionVariant.variant_key == VARIANT_KEY)
        )
        await session.execute(
            sa.update(Announcement).where(Announcement.id == found.id).values(edition_id=edition_id)
        )
    found.edition_id = edition_id
    return edition_id, int(variant_id or 0)


async def sync_finished(site: Site) -> None:
    """Mark announcements whose edition the worker finished as sent."""
    async with transaction(site.engine) as session:
        rows = (
            await session.execute(
                sa.select(Announcement.id, Edition.finished_at)
                .join(Edition, Edition.id == Announcement.edition_id)
                .where(Announcement.status == AnnouncementStatus.SENDING)
                .where(Announcement.enqueued_at.is_not(None))
                .where(Edition.status == DONE)
            )
        ).all()
        for announcement_id, finished_at in rows:
            await session.execute(
                sa.update(Announcement)
                .where(Announcement.id == announcement_id)
                .where(Announcement.status == AnnouncementStatus.SENDING)
                .values(status=AnnouncementStatus.SENT, sent_at=finished_at)
            )


async def for_edition(site: Site, edition_id: int) -> Announcement | None:
    """Return the announcement an edition carries (None for a digest edition)."""
    async with transaction(site.engine) as session:
        found: Announcement | None = await session.scalar(
            sa.select(Announcement).where(Announcement.edition_id == edition_id)
        )
    return found


async def by_key(site: Site, period_key: str) -> Announcement | None:
    """Return the announcement an edition key names ("announcement:12"), if any."""
    prefix, _, number = period_key.partition(":")
    if prefix != planning.ANNOUNCEMENT or not number.isdigit() or len(number) > 18:
        return None
    async with transaction(site.engine) as session:
        found: Announcement | None = await session.get(Announcement, int(number))
    return found
