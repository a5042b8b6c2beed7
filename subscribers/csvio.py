"""Stream subscribers in and out of CSV: idempotent, batched, one report line per bad row."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from subscribers import preferences as prefs
from subscribers import suppression
from subscribers.addresses import normalize
from subscribers.errors import InvalidInput
from subscribers.models import ACTIVE, PENDING, Base, Subscriber
from subscribers.repository import Consent, Preferences

COLUMNS = ("email", "name", "language", "timezone", "frequency", "topics")
EXPORT_COLUMNS = (
    *COLUMNS,
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "consent_source",
    "consent_at",
    "consent_ip",
    "consent_user_agent",
    "consent_text",
    "soft_bounces",
    "hard_bounces",
    "last_bounce_at",
)
BATCH_SIZE = 1000
MAX_FIELD = 64 * 1024
# Spreadsheets run cells starting with these as formulas; export quotes them with "'".
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Bytes that were not UTF-8 arrive as lone surrogates (errors="surrogateescape").
_UNDECODED = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class RowError:
    """A rejected row and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    """Counts of what an import did, and the rows it rejected."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Return how many data rows were read."""
        return self.created + self.updated + self.unchanged + self.suppressed + len(self.errors)


@dataclass(frozen=True)
class _Row:
    line: int
    email: str
    key: str
    preferences: Preferences


def _unescape(value: str) -> str:
    if len(value) > 1 and value[0] == "'" and value[1] in _FORMULA_START:
        return value[1:]
    return value


def _escape(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def check_header(header: list[str], source: str) -> list[str]:
    """Return the header's column names, or raise InvalidInput naming ``source:1``."""
    names = [name.strip().lower().lstrip("\ufeff") for name in header]
    if "email" not in names:
        raise InvalidInput(f"{source}:1: header must name an email column ({','.join(COLUMNS)})")
    unknown = [n for n in names if n not in EXPORT_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"{source}:1: unknown column {unknown[0]!r} (expected {','.join(COLUMNS)})"
        )
    return names


def _parse_row(
    names: list[str], cells: list[str], line: int, languages: tuple[str, ...]
) -> _Row | RowError:
    if len(cells) != len(names):
        return RowError(line, f"expected {len(names)} fields, found {len(cells)}")
    values = {name: _unescape(cell) for name, cell in zip(names, cells, strict=True)}
    if any(_UNDECODED.search(cell) for cell in cells):
        return RowError(line, "not UTF-8 text")
    raw_email = values.get("email", "")
    try:
        address = normalize(raw_email)
        preferences = Preferences.parse(
            name=values.get("name", ""),
            language=values.get("language", ""),
            timezone=values.get("timezone", ""),
            frequency=values.get("frequency", ""),
            topics=prefs.split_topics(values.get("topics", "")),
            languages=languages,
        )
    except InvalidInput as exc:
        shown = raw_email.strip()[:80]
        return RowError(line, f"{shown}: {exc}" if shown and shown not in str(exc) else str(exc))
    return _Row(line, address.email, address.key, preferences)


async def _apply_batch(
    session: AsyncSession,
    rows: list[_Row],
    report: ImportReport,
    consent: Consent,
    now: datetime,
    confirmed: bool,
) -> None:
    # Later rows for the same address win, as they would across batches.
    latest: dict[str, _Row] = {}
    for row in rows:
        latest[row.key] = row
    report.unchanged += len(rows) - len(latest)
    # Plain rows, not ORM objects: a re-import of a big list mostly compares and skips.
    columns = (Subscriber.id, Subscriber.email_key, Subscriber.status, *_PREFERENCE_COLUMNS)
    found = await session.execute(sa.select(*columns).where(Subscriber.email_key.in_(latest)))
    existing = {r.email_key: r for r in found}
    hashes = {key: suppression.hash_key(key) for key in latest}
    suppressed = await suppression.suppressed_among(session, hashes.values())
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, row in latest.items():
        current = existing.get(key)
        if current is None:
            if hashes[key] in suppressed:
                report.suppressed += 1
                continue
            inserts.append(_new_row(row, consent, now, confirmed))
            continue
        wanted = _preference_values(row.preferences)
        change = {name: value for name, value in wanted.items() if getattr(current, name) != value}
        activate = confirmed and current.status == PENDING
        if activate and hashes[key] in suppressed:
            # Pending again after leaving: only the reader's own confirmation lifts that.
            report.suppressed += 1
            activate = False
        elif not change and not activate:
            report.unchanged += 1
            continue
        else:
            report.updated += 1
        if change or activate:
            update = {"id": current.id, **wanted}
            if activate:
                update.update(status=ACTIVE, confirmed_at=now, **_consent_values(consent))
            updates.append(update)
    if inserts:
        # Core insert: the ORM adds nothing for plain new rows and costs a third more.
        await session.execute(sa.insert(Base.metadata.tables["subscribers"]), inserts)
        report.created += len(inserts)
    # Bulk UPDATE by primary key wants one set of keys per statement.
    for shape in {tuple(sorted(u)) for u in updates}:
        same = [u for u in updates if tuple(sorted(u)) == shape]
        await session.execute(sa.update(Subscriber), same)


_PREFERENCE_COLUMNS = (
    Subscriber.name,
    Subscriber.language,
    Subscriber.timezone,
    Subscriber.frequency,
    Subscriber.topics,
)


def _preference_values(p: Preferences) -> dict[str, Any]:
    return {
        "name": p.name,
        "language": p.language,
        "timezone": p.timezone,
        "frequency": p.frequency,
        "topics": list(p.topics),
    }


def _consent_values(consent: Consent) -> dict[str, Any]:
    return {
        "consent_source": consent.source,
        "consent_at": consent.at,
        "consent_ip": consent.ip,
        "consent_user_agent": consent.user_agent,
        "consent_text": consent.text,
    }


def _new_row(row: _Row, consent: Consent, now: datetime, confirmed: bool) -> dict[str, Any]:
    return {
        "email": row.email,
        "email_key": row.key,
        "status": ACTIVE if confirmed else PENDING,
        "created_at": now,
        "confirmed_at": now if confirmed else None,
        "soft_bounces": 0,
        "hard_bounces": 0,
        **_preference_values(row.preferences),
        **_consent_values(consent),
    }


async def import_csv(
    engine: AsyncEngine,
    stream: TextIO,
    now: datetime,
    *,
    source: str = "<stdin>",
    confirmed: bool = False,
    languages: Iterable[str] = prefs.LANGUAGES,
    batch_size: int = BATCH_SIZE,
    on_error: Callable[[RowError], None] | None = None,
    on_batch: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import subscribers from CSV text, one transaction per batch; never unsuppress anyone.

    Existing addresses get their preferences updated; with ``confirmed`` new and pending
    rows become active (consent source "import"); suppressed addresses are skipped.
    ``on_batch`` sees the running report after each committed batch (progress).
    """
    allowed = tuple(languages)
    consent = Consent(
        source="import",
        at=now,
        text=f"imported from {source}" + (" as confirmed" if confirmed else ""),
    )
    report = ImportReport()
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    def reject(error: RowError) -> None:
        report.errors.append(error)
        if on_error is not None:
            on_error(error)

    async def flush(batch: list[_Row]) -> None:
        for attempt in (1, 2):
            snapshot = ImportReport(
                report.created, report.updated, report.unchanged, report.suppressed
            )
            try:
                async with sessions() as session, session.begin():
                    await _apply_batch(session, batch, snapshot, consent, now, confirmed)
            except IntegrityError:
                # Someone subscribed one of these addresses meanwhile: redo the batch.
                if attempt == 2:
                    raise
                continue
            report.created, report.updated = snapshot.created, snapshot.updated
            report.unchanged, report.suppressed = snapshot.unchanged, snapshot.suppressed
            if on_batch is not None:
                on_batch(report)
            return

    reader = csv.reader(stream, strict=False)
    csv.field_size_limit(MAX_FIELD)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(f"{source}: empty file; expected a header line") from None
    except csv.Error as exc:
        raise InvalidInput(f"{source}:1: {exc}") from None
    names = check_header(header, source)
    batch: list[_Row] = []
    end = reader.line_num
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            end = reader.line_num
            reject(RowError(start, f"unreadable CSV: {exc}"))
            continue
        end = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        parsed = _parse_row(names, cells, start, allowed)
        if isinstance(parsed, RowError):
            reject(parsed)
            continue
        batch.append(parsed)
        if len(batch) >= batch_size:
            await flush(batch)
            batch = []
    if batch:
        await flush(batch)
    return report


async def export_csv(
    session: AsyncSession, out: TextIO, *, status: str | None = None, batch_size: int = 2000
) -> int:
    """Write every subscriber (with consent fields) as CSV, streaming; return the count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    table = Base.metadata.tables["subscribers"]
    columns = [table.c[name] for name in EXPORT_COLUMNS]
    count = 0
    last_id = 0
    while True:
        # Plain rows in keyset batches: the whole list never sits in memory.
        query = sa.select(table.c.id, *columns).where(table.c.id > last_id)
        if status is not None:
            query = query.where(table.c.status == status)
        rows = (await session.execute(query.order_by(table.c.id).limit(batch_size))).all()
        for row in rows:
            writer.writerow(
                [_cell(name, value) for name, value in zip(EXPORT_COLUMNS, row[1:], strict=True)]
            )
        count += len(rows)
        if len(rows) < batch_size:
            return count
        last_id = rows[-1][0]


def _cell(name: str, value: object) -> str:
    if name == "topics" and isinstance(value, list):
        return _escape(";".join(str(v) for v in value))
    if isinstance(value, datetime):
        return value.isoformat()
    return _escape(value)
