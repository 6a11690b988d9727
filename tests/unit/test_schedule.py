from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from router.buyers import WEEKDAYS, Buyer, Schedule, Weekday
from router.schedule import is_open, local_time, zone

NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = {day: ["09:00-17:00"] for day in WEEKDAYS}


def make_buyer(
    *,
    hours: Mapping[Weekday, list[str]] | Mapping[str, list[str]] | None = None,
    closed_dates: list[date] | None = None,
    timezone: str = "America/New_York",
) -> Buyer:
    schedule: dict[str, Any] = {"hours": dict(hours or {}), "closed_dates": closed_dates or []}
    return Buyer(
        id="acme",
        name="Acme",
        verticals=["solar"],
        price=10.0,
        timezone=timezone,
        schedule=Schedule.model_validate(schedule),
    )


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def at_local(day: date, minute: int, second: int = 0, tz: ZoneInfo = NEW_YORK) -> datetime:
    """A wall-clock time in `tz`, handed over in UTC so the code must convert it."""
    wall = datetime.combine(day, time(minute // 60, minute % 60, second), tzinfo=tz)
    return wall.astimezone(UTC)


# Days far from any DST change in New York, so a wall-clock time maps to exactly one instant.
CALM_DAYS = st.dates(date(2026, 4, 1), date(2026, 10, 15)) | st.dates(
    date(2026, 12, 1), date(2027, 2, 28)
)


def test_zone_is_cached() -> None:
    zone.cache_clear()
    buyer = make_buyer(hours=EVERY_DAY)
    for _ in range(3):
        is_open(buyer, datetime(2026, 6, 1, 15, tzinfo=UTC))
    info = zone.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    assert zone("America/New_York") == NEW_YORK


def test_local_time_is_the_buyer_wall_clock() -> None:
    buyer = make_buyer(timezone="America/Los_Angeles")
    local = local_time(buyer, datetime(2026, 7, 1, 3, 30, tzinfo=UTC))
    assert (local.date(), local.hour, local.minute) == (date(2026, 6, 30), 20, 30)
    assert local.utcoffset() == timedelta(hours=-7)
    with pytest.raises(ValueError):
        local_time(buyer, datetime(2026, 7, 1, 3, 30))


@settings(max_examples=100, deadline=None)
@given(st.datetimes(timezones=st.just(UTC)))
def test_no_hours_and_no_closed_dates_is_always_open(at: datetime) -> None:
    assert is_open(make_buyer(), at)


@settings(max_examples=100, deadline=None)
@given(CALM_DAYS, st.integers(0, 24 * 60 - 1))
def test_closed_dates_close_the_whole_local_day(day: date, minute: int) -> None:
    closed = make_buyer(closed_dates=[day])
    assert not is_open(closed, at_local(day, minute))
    assert is_open(closed, at_local(day + timedelta(days=1), minute))
    assert is_open(closed, at_local(day - timedelta(days=1), minute))
    # Closed dates win over opening hours too.
    assert not is_open(
        make_buyer(hours={d: ["00:00-24:00"] for d in WEEKDAYS}, closed_dates=[day]),
        at_local(day, minute),
    )


def test_closed_date_is_read_in_the_buyer_zone_not_utc() -> None:
    buyer = make_buyer(closed_dates=[date(2026, 12, 25)], timezone="America/Los_Angeles")
    # 05:00Z on the 25th is still the evening of the 24th in Los Angeles.
    assert is_open(buyer, datetime(2026, 12, 25, 5, tzinfo=UTC))
    # 03:00Z on the 26th is the evening of the 25th there.
    assert not is_open(buyer, datetime(2026, 12, 26, 3, tzinfo=UTC))


def test_unlisted_weekday_is_closed_all_day() -> None:
    buyer = make_buyer(hours={"mon": ["00:00-24:00"]})
    monday = date(2026, 6, 1)
    assert monday.weekday() == 0
    for minute in (0, 9 * 60, 23 * 60 + 59):
        assert is_open(buyer, at_local(monday, minute))
        assert not is_open(buyer, at_local(monday + timedelta(days=1), minute))
        assert not is_open(buyer, at_local(monday - timedelta(days=1), minute))
    # A listed day with no ranges is closed as well.
    assert not is_open(make_buyer(hours={"mon": []}), at_local(monday, 12 * 60))


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int]:
    start = draw(st.integers(0, 24 * 60 - 1))
    end = draw(st.integers(start + 1, 24 * 60))
    return start, end


@settings(max_examples=300, deadline=None)
@given(
    CALM_DAYS,
    ranges(),
    st.sampled_from(["start", "end"]),
    st.integers(-3, 2),
    st.integers(0, 59),
)
def test_range_includes_its_start_and_excludes_its_end(
    day: date, span: tuple[int, int], edge: str, shift: int, second: int
) -> None:
    start, end = span
    weekday = WEEKDAYS[day.weekday()]
    buyer = make_buyer(hours={weekday: [f"{hhmm(start)}-{hhmm(end)}"]})
    minute = (start if edge == "start" else end) + shift
    assume(0 <= minute < 24 * 60)
    assert is_open(buyer, at_local(day, minute, second)) == (start <= minute < end)


@settings(max_examples=200, deadline=None)
@given(CALM_DAYS, st.integers(0, 24 * 60 - 1))
def test_several_ranges_in_a_day(day: date, minute: int) -> None:
    weekday = WEEKDAYS[day.weekday()]
    buyer = make_buyer(hours={weekday: ["08:00-12:00", "13:30-18:00", "22:00-24:00"]})
    expected = 480 <= minute < 720 or 810 <= minute < 1080 or minute >= 1320
    assert is_open(buyer, at_local(day, minute)) == expected


def test_24_00_means_end_of_day() -> None:
    friday = date(2026, 6, 5)
    buyer = make_buyer(hours={"fri": ["20:00-24:00"]})
    assert is_open(buyer, at_local(friday, 23 * 60 + 59, 59))
    assert not is_open(buyer, at_local(friday + timedelta(days=1), 0))
    assert not is_open(buyer, at_local(friday, 19 * 60 + 59, 59))


def test_dst_switches_in_new_york_keep_opening_at_nine_local() -> None:
    buyer = make_buyer(hours=EVERY_DAY)
    # Spring forward on 2026-03-08: 09:00 is 14:00Z the day before and 13:00Z on the day.
    assert not is_open(buyer, datetime(2026, 3, 7, 13, 59, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 3, 7, 14, 0, tzinfo=UTC))
    assert not is_open(buyer, datetime(2026, 3, 8, 12, 59, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 3, 8, 13, 0, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 3, 8, 20, 59, tzinfo=UTC))
    assert not is_open(buyer, datetime(2026, 3, 8, 21, 0, tzinfo=UTC))
    # Fall back on 2026-11-01: 09:00 is 13:00Z the day before and 14:00Z on the day.
    assert is_open(buyer, datetime(2026, 10, 31, 13, 0, tzinfo=UTC))
    assert not is_open(buyer, datetime(2026, 11, 1, 13, 30, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 11, 1, 14, 0, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 11, 1, 21, 59, tzinfo=UTC))
    assert not is_open(buyer, datetime(2026, 11, 1, 22, 0, tzinfo=UTC))


def test_repeated_hour_at_fall_back_is_open_both_times() -> None:
    buyer = make_buyer(hours={"sun": ["01:00-02:00"]})
    # 01:30 happens twice in New York on 2026-11-01: 05:30Z (EDT) and 06:30Z (EST).
    assert is_open(buyer, datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    assert is_open(buyer, datetime(2026, 11, 1, 6, 30, tzinfo=UTC))
    assert not is_open(buyer, datetime(2026, 11, 1, 7, 0, tzinfo=UTC))  # 02:00 EST


# (zone, UTC instant of the change, UTC offset before, UTC offset after), hard-coded so the
# reference below does not lean on the zoneinfo conversion under test.
TRANSITIONS = [
    ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC), -5, -4),
    ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC), -4, -5),
    ("Europe/London", datetime(2026, 3, 29, 1, tzinfo=UTC), 0, 1),
    ("Europe/London", datetime(2026, 10, 25, 1, tzinfo=UTC), 1, 0),
]
DST_HOURS = {
    "sat": ["09:00-17:00"],
    "sun": ["00:30-01:30", "02:15-03:30", "09:00-17:00"],
    "mon": ["09:00-17:00"],
}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(TRANSITIONS), st.integers(-40 * 60, 40 * 60), st.integers(0, 59))
def test_dst_transitions_follow_the_wall_clock(
    transition: tuple[str, datetime, int, int], minutes: int, second: int
) -> None:
    name, change, before, after = transition
    at = change + timedelta(minutes=minutes, seconds=second)
    offset = before if at < change else after
    wall = (at + timedelta(hours=offset)).replace(tzinfo=None)
    spans = DST_HOURS.get(WEEKDAYS[wall.weekday()], [])
    minute = wall.hour * 60 + wall.minute
    expected = any(
        int(s[:2]) * 60 + int(s[3:5]) <= minute < int(s[6:8]) * 60 + int(s[9:]) for s in spans
    )
    buyer = make_buyer(hours=DST_HOURS, timezone=name)
    assert is_open(buyer, at) == expected
    # The same instant seen from another zone is the same instant.
    assert is_open(buyer, at.astimezone(ZoneInfo("Asia/Tokyo"))) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.sampled_from(["Europe/London", "Asia/Kolkata", "America/New_York"]),
)
def test_closed_dates_in_any_zone(at: datetime, name: str) -> None:
    local_day = at.astimezone(ZoneInfo(name)).date()
    buyer = make_buyer(closed_dates=[local_day], timezone=name)
    assert not is_open(buyer, at)
    other = make_buyer(closed_dates=[local_day + timedelta(days=1)], timezone=name)
    assert is_open(other, at)
