"""Wall-clock windows in the plant's time zone, and the shift calendar.

Windows are what energy managers and utilities count in: a 15-minute demand block
starts at :00, :15, :30 and :45 *local* time, a day at local midnight (23 or 25 hours
long on daylight-saving days), a shift at its local start time. Everything here is
pure: times are integer nanoseconds since the Unix epoch, the time zone is an IANA
name, and nothing reads a clock.

Kinds of window (each a :class:`WindowKind`):

* :class:`FixedWindows`: a duration that divides an hour (``1s`` ... ``15m``, ``1h``),
  aligned to the local wall clock. Where the UTC offset changes inside a window (a
  daylight-saving switch that is not a multiple of the window, e.g. Lord Howe's
  30 minutes) the window is cut at the switch, so windows never overlap and never
  leave a hole.
* :class:`DayWindows`: local calendar days.
* :class:`ShiftWindows`: one window per shift of a :class:`ShiftCalendar`; time
  between shifts belongs to no shift window.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args
from zoneinfo import ZoneInfo

NS_PER_S: Final = 1_000_000_000
NS_PER_MIN: Final = 60 * NS_PER_S
NS_PER_HOUR: Final = 3600 * NS_PER_S
MINUTES_PER_DAY: Final = 24 * 60

#: Name of the shift window kind and of the local-day kind.
SHIFT: Final = "shift"
DAY: Final = "1d"

#: Day names as the plant file spells them; ``WEEKDAYS[i]`` is ``date.weekday() == i``.
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: Final[tuple[Weekday, ...]] = get_args(Weekday)

_WINDOW_NAME = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UTC = dt.UTC


@dataclass(frozen=True, slots=True)
class Window:
    """``[start_ns, end_ns)``; ``label`` names the shift for shift windows, else ``""``."""

    start_ns: int
    end_ns: int
    label: str = ""


class WindowKind(Protocol):
    """One kind of window (``15m``, ``1d``, ``shift``...)."""

    @property
    def name(self) -> str: ...

    @property
    def nominal_ns(self) -> int:
        """Typical length; orders kinds so shorter windows close first."""
        ...

    def window_at(self, t_ns: int) -> Window | None:
        """The window containing ``t_ns`` (``None`` between shifts)."""
        ...

    def next_window(self, t_ns: int) -> Window | None:
        """The window containing ``t_ns``, else the first one starting after it."""
        ...

    def inside(self, a_ns: int, b_ns: int) -> list[tuple[int, int]]:
        """The parts of ``[a_ns, b_ns)`` that lie inside some window of this kind."""
        ...


def window_name(seconds: int) -> str:
    """Canonical name of a fixed window: 60 -> ``1m``, 900 -> ``15m``, 3600 -> ``1h``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def parse_window(name: str) -> int | str:
    """Seconds of a fixed window, or ``"1d"`` / ``"shift"``; ``ValueError`` says what is allowed."""
    if name in (SHIFT, DAY):
        return name
    allowed = "1d, shift, or a whole number of seconds that divides an hour (5s, 1m, 15m, 1h)"
    match = _WINDOW_NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a window (windows are {allowed})")
    seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds <= 0 or 3600 % seconds != 0:
        raise ValueError(f"{name!r} is not a window (windows are {allowed})")
    canonical = window_name(seconds)
    if canonical != name:
        raise ValueError(f"write {canonical!r}, not {name!r}")
    return seconds


def parse_clock(text: str, *, allow_24: bool = False) -> int:
    """``"HH:MM"`` to minutes after midnight; ``"24:00"`` only where ``allow_24``."""
    hours, sep, minutes = text.partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time of day like '08:00'")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY or (value == MINUTES_PER_DAY and not allow_24):
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return value


class LocalTime:
    """UTC offsets and local midnights of one time zone (a thin, cached layer over zoneinfo)."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)

    def offset_ns(self, t_ns: int) -> int:
        """UTC offset in effect at ``t_ns`` (whole seconds, as nanoseconds)."""
        offset = dt.datetime.fromtimestamp(t_ns // NS_PER_S, self.zone).utcoffset()
        assert offset is not None
        return int(offset.total_seconds()) * NS_PER_S

    def local_date(self, t_ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(t_ns // NS_PER_S, self.zone).date()

    def at(self, day: dt.date, minutes: int) -> int:
        """Nanoseconds of ``minutes`` after local midnight of ``day`` (may pass midnight)."""
        extra_days, minute = divmod(minutes, MINUTES_PER_DAY)
        local = dt.datetime.combine(
            day + dt.timedelta(days=extra_days), dt.time(minute // 60, minute % 60), self.zone
        )
        return int(local.timestamp()) * NS_PER_S

    def transition(self, a_ns: int, b_ns: int) -> int:
        """First whole second in ``(a_ns, b_ns]`` whose offset is that of ``b_ns``.

        Only called when the offsets at ``a_ns`` and ``b_ns`` differ (a daylight-saving
        switch lies between them): a binary search of a dozen ``utcoffset`` calls.
        """
        target = self.offset_ns(b_ns)
        lo, hi = a_ns // NS_PER_S, -(-b_ns // NS_PER_S)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.offset_ns(mid * NS_PER_S) == target:
                hi = mid
            else:
                lo = mid
        return max(hi * NS_PER_S, a_ns + 1)


class FixedWindows:
    """Windows of a duration dividing one hour, aligned to the local wall clock."""

    def __init__(self, seconds: int, local: LocalTime) -> None:
        if seconds <= 0 or 3600 % seconds:
            raise ValueError(f"a fixed window must divide an hour, not {seconds}s")
        self._size = seconds * NS_PER_S
        self._local = local
        self._name = window_name(seconds)

    @property
    def name(self) -> str:
        return self._name

    @property
    def nominal_ns(self) -> int:
        return self._size

    def window_at(self, t_ns: int) -> Window:
        local, size = self._local, self._size
        offset = local.offset_ns(t_ns)
        start = t_ns - (t_ns + offset) % size
        end = start + size
        if local.offset_ns(start) != offset:
            start = local.transition(start, t_ns)
        if local.offset_ns(end - 1) != offset:
            end = local.transition(t_ns, end - 1)
        return Window(start, end)

    def next_window(self, t_ns: int) -> Window:
        return self.window_at(t_ns)

    def inside(self, a_ns: int, b_ns: int) -> list[tuple[int, int]]:
        return [(a_ns, b_ns)] if a_ns < b_ns else []


class DayWindows:
    """Local calendar days: midnight to midnight, 23 or 25 hours on daylight-saving days."""

    def __init__(self, local: LocalTime) -> None:
        self._local = local

    @property
    def name(self) -> str:
        return DAY

    @property
    def nominal_ns(self) -> int:
        return 24 * NS_PER_HOUR

    def window_at(self, t_ns: int) -> Window:
        day = self._local.local_date(t_ns)
        start = self._local.at(day, 0)
        if t_ns < start:  # a midnight that happens twice (a switch at 00:00)
            day -= dt.timedelta(days=1)
            start = self._local.at(day, 0)
        end = self._local.at(day + dt.timedelta(days=1), 0)
        return Window(start, end)

    def next_window(self, t_ns: int) -> Window:
        return self.window_at(t_ns)

    def inside(self, a_ns: int, b_ns: int) -> list[tuple[int, int]]:
        return [(a_ns, b_ns)] if a_ns < b_ns else []


# --------------------------------------------------------------------------- shifts


@dataclass(frozen=True, slots=True)
class ShiftSpec:
    """A shift in local minutes after midnight of the day it starts on.

    ``end_min <= start_min`` means the shift ends the next day. ``breaks`` are
    ``(start_min, end_min)`` pairs in local clock time; a break that starts earlier
    in the day than the shift lies after midnight.
    """

    name: str
    start_min: int
    end_min: int
    days: frozenset[int] = frozenset(range(7))
    breaks: tuple[tuple[int, int], ...] = ()

    @property
    def length_min(self) -> int:
        span = self.end_min - self.start_min
        return span if span > 0 else span + MINUTES_PER_DAY

    def break_spans(self) -> list[tuple[int, int]]:
        """Breaks as ``[start, end)`` minutes after the shift day's midnight."""
        spans = []
        for start, end in self.breaks:
            begin = start if start >= self.start_min else start + MINUTES_PER_DAY
            length = (end - start) % MINUTES_PER_DAY
            spans.append((begin, begin + length))
        return spans


def shift_spec_problems(spec: ShiftSpec) -> list[str]:
    """What is wrong with one shift's breaks (empty list: nothing)."""
    problems = []
    shift_end = spec.start_min + spec.length_min
    for (start, end), (_, finish) in zip(spec.breaks, spec.break_spans(), strict=True):
        if start == end:
            problems.append(f"break {_hhmm(start)}-{_hhmm(end)} has no length")
        elif finish > shift_end:
            problems.append(
                f"break {_hhmm(start)}-{_hhmm(end)} is not inside the shift "
                f"{_hhmm(spec.start_min)}-{_hhmm(spec.end_min)}"
            )
    return problems


def overlapping_shifts(specs: Sequence[ShiftSpec]) -> list[tuple[int, int]]:
    """``(later, earlier)`` index pairs of shifts that overlap somewhere in the week."""
    week = 7 * MINUTES_PER_DAY
    owner: dict[int, int] = {}
    found: list[tuple[int, int]] = []
    for index, spec in enumerate(specs):
        clash: int | None = None
        for day in sorted(spec.days):
            base = day * MINUTES_PER_DAY + spec.start_min
            for minute in range(base, base + spec.length_min):
                previous = owner.setdefault(minute % week, index)
                if previous != index and clash is None:
                    clash = previous
        if clash is not None:
            found.append((index, clash))
    return found


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One occurrence of a shift: ``[start_ns, end_ns)`` with its breaks."""

    name: str
    start_ns: int
    end_ns: int
    breaks: tuple[tuple[int, int], ...]

    def planned(self) -> list[tuple[int, int]]:
        """The shift minus its breaks, as sorted ``[start, end)`` intervals."""
        spans: list[tuple[int, int]] = []
        cursor = self.start_ns
        for begin, end in sorted(self.breaks):
            if begin > cursor:
                spans.append((cursor, begin))
            cursor = max(cursor, end)
        if cursor < self.end_ns:
            spans.append((cursor, self.end_ns))
        return spans


class ShiftCalendar:
    """When the plant plans to work: shift occurrences, and planned time (shifts minus breaks).

    Every answer is computed from local dates, so shifts follow daylight saving: a
    22:00-06:00 shift on the night of a switch is 7 or 9 hours long.
    """

    def __init__(self, specs: Sequence[ShiftSpec], local: LocalTime) -> None:
        self.specs = tuple(specs)
        self._local = local
        self._by_day: dict[dt.date, list[ShiftInstance]] = {}
        self._range = (0, -1)
        #: The last constant stretch seen: (start, end, planned).
        self._segment = (0, -1, False)
        self._starts: list[int] = []
        self._spans: list[tuple[int, int]] = []

    def instances_on(self, day: dt.date) -> list[ShiftInstance]:
        """Shifts that start on local date ``day``, in order."""
        cached = self._by_day.get(day)
        if cached is not None:
            return cached
        if len(self._by_day) > 64:
            self._by_day.clear()
        out: list[ShiftInstance] = []
        for spec in self.specs:
            if day.weekday() not in spec.days:
                continue
            start = self._local.at(day, spec.start_min)
            end = self._local.at(day, spec.start_min + spec.length_min)
            breaks = tuple(
                (self._local.at(day, b), self._local.at(day, e)) for b, e in spec.break_spans()
            )
            out.append(ShiftInstance(spec.name, start, end, breaks))
        out.sort(key=lambda s: s.start_ns)
        self._by_day[day] = out
        return out

    def instances_between(self, a_ns: int, b_ns: int) -> list[ShiftInstance]:
        """Shift occurrences overlapping ``[a_ns, b_ns)``, in order."""
        day = self._local.local_date(a_ns) - dt.timedelta(days=1)
        last = self._local.local_date(max(a_ns, b_ns - 1))
        out: list[ShiftInstance] = []
        while day <= last:
            out.extend(s for s in self.instances_on(day) if s.end_ns > a_ns and s.start_ns < b_ns)
            day += dt.timedelta(days=1)
        return out

    def shift_at(self, t_ns: int) -> ShiftInstance | None:
        for shift in self.instances_between(t_ns, t_ns + 1):
            return shift
        return None

    def next_shift(self, t_ns: int) -> ShiftInstance | None:
        """The shift containing ``t_ns``, else the next one to start (within eight days)."""
        found = self.instances_between(t_ns, t_ns + 8 * 24 * NS_PER_HOUR)
        return found[0] if found else None

    def planned_ns(self, a_ns: int, b_ns: int) -> int:
        """Planned time (inside shifts, outside breaks) within ``[a_ns, b_ns)``."""
        if b_ns <= a_ns:
            return 0
        seg_lo, seg_hi, seg_planned = self._segment
        if seg_lo <= a_ns and b_ns <= seg_hi:
            return b_ns - a_ns if seg_planned else 0
        lo, hi = self._range
        if not (lo <= a_ns and b_ns <= hi):
            if b_ns - a_ns > 2 * 24 * NS_PER_HOUR:
                return sum(
                    max(0, min(e, b_ns) - max(s, a_ns))
                    for shift in self.instances_between(a_ns, b_ns)
                    for s, e in shift.planned()
                )
            self._load(a_ns)
        spans = self._spans
        first = bisect.bisect_right(self._starts, a_ns) - 1
        index = max(0, first)
        total = 0
        while index < len(spans) and spans[index][0] < b_ns:
            start, end = spans[index]
            if end > a_ns:
                total += min(end, b_ns) - max(start, a_ns)
            index += 1
        # Remember the constant stretch around a_ns: most queries are one-second intervals.
        if first >= 0 and a_ns < spans[first][1]:
            self._segment = (spans[first][0], spans[first][1], True)
        else:
            gap_lo = spans[first][1] if first >= 0 else self._range[0]
            gap_hi = spans[first + 1][0] if first + 1 < len(spans) else self._range[1]
            self._segment = (gap_lo, gap_hi, False)
        return total

    def _load(self, a_ns: int) -> None:
        """Cache merged planned spans from a day before ``a_ns`` to two days after."""
        lo = a_ns - 24 * NS_PER_HOUR
        hi = a_ns + 3 * 24 * NS_PER_HOUR
        merged: list[tuple[int, int]] = []
        spans = sorted(
            span for shift in self.instances_between(lo - 1, hi + 1) for span in shift.planned()
        )
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        self._spans = merged
        self._starts = [s for s, _ in merged]
        self._range = (lo, hi)


class ShiftWindows:
    """One window per shift occurrence, labelled with the shift's name."""

    def __init__(self, calendar: ShiftCalendar) -> None:
        self.calendar = calendar

    @property
    def name(self) -> str:
        return SHIFT

    @property
    def nominal_ns(self) -> int:
        return 8 * NS_PER_HOUR

    def window_at(self, t_ns: int) -> Window | None:
        shift = self.calendar.shift_at(t_ns)
        return None if shift is None else Window(shift.start_ns, shift.end_ns, shift.name)

    def next_window(self, t_ns: int) -> Window | None:
        shift = self.calendar.next_shift(t_ns)
        return None if shift is None else Window(shift.start_ns, shift.end_ns, shift.name)

    def inside(self, a_ns: int, b_ns: int) -> list[tuple[int, int]]:
        return [
            (max(a_ns, s.start_ns), min(b_ns, s.end_ns))
            for s in self.calendar.instances_between(a_ns, b_ns)
        ]


def build_kind(name: str, local: LocalTime, calendar: ShiftCalendar | None) -> WindowKind:
    """The :class:`WindowKind` called ``name`` (validated names only)."""
    parsed = parse_window(name)
    if parsed == DAY:
        return DayWindows(local)
    if parsed == SHIFT:
        if calendar is None or not calendar.specs:
            raise ValueError("shift windows need a shift calendar")
        return ShiftWindows(calendar)
    assert isinstance(parsed, int)
    return FixedWindows(parsed, local)
