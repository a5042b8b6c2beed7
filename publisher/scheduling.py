"""The scheduler process: APScheduler (its only import), the process lock and the digest tick.

`publisher schedule run` is a lock plus two interval jobs calling pure work: it takes
the one-scheduler-per-database lock (publisher.locks: a file beside a SQLite
database, a PostgreSQL advisory lock otherwise), then an in-memory AsyncIOScheduler
fires the digest tick every planning.TICK and, with [[sources]], the feed import.

No job store is persisted: a job's next run is a pure function of the clock (ticks
are counted from planning.TICK_EPOCH), a start runs every job once at once, and
idempotency lives in the data, not in the scheduler: an edition per (frequency, local
date) and one outbox row per (edition, subscriber), so a double firing, a restart or
a clock jump re-queues nobody who already has today's digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from publisher import db, metrics, planning
from publisher.config import Settings
from publisher.content.models import PUBLISHED, Article
from publisher.content.publishing import publish_due
from publisher.delivery import announcements, store
from publisher.delivery.editions import DEFAULT_WINDOW, EnqueueReport, enqueue, open_edition
from publisher.delivery.worker import DeliveryReport, deliver
from publisher.errors import LockBusy, LockedError
from publisher.feeds.websub import Pinger
from publisher.ingest.sources import SourcesReport, follow_sources
from publisher.locks import AdvisoryLock, FileLock, HeldLock, lock_file
from publisher.site import Site
from subscribers import repository

log = logging.getLogger(__name__)

TICK_JOB = "digest-tick"
SOURCES_JOB = "follow-sources"
SOURCES_EVERY = timedelta(minutes=30)
#: How late a tick may still run after the event loop was held up; the tick
#: itself catches up on anything due today, so this only avoids a lost run.
MISFIRE_GRACE = timedelta(hours=6)
#: The scheduler lock of a SQLite site: this file beside the database.
LOCK_SUFFIX = ".scheduler.lock"
#: The scheduler lock on PostgreSQL: advisory key b"pubsched" as a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"pubsched", "big", signed=True)


# -- the process lock ---------------------------------------------------------


def lock_file_for(settings: Settings) -> Path:
    """Return the lock file a SQLite site's scheduler takes."""
    beside = lock_file(settings.database.url, LOCK_SUFFIX)
    return beside or settings.base_dir / ".publisher-scheduler.lock"


async def take_lock(site: Site) -> HeldLock:
    """Take the scheduler lock for this site's database, or raise LockedError at once."""
    sqlite = db.is_sqlite(site.settings.database.url)
    try:
        if sqlite:
            return FileLock.take(lock_file_for(site.settings), f"pid {os.getpid()}")
        return await AdvisoryLock.take(site.engine, ADVISORY_KEY)
    except LockBusy as busy:
        raise LockedError(
            f"another scheduler is already running for this {'site' if sqlite else 'database'} "
            f"({busy.where} held by {busy.holder}); stop it first"
        ) from None


# -- the digest tick -----------------------------------------------------------


@dataclass
class GroupResult:
    """What one due (frequency, local date, zones) group queued."""

    group: planning.DueGroup
    #: None when nobody in the group could be queued (no edition was opened).
    edition_id: int | None
    enqueued: EnqueueReport | None


@dataclass
class TickReport:
    """What one tick found due, queued and delivered."""

    now: datetime
    groups: list[GroupResult] = field(default_factory=list)
    #: Slugs of scheduled drafts this tick published.
    published: list[str] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    note: str = ""
    #: One line per announcement that had readers written this tick.
    announcements: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Describe the tick in one line."""
        if not self.groups:
            due = "nothing due"
        else:
            due = "; ".join(
                f"{result.group.period_key} [{', '.join(result.group.timezones)}] "
                + (
                    "nobody pending"
                    if result.enqueued is None
                    else f"{result.enqueued.queued} queued"
                )
                for result in self.groups
            )
        if self.published:
            due += f"; published {', '.join(self.published)}"
        if self.announcements:
            due += "; " + "; ".join(self.announcements)
        if self.delivery is not None:
            due += f"; delivery: {self.delivery}"
        if self.note:
            due += f"; {self.note}"
        return f"tick {self.now:%Y-%m-%d %H:%M} UTC: {due}"


def schedule_for(settings: Settings) -> planning.Schedule:
    """Return the digest timetable the settings ask for."""
    return planning.Schedule(
        send_time=settings.digest.send_time, weekly_day=settings.digest.weekly_day
    )


async def _zone_rows(site: Site) -> list[tuple[str, str, str, int]]:
    """Return (frequency, stored zone, effective zone, active count) rows."""
    site_zone = site.settings.site.timezone
    async with db.transaction(site.engine) as session:
        rows = await repository.active_counts(session)
    return [
        (frequency, stored, planning.effective_zone(stored, site_zone), int(count))
        for frequency, stored, count in rows
        if frequency in planning.FREQUENCIES
    ]


async def subscriber_zones(site: Site) -> dict[tuple[str, str], int]:
    """Count active subscribers per (frequency, effective time zone)."""
    counts: dict[tuple[str, str], int] = {}
    for frequency, _stored, effective, count in await _zone_rows(site):
        counts[(frequency, effective)] = counts.get((frequency, effective), 0) + count
    return counts


async def _may_have_readers(site: Site, group: planning.DueGroup, stored: set[str]) -> bool:
    """Tell whether anyone in the group could still be queued (a cheap superset check).

    Looks for an active reader of these zones who joined before the send time, are not
    in the edition yet and whose window holds at least one published article
    (topics and languages left to enqueue). False means enqueue would queue nobody,
    so an idle tick costs two small queries instead of a pass over every reader.
    """
    async with db.transaction(site.engine) as session:
        newest = await session.scalar(
            sa.select(sa.func.max(Article.published_at))
            .where(Article.status == PUBLISHED)
            .where(Article.published_at <= group.send_at)
        )
        if newest is None:
            return False
        # A first digest looks back a default window; later ones since the last.
        return await repository.any_due(
            session,
            frequency=group.frequency,
            timezones=stored,
            joined_before=group.send_at,
            newest=newest,
            never_sent_too=newest > group.send_at - DEFAULT_WINDOW[group.frequency],
            excluded=store.edition_subscribers(group.period_key),
        )


async def run_tick(
    site: Site, *, now: datetime | None = None, stop: asyncio.Event | None = None
) -> TickReport:
    """Queue every zone whose local send time has passed today, then deliver.

    Safe to call at any time and any number of times: it reads the clock once,
    and the edition per local date plus the outbox's (edition, subscriber)
    constraint make a repeated call queue nobody twice. Each zone group is queued
    as of its own send instant, so a late tick sends what an on-time one would have.
    """
    now = now or site.clock.now()
    report = TickReport(now=now)
    # First, so a draft scheduled before a zone's send time is in that zone's digest.
    report.published = await publish_due(site.engine, site.settings.site.base_url, now)
    zones: dict[str, set[str]] = {}
    stored: dict[tuple[str, str], set[str]] = {}
    for frequency, stored_zone, effective, _count in await _zone_rows(site):
        zones.setdefault(frequency, set()).add(effective)
        stored.setdefault((frequency, effective), set()).add(stored_zone)
    for group in planning.due_groups(now, zones, schedule_for(site.settings)):
        names = set().union(*(stored[(group.frequency, name)] for name in group.timezones))
        if not await _may_have_readers(site, group, names):
            report.groups.append(GroupResult(group, None, None))
            continue
        edition = await open_edition(site, group.frequency, group.local_date, now)
        queued = await enqueue(site, edition, group.send_at, timezones=list(group.timezones))
        report.groups.append(GroupResult(group, edition.id, queued))
    # Announcements sent at a local time: each zone whose time has come (same tick rule).
    report.announcements = await announcements.run_due(site, now)
    try:
        report.delivery = await deliver(site, stop=stop, until_idle=True)
    except LockedError as exc:
        # Another sender (a `publisher worker`, a `digest send`) holds the SQLite
        # outbox; it delivers what was just queued.
        report.note = str(exc)
    return report


# -- the APScheduler wiring ----------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """One recurring job: its name, how often it runs and what it does."""

    id: str
    every: timedelta
    description: str

    def trigger(self) -> IntervalTrigger:
        """Return the trigger: every ``every``, counted from the tick epoch (UTC)."""
        return IntervalTrigger(
            seconds=self.every.total_seconds(), start_date=planning.TICK_EPOCH, timezone=UTC
        )

    def next_run(self, now: datetime) -> datetime:
        """Return when the job fires next, at or after ``now``."""
        when: datetime | None = self.trigger().get_next_fire_time(None, now)
        assert when is not None  # an interval trigger without an end always fires again
        return when


def job_specs(settings: Settings) -> list[JobSpec]:
    """List the jobs a scheduler for these settings runs."""
    specs = [
        JobSpec(
            TICK_JOB,
            planning.TICK,
            "queue and send the digests of zones past their local send time",
        )
    ]
    if settings.sources:
        specs.append(
            JobSpec(
                SOURCES_JOB,
                SOURCES_EVERY,
                f"import new entries from the {len(settings.sources)} followed [[sources]] feeds",
            )
        )
    return specs


class ScheduleRunner:
    """Run the scheduler for one site: the lock, the jobs and a clean stop."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stopping = asyncio.Event()
        # The latest reports only: the process runs for months.
        self.ticks: deque[TickReport] = deque(maxlen=100)
        self.source_runs: deque[SourcesReport] = deque(maxlen=100)
        self.pinger = Pinger(site.settings)
        #: Why the scheduler stopped on its own (its lock was lost), if it did.
        self.lost: LockedError | None = None
        self._specs = job_specs(site.settings)
        self._work: dict[str, Callable[[], Awaitable[None]]] = {
            TICK_JOB: self.tick,
            SOURCES_JOB: self.follow_sources,
        }
        self._lock: HeldLock | None = None
        self._scheduler: AsyncIOScheduler | None = None
        #: Job runs under way (scheduled or at start), so a stop can wait for them.
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()

    async def start(self) -> None:
        """Take the lock, start the jobs on their schedule and run each once now."""
        self._lock = await take_lock(self.site)
        scheduler = AsyncIOScheduler(
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
            },
            timezone=UTC,
        )
        try:
            for spec in self._specs:
                scheduler.add_job(
                    self.run_job, spec.trigger(), args=[spec.id], id=spec.id, name=spec.description
                )
            scheduler.start()
        except BaseException:
            await self.stop()
            raise
        self._scheduler = scheduler
        # Every job also runs once now, off its grid (which stays on the quarter hours):
        # a scheduler that was down at someone's 07:00 sends at once, and followed feeds
        # are fresh.
        for spec in self._specs:
            self._tasks.add(asyncio.create_task(self.run_job(spec.id), name=f"start {spec.id}"))
        log.info("scheduler started (%s); stop with SIGTERM or Ctrl-C", self._lock.description)
        for job_id, when in self.next_runs().items():
            log.info("job %s: next run %s", job_id, when)

    async def run_job(self, job_id: str) -> None:
        """Run one job unless stopping or already running; stop if the lock was lost."""
        if self.stopping.is_set() or job_id in self._busy or self._lock is None:
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._busy.add(job_id)
        try:
            try:
                await self._lock.verify()
            except LockedError as exc:
                # Without the lock another scheduler may start: stop rather than race it.
                log.error("%s; stopping", exc)
                self.lost = exc
                self.stopping.set()
                return
            await self._work[job_id]()
        except Exception:
            log.exception("job %s failed", job_id)
        finally:
            self._busy.discard(job_id)
            if task is not None:
                self._tasks.discard(task)

    async def tick(self) -> None:
        """Run one digest tick against the site's clock and log what it did."""
        report = await run_tick(self.site, stop=self.stopping)
        metrics.count_tick()
        self.ticks.append(report)
        log.info("%s", report.summary())

    async def follow_sources(self) -> None:
        """Import the followed feeds; ping the WebSub hub when anything changed."""
        report = await follow_sources(self.site)
        changed = report.count("created") + report.count("updated")
        for result in ("created", "updated"):
            metrics.count_imports(result, report.count(result))
        metrics.count_imports("failed", len(report.failed))
        log.info(
            "sources: %d feeds, %d new, %d updated, %d failed",
            len(report.feeds),
            report.count("created"),
            report.count("updated"),
            len(report.failed),
        )
        for feed in report.failed:
            log.warning("source %s: %s", feed.source, feed.error)
        if changed:
            self.pinger.publish_site()
        self.source_runs.append(report)

    def next_runs(self) -> dict[str, datetime | None]:
        """Return each scheduled job's next run time."""
        if self._scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def stop(self) -> None:
        """Stop starting jobs, let running ones finish (delivery stops claiming), release."""
        self.stopping.set()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        current = asyncio.current_task()
        running = [task for task in self._tasks if task is not current]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
            # AsyncIOScheduler.shutdown runs via call_soon: let it happen.
            await asyncio.sleep(0)
        await self.pinger.aclose()
        lock, self._lock = self._lock, None
        if lock is not None:
            await lock.release()
        if scheduler is not None:
            log.info("scheduler stopped")

    async def run_until_stopped(self) -> None:
        """Start, run until SIGTERM/SIGINT (or stop()), then stop cleanly."""
        loop = asyncio.get_running_loop()
        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stopping.set)
                installed.append(signum)
        try:
            await self.start()
            await self.stopping.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            await self.stop()
        if self.lost is not None:
            raise self.lost


# -- what the schedule looks like -----------------------------------------------


@dataclass(frozen=True)
class JobInfo:
    """A scheduler job and when it runs next."""

    id: str
    description: str
    every: timedelta
    next_run: datetime


@dataclass(frozen=True)
class Overview:
    """The scheduler's jobs and the next digest send per time zone."""

    now: datetime
    jobs: list[JobInfo]
    sends: list[planning.PlannedSend]


def every_text(every: timedelta) -> str:
    """Describe an interval in words ("every 15 minutes")."""
    minutes = int(every.total_seconds() // 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "every hour" if hours == 1 else f"every {hours} hours"
    return f"every {minutes} minutes"


async def overview(site: Site, now: datetime | None = None) -> Overview:
    """Describe the jobs with their next runs, and the next sends per zone."""
    now = now or site.clock.now()
    jobs = [
        JobInfo(spec.id, spec.description, spec.every, spec.next_run(now))
        for spec in job_specs(site.settings)
    ]
    counts = await subscriber_zones(site)
    for frequency in planning.FREQUENCIES:
        # Always show the site's own zone, the one new subscribers start in.
        counts.setdefault((frequency, site.settings.site.timezone), 0)
    sends = planning.upcoming(now, counts, schedule_for(site.settings))
    return Overview(now, jobs, sends)


async def schedule_lines(site: Site, now: datetime | None = None) -> list[str]:
    """Describe in plain lines the schedule `publisher schedule run` would follow."""
    view = await overview(site, now)
    send_time = site.settings.digest.send_time.strftime("%H:%M")
    lines = [
        f"digests go out at {send_time} in each reader's own time zone "
        f"(weekly on {site.settings.digest.weekly_day}); the scheduler checks "
        f"{every_text(planning.TICK)}",
    ]
    for job in view.jobs:
        when = f"{job.next_run.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        lines.append(f"  job {job.id}: next run {when} — {job.description}")
    for plan in view.sends:
        local = plan.local_send_at
        lines.append(
            f"  {plan.frequency:<6} {plan.timezone:<20} {local:%a %Y-%m-%d %H:%M %Z} "
            f"({plan.send_at:%Y-%m-%d %H:%M} UTC): {plan.subscribers} subscriber"
            f"{'' if plan.subscribers == 1 else 's'}"
        )
    return lines
