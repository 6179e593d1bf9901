"""``metrics.tariffs``: time-of-use tariff calendars, their checks, and what the calculators get.

A tariff prices a kWh by period (critical peak, peak, flat, valley, deep valley); the
periods follow the plant's local wall clock, by season (months) and day type
(workday, holiday). :func:`tariff_problems` checks one tariff in one pass (every
minute of every day type of every season covered once, every month in one season,
every period used has a price), each finding at its own path; :func:`tariff_warnings`
flags prices that break the NDRC's 2021 ratios, which usually means a typo.
:meth:`TariffConfig.spec` turns a valid tariff into the pure
:class:`~edge_agent.metrics.tariff.TariffSpec`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Final

from pydantic import Field

from edge_agent.config.base import Name, Strict
from edge_agent.config.clock import ClockEnd, ClockStart
from edge_agent.metrics.tariff import PERIODS, DayPlan, PeriodName, TariffSpec, hhmm
from edge_agent.metrics.windows import MINUTES_PER_DAY, parse_clock

#: A place in the tariff (relative to it) and what is wrong there.
Found = tuple[tuple[str | int, ...], str]

#: NDRC 2021 (notice 发改价格[2021]1093号): peak/valley at least 3:1 (4:1 where the
#: load gap is large), critical peak at least 20 % above peak.
MIN_PEAK_VALLEY_RATIO: Final = 3.0
MIN_CRITICAL_OVER_PEAK: Final = 1.2

Month = Annotated[int, Field(ge=1, le=12)]
Price = Annotated[float, Field(ge=0)]


class PeriodSpan(Strict):
    """One stretch of a day plan; an `end` not after `start` runs past midnight."""

    start: ClockStart
    end: ClockEnd
    period: PeriodName

    @property
    def clock(self) -> tuple[int, int]:
        """``(start, end)`` in minutes after midnight, as written (``end`` may be 1440)."""
        return parse_clock(self.start), parse_clock(self.end, allow_24=True)

    @property
    def minutes(self) -> tuple[int, int]:
        """``[start, end)`` in minutes after midnight, ``end`` past 1440 across midnight."""
        start, end = self.clock
        return start, end if end > start else end + MINUTES_PER_DAY

    @property
    def empty(self) -> bool:
        """``08:00`` to ``08:00``: no length (a whole day is written 00:00 to 24:00)."""
        start, end = self.clock
        return start == end % MINUTES_PER_DAY and end <= start


class SeasonConfig(Strict):
    """The day plans of some months: one for workdays, one for holidays (default: the same)."""

    name: Name
    months: list[Month] = Field(min_length=1)
    workday: list[PeriodSpan] = Field(min_length=1)
    holiday: list[PeriodSpan] | None = Field(
        default=None,
        min_length=1,
        description="Day plan of holidays and weekends; default: workday's.",
    )


class TariffConfig(Strict):
    """A time-of-use tariff: prices per kWh by period, and when each period holds."""

    name: Name
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    prices: dict[PeriodName, Price] = Field(
        min_length=1, description="Price per kWh of each period used."
    )
    holidays: list[dt.date] = Field(
        default_factory=list, description="Public holidays (their day plan is holiday's)."
    )
    workdays: list[dt.date] = Field(
        default_factory=list,
        description="Weekend days worked instead of a holiday (make-up workdays).",
    )
    seasons: list[SeasonConfig] = Field(min_length=1)

    def spec(self) -> TariffSpec:
        """The calculators' view (of a tariff :func:`tariff_problems` found nothing in)."""
        months: list[tuple[DayPlan, DayPlan] | None] = [None] * 12
        for season in self.seasons:
            workday = _plan(season.workday)
            holiday = workday if season.holiday is None else _plan(season.holiday)
            for month in season.months:
                months[month - 1] = (workday, holiday)
        if any(m is None for m in months):
            raise ValueError(f"tariff {self.name!r}: some months are in no season")
        return TariffSpec(
            name=self.name,
            currency=self.currency,
            prices=tuple(self.prices.get(p) for p in PERIODS),
            months=tuple(m for m in months if m is not None),
            holidays=frozenset(self.holidays),
            workdays=frozenset(self.workdays),
        )


def _plan(spans: Sequence[PeriodSpan]) -> DayPlan:
    return DayPlan.of((*span.clock, PERIODS.index(span.period)) for span in spans)


# --------------------------------------------------------------------------- checks


def tariff_problems(tariff: TariffConfig) -> list[Found]:
    """Everything wrong with one tariff, each at its path (relative to the tariff)."""
    found: list[Found] = []
    seen_season: dict[str, int] = {}
    month_in: dict[int, str] = {}
    for i, season in enumerate(tariff.seasons):
        if season.name in seen_season:
            found.append(
                (
                    ("seasons", i, "name"),
                    f"duplicate season {season.name!r} "
                    f"(also at seasons[{seen_season[season.name]}])",
                )
            )
        seen_season.setdefault(season.name, i)
        for k, month in enumerate(season.months):
            if month in month_in:
                found.append(
                    (
                        ("seasons", i, "months", k),
                        f"month {month} is also in season {month_in[month]!r}",
                    )
                )
            month_in.setdefault(month, season.name)
        for day_type in ("workday", "holiday"):
            spans = season.workday if day_type == "workday" else season.holiday
            if spans is not None:
                found += _coverage(("seasons", i, day_type), spans, tariff)
    missing = [m for m in range(1, 13) if m not in month_in]
    if missing:
        months = f"month {missing[0]} is" if len(missing) == 1 else f"months {_listed(missing)} are"
        found.append((("seasons",), f"{months} in no season"))
    found += _dates(tariff)
    return found


def _coverage(
    path: tuple[str | int, ...], spans: Sequence[PeriodSpan], tariff: TariffConfig
) -> list[Found]:
    """Every minute of the day in exactly one span; each span's period priced."""
    found: list[Found] = []
    owner: list[int | None] = [None] * MINUTES_PER_DAY
    empty = False
    for j, span in enumerate(spans):
        if span.period not in tariff.prices:
            found.append(
                (
                    (*path, j, "period"),
                    f"period {span.period!r} has no price (add it to prices)",
                )
            )
        if span.empty:
            found.append(
                (
                    (*path, j),
                    f"{span.start}-{span.end} has no length (for the whole day write "
                    "00:00 to 24:00)",
                )
            )
            empty = True
            continue
        start, end = span.minutes
        clash: list[int] = []
        others: set[int] = set()
        for minute in range(start, end):
            slot = minute % MINUTES_PER_DAY
            previous = owner[slot]
            if previous is None:
                owner[slot] = j
            else:
                clash.append(slot)
                others.add(previous)
        if clash:
            found.append(
                (
                    (*path, j),
                    f"{_stretches(clash)} is covered twice (also by "
                    f"{', '.join(f'{path[-1]}[{k}]' for k in sorted(others))})",
                )
            )
    gaps = [m for m in range(MINUTES_PER_DAY) if owner[m] is None]
    if gaps and not empty:  # an empty span is the likelier mistake: its finding says it
        found.append((path, f"{_stretches(gaps)} is in no period"))
    return found


def _dates(tariff: TariffConfig) -> list[Found]:
    found: list[Found] = []
    for key, dates in (("holidays", tariff.holidays), ("workdays", tariff.workdays)):
        seen: set[dt.date] = set()
        for k, day in enumerate(dates):
            if day in seen:
                found.append(((key, k), f"{day.isoformat()} is listed twice"))
            seen.add(day)
    holidays = set(tariff.holidays)
    for k, day in enumerate(tariff.workdays):
        if day in holidays:
            found.append(
                (
                    ("workdays", k),
                    f"{day.isoformat()} is also in holidays: a day is one or the other",
                )
            )
        elif day.weekday() < 5:
            found.append(
                (
                    ("workdays", k),
                    f"{day.isoformat()} is a {day.strftime('%A')}, already a workday "
                    "(workdays lists weekend days that are worked)",
                )
            )
    return found


def tariff_warnings(tariff: TariffConfig) -> list[Found]:
    """Prices that break the NDRC's 2021 ratios: allowed, but usually a typo."""
    found: list[Found] = []
    prices = tariff.prices
    peak, valley, critical = prices.get("peak"), prices.get("valley"), prices.get("critical_peak")
    if peak is not None and valley is not None and valley > 0:
        ratio = peak / valley
        if ratio < MIN_PEAK_VALLEY_RATIO - 1e-9:
            found.append(
                (
                    ("prices", "peak"),
                    f"peak/valley is {ratio:.2f}:1, below the {MIN_PEAK_VALLEY_RATIO:g}:1 of the "
                    "NDRC's 2021 time-of-use rules: check the prices for a typo",
                )
            )
    if (
        critical is not None
        and peak is not None
        and critical < peak * MIN_CRITICAL_OVER_PEAK - 1e-9
    ):
        found.append(
            (
                ("prices", "critical_peak"),
                f"critical_peak {critical:g} is less than 20% above peak {peak:g} (the NDRC's "
                "2021 time-of-use rules ask for at least 20%): check the prices for a typo",
            )
        )
    return found


def _stretches(minutes: Sequence[int]) -> str:
    """Sorted minutes of the day as ``07:50-08:00, 12:00-13:00``."""
    out: list[str] = []
    ordered = sorted(set(minutes))
    start = prev = ordered[0]
    for minute in [*ordered[1:], -1]:
        if minute != prev + 1:
            out.append(f"{hhmm(start)}-{hhmm(prev + 1)}")
            start = minute
        prev = minute
    return ", ".join(out)


def _listed(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)
