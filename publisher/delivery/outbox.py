"""The outbox, and its only writer: queue every kind of mail; claim, record, release, recover.

Every message Publisher sends is a row here (digests, the subscription flow's notices,
test copies), queued in the same transaction as the change that calls for it, and
delivered by the one worker (publisher.delivery.worker).

A row is claimed (status ``sending``, ``claimed_by`` = the worker) before its message is
handed to SMTP, and its result is written right after. A worker that dies leaves its
claimed rows behind; they go back to the queue once the worker is known to be dead: on
SQLite, where one process sends, whoever holds the send lock; on PostgreSQL, whoever can
take the dead worker's advisory lock (a live worker holds its own for its whole life).
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.db import apply_sqlite_pragmas, is_sqlite, sqlite_path, transaction
from publisher.delivery.models import (
    CANCELLED,
    CLAIMED,
    DONE,
    FAILED,
    QUEUED,
    RETRYING,
    SENDING,
    SENT,
    WAITING,
    Edition,
    MailKind,
    OutboxRow,
)
from publisher.errors import LockBusy, LockedError
from publisher.locks import AdvisoryLock, FileLock, HeldLock, lock_file
from publisher.site import Site
from subscribers import bounces, repository, suppression
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED

_OUTBOX = cast(sa.Table, OutboxRow.__table__)
#: Advisory lock class for worker liveness (the second key is the worker's hash).
_LOCK_CLASS = 0x7075_6231
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
_STAMP = repository.advance_last_digest()


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


class _SqliteWriter:
    """Claim rows and write result batches with plain sqlite3 connections.

    Each await on aiosqlite is a hand-off to its thread and every SQLAlchemy execute
    costs more than the SQLite work itself. Results are written straight from the event
    loop when the database lock is free (two executemany calls, no hand-off), else in a
    writer thread that may wait for the lock; claims always go to that thread. This is
    what lets one SQLite process keep up with SMTP.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-writer")
        self._connection: sqlite3.Connection | None = None
        # Used from the event loop thread only, and never waits for a lock.
        self._fast_connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _open_sqlite(self.path, busy_ms=30000)
        return self._connection

    def _fast(self) -> sqlite3.Connection:
        if self._fast_connection is None:
            self._fast_connection = _open_sqlite(self.path, busy_ms=0)
        return self._fast_connection

    def _write(
        self,
        params: list[dict[str, Any]],
        sent: list[dict[str, Any]],
        connection: sqlite3.Connection | None = None,
    ) -> None:
        connection = connection or self._connect()
        rows = [
            (
                p["b_status"],
                p["b_attempts"],
                _sqlite_time(p["b_first"]),
                _sqlite_time(p["b_next"]),
                _sqlite_time(p["b_sent"]),
                p["b_code"],
                p["b_response"],
                p["b_id"],
                p["b_worker"],
            )
            for p in params
        ]
        stamps = [(_sqlite_time(s["b_until"]), s["b_id"]) for s in sent]
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "UPDATE outbox SET status = ?, attempts = ?, first_attempt_at = ?, "
                "next_attempt_at = ?, sent_at = ?, smtp_code = ?, smtp_response = ? "
                "WHERE id = ? AND claimed_by = ?",
                rows,
            )
            connection.executemany(
                "UPDATE subscribers SET last_digest_at = ?1 WHERE id = ?2 "
                "AND (last_digest_at IS NULL OR last_digest_at < ?1)",
                stamps,
            )
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _claim(
        self, worker: str, limit: int, now: datetime, kinds: Sequence[str]
    ) -> tuple[list[Job], int]:
        connection = self._connect()
        stamp = _sqlite_time(now)
        kinds_sql = f"AND kind IN ({','.join('?' * len(kinds))}) " if kinds else ""
        connection.execute("BEGIN IMMEDIATE")
        try:
            rows = [
                _ClaimedRow(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    _from_sqlite_time(r[7]),
                    _from_sqlite_time(r[8]),
                    r[9],
                    None if r[10] is None else json.loads(r[10]),
                )
                for r in connection.execute(
                    f"UPDATE outbox SET status = '{CLAIMED}', claimed_by = ?, claimed_at = ? "
                    "WHERE id IN (SELECT id FROM outbox WHERE status IN "
                    f"('{QUEUED}', '{RETRYING}') AND next_attempt_at <= ? {kinds_sql}"
                    "AND (edition_id IS NULL OR edition_id NOT IN "
                    "(SELECT id FROM editions WHERE paused_until > ?)) LIMIT ?) "
                    "RETURNING id, edition_id, variant_id, subscriber_id, email, message_id, "
                    "attempts, first_attempt_at, window_end, kind, payload",
                    (worker, stamp, stamp, *kinds, stamp, limit),
                )
            ]
            if not rows:
                connection.execute("COMMIT")
                return [], 0
            ids = [r.subscriber_id for r in rows if r.subscriber_id is not None]
            marks = ",".join("?" * len(ids))
            people = {
                p[0]: _Person(*p)
                for p in connection.execute(
                    f"SELECT id, name, language, status FROM subscribers WHERE id IN ({marks})",
                    ids,
                )
            }
            hashes = {r.id: suppression.email_hash(r.email) for r in rows}
            wanted = sorted(set(hashes.values()))
            marks = ",".join("?" * len(wanted))
            blocked = {
                h[0]
                for h in connection.execute(
                    f"SELECT email_hash FROM suppressions WHERE email_hash IN ({marks})", wanted
                )
            }
            jobs, cancelled = _triage(rows, people, hashes, blocked)
            if cancelled:
                connection.executemany(
                    f"UPDATE outbox SET status = '{CANCELLED}', claimed_by = '', "
                    "smtp_response = ? WHERE id = ?",
                    [(why, row_id) for row_id, why in cancelled],
                )
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return jobs, len(cancelled)

    async def claim(
        self, worker: str, limit: int, now: datetime, kinds: Sequence[str]
    ) -> tuple[list[Job], int]:
        """Claim due rows in the writer thread; return the jobs and how many were cancelled."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._claim, worker, limit, now, kinds)

    async def write(self, params: list[dict[str, Any]], sent: list[dict[str, Any]]) -> None:
        """Commit one batch of results: right here when the database is free, else in the
        writer thread, which may wait for the lock without blocking the event loop."""
        connection = self._fast()
        try:
            self._write(params, sent, connection)
            return
        except sqlite3.OperationalError as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.executor, self._write, params, sent)

    def close(self) -> None:
        """Finish pending writes and release the connection (in its own thread)."""
        self.executor.submit(self._close).result()
        self.executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._fast_connection is not None:
            self._fast_connection.close()
            self._fast_connection = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _open_sqlite(path: Path, *, busy_ms: int) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    apply_sqlite_pragmas(connection, busy_ms)
    return connection


#: The subscriber status each kind of mail still makes sense for when it is claimed.
_WANTS_STATUS: dict[str, str] = {
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
    wanted = _WANTS_STATUS[kind]
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


class _ClaimedRow(NamedTuple):
    id: int
    edition_id: int | None
    variant_id: int | None
    subscriber_id: int | None
    email: str
    message_id: str
    attempts: int
    first_attempt_at: datetime | None
    window_end: datetime | None
    kind: str
    payload: dict[str, Any] | None


class _Person(NamedTuple):
    id: int
    name: str
    language: str
    status: str


#: The raw SQLite path encodes times exactly as the column type does through SQLAlchemy.
_SQLITE_DIALECT = sqlite.dialect()
_TIME_TYPE = _OUTBOX.c.next_attempt_at.type.dialect_impl(_SQLITE_DIALECT)
_TIME_TO_TEXT = _TIME_TYPE.bind_processor(_SQLITE_DIALECT)
_TIME_FROM_TEXT = _TIME_TYPE.result_processor(_SQLITE_DIALECT, None)


def _from_sqlite_time(value: str | None) -> datetime | None:
    assert _TIME_FROM_TEXT is not None
    found: datetime | None = _TIME_FROM_TEXT(value)
    return found


def _sqlite_time(moment: datetime | None) -> str | None:
    """Format an aware time the way the column type stores it on SQLite."""
    assert _TIME_TO_TEXT is not None
    text: str | None = _TIME_TO_TEXT(moment)
    return text


class Outbox:
    """One worker's handle on the outbox."""

    def __init__(
        self, site: Site, worker_id: str | None = None, kinds: Sequence[MailKind] = ()
    ) -> None:
        self.site = site
        #: The kinds of mail this worker delivers; empty means every kind.
        self.kinds: tuple[str, ...] = tuple(str(kind) for kind in kinds)
        self.worker_id = worker_id or new_worker_id()
        self.sqlite = is_sqlite(site.settings.database.url)
        self._lock: HeldLock | None = None
        self._writer: _SqliteWriter | None = None
        #: Rows cancelled at claim time (reader gone, unsubscribed or suppressed meanwhile).
        self.cancelled = 0

    # -- liveness -------------------------------------------------------------------

    async def register(self) -> None:
        """Announce this worker as alive (and, on SQLite, the only sender)."""
        url = self.site.settings.database.url
        if self.sqlite:
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
            return
        self._lock = await AdvisoryLock.take(self.site.engine, _lock_key(self.worker_id))

    def _sqlite_writer(self) -> _SqliteWriter:
        if self._writer is None:
            path = sqlite_path(self.site.settings.database.url)
            assert path is not None
            self._writer = _SqliteWriter(path)
        return self._writer

    async def unregister(self) -> None:
        """Drop the liveness lock (and the SQLite writer thread)."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
            self._writer = None
        if self._lock is not None:
            await self._lock.release()
            self._lock = None

    async def recover(self, now: datetime) -> int:
        """Return the rows of dead workers to the queue; return how many."""
        if self.sqlite:
            async with transaction(self.site.engine) as session:
                result = await session.execute(
                    self._requeue().where(_OUTBOX.c.claimed_by != self.worker_id), {"now": now}
                )
                return int(cast("CursorResult[Any]", result).rowcount or 0)
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

    async def claim(self, limit: int, now: datetime) -> list[Job]:
        """Claim up to ``limit`` due rows (SKIP LOCKED on PostgreSQL); cancel stale ones."""
        if self.sqlite and sqlite_path(self.site.settings.database.url):
            claimed, dropped = await self._sqlite_writer().claim(
                self.worker_id, limit, now, self.kinds
            )
            self.cancelled += dropped
            return claimed
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
        if not self.sqlite:
            due = due.with_for_update(skip_locked=True)
        claim = (
            sa.update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(due.scalar_subquery()))
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
        bounced = [o for o in outcomes if o.bounce]
        if not bounced and self.sqlite and sqlite_path(self.site.settings.database.url):
            # The hot path on SQLite: one hop to a writer thread instead of one per statement.
            await self._sqlite_writer().write(params, sent)
            return
        if not bounced:
            # The hot path: a bare connection, two cached executemany statements, one commit.
            async with self.site.engine.begin() as connection:
                await connection.execute(_RECORD, params)
                if sent:
                    await connection.execute(_STAMP, sent)
            return
        mail = self.site.settings.mail
        async with transaction(self.site.engine) as session:
            await session.execute(_RECORD, params)
            if sent:
                await session.execute(_STAMP, sent)
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


def bounce_kind(response: str) -> bounces.Kind:
    """Classify a permanent refusal by its enhanced status code (5.2.2 full box is soft)."""
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
        rows = await session.execute(
            sa.select(OutboxRow.status, sa.func.count())
            .where(OutboxRow.edition_id == edition_id)
            .group_by(OutboxRow.status)
        )
        return Counter({status: int(count) for status, count in rows})


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


def _insert_ignoring_duplicates(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "sqlite":
        return sqlite.insert(OutboxRow).on_conflict_do_nothing()
    return postgresql.insert(OutboxRow).on_conflict_do_nothing(
        constraint="uq_outbox_edition_subscriber"
    )


async def queue_digests(session: AsyncSession, rows: list[dict[str, Any]], now: datetime) -> None:
    """Queue one edition's digests (edition_id, variant_id, subscriber_id, email,
    message_id, window_end per row), skipping readers who already have theirs."""
    defaults = {
        "kind": MailKind.DIGEST,
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_by": "",
        "smtp_response": "",
    }
    await session.execute(
        _insert_ignoring_duplicates(session), [{**defaults, **row} for row in rows]
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
    session.add(
        OutboxRow(
            kind=kind,
            subscriber_id=subscriber_id,
            email=email,
            status=QUEUED,
            attempts=0,
            next_attempt_at=now,
            claimed_by="",
            smtp_response="",
            message_id=_message_id(kind, subscriber_id, domain),
        )
    )
    await session.flush()


async def queue_test_copy(
    session: AsyncSession, email: str, payload: dict[str, Any], now: datetime, *, domain: str
) -> int:
    """Queue one test copy of a digest (what to render is in ``payload``); return its id."""
    row = OutboxRow(
        kind=MailKind.TEST_COPY,
        email=email,
        status=QUEUED,
        attempts=0,
        next_attempt_at=now,
        claimed_by="",
        smtp_response="",
        message_id=_message_id(MailKind.TEST_COPY, "copy", domain),
        payload=payload,
    )
    session.add(row)
    await session.flush()
    return row.id


async def queue_announcements(
    session: AsyncSession, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Queue one announcement's copies (edition_id, variant_id, subscriber_id, email,
    message_id per row), skipping readers who already have theirs."""
    defaults = {
        "kind": MailKind.ANNOUNCEMENT,
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_by": "",
        "smtp_response": "",
    }
    await session.execute(
        _insert_ignoring_duplicates(session), [{**defaults, **row} for row in rows]
    )
