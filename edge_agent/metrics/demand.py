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


class PeakTracker:
    """Keeps the running peak demand of the current local day."""

    __slots__ = ("current",)

    def __init__(self) -> None:
        self.current: DayPeak | None = None

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
