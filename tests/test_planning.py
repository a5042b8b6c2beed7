"""Planning rules, checked by stepping a clock tick by tick across days and DST changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.planning import (
    DAILY,
    TICK,
    WEEKLY,
    DueGroup,
    Schedule,
    day_start,
    due_date,
    due_groups,
    effective_zone,
    next_send,
    next_tick,
    period_key,
    send_instant,
    upcoming,
    zone,
)

INDONESIA = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")


def ticks(start: datetime, end: datetime) -> Iterator[datetime]:
    """Yield every quarter-hour tick from start (inclusive) to end (exclusive)."""
    now = next_tick(start)
    while now < end:
        yield now
        now += TICK


def simulate(
    tz_name: str, start: datetime, end: datetime, schedule: Schedule, frequency: str = DAILY
) -> dict[date, datetime]:
    """Run the due rule at every tick; return the tick at which each local date was first due.

    A date already due at the very first tick (the simulation began after its
    send time) is left out: it tells nothing about when that date became due.
    """
    first: dict[date, datetime] = {}
    opening = next_tick(start)
    for now in ticks(start, end):
        day = due_date(frequency, now, zone(tz_name), schedule)
        if day is not None and day not in first:
            first[day] = now
    return {day: when for day, when in first.items() if when != opening}


def test_indonesian_zones_are_each_due_at_their_own_seven() -> None:
    schedule = Schedule()
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)
    end = datetime(2026, 11, 27, 12, tzinfo=UTC)
    expected_utc_hour = {"Asia/Jakarta": 0, "Asia/Makassar": 23, "Asia/Jayapura": 22}
    for name in INDONESIA:
        first = simulate(name, start, end, schedule)
        for day, when in first.items():
            local = when.astimezone(zone(name))
            assert (local.date(), local.time()) == (day, time(7, 0)), name
            assert when.hour == expected_utc_hour[name]
        # Every local date in the window is due exactly once, none skipped.
        days = sorted(first)
        assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
        assert len(days) >= 3


def test_indonesian_zones_share_one_edition_per_local_date() -> None:
    # At 00:00 UTC on the 25th it is 07:00 WIB, 08:00 WITA and 09:00 WIT: all due for the 25th.
    groups = due_groups(datetime(2026, 11, 25, 0, 0, tzinfo=UTC), {DAILY: INDONESIA}, Schedule())
    day = date(2026, 11, 25)
    # One edition key, but each zone's window closes at its own 07:00.
    assert groups == [
        DueGroup(DAILY, day, datetime(2026, 11, 24, 22, tzinfo=UTC), ("Asia/Jayapura",)),
        DueGroup(DAILY, day, datetime(2026, 11, 24, 23, tzinfo=UTC), ("Asia/Makassar",)),
        DueGroup(DAILY, day, datetime(2026, 11, 25, 0, tzinfo=UTC), ("Asia/Jakarta",)),
    ]
    assert {group.period_key for group in groups} == {"daily:2026-11-25"}
    # Zones with the same offset share a group.
    groups = due_groups(
        datetime(2026, 11, 25, 0, 0, tzinfo=UTC),
        {DAILY: ["Asia/Jakarta", "Asia/Pontianak", "Asia/Bangkok"]},
        Schedule(),
    )
    assert [group.timezones for group in groups] == [
        ("Asia/Bangkok", "Asia/Jakarta", "Asia/Pontianak")
    ]
    # A quarter of an hour earlier WIB is still waiting for its 07:00.
    groups = due_groups(datetime(2026, 11, 24, 23, 45, tzinfo=UTC), {DAILY: INDONESIA}, Schedule())
    assert [group.timezones for group in groups] == [("Asia/Jayapura",), ("Asia/Makassar",)]
    # At 21:45 UTC it is the 25th before 07:00 in all three zones: nothing is due,
    # and the 24th (whose sends are long past) is never sent late.
    groups = due_groups(datetime(2026, 11, 24, 21, 45, tzinfo=UTC), {DAILY: INDONESIA}, Schedule())
    assert groups == []


@pytest.mark.parametrize(
    ("tz_name", "utc"),
    [("Asia/Kolkata", time(1, 30)), ("Asia/Kathmandu", time(1, 15)), ("Pacific/Chatham", None)],
)
def test_half_and_quarter_hour_offsets_land_on_a_tick(tz_name: str, utc: time | None) -> None:
    first = simulate(
        tz_name,
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 28, tzinfo=UTC),
        Schedule(),
    )
    assert len(first) >= 7
    for day, when in first.items():
        local = when.astimezone(zone(tz_name))
        assert local.date() == day
        assert local.time() == time(7, 0)
        if utc is not None:
            assert when.time() == utc


def test_berlin_spring_forward_skipped_send_time_sends_once() -> None:
    # 2027-03-28: Berlin clocks go 02:00 CET → 03:00 CEST; 02:30 does not exist.
    schedule = Schedule(send_time=time(2, 30))
    first = simulate(
        "Europe/Berlin",
        datetime(2027, 3, 26, tzinfo=UTC),
        datetime(2027, 3, 31, tzinfo=UTC),
        schedule,
    )
    assert sorted(first) == [date(2027, 3, d) for d in (26, 27, 28, 29, 30)]
    # Sent the moment the clock jumps past 02:30: 03:00 CEST = 01:00 UTC.
    assert first[date(2027, 3, 28)] == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)
    assert first[date(2027, 3, 27)] == datetime(2027, 3, 27, 1, 30, tzinfo=UTC)
    assert first[date(2027, 3, 29)] == datetime(2027, 3, 29, 0, 30, tzinfo=UTC)


def test_berlin_fall_back_repeated_send_time_sends_once() -> None:
    # 2026-10-25: Berlin clocks go 03:00 CEST → 02:00 CET; 02:30 happens twice.
    schedule = Schedule(send_time=time(2, 30))
    tz = zone("Europe/Berlin")
    first = simulate(
        "Europe/Berlin",
        datetime(2026, 10, 23, tzinfo=UTC),
        datetime(2026, 10, 28, tzinfo=UTC),
        schedule,
    )
    assert sorted(first) == [date(2026, 10, d) for d in (23, 24, 25, 26, 27)]
    assert first[date(2026, 10, 25)] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    # The second 02:30 (01:30 UTC) is the same local date, hence the same edition key.
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert second.astimezone(tz).time() == time(2, 30)
    assert due_date(DAILY, second, tz, schedule) == date(2026, 10, 25)
    keys = {
        period_key(DAILY, day)
        for now in ticks(
            datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 22, 45, tzinfo=UTC)
        )
        if (day := due_date(DAILY, now, tz, schedule)) is not None
    }
    assert keys == {"daily:2026-10-25"}


@pytest.mark.parametrize("tz_name", ["Europe/Berlin", "America/New_York", "Australia/Sydney"])
@pytest.mark.parametrize("send", [time(0, 0), time(2, 30), time(7, 0), time(23, 45)])
def test_dst_zones_over_a_year_never_skip_or_double(tz_name: str, send: time) -> None:
    schedule = Schedule(send_time=send)
    first = simulate(
        tz_name,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
        schedule,
    )
    days = sorted(first)
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    assert len(days) >= 364
    tz = zone(tz_name)
    for day, when in first.items():
        local = when.astimezone(tz)
        assert local.date() == day
        # On the wall clock: at send time, or within one tick after it (a DST gap).
        wanted = datetime.combine(day, send)
        wall = local.replace(tzinfo=None)
        assert wanted <= wall < wanted + timedelta(hours=1), (day, wall)


def test_weekly_is_due_only_on_the_weekly_day_in_local_time() -> None:
    schedule = Schedule(weekly_day="mon")
    first = simulate(
        "Asia/Jayapura",
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 12, 12, tzinfo=UTC),
        schedule,
        WEEKLY,
    )
    assert sorted(first) == [date(2026, 11, 23), date(2026, 11, 30), date(2026, 12, 7)]
    # Monday 07:00 WIT is Sunday 22:00 UTC.
    assert first[date(2026, 11, 30)] == datetime(2026, 11, 29, 22, tzinfo=UTC)
    friday = Schedule(weekly_day="fri")
    assert due_date(WEEKLY, datetime(2026, 11, 27, 3, tzinfo=UTC), zone("Asia/Jakarta"), friday)
    assert (
        due_date(WEEKLY, datetime(2026, 11, 26, 3, tzinfo=UTC), zone("Asia/Jakarta"), friday)
        is None
    )


def test_clock_jumps_keep_the_same_key_or_skip_nothing_already_due() -> None:
    tz = zone("Asia/Jakarta")
    schedule = Schedule()
    at_seven = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    # A jump back within the day (NTP correction) gives the same edition or none.
    assert due_date(DAILY, at_seven, tz, schedule) == date(2026, 11, 25)
    assert due_date(DAILY, at_seven - timedelta(minutes=5), tz, schedule) is None
    # A jump forward by hours is still today's one edition.
    assert due_date(DAILY, at_seven + timedelta(hours=9), tz, schedule) == date(2026, 11, 25)
    # Past local midnight the missed day is not sent late; the next day's is due at 07:00.
    assert due_date(DAILY, at_seven + timedelta(hours=17, minutes=30), tz, schedule) is None


def test_next_send_and_upcoming() -> None:
    now = datetime(2026, 11, 24, 22, 30, tzinfo=UTC)
    schedule = Schedule()
    assert next_send(DAILY, now, zone("Asia/Jakarta"), schedule) == (
        date(2026, 11, 25),
        datetime(2026, 11, 25, 0, 0, tzinfo=UTC),
    )
    # WIT's 07:00 on the 25th was at 22:00 UTC: the next one is on the 26th.
    assert next_send(DAILY, now, zone("Asia/Jayapura"), schedule)[0] == date(2026, 11, 26)
    plans = upcoming(
        now,
        {(DAILY, "Asia/Jakarta"): 3, (DAILY, "Asia/Makassar"): 2, (WEEKLY, "Asia/Jakarta"): 1},
        schedule,
    )
    assert [(p.frequency, p.timezone, p.subscribers) for p in plans] == [
        (DAILY, "Asia/Makassar", 2),
        (DAILY, "Asia/Jakarta", 3),
        (WEEKLY, "Asia/Jakarta", 1),
    ]
    assert plans[0].local_send_at.time() == time(7, 0)
    assert plans[2].local_date == date(2026, 11, 30)
    assert plans[2].period_key == "weekly:2026-11-30"


def test_effective_zone_and_bad_input() -> None:
    assert effective_zone("", "Asia/Jakarta") == "Asia/Jakarta"
    assert effective_zone("Asia/Makassar", "Asia/Jakarta") == "Asia/Makassar"
    assert effective_zone("Mars/Olympus", "Asia/Jakarta") == "Asia/Jakarta"
    with pytest.raises(ValueError, match="Mars/Olympus"):
        zone("Mars/Olympus")
    with pytest.raises(ValueError, match="naive"):
        due_date(DAILY, datetime(2026, 11, 25), zone("Asia/Jakarta"), Schedule())
    with pytest.raises(ValueError, match="monthly"):
        period_key("monthly", date(2026, 11, 25))
    with pytest.raises(ValueError, match="funday"):
        Schedule(weekly_day="funday")


def test_next_tick_rounds_up_to_the_quarter_hour() -> None:
    assert next_tick(datetime(2026, 11, 25, 7, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 7, 0, tzinfo=UTC
    )
    assert next_tick(datetime(2026, 11, 25, 7, 0, 1, tzinfo=UTC)) == datetime(
        2026, 11, 25, 7, 15, tzinfo=UTC
    )
    assert next_tick(datetime(2026, 11, 25, 23, 50, tzinfo=UTC)) == datetime(
        2026, 11, 26, 0, 0, tzinfo=UTC
    )


ZONES = sorted(
    name
    for name in available_timezones()
    if "/" in name and not name.startswith(("Etc/", "SystemV/"))
)


@settings(max_examples=300, deadline=None)
@given(
    tz_name=st.sampled_from(ZONES),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
    ),
    send=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
)
def test_due_rule_properties(tz_name: str, now: datetime, send: time) -> None:
    tz = zone(tz_name)
    schedule = Schedule(send_time=send)
    today = now.astimezone(tz).date()
    instant = send_instant(today, send, tz)
    # The send instant is the first moment the local wall clock shows send_time or later.
    assert instant.astimezone(tz).replace(tzinfo=None) >= datetime.combine(today, send)
    before = (instant - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
    assert before < datetime.combine(today, send)
    due = due_date(DAILY, now, tz, schedule)
    assert (due == today) == (now >= instant)
    assert due in (None, today)
    day, upcoming_instant = next_send(DAILY, now, tz, schedule)
    assert upcoming_instant > now
    assert upcoming_instant.astimezone(tz).date() == day
    assert day >= today


def test_day_start_handles_midnight_gaps() -> None:
    assert day_start(date(2026, 11, 25), zone("Asia/Jakarta")) == datetime(
        2026, 11, 24, 17, tzinfo=UTC
    )
    # America/Santiago springs forward at midnight: 2026-09-06 begins at 01:00 local.
    start = day_start(date(2026, 9, 6), zone("America/Santiago"))
    assert start.astimezone(zone("America/Santiago")).date() == date(2026, 9, 6)
    assert (start - timedelta(minutes=1)).astimezone(zone("America/Santiago")).date() == date(
        2026, 9, 5
    )
