"""The delivery store: every read and write of outbox rows and editions delivery makes.

Every message Publisher sends is a row of the outbox (digests, the subscription flow's
notices, test copies), queued in the same transaction as the change that calls for it,
and delivered by the one worker (publisher.delivery.worker) through a DeliveryStore:
one SQLAlchemy implementation, with a subclass per backend only where they differ
(PostgreSQL: SKIP LOCKED claims, advisory-lock liveness; SQLite: one sender under the
send lock). This module is the outbox's only writer.

A row is claimed (status ``claimed``, ``claimed_by`` = the worker) before its message is
handed to SMTP, and its result is written right after. A worker that dies leaves its
claimed rows behind; they go back to the queue once the worker is known to be dead: on
SQLite, where one process sends, whoever holds the send lock; on PostgreSQL, whoever can
take the dead worker's advisory lock (a live worker holds its own for its whole life).

Each edition's counts by status are read from ``outbox_tallies``, which triggers on the
outbox keep (migration 0010), never by counting its rows: `digest status` during a
million-reader send reads a few rows. Workers fold the tallies now and then.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import socket
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from publisher.columns import UTCDateTime
from publisher.db import (
    apply_sqlite_pragmas,
    is_sqlite,
    session_factory,
    sqlite_path,
    transaction,
)
from publisher.delivery.models import (
    CANCELLED,
    CLAIMED,
    DONE,
    ENQUEUING,
    FAILED,
    OPEN,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    WAITING,
    Edition,
    EditionVariant,
    MailKind,
    OutboxRow,
    OutboxStatus,
    OutboxTally,
)
from publisher.errors import LockBusy, LockedError
from publisher.locks import AdvisoryLock, FileLock, HeldLock, lock_file, try_transaction_lock
from publisher.site import Site

# What only sending needs is imported where it is used: `digest status` reads this
# module's counts and must not pay for the subscriber repository, the bounce parser
# (email_validator, the email package) or, on SQLite, PostgreSQL's dialect
# (docs/development.md, "Start-up time"; tests/test_cli_startup.py keeps them out).
if TYPE_CHECKING:
    from subscribers import bounces, repository

_OUTBOX = cast(sa.Table, OutboxRow.__table__)
_TALLIES = cast(sa.Table, OutboxTally.__table__)
#: Delta rows an edition may gather before compact_tallies folds them (one per status).
TALLY_ROWS_KEPT = len(OutboxStatus)
#: Advisory lock class for worker liveness (the second key is the worker's hash).
_LOCK_CLASS = 0x7075_6231
#: Advisory lock held by the one worker folding the outbox tallies.
_COMPACT_LOCK = (0x7075_6232, 0)
_ENHANCED = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")

_RECORD = (
    sa.update(_OUTBOX)
    .where(_OUTBOX.c.id == sa.bindparam("b_id"))
    .where(_OUTBOX.c.claimed_by == sa.bindparam("b_worker"))
    .values(
        status=sa.bindparam("b_status"),
        attempts=sa.bindparam("b_attempts"),
        first_attempt_at=sa.bindparam("b_first"),
        next_attempt_at=sa.bindparam("b_next"),
        sent_at=sa.bindparam("b_sent"),
        smtp_code=sa.bindparam("b_code"),
        smtp_response=sa.bindparam("b_response"),
    )
)

#: _RECORD for a whole batch on PostgreSQL: the same columns, from parallel arrays.
_RECORD_ARRAYS = sa.text(
    """
    UPDATE outbox SET status = v.status, attempts = v.attempts,
        first_attempt_at = v.first_at, next_attempt_at = v.next_at, sent_at = v.sent_at,
        smtp_code = v.code, smtp_response = v.response
    FROM unnest(
        CAST(:ids AS integer[]), CAST(:statuses AS varchar[]), CAST(:attempts AS integer[]),
        CAST(:firsts AS timestamp[]), CAST(:nexts AS timestamp[]), CAST(:sents AS timestamp[]),
        CAST(:codes AS integer[]), CAST(:responses AS text[])
    ) AS v(id, status, attempts, first_at, next_at, sent_at, code, response)
    WHERE outbox.id = v.id AND outbox.claimed_by = :worker
    """
)


@cache
def _stamp() -> sa.Update:
    """Return the statement moving a reader's last digest mark (the subscribers' own)."""
    from subscribers import repository

    return repository.advance_last_digest()


def new_worker_id() -> str:
    """Return a name unique to this process on this machine and this start."""
    host = socket.gethostname().split(".")[0][:40] or "host"
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _lock_key(worker_id: str) -> tuple[int, int]:
    """Return the worker's liveness lock: (class, signed 32-bit hash of its name)."""
    value = int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:4], "big")
    return _LOCK_CLASS, (value - (1 << 32) if value >= (1 << 31) else value)


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed outbox row with what is needed to build and send its message."""

    row_id: int
    edition_id: int | None
    variant_id: int | None
    subscriber_id: int | None
    email: str
    name: str
    language: str
    message_id: str
    attempts: int
    first_attempt_at: datetime | None
    window_end: datetime | None
    kind: str = MailKind.DIGEST
    payload: dict[str, Any] | None = None


@dataclass(slots=True)
class Outcome:
    """What happened to one job: its new status and the server's reply."""

    job: Job
    status: str
    at: datetime
    code: int | None
    response: str
    next_attempt_at: datetime | None = None
    #: Set for permanent refusals: the address goes through record_bounce.
    bounce: bool = False


@cache
def _wanted_status() -> dict[str, str]:
    """Return the subscriber status each kind of mail still makes sense for when claimed."""
    from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED

    return {
        MailKind.DIGEST: ACTIVE,
        MailKind.ANNOUNCEMENT: ACTIVE,
        MailKind.WELCOME: ACTIVE,
        MailKind.ALREADY_SUBSCRIBED: ACTIVE,
        MailKind.CONFIRMATION: PENDING,
        MailKind.UNSUBSCRIBED: UNSUBSCRIBED,
    }


#: Kinds that go to suppressed addresses: the reader is mid-way through asking (again), or
#: has just left and is owed the acknowledgement.
_IGNORES_SUPPRESSION = (MailKind.CONFIRMATION, MailKind.UNSUBSCRIBED, MailKind.TEST_COPY)


def _why_not(row: Any, person: Any, blocked: bool) -> str | None:
    """Return why a claimed row must not be sent any more, or None to send it."""
    kind = MailKind(row.kind)
    if kind == MailKind.TEST_COPY:
        return None  # the operator's own address, belonging to no subscriber
    if person is None:
        return "subscriber removed before sending"
    wanted = _wanted_status()[kind]
    if person.status != wanted:
        return f"subscriber {person.status} before sending"
    if blocked and kind not in _IGNORES_SUPPRESSION:
        return "address suppressed before sending"
    return None


def _triage(
    rows: Sequence[Any], people: dict[int, Any], hashes: dict[int, str], blocked: set[str]
) -> tuple[list[Job], list[tuple[int, str]]]:
    """Split claimed rows into jobs and (row id, reason) for those no longer wanted."""
    jobs: list[Job] = []
    cancelled: list[tuple[int, str]] = []
    for row in sorted(rows, key=lambda r: int(r.id)):
        person = people.get(row.subscriber_id)
        why = _why_not(row, person, hashes[row.id] in blocked)
        if why is not None:
            cancelled.append((row.id, why))
            continue
        jobs.append(
            Job(
                row_id=row.id,
                edition_id=row.edition_id,
                variant_id=row.variant_id,
                subscriber_id=row.subscriber_id,
                email=row.email,
                name=(person.name or "") if person else "",
                language=(person.language or "") if person else "",
                message_id=row.message_id,
                attempts=row.attempts,
                first_attempt_at=row.first_attempt_at,
                window_end=row.window_end,
                kind=row.kind,
                payload=_payload(row.payload),
            )
        )
    return jobs, cancelled


def _payload(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):  # some drivers hand JSON back as text
        value = json.loads(value)
    return value if isinstance(value, dict) else None


class DeliveryStore(Protocol):
    """Every read and write of outbox rows and editions a delivery worker makes."""

    worker_id: str
    #: Rows cancelled at claim time (reader gone, unsubscribed or suppressed meanwhile).
    cancelled: int

    async def register(self) -> None:
        """Announce this worker as alive (and, on SQLite, the only sender)."""

    async def unregister(self) -> None:
        """Drop the liveness lock."""

    async def recover(self, now: datetime) -> int:
        """Return the rows of dead workers to the queue; return how many."""

    async def claim(self, limit: int, now: datetime) -> list[Job]:
        """Claim up to ``limit`` due rows; cancel those no longer wanted."""

    async def release(self, jobs: list[Job], at: datetime) -> None:
        """Put claimed rows back untouched (not attempted), due again at ``at``."""

    async def record(self, outcomes: list[Outcome]) -> None:
        """Write a batch of results in one transaction, bounces included."""

    async def pause(self, until: datetime, error: str) -> None:
        """Hold every unfinished edition until ``until``, saying why."""

    async def clear_pause(self) -> None:
        """Forget a pause once the server took mail again."""

    async def finish_editions(self, now: datetime) -> list[str]:
        """Mark editions with nothing left to send as done; return their keys."""

    async def compact_tallies(self) -> int | None:
        """Fold each edition's tally deltas into one row per status; return rows removed
        (None: another worker is folding them now)."""

    async def next_due(self, now: datetime) -> datetime | None:
        """Return when the earliest waiting row this worker delivers is due."""

    async def paused(self, now: datetime) -> tuple[datetime, str] | None:
        """Return (until, why) when an unfinished edition is paused now."""


class _SqlStore:
    """What both backends do alike, in SQLAlchemy; subclasses hold what differs."""

    def __init__(
        self, site: Site, worker_id: str | None = None, kinds: Sequence[MailKind] = ()
    ) -> None:
        self.site = site
        #: The kinds of mail this worker delivers; empty means every kind.
        self.kinds: tuple[str, ...] = tuple(str(kind) for kind in kinds)
        self.worker_id = worker_id or new_worker_id()
        self._lock: HeldLock | None = None
        self.cancelled = 0

    async def unregister(self) -> None:
        """Drop the liveness lock."""
        if self._lock is not None:
            await self._lock.release()
            self._lock = None

    @staticmethod
    def _requeue() -> sa.Update:
        return (
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.status == CLAIMED)
            .values(
                status=sa.case((_OUTBOX.c.attempts > 0, RETRYING), else_=QUEUED),
                claimed_by="",
                next_attempt_at=sa.bindparam("now"),
            )
        )

    # -- claiming -------------------------------------------------------------------

    def _not_paused(self, now: datetime) -> sa.ColumnElement[bool]:
        """Rows of no edition, or of an edition not paused (NULL NOT IN (...) is NULL)."""
        paused = sa.select(Edition.id).where(Edition.paused_until > now)
        return sa.or_(_OUTBOX.c.edition_id.is_(None), _OUTBOX.c.edition_id.not_in(paused))

    def _lock_due(self, due: sa.Select[Any]) -> sa.Select[Any]:
        """Return the select of due rows as this backend claims them safely."""
        return due

    async def claim(self, limit: int, now: datetime) -> list[Job]:
        """Claim up to ``limit`` due rows; cancel those no longer wanted."""
        due = (
            sa.select(_OUTBOX.c.id)
            .where(_OUTBOX.c.status.in_(WAITING))
            .where(_OUTBOX.c.next_attempt_at <= now)
            .where(self._not_paused(now))
            # No ORDER BY: sorting every waiting row on each claim would make a send
            # quadratic; the (status, next_attempt_at, id) index yields rows in order.
            .limit(limit)
        )
        if self.kinds:
            due = due.where(_OUTBOX.c.kind.in_(self.kinds))
        claim = (
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(self._lock_due(due).scalar_subquery()))
            .values(status=CLAIMED, claimed_by=self.worker_id, claimed_at=now)
            .returning(
                _OUTBOX.c.id,
                _OUTBOX.c.edition_id,
                _OUTBOX.c.variant_id,
                _OUTBOX.c.subscriber_id,
                _OUTBOX.c.email,
                _OUTBOX.c.message_id,
                _OUTBOX.c.attempts,
                _OUTBOX.c.first_attempt_at,
                _OUTBOX.c.window_end,
                _OUTBOX.c.kind,
                _OUTBOX.c.payload,
            )
        )
        from subscribers import repository, suppression

        async with transaction(self.site.engine) as session:
            rows = (await session.execute(claim)).all()
            if not rows:
                return []
            ids = [row.subscriber_id for row in rows if row.subscriber_id is not None]
            people = await repository.delivery_profiles(session, ids)
            hashes = {row.id: suppression.email_hash(row.email) for row in rows}
            blocked = await suppression.suppressed_among(session, hashes.values())
            jobs, cancelled = _triage(rows, people, hashes, blocked)
            self.cancelled += len(cancelled)
            if cancelled:
                await session.execute(
                    sa.update(_OUTBOX)
                    .where(_OUTBOX.c.id == sa.bindparam("b_id"))
                    .values(
                        status=CANCELLED,
                        claimed_by="",
                        smtp_response=sa.bindparam("b_response"),
                    ),
                    [{"b_id": row_id, "b_response": why} for row_id, why in cancelled],
                )
        return jobs

    async def release(self, jobs: list[Job], at: datetime) -> None:
        """Put claimed rows back untouched (not attempted), due again at ``at``."""
        if not jobs:
            return
        async with transaction(self.site.engine) as session:
            await session.execute(
                sa.update(_OUTBOX)
                .where(_OUTBOX.c.id == sa.bindparam("b_id"))
                .where(_OUTBOX.c.claimed_by == self.worker_id)
                .values(
                    status=sa.bindparam("b_status"),
                    claimed_by="",
                    next_attempt_at=at,
                ),
                [{"b_id": j.row_id, "b_status": RETRYING if j.attempts else QUEUED} for j in jobs],
            )

    # -- results --------------------------------------------------------------------

    async def record(self, outcomes: list[Outcome]) -> None:
        """Write a batch of results in one transaction (executemany), bounces included."""
        if not outcomes:
            return
        params, sent = self._result_rows(outcomes)
        bounced = [o for o in outcomes if o.bounce]
        if not bounced and await self._record_fast(params, sent):
            return
        mail = self.site.settings.mail
        # A bare connection and two cached executemany statements: this runs once per
        # group commit, the hottest write of a send. A session joins it only for bounces.
        async with self.site.engine.begin() as connection:
            await self._write_results(connection, params)
            if sent:
                await connection.execute(_stamp(), sent)
            if not bounced:
                return
            from subscribers import bounces

            async with AsyncSession(bind=connection, expire_on_commit=False) as session:
                for outcome in bounced:
                    await bounces.record_bounce(
                        session,
                        outcome.job.email,
                        bounce_kind(outcome.response),
                        f"SMTP {outcome.code or ''} {outcome.response}".strip()[:2000],
                        outcome.at,
                        mail.soft_bounce_limit,
                        mail.soft_bounce_window,
                    )
                await session.flush()

    async def _record_fast(self, params: list[dict[str, Any]], sent: list[dict[str, Any]]) -> bool:
        """Write a batch without bounces by a cheaper path, if the backend has one."""
        return False

    async def _write_results(
        self, connection: AsyncConnection, params: list[dict[str, Any]]
    ) -> None:
        """Write a batch's _RECORD parameters in the caller's transaction."""
        await connection.execute(_RECORD, params)

    def _result_rows(
        self, outcomes: list[Outcome]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Return the executemany parameters of _RECORD and _stamp() for a batch."""
        params = [
            {
                "b_id": o.job.row_id,
                "b_worker": self.worker_id,
                "b_status": o.status,
                "b_attempts": o.job.attempts + 1,
                "b_first": o.job.first_attempt_at or o.at,
                "b_next": o.next_attempt_at,
                "b_sent": o.at if o.status == SENT else None,
                "b_code": o.code,
                "b_response": o.response[:1000],
            }
            for o in outcomes
        ]
        # Only a delivered digest moves the reader's content window on.
        sent = [
            {"b_id": o.job.subscriber_id, "b_until": o.job.window_end}
            for o in outcomes
            if o.status == SENT and o.job.kind == MailKind.DIGEST and o.job.window_end
        ]
        return params, sent

    # -- editions -------------------------------------------------------------------

    async def pause(self, until: datetime, error: str) -> None:
        """Hold every unfinished edition until ``until``, saying why."""
        async with transaction(self.site.engine) as session:
            await session.execute(
                sa.update(Edition)
                .where(Edition.status != DONE)
                .values(paused_until=until, last_error=error[:2000])
            )

    async def finish_editions(self, now: datetime) -> list[str]:
        """Mark editions with nothing left to send as done; return their keys."""
        open_rows = (
            sa.select(_OUTBOX.c.id)
            .where(_OUTBOX.c.edition_id == Edition.id)
            .where(_OUTBOX.c.status.in_((*WAITING, CLAIMED)))
            .exists()
        )
        async with transaction(self.site.engine) as session:
            keys = list(
                await session.scalars(
                    sa.update(Edition)
                    .where(Edition.status == SENDING)
                    .where(~open_rows)
                    .values(status=DONE, finished_at=now, paused_until=None)
                    .returning(Edition.period_key)
                )
            )
        return keys

    async def compact_tallies(self) -> int | None:
        """Fold each edition's tally deltas into one row per status; return rows removed
        (None: another worker is folding them now).

        Safe beside writers: a delta is either deleted here and summed into the new row,
        or committed after this statement's snapshot and left for the next time.
        """
        crowded = (
            sa.select(_TALLIES.c.edition_id)
            .group_by(_TALLIES.c.edition_id)
            .having(sa.func.count() > TALLY_ROWS_KEPT)
        )
        async with transaction(self.site.engine) as session:
            if not await self._may_fold(session):
                return None
            # The DELETE is SQLite's first statement: it takes the write lock at once (a
            # read first could not upgrade to it after another process wrote).
            gone = (
                await session.execute(
                    sa.delete(_TALLIES)
                    .where(_TALLIES.c.edition_id.in_(crowded.scalar_subquery()))
                    .returning(_TALLIES.c.edition_id, _TALLIES.c.status, _TALLIES.c.messages)
                )
            ).all()
            sums: Counter[tuple[int, str]] = Counter()
            for edition_id, status, messages in gone:
                sums[(edition_id, status)] += messages
            kept = [
                {"edition_id": edition_id, "status": status, "messages": messages}
                for (edition_id, status), messages in sums.items()
                if messages
            ]
            if kept:
                await session.execute(sa.insert(_TALLIES), kept)
        return len(gone) - len(kept)

    async def _may_fold(self, session: AsyncSession) -> bool:
        """Tell whether this worker may fold now (SQLite: its one writer always may)."""
        return True

    async def clear_pause(self) -> None:
        """Forget a pause once the server took mail again."""
        async with transaction(self.site.engine) as session:
            await session.execute(
                sa.update(Edition)
                .where(Edition.paused_until.is_not(None))
                .values(paused_until=None, last_error="")
            )

    async def next_due(self, now: datetime) -> datetime | None:
        """Return when the earliest waiting row this worker delivers, not paused, is due."""
        query = (
            sa.select(sa.func.min(_OUTBOX.c.next_attempt_at))
            .where(_OUTBOX.c.status.in_(WAITING))
            .where(self._not_paused(now))
        )
        if self.kinds:
            query = query.where(_OUTBOX.c.kind.in_(self.kinds))
        async with transaction(self.site.engine) as session:
            found: datetime | None = await session.scalar(query)
        return found

    async def paused(self, now: datetime) -> tuple[datetime, str] | None:
        """Return (until, why) when an unfinished edition is paused now."""
        async with transaction(self.site.engine) as session:
            row = (
                await session.execute(
                    sa.select(Edition.paused_until, Edition.last_error)
                    .where(Edition.status != DONE)
                    .where(Edition.paused_until > now)
                    .order_by(Edition.paused_until.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else (row[0], row[1])


class PostgresStore(_SqlStore):
    """PostgreSQL: many workers claim side by side (SKIP LOCKED); liveness by advisory lock."""

    async def register(self) -> None:
        """Hold this worker's liveness lock for its whole life."""
        self._lock = await AdvisoryLock.take(self.site.engine, _lock_key(self.worker_id))

    def _lock_due(self, due: sa.Select[Any]) -> sa.Select[Any]:
        # Rows another worker is claiming right now are skipped, not waited for.
        return due.with_for_update(skip_locked=True)

    async def _write_results(
        self, connection: AsyncConnection, params: list[dict[str, Any]]
    ) -> None:
        """Write the batch as one UPDATE from arrays, not one statement per row.

        The outbox's tally trigger runs once per statement: once for the batch this way,
        where an executemany would run it, and a round of statement overhead, per row.
        """
        naive = UTCDateTime().process_bind_param  # aware -> naive UTC, as stored
        dialect = self.site.engine.dialect
        columns = {
            "ids": [row["b_id"] for row in params],
            "statuses": [str(row["b_status"]) for row in params],
            "attempts": [row["b_attempts"] for row in params],
            "firsts": [naive(row["b_first"], dialect) for row in params],
            "nexts": [naive(row["b_next"], dialect) for row in params],
            "sents": [naive(row["b_sent"], dialect) for row in params],
            "codes": [row["b_code"] for row in params],
            "responses": [row["b_response"] for row in params],
        }
        await connection.execute(_RECORD_ARRAYS, {**columns, "worker": self.worker_id})

    async def _may_fold(self, session: AsyncSession) -> bool:
        """Take the fold lock for this transaction, unless another worker is folding."""
        # Two DELETEs of the same rows in different orders could deadlock: one at a time.
        return await try_transaction_lock(session, _COMPACT_LOCK)

    async def recover(self, now: datetime) -> int:
        """Requeue the rows of workers whose liveness lock nobody holds any more."""
        async with transaction(self.site.engine) as session:
            owners = set(
                await session.scalars(
                    sa.select(OutboxRow.claimed_by)
                    .where(OutboxRow.status == CLAIMED)
                    .where(OutboxRow.claimed_by != self.worker_id)
                    .distinct()
                )
            )
        recovered = 0
        for owner in owners:
            dead = await AdvisoryLock.try_take(self.site.engine, _lock_key(owner))
            if dead is None:
                continue  # alive: its rows are in flight
            async with dead, transaction(self.site.engine) as session:
                result = await session.execute(
                    self._requeue().where(_OUTBOX.c.claimed_by == owner), {"now": now}
                )
                recovered += int(cast("CursorResult[Any]", result).rowcount or 0)
        return recovered


@dataclass(frozen=True)
class _SqliteStatement:
    """A SQLAlchemy statement compiled for SQLite, for the stdlib driver's executemany."""

    sql: str
    names: tuple[str, ...]
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: sa.Update) -> _SqliteStatement:
        """Compile ``statement`` with SQLite's dialect and its columns' bind encoders."""
        from sqlalchemy.dialects import sqlite

        dialect = sqlite.dialect(paramstyle="qmark")
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        return cls(compiled.string, names, processors)

    def rows(self, params: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        """Return the SQL and each parameter set as a positional, encoded tuple."""
        encode = self.processors
        return self.sql, [
            tuple(encode[name](row[name]) if name in encode else row[name] for name in self.names)
            for row in params
        ]


@cache
def _sqlite_statements() -> tuple[_SqliteStatement, _SqliteStatement]:
    """Return _RECORD and _stamp() compiled for SQLite (once, by the first SQLite send)."""
    return _SqliteStatement.of(_RECORD), _SqliteStatement.of(_stamp())


def _open_sqlite(path: Path, *, busy_ms: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    apply_sqlite_pragmas(connection, busy_ms)
    return connection


def _write_sqlite(
    connection: sqlite3.Connection, batch: list[tuple[str, list[tuple[Any, ...]]]]
) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in batch:
            if rows:
                connection.executemany(sql, rows)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class SqliteStore(_SqlStore):
    """SQLite: one sender at a time, under the send lock beside the database file."""

    _fast: sqlite3.Connection | None = None
    _slow: sqlite3.Connection | None = None

    async def register(self) -> None:
        """Take the send lock, or say who holds it."""
        url = self.site.settings.database.url
        path = lock_file(url, ".send-lock")
        if path is None:
            return
        try:
            self._lock = FileLock.take(path, f"worker {self.worker_id}")
        except LockBusy as busy:
            raise LockedError(
                f"{sqlite_path(url)}: {busy.holder} is already sending from this SQLite "
                "database (only one sender at a time on SQLite; it will deliver what is queued)"
            ) from None

    async def _record_fast(self, params: list[dict[str, Any]], sent: list[dict[str, Any]]) -> bool:
        """Write the batch with the stdlib driver, from the event loop when SQLite is free.

        benchmarks/send.py measured it: through aiosqlite every execute is a hand-off to its
        thread, and a send on SQLite reached 45% of the bare SMTP ceiling against 71% this
        way. The statements are the same _RECORD and _stamp(), compiled for SQLite, with the
        column types' own encoding; only the driver differs.
        """
        path = sqlite_path(self.site.settings.database.url)
        if path is None:
            return False
        record, stamp = _sqlite_statements()
        batch = [record.rows(params), stamp.rows(sent)]
        if self._fast is None:
            self._fast = _open_sqlite(path, busy_ms=0)
        try:
            # Never waits: busy_timeout 0 fails at once when another process writes.
            _write_sqlite(self._fast, batch)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if self._slow is None:
                self._slow = _open_sqlite(path, busy_ms=30000)
            await asyncio.to_thread(_write_sqlite, self._slow, batch)
        return True

    async def unregister(self) -> None:
        """Close the direct connections and drop the send lock."""
        for connection in (self._fast, self._slow):
            if connection is not None:
                connection.close()
        self._fast = self._slow = None
        await super().unregister()

    async def recover(self, now: datetime) -> int:
        """Requeue every other claim: whoever holds the send lock is the only sender."""
        async with transaction(self.site.engine) as session:
            result = await session.execute(
                self._requeue().where(_OUTBOX.c.claimed_by != self.worker_id), {"now": now}
            )
            return int(cast("CursorResult[Any]", result).rowcount or 0)


def open_store(
    site: Site, worker_id: str | None = None, kinds: Sequence[MailKind] = ()
) -> DeliveryStore:
    """Return the delivery store for the site's database (``kinds``: what this worker sends)."""
    backend = SqliteStore if is_sqlite(site.settings.database.url) else PostgresStore
    return backend(site, worker_id, kinds)


# -- editions: every read and write of them goes through here ------------------------


async def open_edition_row(
    site: Site, key: str, frequency: str, now: datetime, *, enqueuing: bool
) -> Edition:
    """Return the edition with this period key, creating it once (see open_edition)."""
    for _ in range(2):
        async with transaction(site.engine) as session:
            found = await session.scalar(sa.select(Edition).where(Edition.period_key == key))
            if found is not None:
                if enqueuing:
                    found.status = ENQUEUING
                    found.window_end = now
                    found.finished_at = None
                return found
        try:
            async with transaction(site.engine) as session:
                edition = Edition(
                    period_key=key,
                    frequency=frequency,
                    status=ENQUEUING if enqueuing else OPEN,
                    window_end=now,
                    created_at=now,
                    last_error="",
                )
                session.add(edition)
            return edition
        except IntegrityError:
            continue  # another process opened it a moment ago; read theirs
    raise RuntimeError(f"edition {key} could neither be created nor read")


async def get_edition(site: Site, period_key: str | None = None) -> Edition | None:
    """Return the named edition, or the most recently created one."""
    async with transaction(site.engine) as session:
        query = sa.select(Edition)
        if period_key:
            query = query.where(Edition.period_key == period_key)
        else:
            query = query.order_by(Edition.created_at.desc(), Edition.id.desc()).limit(1)
        found: Edition | None = await session.scalar(query)
        return found


async def variant_ids(site: Site, edition_id: int) -> dict[str, int]:
    """Return an edition's variants' ids by key."""
    async with transaction(site.engine) as session:
        rows = await session.execute(
            sa.select(EditionVariant.variant_key, EditionVariant.id).where(
                EditionVariant.edition_id == edition_id
            )
        )
        return {key: id for key, id in rows}


async def add_variant(
    site: Site,
    session: AsyncSession,
    edition_id: int,
    key: str,
    language: str,
    article_ids: Sequence[int],
    more_count: int,
) -> int:
    """Add one variant to an edition (or find the one another process added); return its id."""
    values = {
        "edition_id": edition_id,
        "variant_key": key,
        "language": language,
        "article_ids": list(article_ids),
        "more_count": more_count,
    }
    statement = _dialect_insert(is_sqlite(site.settings.database.url), EditionVariant)
    # Two processes enqueueing the same edition may meet here; the first one's row wins.
    await session.execute(statement.values(values).on_conflict_do_nothing())
    found = await session.scalar(
        sa.select(EditionVariant.id)
        .where(EditionVariant.edition_id == edition_id)
        .where(EditionVariant.variant_key == key)
    )
    if found is None:
        raise RuntimeError(f"variant {key} of edition {edition_id} could not be written")
    return int(found)


async def mark_sending(
    site: Site,
    edition: Edition,
    earliest: datetime | None,
    now: datetime,
    added: bool,
    *,
    zone_limited: bool,
) -> None:
    """Record that an enqueue finished: its window, and the edition now sending."""
    async with transaction(site.engine) as session:
        # FOR NO KEY UPDATE: it changes no key, so it need not wait for the workers whose
        # tally rows hold KEY SHARE locks on the edition (the foreign key check).
        current = await session.get(Edition, edition.id, with_for_update={"key_share": True})
        if current is None:
            return
        if earliest is not None and (
            current.window_start is None or earliest < current.window_start
        ):
            current.window_start = earliest
        if zone_limited and current.status == ENQUEUING:
            # An enqueue for every zone is unfinished (interrupted, or running elsewhere):
            # keep its mark and its cutoff so deliver() resumes it exactly as it began.
            pass
        else:
            current.window_end = max(current.window_end, now)
            if current.status in (OPEN, ENQUEUING) or (added and current.status == DONE):
                current.status = SENDING
                current.finished_at = None
        edition.status = current.status
        edition.window_start = current.window_start
        edition.window_end = current.window_end


async def mark_enqueuing(site: Site, edition: Edition, now: datetime) -> None:
    """Mark an edition as being enqueued for every zone, with its cutoff."""
    # Until the last batch is written, a crash leaves this mark: deliver() finishes the
    # job with the same cutoff, so nobody is missed and nobody who joined later is added.
    async with transaction(site.engine) as session:
        await session.execute(
            sa.update(Edition)
            .where(Edition.id == edition.id)
            .values(status=ENQUEUING, window_end=now, finished_at=None)
        )
    edition.status = ENQUEUING


@asynccontextmanager
async def enqueue_transaction(site: Site) -> AsyncIterator[AsyncSession]:
    """Open one enqueue chunk's transaction: grouping and inserting see the same readers.

    PostgreSQL: REPEATABLE READ, so a reader who changes language between the grouping
    and the INSERT ... SELECT is still matched by their group (under READ COMMITTED they
    would match no group and miss the edition). SQLite: the write lock is taken first
    (BEGIN IMMEDIATE), so nothing changes in between.
    """
    async with session_factory(site.engine)() as session:
        if is_sqlite(site.settings.database.url):
            connection = await session.connection()
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def enqueuing_editions(site: Site) -> list[Edition]:
    """Return the editions whose enqueue for every zone has not finished."""
    async with transaction(site.engine) as session:
        return list(await session.scalars(sa.select(Edition).where(Edition.status == ENQUEUING)))


def bounce_kind(response: str) -> bounces.Kind:
    """Classify a permanent refusal by its enhanced status code (5.2.2 full box is soft)."""
    from subscribers import bounces

    match = _ENHANCED.search(response)
    kind = bounces.classify_status("failed", match[1] if match else "5.0.0")
    return kind or "hard"


@dataclass(frozen=True)
class RowState:
    """Where one outbox row stands."""

    status: str
    response: str


async def row_state(site: Site, row_id: int) -> RowState:
    """Return one row's status and last server reply."""
    async with transaction(site.engine) as session:
        row = (
            await session.execute(
                sa.select(OutboxRow.status, OutboxRow.smtp_response).where(OutboxRow.id == row_id)
            )
        ).one()
    return RowState(row.status, row.smtp_response)


async def status_counts(site: Site, edition_id: int) -> Counter[str]:
    """Count an edition's outbox rows by status."""
    async with transaction(site.engine) as session:
        return (await edition_counts(session, [edition_id])).get(edition_id, Counter())


async def edition_counts(
    session: AsyncSession, edition_ids: Sequence[int]
) -> dict[int, Counter[str]]:
    """Count these editions' outbox rows by status, from the tallies (no row is read)."""
    rows = await session.execute(
        sa.select(_TALLIES.c.edition_id, _TALLIES.c.status, sa.func.sum(_TALLIES.c.messages))
        .where(_TALLIES.c.edition_id.in_(list(edition_ids)))
        .group_by(_TALLIES.c.edition_id, _TALLIES.c.status)
    )
    found: dict[int, Counter[str]] = {}
    for edition_id, status, count in rows.tuples():
        if count:  # a status every message has left sums to zero
            found.setdefault(edition_id, Counter())[status] = int(count)
    return found


#: The statuses `digest status` reports for mail outside editions (sent ones are history).
NOTICE_STATUSES = (QUEUED, RETRYING, CLAIMED, FAILED)


async def notice_counts(site: Site) -> dict[str, Counter[str]]:
    """Count the rows of no edition (notices, test copies) waiting, claimed or failed,
    by kind and status."""
    async with transaction(site.engine) as session:
        rows = await session.execute(
            # edition_id IS NULL walks the (edition_id, status) index: fast mid-send too.
            sa.select(OutboxRow.kind, OutboxRow.status, sa.func.count())
            .where(OutboxRow.edition_id.is_(None))
            .where(OutboxRow.status.in_(NOTICE_STATUSES))
            .group_by(OutboxRow.kind, OutboxRow.status)
        )
        found: dict[str, Counter[str]] = {}
        for kind, status, count in rows.tuples():
            found.setdefault(kind, Counter())[status] = int(count)
        return found


@dataclass(frozen=True)
class ErrorLine:
    """One recent failure or retry of an edition."""

    email: str
    status: str
    attempts: int
    code: int | None
    response: str
    next_attempt_at: datetime | None


async def last_errors(site: Site, edition_id: int, limit: int = 10) -> list[ErrorLine]:
    """Return the latest failed, retrying or cancelled rows of an edition."""
    async with transaction(site.engine) as session:
        rows = await session.execute(
            sa.select(
                OutboxRow.email,
                OutboxRow.status,
                OutboxRow.attempts,
                OutboxRow.smtp_code,
                OutboxRow.smtp_response,
                OutboxRow.next_attempt_at,
            )
            .where(OutboxRow.edition_id == edition_id)
            .where(OutboxRow.status.in_((FAILED, RETRYING, CANCELLED)))
            .order_by(OutboxRow.first_attempt_at.desc().nulls_last(), OutboxRow.id.desc())
            .limit(limit)
        )
        return [ErrorLine(*row) for row in rows]


# -- queueing: every row of the outbox is written here ------------------------------


def _dialect_insert(sqlite_backend: bool, table: Any) -> Any:
    """Return the backend's INSERT (both have ON CONFLICT), importing only that dialect."""
    if sqlite_backend:
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table)


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    """Return an INSERT into the outbox that skips (edition, subscriber) pairs it has."""
    if session.get_bind().dialect.name == "sqlite":
        return _dialect_insert(True, _OUTBOX).on_conflict_do_nothing()
    return _dialect_insert(False, _OUTBOX).on_conflict_do_nothing(
        constraint="uq_outbox_edition_subscriber"
    )


async def queued_among(
    session: AsyncSession, edition_id: int, subscriber_ids: Sequence[int]
) -> set[int]:
    """Return which of these subscribers already have a row in the edition."""
    return set(
        await session.scalars(
            sa.select(_OUTBOX.c.subscriber_id)
            .where(_OUTBOX.c.edition_id == edition_id)
            .where(_OUTBOX.c.subscriber_id.in_(subscriber_ids))
        )
    )


def taken_in(edition_id: int | None) -> repository.Taken:
    """Return SQL telling, per subscriber id, whether the edition already has their row."""

    def taken(subscriber_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
        if edition_id is None:
            return sa.false()
        return (
            sa.select(_OUTBOX.c.id)
            .where(_OUTBOX.c.edition_id == edition_id)
            .where(_OUTBOX.c.subscriber_id == subscriber_id)
            .exists()
        )

    return taken


async def insert_digests(
    session: AsyncSession,
    recipients: sa.Select[tuple[int, str]],
    *,
    edition_id: int,
    variant_id: int,
    message_id: Callable[[sa.ColumnElement[int]], sa.ColumnElement[str]],
    window_end: datetime,
    now: datetime,
) -> int:
    """Queue one variant's digests for ``recipients`` (a select of subscriber id and
    email) in one INSERT ... SELECT, skipping readers who already have theirs; return
    how many rows were added."""
    who = recipients.subquery("recipients")
    columns: dict[str, sa.ColumnElement[Any]] = {
        "kind": sa.literal(MailKind.DIGEST.value, sa.String),
        "edition_id": sa.literal(edition_id, sa.Integer),
        "variant_id": sa.literal(variant_id, sa.Integer),
        "subscriber_id": who.c.id,
        "email": who.c.email,
        "status": sa.literal(QUEUED.value, sa.String),
        "attempts": sa.literal(0, sa.Integer),
        "next_attempt_at": sa.literal(now, _OUTBOX.c.next_attempt_at.type),
        "claimed_by": sa.literal("", sa.String),
        "smtp_response": sa.literal("", sa.String),
        "message_id": message_id(who.c.id),
        "window_end": sa.literal(window_end, _OUTBOX.c.window_end.type),
    }
    statement = _insert_ignoring_duplicates(session).from_select(
        # SQLite needs a WHERE before ON CONFLICT, or it reads ON as the FROM's join.
        list(columns),
        sa.select(*columns.values()).where(sa.true()),
    )
    result = await session.execute(statement)
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def edition_subscribers(period_key: str) -> sa.Select[Any]:
    """Return a select of the subscriber ids that have a row in the named edition."""
    return (
        sa.select(_OUTBOX.c.subscriber_id)
        .join(Edition, Edition.id == _OUTBOX.c.edition_id)
        .where(Edition.period_key == period_key)
        .where(_OUTBOX.c.subscriber_id.is_not(None))
    )


async def unfinished_count(site: Site) -> int:
    """Count rows of every kind waiting or claimed."""
    async with transaction(site.engine) as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(_OUTBOX)
            .where(_OUTBOX.c.status.in_((*WAITING, CLAIMED)))
        )
    return int(count or 0)


def _message_id(kind: MailKind, owner: int | str, domain: str) -> str:
    return f"<{kind.replace('_', '-')}.{owner}.{secrets.token_hex(8)}@{domain}>"


async def queue_notice(
    session: AsyncSession,
    kind: MailKind,
    subscriber_id: int,
    email: str,
    now: datetime,
    *,
    domain: str,
) -> None:
    """Queue one notice of the subscription flow, in the caller's transaction."""
    message_id = _message_id(kind, subscriber_id, domain)
    session.add(_queued(kind, email, now, message_id, subscriber_id=subscriber_id))
    await session.flush()


def _queued(kind: MailKind, email: str, now: datetime, message_id: str, **extra: Any) -> OutboxRow:
    """Return a new row of one message outside editions, due now (the rest: column defaults)."""
    return OutboxRow(kind=kind, email=email, next_attempt_at=now, message_id=message_id, **extra)


async def queue_test_copy(
    session: AsyncSession, email: str, payload: dict[str, Any], now: datetime, *, domain: str
) -> int:
    """Queue one test copy of a digest (what to render is in ``payload``); return its id."""
    message_id = _message_id(MailKind.TEST_COPY, "copy", domain)
    row = _queued(MailKind.TEST_COPY, email, now, message_id, payload=payload)
    session.add(row)
    await session.flush()
    return row.id


async def queue_announcements(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Queue one announcement's copies (edition_id, variant_id, subscriber_id, email,
    message_id per row), skipping readers who already have theirs."""
    # Status, attempts and the empty texts come from the columns' defaults.
    defaults = {"kind": MailKind.ANNOUNCEMENT, "next_attempt_at": now}
    await session.execute(
        _insert_ignoring_duplicates(session), [{**defaults, **row} for row in rows]
    )
