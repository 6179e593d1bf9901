"""Time-of-use tariff calendars: which price period an instant falls in, and splitting at them.

A utility's time-of-use tariff (China's 分时电价; the NDRC's 2021 rules) prices a kWh
by *period*: critical peak, peak, flat, valley, deep valley. Which period holds is a
function of the plant's local wall clock: the time of day, the season (by month) and
the day type (workday or holiday). Everything here is pure: times are integer
nanoseconds since the Unix epoch, and nothing reads a clock.

The rule, exactly (docs/METRICS.md, "Cost by time-of-use tariff"): the period of an
instant is the period the day plan gives to its *local wall-clock time*, on its
local date, of that date's season and day type. So on a daylight-saving day a
17:00-21:00 peak is still 17:00 to 21:00 on the wall clock, and:

* wall-clock times skipped by a spring-forward switch do not exist: periods that
  lie wholly in the skipped hour get no time that day, and a boundary inside it
  takes effect at the switch (the first instant that exists after it);
* wall-clock times repeated by a fall-back switch are lived twice, each time in
  the period of its wall-clock reading: a boundary inside the repeated hour is
  crossed twice, so the period before it gets both passes of its part of the hour.

Either way every instant of the day belongs to exactly one period, and the day's
energy is the sum of its periods' energy.

:meth:`TariffCalendar.split` cuts ``[a_ns, b_ns)`` at period boundaries, at local
midnight and at UTC-offset changes; :meth:`TariffCalendar.add` spreads an amount over
those pieces in proportion to time. Both keep the last constant stretch they found,
so the hot path (a one-second interval inside one period) is two comparisons.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from edge_agent.metrics.windows import MINUTES_PER_DAY, NS_PER_MIN, LocalTime

PeriodName = Literal["critical_peak", "peak", "flat", "valley", "deep_valley"]
#: Period names, most expensive first; a period's index in this tuple is its number.
PERIODS: Final[tuple[PeriodName, ...]] = get_args(PeriodName)
#: Periods whose energy counts as peak energy (``peak_share``).
PEAK_PERIODS: Final = (PERIODS.index("critical_peak"), PERIODS.index("peak"))

DayType = Literal["workday", "holiday"]
WORKDAY: Final = 0
HOLIDAY: Final = 1

NS_PER_DAY: Final = MINUTES_PER_DAY * NS_PER_MIN
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class DayPlan:
    """The periods of one day type of one season: ``(start_min, end_min, period)``,
    sorted, adjacent, covering 00:00 to 24:00 (checked by the config layer)."""

    spans: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, entries: Iterable[tuple[int, int, int]]) -> DayPlan:
        """From ``(start_min, end_min, period)`` entries as written: an entry whose end
        is not after its start runs past midnight (23:00-07:00 is 23:00-24:00 and
        00:00-07:00 of the same day plan). Neighbours of one period are merged."""
        spans: list[tuple[int, int, int]] = []
        for start, end, period in entries:
            if end > start:
                spans.append((start, end, period))
            else:
                spans.append((start, MINUTES_PER_DAY, period))
                if end > 0:
                    spans.append((0, end, period))
        spans.sort()
        merged: list[tuple[int, int, int]] = []
        for span in spans:
            if merged and merged[-1][2] == span[2] and merged[-1][1] == span[0]:
                merged[-1] = (merged[-1][0], span[1], span[2])
            else:
                merged.append(span)
        return cls(tuple(merged))

    def period_at(self, minute: int) -> int:
        index = bisect.bisect_right([s for s, _, _ in self.spans], minute) - 1
        return self.spans[max(0, index)][2]


@dataclass(frozen=True, slots=True)
class TariffSpec:
    """A tariff as the calculators take it (built from the config by the config layer)."""

    name: str
    currency: str
    #: Price per kWh by period number (:data:`PERIODS`); ``None`` where not priced.
    prices: tuple[float | None, ...]
    #: By month (index 0 = January): the day plans ``(workday, holiday)``.
    months: tuple[tuple[DayPlan, DayPlan], ...]
    holidays: frozenset[dt.date] = frozenset()
    #: Weekend days that are worked (make-up workdays, 调休).
    workdays: frozenset[dt.date] = frozenset()

    @property
    def priced(self) -> tuple[int, ...]:
        """Numbers of the periods that have a price, in :data:`PERIODS` order."""
        return tuple(i for i, price in enumerate(self.prices) if price is not None)

    def day_type(self, day: dt.date) -> int:
        """Workday or holiday: the lists first, then Saturday and Sunday are holidays."""
        if day in self.workdays:
            return WORKDAY
        if day in self.holidays or day.weekday() >= 5:
            return HOLIDAY
        return WORKDAY

    def plan(self, day: dt.date) -> DayPlan:
        return self.months[day.month - 1][self.day_type(day)]


class _Plan:
    """A day plan in nanoseconds after local midnight, for the search in :meth:`split`."""

    __slots__ = ("ends", "periods", "starts")

    def __init__(self, plan: DayPlan) -> None:
        self.starts = [s * NS_PER_MIN for s, _, _ in plan.spans]
        self.ends = [e * NS_PER_MIN for _, e, _ in plan.spans]
        self.periods = [p for _, _, p in plan.spans]


class TariffCalendar:
    """Periods of one tariff in one time zone, split at as time goes by (module docstring)."""

    def __init__(self, spec: TariffSpec, local: LocalTime) -> None:
        self.spec = spec
        self._local = local
        self._plans: dict[DayPlan, _Plan] = {}
        self._day = -1
        self._plan: _Plan | None = None
        #: The last constant stretch found: ``[lo, hi)`` lies in one period.
        self._lo = 0
        self._hi = 0
        self._period = 0

    def add(self, into: list[float], a_ns: int, b_ns: int, amount: float) -> None:
        """Add ``amount`` (spent evenly over ``[a_ns, b_ns)``) to ``into[period]``."""
        if self._lo <= a_ns and b_ns <= self._hi:
            into[self._period] += amount
            return
        span = b_ns - a_ns
        if span <= 0:
            return
        for start, end, period in self.split(a_ns, b_ns):
            into[period] += amount * (end - start) / span

    def period_at(self, t_ns: int) -> int:
        if self._lo <= t_ns < self._hi:
            return self._period
        return self.split(t_ns, t_ns + 1)[0][2]

    def split(self, a_ns: int, b_ns: int) -> list[tuple[int, int, int]]:
        """``[a_ns, b_ns)`` cut into ``(start, end, period)`` pieces, neighbours merged."""
        if self._lo <= a_ns and b_ns <= self._hi:
            return [(a_ns, b_ns, self._period)]
        out: list[tuple[int, int, int]] = []
        t = a_ns
        while t < b_ns:
            _lo, hi, period = self._stretch(t)
            end = min(hi, b_ns)
            if out and out[-1][2] == period and out[-1][1] == t:
                out[-1] = (out[-1][0], end, period)
            else:
                out.append((t, end, period))
            t = end
        return out

    def _stretch(self, t_ns: int) -> tuple[int, int, int]:
        """The stretch around ``t_ns`` of one period, one local date and one UTC offset;
        remembered for the fast path."""
        local = self._local
        offset = local.offset_ns(t_ns)
        wall = t_ns + offset  # local wall-clock time, counted like UTC
        day, into = divmod(wall, NS_PER_DAY)
        plan = self._plan if day == self._day else self._load(day)
        assert plan is not None
        index = bisect.bisect_right(plan.starts, into) - 1
        base = day * NS_PER_DAY - offset
        lo, hi = base + plan.starts[index], base + plan.ends[index]
        if index < 0 or hi <= t_ns:  # the config layer's checks make this impossible
            raise ValueError(f"tariff {self.spec.name!r}: no period at {into // NS_PER_MIN} min")
        # A UTC-offset change inside the stretch ends it (the wall clock jumps there).
        if local.offset_ns(hi - 1) != offset:
            hi = local.transition(t_ns, hi - 1)
        if lo < t_ns and local.offset_ns(lo) != offset:
            lo = t_ns
        self._lo, self._hi, self._period = lo, hi, plan.periods[index]
        return lo, hi, plan.periods[index]

    def _load(self, day: int) -> _Plan:
        plan = self.spec.plan(dt.date.fromordinal(_EPOCH_ORDINAL + day))
        found = self._plans.get(plan)
        if found is None:
            found = self._plans[plan] = _Plan(plan)
        self._day, self._plan = day, found
        return found


# --------------------------------------------------------------------------- figures


def cost_by_period(kwh: Sequence[float], spec: TariffSpec) -> list[float]:
    """``kWh x price`` per period (0 where the tariff has no price: no kWh can be there)."""
    return [k * p if p is not None else 0.0 for k, p in zip(kwh, spec.prices, strict=True)]


def peak_share(kwh: Sequence[float]) -> float | None:
    """Energy in critical peak and peak over all energy (0-1); ``None`` without energy."""
    total = sum(kwh)
    if total <= 0:
        return None
    return sum(kwh[i] for i in PEAK_PERIODS) / total


def hhmm(minutes: int) -> str:
    """Minutes after midnight as ``HH:MM`` (``24:00`` at the end of the day)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
