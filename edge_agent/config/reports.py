"""``metrics.reports``: the daily and per-shift energy reports (docs/METRICS.md, "Reports").

A report is made from the metric batches of its window, so it needs the window
published: the daily report ``1d`` in ``metrics.windows``, the shift report ``shift``.
Left unset, each report is on exactly when its window is published; set to true
without its window, ``check`` refuses the plant file (a report asked for and never
made would be found out weeks later).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from edge_agent.config.base import Strict
from edge_agent.metrics.windows import DAY, SHIFT


class ReportsConfig(Strict):
    """Energy reports: written to ``state_dir/reports`` and published by the sinks."""

    daily: bool | None = Field(
        default=None,
        description="The daily report; default: on when 1d is in metrics.windows.",
    )
    shift: bool | None = Field(
        default=None,
        description="A report per shift; default: on when shift is in metrics.windows.",
    )
    keep_days: int = Field(
        default=400,
        ge=1,
        le=100_000,
        description="Days of report files kept in the state directory (older ones deleted).",
    )

    def on(self, windows: Sequence[str]) -> tuple[bool, bool]:
        """(daily, shift): which reports are made with these published windows."""
        return (
            (DAY in windows) if self.daily is None else self.daily,
            (SHIFT in windows) if self.shift is None else self.shift,
        )

    def problems(self, windows: Sequence[str]) -> list[tuple[str, str]]:
        """``(key, message)`` of each report switched on whose window is not published
        (checked with the devices, so that the rest of the metrics section is still
        checked: every problem in one pass)."""
        out = []
        if self.daily and DAY not in windows:
            out.append(("daily", "needs 1d in metrics.windows (the report is made from it)"))
        if self.shift and SHIFT not in windows:
            out.append(("shift", "needs shift in metrics.windows (the report is made from it)"))
        return out
