"""When digests are due: local send times per time zone, DST-safe, as pure functions.

Everything here takes the current instant as an argument; nothing reads a clock,
touches the database or imports the scheduler library, so every rule can be
checked by stepping a clock across days, DST changes and odd UTC offsets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Re-exported: the schedule speaks of frequencies as readers choose them.
from publisher.columns import DAILY as DAILY
from publisher.columns import FREQUENCIES as FREQUENCIES
from publisher.columns import WEEKLY as WEEKLY

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: The scheduler looks for due time zones this often; every UTC offset in use
#: today (…+05:30, +05:45, +12:45…) is a multiple of it, so a tick lands exactly
#: on each zone's local send time. The one definition of the tick interval.
TICK = timedelta(minutes=15)
#: Ticks are counted from here: every UTC midnight is a tick.
TICK_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Schedule:
    """The digest timetable: local send time and the weekly digest's day."""

    send_time: time = time(7, 0)
    weekly_day: str = "mon"

    def __post_init__(self) -> None:
        if self.weekly_day not in WEEKDAYS:
            raise ValueError(f"not a weekday: {self.weekly_day!r} (use one of {WEEKDAYS})")

    @property
    def weekday(self) -> int:
        """Return the weekly day as date.weekday() counts it (Monday is 0)."""
        return WEEKDAYS.index(self.weekly_day)


@dataclass(frozen=True)
class DueGroup:
    """Time zones whose digest of one frequency and local date fell due at one instant.

    ``send_at`` is when the local send time came in these zones (zones with the same
    UTC offset share it). It, not the moment a tick notices, closes the readers'
    content window: a late tick (a scheduler that was down, a reader who moved to a
    zone already past its send time) sends what the digest would have held on time,
    and an article published later that day waits for the next digest.
    """

    frequency: str
    local_date: date
    send_at: datetime
    timezones: tuple[str, ...]

    @property
    def period_key(self) -> str:
        """Return the edition key these zones share, e.g. daily:2026-11-25."""
        return period_key(self.frequency, self.local_date)


@dataclass(frozen=True)
class PlannedSend:
    """The next send of one frequency in one time zone."""

    frequency: str
    timezone: str
    local_date: date
    send_at: datetime
    subscribers: int

    @property
    def period_key(self) -> str:
        """Return the edition key of this send."""
        return period_key(self.frequency, self.local_date)

    @property
    def local_send_at(self) -> datetime:
        """Return the send instant on the zone's wall clock."""
        return self.send_at.astimezone(zone(self.timezone))


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name, or raise ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def is_zone(name: str) -> bool:
    """Tell whether ``name`` is a usable IANA time zone."""
    try:
        zone(name)
    except ValueError:
        return False
    return True


def effective_zone(subscriber_zone: str | None, site_zone: str) -> str:
    """Return the zone a subscriber's clock runs in: their own if valid, else the site's."""
    if subscriber_zone and is_zone(subscriber_zone):
        return subscriber_zone
    return site_zone


def period_key(frequency: str, local_date: date) -> str:
    """Return the edition key for a frequency and a reader-local date."""
    if frequency not in FREQUENCIES:
        raise ValueError(f"not a digest frequency: {frequency!r}")
    return f"{frequency}:{local_date.isoformat()}"


_EDITION_SLUG = re.compile(r"^(daily|weekly)-(\d{4}-\d{2}-\d{2})$")
_ANNOUNCEMENT_SLUG = re.compile(r"^announcement-([1-9][0-9]{0,17})$")

#: The "frequency" of an announcement's edition: sent once, never on a schedule.
ANNOUNCEMENT = "announcement"
#: The furthest any zone's wall clock lags UTC (Etc/GMT+12, Baker Island): once a local
#: time has passed there, it has passed in every zone.
LATEST_OFFSET = timedelta(hours=12)


def announcement_key(announcement_id: int) -> str:
    """Return the edition key of an announcement ("announcement:12")."""
    return f"{ANNOUNCEMENT}:{announcement_id}"


def announcement_zones_due(
    local_date: date, send_time: time, zones: Iterable[str], now: datetime
) -> set[str]:
    """Return the zones whose wall clock has reached ``send_time`` on ``local_date`` at ``now``."""
    now = _require_aware(now)
    return {name for name in zones if now >= send_instant(local_date, send_time, zone(name))}


def announcement_everywhere_at(local_date: date, send_time: time) -> datetime:
    """Return the UTC instant by which ``send_time`` on ``local_date`` has come in every zone."""
    return datetime.combine(local_date, send_time, tzinfo=UTC) + LATEST_OFFSET


def edition_slug(period_key: str) -> str:
    """Return the URL segment of an edition ("daily:2026-11-25" → "daily-2026-11-25")."""
    return period_key.replace(":", "-", 1)


def period_key_of(slug: str) -> str | None:
    """Return the period key a URL segment names, or None when it names none."""
    announced = _ANNOUNCEMENT_SLUG.match(slug[:40])
    if announced is not None:
        return announcement_key(int(announced[1]))
    found = _EDITION_SLUG.match(slug[:40])
    if found is None:
        return None
    try:
        date.fromisoformat(found[2])
    except ValueError:
        return None
    return f"{found[1]}:{found[2]}"


def archive_path(period_key: str, language: str) -> str:
    """Return the site path of an edition's digest in one language (the web version)."""
    return f"/digests/{edition_slug(period_key)}/{language}"


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: planning needs an aware instant")
    return now.astimezone(UTC)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def send_instant(local_date: date, send_time: time, tz: ZoneInfo) -> datetime:
    """Return the first UTC instant at which the wall clock in ``tz`` reads send_time on that date.

    A time repeated by a fall-back change sends at its first occurrence; a time
    skipped by a spring-forward change sends the moment the clock jumps past it
    (02:30 on a day that goes 02:00 → 03:00 sends at 03:00).
    """
    wanted = datetime.combine(local_date, send_time)
    early = wanted.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(early, tz) == wanted:
        return early
    # In a gap: fold=1 applies the offset after the change and lands before it,
    # fold=0 lands after it; search between them for the first instant whose
    # wall clock has passed the wanted time (offsets are whole minutes).
    low, high = wanted.replace(tzinfo=tz, fold=1).astimezone(UTC), early
    while high - low > timedelta(minutes=1):
        middle = (low + (high - low) / 2).replace(second=0, microsecond=0)
        if middle <= low:
            break
        if _wall(middle, tz) >= wanted:
            high = middle
        else:
            low = middle
    return high


def day_start(local_date: date, tz: ZoneInfo) -> datetime:
    """Return the UTC instant a local date begins in ``tz`` (its first wall-clock moment).

    A reader whose previous digest went out at or after this instant has already
    had a digest during that local date, whichever zone they were in at the time.
    """
    return send_instant(local_date, time(0, 0), tz)


def is_send_day(frequency: str, local_date: date, schedule: Schedule) -> bool:
    """Tell whether a reader-local date carries a digest of this frequency."""
    if frequency == DAILY:
        return True
    if frequency == WEEKLY:
        return local_date.weekday() == schedule.weekday
    raise ValueError(f"not a digest frequency: {frequency!r}")


def local_date(now: datetime, tz: ZoneInfo) -> date:
    """Return the date on the wall clock of ``tz`` at ``now``."""
    return _require_aware(now).astimezone(tz).date()


def due_date(frequency: str, now: datetime, tz: ZoneInfo, schedule: Schedule) -> date | None:
    """Return today's local date in ``tz`` if its digest is due at ``now``, else None.

    Due means: today is a send day and the local send time has passed. Only the
    current local date counts, so a scheduler that was down at 07:00 catches up
    later the same day, and a missed day is never sent after midnight.
    """
    now = _require_aware(now)
    today = now.astimezone(tz).date()
    if not is_send_day(frequency, today, schedule):
        return None
    if now < send_instant(today, schedule.send_time, tz):
        return None
    return today


def due_groups(
    now: datetime, zones: Mapping[str, Iterable[str]], schedule: Schedule
) -> list[DueGroup]:
    """Group the zones (per frequency) due at ``now`` by local date and send instant."""
    now = _require_aware(now)
    grouped: dict[tuple[str, date, datetime], set[str]] = {}
    for frequency, names in zones.items():
        for name in names:
            tz = zone(name)
            day = due_date(frequency, now, tz, schedule)
            if day is not None:
                instant = send_instant(day, schedule.send_time, tz)
                grouped.setdefault((frequency, day, instant), set()).add(name)
    return [
        DueGroup(frequency, day, instant, tuple(sorted(names)))
        for (frequency, day, instant), names in sorted(
            grouped.items(),
            key=lambda item: (FREQUENCIES.index(item[0][0]), item[0][1], item[0][2]),
        )
    ]


def next_send(
    frequency: str, now: datetime, tz: ZoneInfo, schedule: Schedule
) -> tuple[date, datetime]:
    """Return the local date and UTC instant of the next send strictly after ``now``."""
    now = _require_aware(now)
    day = now.astimezone(tz).date()
    # Eight days always reach the next weekly day; a few more cover a calendar
    # day a zone skipped altogether (Samoa dropped 2011-12-30).
    for offset in range(10):
        candidate = day + timedelta(days=offset)
        if not is_send_day(frequency, candidate, schedule):
            continue
        instant = send_instant(candidate, schedule.send_time, tz)
        if instant.astimezone(tz).date() != candidate:
            continue
        if instant > now:
            return candidate, instant
    raise ValueError(f"no {frequency} send found after {now.isoformat()} in {tz.key}")


def upcoming(
    now: datetime, counts: Mapping[tuple[str, str], int], schedule: Schedule
) -> list[PlannedSend]:
    """List the next send per (frequency, zone) with its subscriber count, soonest first."""
    plans = []
    for (frequency, name), count in counts.items():
        day, instant = next_send(frequency, now, zone(name), schedule)
        plans.append(PlannedSend(frequency, name, day, instant, count))
    return sorted(plans, key=lambda plan: (plan.send_at, plan.frequency, plan.timezone))


def next_tick(now: datetime) -> datetime:
    """Return the first tick (a quarter-hour boundary in UTC) at or after ``now``."""
    now = _require_aware(now)
    # Ceiling division: a whole number of ticks since the epoch, rounded up.
    return TICK_EPOCH + -((TICK_EPOCH - now) // TICK) * TICK
