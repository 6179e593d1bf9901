"""Wall-clock windows in local time (DST days included) and the shift calendar."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.metrics.windows import (
    NS_PER_HOUR,
    NS_PER_S,
    DayWindows,
    FixedWindows,
    LocalTime,
    ShiftCalendar,
    ShiftSpec,
    ShiftWindows,
    overlapping_shifts,
    parse_window,
    shift_spec_problems,
)

ZONES = [
    "UTC",
    "Asia/Shanghai",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # DST shift of 30 minutes
]
# 2020-01-01 .. 2030-01-01, whole seconds
instants = st.integers(1_577_836_800, 1_893_456_000).map(lambda s: s * NS_PER_S)


def ns(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    when = dt.datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))
    return int(when.timestamp()) * NS_PER_S


def local_seconds(zone: str, t_ns: int) -> int:
    """Seconds since local midnight on the local wall clock."""
    when = dt.datetime.fromtimestamp(t_ns // NS_PER_S, ZoneInfo(zone))
    return when.hour * 3600 + when.minute * 60 + when.second


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.sampled_from([1, 5, 60, 900, 3600]), instants)
def test_fixed_windows_partition_time_aligned_to_the_local_clock(
    zone: str, seconds: int, t_ns: int
) -> None:
    local = LocalTime(zone)
    kind = FixedWindows(seconds, local)
    window = kind.window_at(t_ns)
    assert window.start_ns <= t_ns < window.end_ns
    assert window.end_ns - window.start_ns <= seconds * NS_PER_S
    assert kind.window_at(window.start_ns) == window
    assert kind.window_at(window.end_ns - 1) == window
    following = kind.window_at(window.end_ns)
    assert following.start_ns == window.end_ns, "no hole, no overlap"
    offset_changes = local.offset_ns(window.start_ns - 1) != local.offset_ns(window.start_ns)
    if not offset_changes:
        assert local_seconds(zone, window.start_ns) % seconds == 0


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(ZONES), instants)
def test_day_windows_run_from_local_midnight_to_local_midnight(zone: str, t_ns: int) -> None:
    day = DayWindows(LocalTime(zone)).window_at(t_ns)
    assert day.start_ns <= t_ns < day.end_ns
    assert local_seconds(zone, day.start_ns) == 0
    assert local_seconds(zone, day.end_ns) == 0
    assert 23 * NS_PER_HOUR <= day.end_ns - day.start_ns <= 25 * NS_PER_HOUR


def test_daylight_saving_days_have_23_and_25_hourly_windows() -> None:
    local = LocalTime("Europe/Berlin")
    days, hours = DayWindows(local), FixedWindows(3600, local)
    for date, expected in (((2024, 3, 31), 23), ((2024, 10, 27), 25), ((2024, 6, 1), 24)):
        day = days.window_at(ns("Europe/Berlin", *date, 12))
        assert day.end_ns - day.start_ns == expected * NS_PER_HOUR
        count, cursor = 0, day.start_ns
        while cursor < day.end_ns:
            window = hours.window_at(cursor)
            assert window.end_ns - window.start_ns == NS_PER_HOUR
            cursor, count = window.end_ns, count + 1
        assert count == expected


def test_fifteen_minute_blocks_follow_the_local_clock_in_kathmandu() -> None:
    blocks = FixedWindows(900, LocalTime("Asia/Kathmandu"))
    block = blocks.window_at(ns("Asia/Kathmandu", 2024, 1, 1, 0, 7))
    assert block.start_ns == ns("Asia/Kathmandu", 2024, 1, 1, 0, 0)
    # 00:00 +05:45 is 18:15 UTC: a UTC-aligned block would start at 18:15 too, but an hour
    # window would not.
    hour = FixedWindows(3600, LocalTime("Asia/Kathmandu")).window_at(block.start_ns)
    assert hour.start_ns == ns("UTC", 2023, 12, 31, 18, 15)


def test_windows_are_cut_where_lord_howe_moves_its_clock_by_half_an_hour() -> None:
    local = LocalTime("Australia/Lord_Howe")
    hours = FixedWindows(3600, local)
    switch = ns("UTC", 2024, 10, 5, 15, 30)  # 02:00 +10:30 -> 02:30 +11:00
    before, after = hours.window_at(switch - NS_PER_S), hours.window_at(switch)
    assert before.end_ns == switch == after.start_ns
    assert after.end_ns - after.start_ns == NS_PER_HOUR // 2
    assert local_seconds("Australia/Lord_Howe", after.end_ns) == 3 * 3600


@pytest.mark.parametrize(
    ("name", "expected"),
    [("1m", 60), ("15m", 900), ("1h", 3600), ("5s", 5), ("1d", "1d"), ("shift", "shift")],
)
def test_window_names(name: str, expected: int | str) -> None:
    assert parse_window(name) == expected


@pytest.mark.parametrize(
    ("name", "message"),
    [("7m", "divides an hour"), ("60s", "write '1m'"), ("2h", "divides an hour"), ("x", "not a")],
)
def test_window_names_that_are_refused(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(name)


# --------------------------------------------------------------------------- shifts

NIGHT = ShiftSpec("night", 22 * 60, 6 * 60, breaks=((2 * 60, 2 * 60 + 30),))
EARLY = ShiftSpec("early", 6 * 60, 14 * 60, days=frozenset(range(5)), breaks=((600, 615),))


def calendar(zone: str, *specs: ShiftSpec) -> ShiftCalendar:
    return ShiftCalendar(specs, LocalTime(zone))


@pytest.mark.parametrize(
    ("night_of", "hours"),
    [((2024, 6, 1), 7.5), ((2024, 3, 30), 6.5), ((2024, 10, 26), 8.5)],
)
def test_a_night_shift_crosses_midnight_and_follows_daylight_saving(
    night_of: tuple[int, int, int], hours: float
) -> None:
    cal = calendar("Europe/Berlin", NIGHT)
    start = ns("Europe/Berlin", *night_of, 22)
    shift = cal.shift_at(start + NS_PER_S)
    assert shift is not None
    assert shift.name == "night"
    assert cal.planned_ns(shift.start_ns, shift.end_ns) == hours * NS_PER_HOUR
    two = ns("Europe/Berlin", *night_of, 22) + 4 * NS_PER_HOUR + NS_PER_HOUR // 4
    assert cal.planned_ns(two, two + NS_PER_S) == 0, "inside the break"


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(0, 3 * 24 * 3600), st.integers(0, 3 * 24 * 3600))
def test_planned_time_adds_up_over_any_split(a_ns: int, first_s: int, second_s: int) -> None:
    cal = calendar("Europe/Berlin", NIGHT, EARLY)
    b_ns = a_ns + first_s * NS_PER_S
    c_ns = b_ns + second_s * NS_PER_S
    whole = cal.planned_ns(a_ns, c_ns)
    assert cal.planned_ns(a_ns, b_ns) + cal.planned_ns(b_ns, c_ns) == whole
    assert 0 <= whole <= c_ns - a_ns
    # The same in one-hour pieces (the cached fast path) gives the same answer.
    pieces, cursor = 0, a_ns
    while cursor < c_ns:
        step = min(c_ns, cursor + NS_PER_HOUR)
        pieces += cal.planned_ns(cursor, step)
        cursor = step
    assert pieces == whole


def test_shift_windows_only_on_working_days_and_named() -> None:
    kind = ShiftWindows(calendar("Asia/Shanghai", EARLY))
    saturday_noon = ns("Asia/Shanghai", 2024, 5, 11, 12)
    assert kind.window_at(saturday_noon) is None
    upcoming = kind.next_window(saturday_noon)
    assert upcoming is not None
    assert upcoming.start_ns == ns("Asia/Shanghai", 2024, 5, 13, 6)
    assert upcoming.label == "early"
    assert kind.inside(saturday_noon, upcoming.start_ns + NS_PER_HOUR) == [
        (upcoming.start_ns, upcoming.start_ns + NS_PER_HOUR)
    ]


def test_overlapping_shifts_and_misplaced_breaks_are_found() -> None:
    late = ShiftSpec("late", 13 * 60, 21 * 60)
    assert overlapping_shifts([EARLY, late]) == [(1, 0)]
    assert overlapping_shifts([EARLY, ShiftSpec("late", 14 * 60, 22 * 60)]) == []
    outside = ShiftSpec("early", 6 * 60, 14 * 60, breaks=((13 * 60 + 50, 14 * 60 + 10),))
    assert "not inside the shift" in shift_spec_problems(outside)[0]
    assert shift_spec_problems(NIGHT) == []
