"""Demand: mean power per clock-aligned 15-minute block, and the day's peak block.

Utilities bill demand as the mean power over fixed 15-minute blocks starting at
:00, :15, :30 and :45 (not a sliding window), and the monthly charge follows the
highest block. The blocks here are the ``15m`` windows of
:mod:`~edge_agent.metrics.windows`, aligned in the plant's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

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

    __slots__ = ("blocks", "blocks_day_ns", "current")

    def __init__(self) -> None:
        self.current: DayPeak | None = None
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

    def add_block(self, day_start_ns: int, block_start_ns: int, kw: float) -> DayPeak:
        """Account for one closed block of the day starting at ``day_start_ns``."""
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

    def state(self) -> dict[str, Any] | None:
        peak = self.current
        if peak is None:
            return None
        return {"day": peak.day_start_ns, "kw": peak.peak_kw, "block": peak.block_start_ns}

    def restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            self.current = None
            return
        self.current = DayPeak(int(state["day"]), float(state["kw"]), int(state["block"]))
