"""The tariff calendar alone: periods by wall clock, day types, seasons, DST, the fast path."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from edge_agent.config.tariff import TariffConfig
from edge_agent.metrics.tariff import PERIODS, TariffCalendar, TariffSpec, peak_share
from edge_agent.metrics.windows import NS_PER_HOUR, NS_PER_MIN, NS_PER_S, LocalTime

VALLEY, FLAT, PEAK, CRITICAL, DEEP = (
    PERIODS.index(p) for p in ("valley", "flat", "peak", "critical_peak", "deep_valley")
)


def tariff(**extra: object) -> TariffSpec:
    """Workdays: valley to 07:50, peak to 12:00, flat to 17:00, peak to 21:00, valley.
    Holidays: flat all day but a midday deep valley. July and August: critical peak
    14:00-15:00 on workdays."""
    workday = [
        {"start": "21:00", "end": "07:50", "period": "valley"},
        {"start": "07:50", "end": "12:00", "period": "peak"},
        {"start": "12:00", "end": "17:00", "period": "flat"},
        {"start": "17:00", "end": "21:00", "period": "peak"},
    ]
    summer = [
        {"start": "21:00", "end": "07:50", "period": "valley"},
        {"start": "07:50", "end": "14:00", "period": "peak"},
        {"start": "14:00", "end": "15:00", "period": "critical_peak"},
        {"start": "15:00", "end": "21:00", "period": "peak"},
    ]
    holiday = [
        {"start": "00:00", "end": "11:00", "period": "flat"},
        {"start": "11:00", "end": "14:00", "period": "deep_valley"},
        {"start": "14:00", "end": "24:00", "period": "flat"},
    ]
    config = TariffConfig.model_validate(
        {
            "name": "t",
            "prices": {
                "critical_peak": 1.3,
                "peak": 1.0,
                "flat": 0.6,
                "valley": 0.25,
                "deep_valley": 0.1,
            },
            "seasons": [
                {"name": "summer", "months": [7, 8], "workday": summer, "holiday": holiday},
                {
                    "name": "rest",
                    "months": [1, 2, 3, 4, 5, 6, 9, 10, 11, 12],
                    "workday": workday,
                    "holiday": holiday,
                },
            ],
            **extra,
        }
    )
    return config.spec()


def ns(zone: str, *args: int) -> int:
    return int(dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()) * NS_PER_S


def _all_day(period: str) -> dict[str, str]:
    return {"start": "00:00", "end": "24:00", "period": period}


def hours(pieces: list[tuple[int, int, int]]) -> list[tuple[str, float]]:
    return [(PERIODS[p], (b - a) / NS_PER_HOUR) for a, b, p in pieces]


def test_a_boundary_inside_a_quarter_hour_is_split_exactly() -> None:
    calendar = TariffCalendar(tariff(), LocalTime("Asia/Shanghai"))
    a = ns("Asia/Shanghai", 2026, 5, 6, 7, 45)  # a Wednesday
    pieces = calendar.split(a, a + 15 * NS_PER_MIN)
    assert pieces == [
        (a, a + 5 * NS_PER_MIN, VALLEY),
        (a + 5 * NS_PER_MIN, a + 15 * NS_PER_MIN, PEAK),
    ]
    into = [0.0] * len(PERIODS)
    calendar.add(into, a, a + 15 * NS_PER_MIN, 3.0)
    assert into[VALLEY] == pytest.approx(1.0)
    assert into[PEAK] == pytest.approx(2.0)
    # One second straddling the boundary: half each side, to the nanosecond.
    b = a + 5 * NS_PER_MIN
    half = [0.0] * len(PERIODS)
    calendar.add(half, b - NS_PER_S // 2, b + NS_PER_S // 2, 1.0)
    assert half[VALLEY] == 0.5
    assert half[PEAK] == 0.5


def test_the_fast_path_answers_from_the_stretch_it_remembers() -> None:
    calendar = TariffCalendar(tariff(), LocalTime("Asia/Shanghai"))
    a = ns("Asia/Shanghai", 2026, 5, 6, 8, 0)
    calendar.split(a, a + NS_PER_S)
    end = ns("Asia/Shanghai", 2026, 5, 6, 12, 0)
    assert (calendar._lo, calendar._hi, calendar._period) == (
        ns("Asia/Shanghai", 2026, 5, 6, 7, 50),
        end,
        PEAK,
    )
    assert calendar.split(end - NS_PER_S, end) == [(end - NS_PER_S, end, PEAK)]
    assert calendar.period_at(end) == FLAT


def test_valley_across_midnight_is_one_piece_per_local_day() -> None:
    calendar = TariffCalendar(tariff(), LocalTime("Asia/Shanghai"))
    a = ns("Asia/Shanghai", 2026, 5, 6, 20, 0)
    b = ns("Asia/Shanghai", 2026, 5, 7, 9, 0)
    # Merged across midnight: Wednesday's and Thursday's valleys touch.
    assert hours(calendar.split(a, b)) == [
        ("peak", 1.0),
        ("valley", 10 + 50 / 60),
        ("peak", 70 / 60),
    ]


def test_weekends_and_listed_holidays_use_the_holiday_plan_make_up_days_the_workday_plan() -> None:
    spec = tariff(holidays=["2026-10-01"], workdays=["2026-10-10"])
    assert spec.day_type(dt.date(2026, 10, 1)) == 1  # a Thursday, National Day
    assert spec.day_type(dt.date(2026, 10, 3)) == 1  # a Saturday
    assert spec.day_type(dt.date(2026, 10, 10)) == 0  # a Saturday worked
    assert spec.day_type(dt.date(2026, 10, 9)) == 0  # an ordinary Friday
    calendar = TariffCalendar(spec, LocalTime("Asia/Shanghai"))
    for day, expected in (
        (1, [("flat", 11.0), ("deep_valley", 3.0), ("flat", 10.0)]),
        (
            10,
            [
                ("valley", 7 + 50 / 60),
                ("peak", 4 + 10 / 60),
                ("flat", 5.0),
                ("peak", 4.0),
                ("valley", 3.0),
            ],
        ),
    ):
        a = ns("Asia/Shanghai", 2026, 10, day, 0, 0)
        assert hours(calendar.split(a, a + 24 * NS_PER_HOUR)) == expected


def test_the_season_changes_at_local_midnight_of_the_first_of_the_month() -> None:
    calendar = TariffCalendar(tariff(), LocalTime("Asia/Shanghai"))
    a = ns("Asia/Shanghai", 2026, 6, 30, 13, 0)  # a Tuesday in June (rest of the year)
    july = ns("Asia/Shanghai", 2026, 7, 1, 0, 0)
    b = ns("Asia/Shanghai", 2026, 7, 1, 15, 30)  # a Wednesday in July (summer)
    pieces = calendar.split(a, b)
    assert hours(pieces) == [
        ("flat", 4.0),
        ("peak", 4.0),
        ("valley", 10 + 50 / 60),
        ("peak", 6 + 10 / 60),
        ("critical_peak", 1.0),
        ("peak", 0.5),
    ]
    assert pieces[2] == (ns("Asia/Shanghai", 2026, 6, 30, 21, 0), july + 470 * NS_PER_MIN, VALLEY)
    # Where the seasons' plans differ at midnight, the cut is at local midnight exactly.
    flat_summer = TariffConfig.model_validate(
        {
            "name": "two",
            "prices": {"flat": 0.5, "valley": 0.2},
            "seasons": [
                {"name": "summer", "months": [7, 8], "workday": [_all_day("flat")]},
                {
                    "name": "rest",
                    "months": [1, 2, 3, 4, 5, 6, 9, 10, 11, 12],
                    "workday": [_all_day("valley")],
                },
            ],
        }
    ).spec()
    seasons = TariffCalendar(flat_summer, LocalTime("Asia/Shanghai"))
    assert seasons.split(july - NS_PER_HOUR, july + NS_PER_HOUR) == [
        (july - NS_PER_HOUR, july, VALLEY),
        (july, july + NS_PER_HOUR, FLAT),
    ]
    assert calendar.period_at(ns("Asia/Shanghai", 2026, 6, 30, 14, 30)) == FLAT
    assert calendar.period_at(ns("Asia/Shanghai", 2026, 7, 1, 14, 30)) == CRITICAL


def test_spring_forward_keeps_the_wall_clock_periods_and_a_23_hour_day() -> None:
    berlin = "Europe/Berlin"
    calendar = TariffCalendar(tariff(), LocalTime(berlin))
    a = ns(berlin, 2026, 3, 30, 0, 0)  # Monday after the switch (Sunday 29th, 02:00 -> 03:00)
    day = ns(berlin, 2026, 3, 29, 0, 0)
    # Sunday is a holiday: flat, deep valley 11:00-14:00 by the wall clock.
    pieces = calendar.split(day, a)
    assert hours(pieces) == [("flat", 10.0), ("deep_valley", 3.0), ("flat", 10.0)]
    assert sum(b - s for s, b, _ in pieces) == 23 * NS_PER_HOUR
    assert pieces[1][0] == ns(berlin, 2026, 3, 29, 11, 0)
    # The Monday: 17:00-21:00 peak is four hours of wall clock, in summer time.
    monday = calendar.split(a, a + 24 * NS_PER_HOUR)
    assert monday[3] == (ns(berlin, 2026, 3, 30, 17, 0), ns(berlin, 2026, 3, 30, 21, 0), PEAK)


def test_a_boundary_in_the_skipped_hour_takes_effect_at_the_switch() -> None:
    spec = TariffConfig.model_validate(
        {
            "name": "night",
            "prices": {"valley": 0.2, "flat": 0.5, "peak": 1.0},
            "seasons": [
                {
                    "name": "all",
                    "months": list(range(1, 13)),
                    "workday": [
                        {"start": "00:00", "end": "02:15", "period": "valley"},
                        {"start": "02:15", "end": "02:45", "period": "peak"},
                        {"start": "02:45", "end": "24:00", "period": "flat"},
                    ],
                }
            ],
        }
    ).spec()
    berlin = "Europe/Berlin"
    calendar = TariffCalendar(spec, LocalTime(berlin))
    day = ns(berlin, 2026, 3, 29, 0, 0)
    switch = day + 2 * NS_PER_HOUR  # 02:00 CET is 03:00 CEST
    pieces = calendar.split(day, ns(berlin, 2026, 3, 30, 0, 0))
    # 02:15-02:45 does not exist that day: the peak gets nothing, flat starts at the switch.
    assert pieces == [(day, switch, VALLEY), (switch, ns(berlin, 2026, 3, 30, 0, 0), FLAT)]


def test_fall_back_lives_the_repeated_hour_twice_and_the_day_is_25_hours() -> None:
    spec = TariffConfig.model_validate(
        {
            "name": "night",
            "prices": {"valley": 0.2, "flat": 0.5},
            "seasons": [
                {
                    "name": "all",
                    "months": list(range(1, 13)),
                    "workday": [
                        {"start": "00:00", "end": "02:30", "period": "valley"},
                        {"start": "02:30", "end": "24:00", "period": "flat"},
                    ],
                }
            ],
        }
    ).spec()
    berlin = "Europe/Berlin"
    calendar = TariffCalendar(spec, LocalTime(berlin))
    day = ns(berlin, 2026, 10, 25, 0, 0)  # 03:00 CEST -> 02:00 CET
    end = ns(berlin, 2026, 10, 26, 0, 0)
    pieces = calendar.split(day, end)
    assert hours(pieces) == [("valley", 2.5), ("flat", 0.5), ("valley", 0.5), ("flat", 21.5)]
    assert sum(b - a for a, b, _ in pieces) == 25 * NS_PER_HOUR == end - day
    into = [0.0] * len(PERIODS)
    for t in range(day, end, 60 * NS_PER_S):  # minute by minute, as a meter would
        calendar.add(into, t, t + 60 * NS_PER_S, 1.0)
    assert into[VALLEY] == pytest.approx(3 * 60)
    assert into[FLAT] == pytest.approx(22 * 60)


def test_peak_share_counts_critical_peak_and_peak() -> None:
    kwh = [0.0] * len(PERIODS)
    kwh[CRITICAL], kwh[PEAK], kwh[FLAT], kwh[VALLEY] = 1.0, 3.0, 4.0, 2.0
    assert peak_share(kwh) == pytest.approx(0.4)
    assert peak_share([0.0] * len(PERIODS)) is None
