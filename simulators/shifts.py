"""Shift calendar: is the plant working at time ``t``?

Shifts are wall-clock times in the plant's time zone, so a model driven by
``time.time()`` follows the real day (and daylight saving time). The answer is
cached until the next change, so stepping a day at 1 s costs a handful of
time-zone conversions, not 86,400.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

MINUTES_PER_DAY = 24 * 60


def parse_clock(text: str, *, allow_24: bool = False) -> int:
    """``"HH:MM"`` to minutes after midnight; ``"24:00"`` only where ``allow_24``."""
    hours, sep, minutes = text.partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day like '08:00'")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY or (value == MINUTES_PER_DAY and not allow_24):
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return value


@dataclass(frozen=True)
class ShiftWindow:
    """One shift, in minutes after local midnight; ``end <= start`` crosses midnight."""

    start_min: int
    end_min: int

    @property
    def length_min(self) -> int:
        span = self.end_min - self.start_min
        return span if span > 0 else span + MINUTES_PER_DAY


class ShiftCalendar:
    """Working time = the union of the shifts that start on a working day."""

    def __init__(
        self, shifts: Iterable[ShiftWindow], days: Iterable[Weekday], timezone: str
    ) -> None:
        self._shifts = tuple(shifts)
        self._days = frozenset(WEEKDAYS.index(d) for d in days)
        self._tz = ZoneInfo(timezone)
        self._cached = False
        self._valid_from_ms = 0
        self._valid_until_ms = -1

    def in_shift_ms(self, t_ms: int) -> bool:
        """Whether ``t_ms`` (Unix milliseconds) falls inside a shift."""
        if not self._valid_from_ms <= t_ms < self._valid_until_ms:
            self._cached, self._valid_until_ms = self._evaluate(t_ms)
            self._valid_from_ms = t_ms
        return self._cached

    def _evaluate(self, t_ms: int) -> tuple[bool, int]:
        """The answer at ``t_ms`` and the time (ms) until which it certainly holds."""
        today = dt.datetime.fromtimestamp(t_ms / 1000, self._tz).date()
        midnight_next = self._local_ms(today + dt.timedelta(days=1), 0)
        intervals: list[tuple[int, int]] = []
        # Shifts that started yesterday may still be running after midnight.
        for day in (today - dt.timedelta(days=1), today):
            if day.weekday() not in self._days:
                continue
            for shift in self._shifts:
                begin = self._local_ms(day, shift.start_min)
                end = self._local_ms(day, shift.start_min + shift.length_min)
                intervals.append((begin, end))
        inside = any(begin <= t_ms < end for begin, end in intervals)
        edges = [e for begin, end in intervals for e in (begin, end) if e > t_ms]
        # Re-evaluate at the next edge even if it only joins two shifts (16:00):
        # cheap, and simpler than merging intervals. Midnight bounds the cache
        # because tomorrow's shifts were not considered.
        return inside, min([*edges, midnight_next])

    def _local_ms(self, day: dt.date, minutes: int) -> int:
        """Unix milliseconds of ``minutes`` after local midnight of ``day``."""
        extra_days, minute_of_day = divmod(minutes, MINUTES_PER_DAY)
        local = dt.datetime.combine(
            day + dt.timedelta(days=extra_days),
            dt.time(minute_of_day // 60, minute_of_day % 60),
            self._tz,
        )
        return round(local.timestamp() * 1000)
