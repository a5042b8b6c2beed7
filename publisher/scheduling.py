"""The scheduler process: APScheduler (its only import), the process lock and the digest tick.

`publisher schedule run` keeps one AsyncIOScheduler whose jobs live in the
site's database (SQLAlchemyJobStore). APScheduler forbids two schedulers on one
job store, so the process first takes a lock: a PostgreSQL advisory lock held
on a dedicated connection, or an flock()ed file beside the SQLite database.

Every 15 minutes the digest tick asks publisher.planning which time zones have
reached their local send time today, opens that local date's edition, queues
the readers of those zones and delivers. Idempotency lives in the data, not in
the scheduler: an edition per (frequency, local date) and one outbox row per
(edition, subscriber), so a double firing, a restart or a clock jump re-queues
nobody who already has today's digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from publisher import db, metrics, planning
from publisher.config import Settings
from publisher.content.models import PUBLISHED, Article
from publisher.delivery.editions import DEFAULT_WINDOW, EnqueueReport, enqueue, open_edition
from publisher.delivery.models import Edition, OutboxRow
from publisher.delivery.worker import DeliveryReport, deliver
from publisher.errors import LockedError, StoreError
from publisher.feeds.websub import Pinger
from publisher.ingest.sources import SourcesReport, follow_sources
from publisher.site import Site
from subscribers.models import ACTIVE, Subscriber

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
TICK_JOB = "digest-tick"
SOURCES_JOB = "follow-sources"
SOURCES_EVERY = timedelta(minutes=30)
#: How late a tick may still run after the event loop was held up; the tick
#: itself catches up on anything due today, so this only avoids a lost run.
MISFIRE_GRACE = timedelta(hours=6)
#: Quarter hours counted from here, so ticks land on :00, :15, :30 and :45 UTC.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: pg_try_advisory_lock key: b"pubsched" as a signed 64-bit integer.
ADVISORY_KEY = int.from_bytes(b"pubsched", "big", signed=True)


# -- the process lock ---------------------------------------------------------


class SchedulerLock:
    """Hold the one-scheduler-per-database lock until released."""

    def __init__(self, description: str, release: Callable[[], None], check: Callable[[], None]):
        self.description = description
        self._release = release
        self._check = check
        self._held = True

    def verify(self) -> None:
        """Raise LockedError if the lock has been lost (e.g. the database connection died)."""
        if not self._held:
            raise LockedError(f"scheduler lock released: {self.description}")
        self._check()

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._held:
            self._held = False
            self._release()

    def __enter__(self) -> SchedulerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_file_for(settings: Settings) -> Path:
    """Return the lock file a SQLite site's scheduler takes."""
    path = db.sqlite_path(settings.database.url)
    if path is None:
        return settings.base_dir / ".publisher-scheduler.lock"
    return path.with_name(path.name + ".scheduler.lock")


def acquire_lock(settings: Settings) -> SchedulerLock:
    """Take the scheduler lock for this site's database, or raise LockedError at once."""
    if db.is_sqlite(settings.database.url):
        return _acquire_file_lock(lock_file_for(settings))
    return _acquire_advisory_lock(settings.database.url)


def _acquire_file_lock(path: Path) -> SchedulerLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockedError(
                f"another scheduler is already running for this site "
                f"(lock file {path} held by pid {holder}); stop it first"
            ) from None
        raise LockedError(f"{path}: cannot lock: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)

    def release() -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    return SchedulerLock(f"lock file {path}", release, lambda: None)


def _acquire_advisory_lock(url: str) -> SchedulerLock:
    engine = db.create_sync_engine(url, poolclass=NullPool)
    connection: Connection | None = None
    try:
        # A dedicated connection: the advisory lock lives exactly as long as it does.
        connection = engine.connect()
        got = connection.execute(
            sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_KEY}
        ).scalar_one()
        connection.commit()
        if not got:
            holder = connection.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND classid = :high AND objid = :low AND objsubid = 1 "
                    "AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"high": (ADVISORY_KEY >> 32) & 0xFFFFFFFF, "low": ADVISORY_KEY & 0xFFFFFFFF},
            ).scalar()
            raise LockedError(
                "another scheduler is already running for this database "
                f"(PostgreSQL advisory lock {ADVISORY_KEY} held by backend pid "
                f"{holder or 'unknown'}); stop it first"
            )
    except SQLAlchemyError as exc:
        _close_quietly(connection, engine)
        raise StoreError(f"scheduler lock: {exc.__class__.__name__}: {exc}") from exc
    except LockedError:
        _close_quietly(connection, engine)
        raise
    held = connection

    def check() -> None:
        try:
            held.execute(sa.text("SELECT 1")).scalar_one()
            held.commit()
        except SQLAlchemyError as exc:
            raise LockedError(f"scheduler lock connection lost: {exc}") from exc

    def release() -> None:
        with contextlib.suppress(SQLAlchemyError):
            held.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
            held.commit()
        _close_quietly(held, engine)

    return SchedulerLock(f"PostgreSQL advisory lock {ADVISORY_KEY}", release, check)


def _close_quietly(connection: Connection | None, engine: Engine) -> None:
    with contextlib.suppress(SQLAlchemyError):
        if connection is not None:
            connection.close()
    engine.dispose()


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
    delivery: DeliveryReport | None = None
    note: str = ""

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
    statement = (
        sa.select(Subscriber.frequency, Subscriber.timezone, sa.func.count())
        .where(Subscriber.status == ACTIVE)
        .group_by(Subscriber.frequency, Subscriber.timezone)
    )
    async with db.transaction(site.engine) as session:
        rows = (await session.execute(statement)).all()
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
        window_holds_news = Subscriber.last_digest_at < newest
        if newest > group.send_at - DEFAULT_WINDOW[group.frequency]:
            window_holds_news = sa.or_(window_holds_news, Subscriber.last_digest_at.is_(None))
        already = (
            sa.select(OutboxRow.id)
            .join(Edition, Edition.id == OutboxRow.edition_id)
            .where(Edition.period_key == group.period_key)
            .where(OutboxRow.subscriber_id == Subscriber.id)
        )
        pending = await session.scalar(
            sa.select(Subscriber.id)
            .where(Subscriber.status == ACTIVE)
            .where(Subscriber.frequency == group.frequency)
            .where(Subscriber.timezone.in_(sorted(stored)))
            .where(Subscriber.created_at < group.send_at)
            .where(window_holds_news)
            .where(~already.exists())
            .limit(1)
        )
        return pending is not None


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
    """One recurring job: a picklable reference to a module-level coroutine and its trigger."""

    id: str
    func_ref: str
    trigger: IntervalTrigger
    description: str


def job_specs(settings: Settings) -> list[JobSpec]:
    """List the jobs a scheduler for these settings runs."""
    specs = [
        JobSpec(
            TICK_JOB,
            f"{__name__}:digest_tick_job",
            IntervalTrigger(minutes=15, start_date=_EPOCH, timezone=UTC),
            "queue and send the digests of zones past their local send time",
        )
    ]
    if settings.sources:
        specs.append(
            JobSpec(
                SOURCES_JOB,
                f"{__name__}:follow_sources_job",
                IntervalTrigger(
                    seconds=SOURCES_EVERY.total_seconds(), start_date=_EPOCH, timezone=UTC
                ),
                f"import new entries from the {len(settings.sources)} followed [[sources]] feeds",
            )
        )
    return specs


_runner: ScheduleRunner | None = None


def _active_runner() -> ScheduleRunner:
    if _runner is None:
        raise RuntimeError("no scheduler is running in this process")
    return _runner


async def digest_tick_job() -> None:
    """Run the digest tick of this process's scheduler (the job store keeps this reference)."""
    await _active_runner().guarded(_active_runner().tick)


async def follow_sources_job() -> None:
    """Import new entries from the followed [[sources]] feeds of this process's scheduler."""
    await _active_runner().guarded(_active_runner().follow_sources)


class ScheduleRunner:
    """Run the scheduler for one site: lock, job store, jobs and a clean stop."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.stopping = asyncio.Event()
        # The latest reports only: the process runs for months.
        self.ticks: deque[TickReport] = deque(maxlen=100)
        self.source_runs: deque[SourcesReport] = deque(maxlen=100)
        self.pinger = Pinger(site.settings)
        self._lock: SchedulerLock | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._engine: Engine | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._tick_lock = asyncio.Lock()
        self._startup: list[asyncio.Task[None]] = []
        #: Why the scheduler stopped on its own (its lock was lost), if it did.
        self.lost: LockedError | None = None

    async def start(self) -> None:
        """Take the lock, load the stored jobs, align them with the settings and start."""
        global _runner
        if _runner is not None:
            raise LockedError("a scheduler is already running in this process")
        self._lock = acquire_lock(self.site.settings)
        try:
            self._engine = db.create_sync_engine(self.site.settings.database.url)
            scheduler = AsyncIOScheduler(
                jobstores={
                    "default": SQLAlchemyJobStore(engine=self._engine, tablename=JOBS_TABLE)
                },
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
                },
                timezone=UTC,
            )
            # Paused first: stored jobs are loaded, compared and fixed before any runs.
            scheduler.start(paused=True)
            self._scheduler = scheduler
            _runner = self
            self._sync_jobs()
            scheduler.resume()
        except BaseException:
            await self._teardown()
            raise
        # Run every job once now, outside the stored schedule (whose quarter-hour
        # alignment stays intact): a scheduler that was down at someone's 07:00
        # sends at once, and followed feeds are fresh.
        self._startup = [
            asyncio.create_task(digest_tick_job(), name="startup digest tick"),
            *(
                [asyncio.create_task(follow_sources_job(), name="startup sources")]
                if self.site.settings.sources
                else []
            ),
        ]
        log.info("scheduler started (%s); stop with SIGTERM or Ctrl-C", self._lock.description)
        for job_id, when in self.next_runs().items():
            log.info("job %s: next run %s", job_id, when)

    def _sync_jobs(self) -> None:
        assert self._scheduler is not None
        wanted = {spec.id: spec for spec in job_specs(self.site.settings)}
        for job in self._scheduler.get_jobs():
            if job.id not in wanted:
                self._scheduler.remove_job(job.id)
        for spec in wanted.values():
            existing = self._scheduler.get_job(spec.id)
            if (
                existing is not None
                and existing.func_ref == spec.func_ref
                and str(existing.trigger) == str(spec.trigger)
            ):
                # Keep the stored job (and its next run time) as it is.
                continue
            self._scheduler.add_job(
                spec.func_ref,
                trigger=spec.trigger,
                id=spec.id,
                name=spec.description,
                replace_existing=True,
            )

    async def guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run a job body unless stopping, tracked so a stop waits for it to finish."""
        if self.stopping.is_set():
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            assert self._lock is not None
            try:
                self._lock.verify()
            except LockedError as exc:
                # Without the lock another scheduler may start: stop rather than race it.
                log.error("%s; stopping", exc)
                self.lost = exc
                self.stopping.set()
                return
            await work()
        except Exception:
            log.exception("scheduled job failed")
        finally:
            if task is not None:
                self._running.discard(task)

    async def tick(self) -> None:
        """Run one digest tick against the site's clock and log what it did."""
        async with self._tick_lock:
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
        """Return each job's next run time."""
        assert self._scheduler is not None
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()}

    async def stop(self) -> None:
        """Stop starting jobs, let running ones finish (delivery stops claiming), release."""
        self.stopping.set()
        started = self._scheduler is not None
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.pause()
        current = asyncio.current_task()
        running = [task for task in {*self._running, *self._startup} if task is not current]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        await self._teardown()
        if started:
            log.info("scheduler stopped")

    async def _teardown(self) -> None:
        global _runner
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
            # AsyncIOScheduler.shutdown runs via call_soon: let it happen.
            await asyncio.sleep(0)
        self._scheduler = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        await self.pinger.aclose()
        if self._lock is not None:
            self._lock.release()
        if _runner is self:
            _runner = None

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
    trigger: str
    next_run: datetime | None
    stored: bool


@dataclass(frozen=True)
class Overview:
    """The scheduler's jobs and the next digest send per time zone."""

    now: datetime
    jobs: list[JobInfo]
    sends: list[planning.PlannedSend]


def stored_jobs(settings: Settings) -> dict[str, datetime | None]:
    """Read each stored job's next run time without starting a scheduler."""
    engine = db.create_sync_engine(settings.database.url, poolclass=NullPool)
    try:
        if not sa.inspect(engine).has_table(JOBS_TABLE):
            return {}
        store = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
        # The store needs a scheduler only to attach it to the jobs it loads.
        store.start(AsyncIOScheduler(timezone=UTC), "default")
        try:
            return {job.id: job.next_run_time for job in store.get_all_jobs()}
        finally:
            store.shutdown()
    except (SQLAlchemyError, JobLookupError) as exc:
        raise StoreError(f"scheduler job store: {exc}") from exc
    finally:
        engine.dispose()


async def overview(site: Site, now: datetime | None = None) -> Overview:
    """Describe the jobs (stored next runs, else planned ones) and the next sends per zone."""
    now = now or site.clock.now()
    stored = await asyncio.to_thread(stored_jobs, site.settings)
    jobs = []
    for spec in job_specs(site.settings):
        if spec.id in stored:
            next_run, is_stored = stored[spec.id], True
        else:
            next_run, is_stored = spec.trigger.get_next_fire_time(None, now), False
        jobs.append(JobInfo(spec.id, spec.description, str(spec.trigger), next_run, is_stored))
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
        f"(weekly on {site.settings.digest.weekly_day}); the scheduler checks every 15 minutes",
    ]
    for job in view.jobs:
        when = "—" if job.next_run is None else f"{job.next_run.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        lines.append(f"  job {job.id}: next run {when} — {job.description}")
    for plan in view.sends:
        local = plan.local_send_at
        lines.append(
            f"  {plan.frequency:<6} {plan.timezone:<20} {local:%a %Y-%m-%d %H:%M %Z} "
            f"({plan.send_at:%Y-%m-%d %H:%M} UTC): {plan.subscribers} subscriber"
            f"{'' if plan.subscribers == 1 else 's'}"
        )
    return lines
