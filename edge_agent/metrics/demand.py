"""Demand: mean power per clock-aligned 15-minute block, and the day's peak block.

Utilities bill demand as the mean power over fixed 15-minute blocks starting at
:00, :15, :30 and :45 (not a sliding window), and the monthly charge follows the
highest block. The blocks here are the ``15m`` windows of
:mod:`~edge_agent.metrics.windows`, aligned in the plant's time zone. The month's
peak (local calendar month, the billing figure) is kept beside the day's and saved
with it, so a restart does not forget it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from edge_agent.metrics.windows import LocalTime

NS_PER_HOUR: Final = 3_600_000_000_000


def mean_kw(kwh: float, duration_ns: int) -> float:
    """Mean power (kW) of ``kwh`` over ``duration_ns``."""
    return kwh * NS_PER_HOUR / duration_ns


@dataclass(slots=True)
class DayPeak:
    """The highest 15-minute demand of one local day so far."""

    day_start_ns: int
    peak_kw: float
    block_start_ns: int


@dataclass(slots=True)
class MonthPeak:
    """The highest 15-minute demand of one local calendar month so far."""

    month_start_ns: int
    peak_kw: float
    block_start_ns: int


def month_start_ns(local: LocalTime, t_ns: int) -> int:
    """Local midnight of the first day of the calendar month containing ``t_ns``."""
    day = local.local_date(t_ns)
    start = local.at(day.replace(day=1), 0)
    if t_ns < start:  # the month's first midnight happens twice (a switch at 00:00)
        previous = day.replace(day=1) - dt.timedelta(days=1)
        start = local.at(previous.replace(day=1), 0)
    return start


@dataclass(frozen=True, slots=True)
class Block:
    """One closed 15-minute block as its demand batch publishes it (unrounded)."""

    start_ns: int
    end_ns: int
    demand_kw: float | None
    #: Its demand batch's quality: good, or uncertain (low coverage, no data).
    good: bool


#: More blocks than any local day has (100 on a 25-hour day, a few more where a
#: daylight-saving switch cuts blocks): the list cannot grow without bound.
MAX_BLOCKS: Final = 128


class PeakTracker:
    """Keeps the running peak demand of the current local day, and the day's blocks.

    The blocks are for the console's demand bars, also when ``15m`` is not published.
    They are kept in memory only (not saved with the peak): after a restart the bars
    start at the first block closed since.
    """

    __slots__ = ("blocks", "blocks_day_ns", "current", "month")

    def __init__(self) -> None:
        self.current: DayPeak | None = None
        self.month: MonthPeak | None = None
        self.blocks: list[Block] = []
        self.blocks_day_ns: int | None = None

    def keep_block(self, day_start_ns: int, block: Block) -> None:
        """Remember a closed block of the day starting at ``day_start_ns`` (today's only)."""
        if day_start_ns != self.blocks_day_ns:
            self.blocks, self.blocks_day_ns = [], day_start_ns
        if len(self.blocks) < MAX_BLOCKS:
            self.blocks.append(block)

    def blocks_of(self, day_start_ns: int) -> list[Block]:
        """The closed blocks of the day starting at ``day_start_ns`` that are kept."""
        return list(self.blocks) if day_start_ns == self.blocks_day_ns else []

    def add_block(
        self, day_start_ns: int, block_start_ns: int, kw: float, month_ns: int | None = None
    ) -> DayPeak:
        """Account for one closed block of the day starting at ``day_start_ns`` (and of
        the month starting at ``month_ns``, when given)."""
        if month_ns is not None:
            month = self.month
            if month is None or month.month_start_ns != month_ns:
                if month is None or month_ns > month.month_start_ns:
                    self.month = MonthPeak(month_ns, kw, block_start_ns)
            elif kw > month.peak_kw:
                month.peak_kw, month.block_start_ns = kw, block_start_ns
        peak = self.current
        if peak is None or peak.day_start_ns != day_start_ns:
            peak = self.current = DayPeak(day_start_ns, kw, block_start_ns)
        elif kw > peak.peak_kw:
            peak.peak_kw, peak.block_start_ns = kw, block_start_ns
        return peak

    def peak_of(self, day_start_ns: int) -> DayPeak | None:
        """The peak of the day starting at ``day_start_ns``, if any block of it closed."""
        peak = self.current
        return peak if peak is not None and peak.day_start_ns == day_start_ns else None

    def month_peak_of(self, month_ns: int) -> MonthPeak | None:
        """The peak of the month starting at ``month_ns``, if any block of it closed."""
        month = self.month
        return month if month is not None and month.month_start_ns == month_ns else None

    def state(self) -> dict[str, Any] | None:
        peak, month = self.current, self.month
        if peak is None and month is None:
            return None
        state: dict[str, Any] = {}
        if peak is not None:
            state.update(day=peak.day_start_ns, kw=peak.peak_kw, block=peak.block_start_ns)
        if month is not None:
            state["month"] = [month.month_start_ns, month.peak_kw, month.block_start_ns]
        return state

    def restore(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`state` (also a state saved before month peaks were kept)."""
        self.current = self.month = None
        if state is None:
            return
        if "day" in state:
            self.current = DayPeak(int(state["day"]), float(state["kw"]), int(state["block"]))
        month = state.get("month")
        if month is not None:
            self.month = MonthPeak(int(month[0]), float(month[1]), int(month[2]))
