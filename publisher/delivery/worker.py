"""The delivery worker: claim queued messages, send them over the pool, record every result.

Each SMTP connection sends one message at a time and waits until its result is written
before starting the next, while a single writer commits the results of all connections
together (group commit, one executemany per batch). So at any moment at most
mail.connections messages are sent-but-not-recorded: after a crash those, and only
those, can go out twice (with the same Message-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from publisher import metrics
from publisher.delivery import announcements
from publisher.delivery.compose import Composer
from publisher.delivery.editions import resume_enqueues
from publisher.delivery.models import CANCELLED, FAILED, RETRYING, SENT, MailKind
from publisher.delivery.ratelimit import RateLimiter, relay_scope
from publisher.delivery.retry import RetryPolicy
from publisher.delivery.smtp import (
    Pacer,
    Reply,
    ServerUnavailable,
    SmtpConnection,
    SmtpPool,
)
from publisher.delivery.store import DeliveryStore, Job, Outcome, open_store
from publisher.errors import LockedError, PublisherError
from publisher.site import Site

#: Rows claimed per query; also the most a worker holds that are not yet in flight.
CLAIM_SIZE = 200
#: How often a long-running worker looks for rows left behind by dead workers.
RECOVER_EVERY = 30.0
#: How long an idle long-running worker sleeps between looks at the queue.
POLL_SECONDS = 2.0
#: A result waits at most this long for the other connections' results to share a commit.
FLUSH_WAIT = 0.02
#: On SQLite, how long a run waits for the send lock (another run may be finishing a
#: confirmation) before saying who holds it.
LOCK_WAIT = 5.0

Progress = Callable[["DeliveryReport"], None]


@dataclass
class DeliveryReport:
    """What one deliver() run did."""

    sent: int = 0
    failed: int = 0
    retrying: int = 0
    cancelled: int = 0
    recovered: int = 0
    enqueued: int = 0
    finished: list[str] = field(default_factory=list)
    paused: str | None = None
    paused_until: datetime | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        """Return messages handled per second so far."""
        elapsed = time.monotonic() - self.started if not self.elapsed else self.elapsed
        return (self.sent + self.failed + self.retrying) / elapsed if elapsed > 0 else 0.0

    def __str__(self) -> str:
        text = (
            f"{self.sent} sent, {self.failed} failed, {self.retrying} to retry, "
            f"{self.cancelled} cancelled"
        )
        if self.finished:
            text += f"; finished {', '.join(self.finished)}"
        if self.paused:
            text += f"; paused: {self.paused}"
        return text


class _Paused(Exception):
    pass


class _Recorder:
    """Group commit: collect outcomes from every connection, write them in one go."""

    def __init__(
        self,
        outbox: DeliveryStore,
        report: DeliveryReport,
        progress: Progress | None,
        busy: Callable[[], int],
    ) -> None:
        self.outbox = outbox
        self.report = report
        self.progress = progress
        self._busy = busy
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._task = asyncio.create_task(self._run())

    def add(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue one outcome; the future resolves once it is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((outcome, future))
        if self._timer is None:
            self._timer = loop.call_later(FLUSH_WAIT, self._wake.set)
        self.poke()
        return future

    async def wait(self, future: asyncio.Future[None] | None) -> None:
        """Wait until an earlier outcome is committed (flushing now if it is pending)."""
        if future is None or future.done():
            if future is not None:
                future.result()
            return
        self._wake.set()
        await future

    async def drain(self) -> None:
        """Write everything handed in so far and wait for it."""
        futures = [future for _, future in self._pending]
        if futures:
            self._wake.set()
            await asyncio.gather(*futures, return_exceptions=True)

    def poke(self) -> None:
        """Flush now if every connection that has a message has handed in its result."""
        if self._pending and len(self._pending) >= self._busy():
            self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, self._pending = self._pending, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                await self.outbox.record([outcome for outcome, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for outcome, future in batch:
                self._count(outcome)
                if not future.done():
                    future.set_result(None)
            if self.progress is not None:
                self.progress(self.report)

    def _count(self, outcome: Outcome) -> None:
        metrics.count_messages(outcome.job.kind, [outcome.status])
        if outcome.status == SENT:
            self.report.sent += 1
        elif outcome.status == FAILED:
            self.report.failed += 1
        elif outcome.status == RETRYING:
            self.report.retrying += 1
        elif outcome.status == CANCELLED:
            self.report.cancelled += 1

    async def close(self) -> None:
        """Write what is pending and stop."""
        self._closing = True
        self._wake.set()
        await self._task


def outcome_for(job: Job, reply: Reply, now: datetime, policy: RetryPolicy) -> Outcome:
    """Turn one recipient's reply into the row's next state."""
    text = reply.describe()
    if reply.accepted:
        return Outcome(job, SENT, now, reply.code, text)
    if reply.kind == "permanent":
        bounce = reply.code is not None and 500 <= reply.code < 600
        return Outcome(job, FAILED, now, reply.code, text, bounce=bounce)
    first = job.first_attempt_at or now
    retry_at = policy.next_attempt(job.attempts + 1, first, now)
    if retry_at is None:
        gave_up = f"gave up after {job.attempts + 1} attempts: {text}"
        return Outcome(job, FAILED, now, reply.code, gave_up)
    return Outcome(job, RETRYING, now, reply.code, text, next_attempt_at=retry_at)


class _Run:
    """One deliver() call's moving parts."""

    def __init__(
        self,
        site: Site,
        stop: asyncio.Event,
        report: DeliveryReport,
        progress: Progress | None,
        worker_id: str | None,
        kinds: Sequence[MailKind] = (),
    ) -> None:
        self.site = site
        self.stop = stop
        self.report = report
        mail = site.settings.mail
        self.policy = RetryPolicy(mail.retry_initial, mail.retry_for)
        self.outbox = open_store(site, worker_id, kinds)
        self.composer = Composer(site)
        self.limiter = RateLimiter(
            site.engine,
            site.clock,
            per_second=mail.rate_per_second,
            per_hour=mail.rate_per_hour,
            stop=stop,
        )
        #: Each relay's rate_per_second, shared with every worker through the database.
        self.relay_limiters: dict[str, RateLimiter] = {}
        self.progress = progress
        self.queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self.held: list[Job] = []
        self.pause_error: ServerUnavailable | None = None
        self.crash: Exception | None = None
        self.pauses = 0
        #: Connections holding a message (sending it or waiting for its result).
        self.busy = 0

    def relay_pacer(self, relay: str, rate: float) -> Pacer:
        """Return the shared pacer of one relay (one limiter per relay per run)."""
        limiter = self.relay_limiters.get(relay)
        if limiter is None:
            # No stop event: a message whose session is open waits out the window
            # (at most max(1 s, 1/rate)) rather than exceed the relay's rate.
            limiter = RateLimiter(
                self.site.engine,
                self.site.clock,
                per_second=rate,
                per_hour=0,
                scope=relay_scope(relay),
            )
            self.relay_limiters[relay] = limiter
        return limiter.acquire

    async def sender_loop(self, connection: SmtpConnection, recorder: _Recorder) -> None:
        previous: list[asyncio.Future[None] | None] = [None]
        try:
            await self._sender_loop(connection, recorder, previous)
        finally:
            # The last result of this connection must be written before the run ends.
            with contextlib.suppress(Exception):
                await recorder.wait(previous[0])

    async def _sender_loop(
        self,
        connection: SmtpConnection,
        recorder: _Recorder,
        previous: list[asyncio.Future[None] | None],
    ) -> None:
        while True:
            job = await self.queue.get()
            try:
                if job is None:
                    return
                if self.stop.is_set() or self.pause_error is not None or self.crash:
                    self.held.append(job)
                    continue
                self.busy += 1
                try:
                    await self.send_one(connection, recorder, job, previous)
                except Exception as exc:
                    # Keep draining the queue so the feeder is never left waiting; the
                    # first error ends the run once everything in hand is accounted for.
                    self.crash = self.crash or exc
                finally:
                    self.busy -= 1
                    recorder.poke()
            finally:
                self.queue.task_done()

    async def send_one(
        self,
        connection: SmtpConnection,
        recorder: _Recorder,
        job: Job,
        previous: list[asyncio.Future[None] | None],
    ) -> None:
        """Send one job; its result is committed before this connection's next DATA."""
        clock = self.site.clock
        try:
            message = self.composer.message(job)
        except PublisherError as exc:
            outcome = Outcome(job, FAILED, clock.now(), None, f"cannot build message: {exc}")
            previous[0] = recorder.add(outcome)
            return
        if message is None:
            why = "every article of this digest was withdrawn before sending"
            previous[0] = recorder.add(Outcome(job, CANCELLED, clock.now(), None, why))
            return
        if not await self.limiter.acquire():
            self.held.append(job)
            return
        earlier = previous[0]

        async def before_data() -> None:
            # At most one message per connection is ever sent but not yet recorded:
            # the previous one is committed before this one can be delivered.
            await recorder.wait(earlier)

        try:
            replies = await connection.send(
                self.composer.return_path(job), [job.email], message, before_data=before_data
            )
        except ServerUnavailable as exc:
            if self.pause_error is None:
                self.pause_error = exc
            self.held.append(job)
            return
        await recorder.wait(earlier)
        previous[0] = recorder.add(outcome_for(job, replies[job.email], clock.now(), self.policy))

    async def feed(self, until_idle: bool, linger: timedelta, recorder: _Recorder) -> None:
        """Claim rows into the queue until idle, stopped or paused."""
        clock = self.site.clock
        last_recover = time.monotonic()
        claimed_since_compaction = False
        while not self.stop.is_set() and self.pause_error is None and self.crash is None:
            if time.monotonic() - last_recover > RECOVER_EVERY:
                self.report.recovered += await self.outbox.recover(clock.now())
                # Keeps an edition's counts a sum of a few rows during a long send.
                await self.outbox.compact_tallies()
                last_recover = time.monotonic()
            if self.queue.qsize() > CLAIM_SIZE:
                await asyncio.sleep(0.005)
                continue
            before = self.outbox.cancelled
            claimed_at = clock.now()
            jobs = await self.outbox.claim(CLAIM_SIZE, claimed_at)
            self.report.cancelled += self.outbox.cancelled - before
            if jobs:
                claimed_since_compaction = True
                await self.composer.prepare(jobs)
                for job in jobs:
                    self.queue.put_nowait(job)
                continue
            await self.queue.join()  # everything claimed so far has a result...
            await recorder.drain()  # ...and it is written
            if self.pause_error is not None or self.crash is not None:
                return
            self.report.finished += await self.outbox.finish_editions(clock.now())
            # An idle worker has nothing new to fold; one that found another folding
            # tries again next time round.
            if claimed_since_compaction and await self.outbox.compact_tallies() is not None:
                claimed_since_compaction = False
            if await self._claimable_soon(until_idle, linger, claimed_at):
                continue
            if until_idle:
                return
            await self._sleep(POLL_SECONDS)

    async def _claimable_soon(
        self, until_idle: bool, linger: timedelta, claimed_at: datetime
    ) -> bool:
        """Wait for the next due row when it is close enough; tell whether to claim again."""
        now = self.site.clock.now()
        due = await self.outbox.next_due(now)
        if due is None:
            return False
        wait = (due - now).total_seconds()
        if wait <= 0:
            # Due before the last claim yet not claimed: another worker holds those rows.
            return due > claimed_at
        limit = linger.total_seconds() if until_idle else POLL_SECONDS
        if wait > limit:
            return False
        return await self._sleep(wait)

    async def _sleep(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False


async def deliver(
    site: Site,
    *,
    stop: asyncio.Event | None = None,
    until_idle: bool = True,
    progress: Progress | None = None,
    linger: timedelta = timedelta(0),
    worker_id: str | None = None,
    kinds: Sequence[MailKind] = (),
) -> DeliveryReport:
    """Send queued messages until nothing is due (``until_idle``) or until ``stop`` is set.

    Finishes interrupted enqueues and returns rows of dead workers to the queue first.
    ``linger`` makes an until-idle run wait for retries due that soon. When the server
    refuses us (down, bad credentials), unfinished editions are paused and the report says
    why: an until-idle run returns, a long-running one waits and tries again.
    ``kinds`` limits the run to those kinds of mail (`publisher serve` sends notices only).
    """
    stop = stop or asyncio.Event()
    report = DeliveryReport()
    run = _Run(site, stop, report, progress, worker_id, kinds)
    await _register(run)
    try:
        if not kinds or MailKind.DIGEST in kinds:
            for queued in await resume_enqueues(site):
                report.enqueued += queued.queued
        if not kinds or MailKind.ANNOUNCEMENT in kinds:
            # An announcement send cut short by a crash: write the rest of its readers.
            await announcements.run_due(site, site.clock.now())
        report.recovered += await run.outbox.recover(site.clock.now())
        while True:
            await _deliver_once(run, until_idle, linger)
            if run.pause_error is None:
                break
            until = await _pause(run)
            if until_idle or stop.is_set():
                break
            wait = (until - site.clock.now()).total_seconds()
            if not await run._sleep(max(wait, 0.1)) and stop.is_set():
                break
            run.pause_error = None
            await run.outbox.clear_pause()
        if run.crash is None and run.pause_error is None:
            # A worker stopped right after writing an edition's last results must still
            # close it; otherwise it stays "sending" until some other run looks.
            report.finished += await run.outbox.finish_editions(site.clock.now())
    finally:
        await run.limiter.release()
        for limiter in run.relay_limiters.values():
            await limiter.release()
        await run.outbox.unregister()
        report.elapsed = time.monotonic() - report.started
    return report


async def _register(run: _Run) -> None:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            await run.outbox.register()
            return
        except LockedError:
            if time.monotonic() > deadline or run.stop.is_set():
                raise
            await asyncio.sleep(0.1)


async def _deliver_once(run: _Run, until_idle: bool, linger: timedelta) -> None:
    pool = SmtpPool(run.site.settings.mail, pacer_for=run.relay_pacer)
    recorder = _Recorder(run.outbox, run.report, run.progress, lambda: run.busy)
    senders = [asyncio.create_task(run.sender_loop(c, recorder)) for c in pool.connections]
    try:
        await run.feed(until_idle, linger, recorder)
    finally:
        for _ in senders:
            run.queue.put_nowait(None)
        # Senders finish the message in hand; queued jobs become held and go back.
        results = await asyncio.gather(*senders, return_exceptions=True)
        await recorder.close()
        leftovers = list(run.held)
        run.held.clear()
        while not run.queue.empty():
            job = run.queue.get_nowait()
            if job is not None:
                leftovers.append(job)
        at = run.site.clock.now()
        with contextlib.suppress(Exception):
            await pool.close()
        await run.outbox.release(leftovers, at)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    if run.crash is not None:
        raise run.crash


async def _pause(run: _Run) -> datetime:
    """Hold the unfinished editions after the server refused us; return until when."""
    assert run.pause_error is not None
    run.pauses += 1
    now = run.site.clock.now()
    until = now + run.policy.delay(run.pauses)
    message = str(run.pause_error)
    await run.outbox.pause(until, message)
    run.report.paused = message
    run.report.paused_until = until
    return until
