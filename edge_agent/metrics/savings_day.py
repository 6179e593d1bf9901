"""A baseline's savings over a day, summed from its shorter windows.

Reports are made from the ``1d`` windows (:mod:`edge_agent.metrics.reports`); a baseline
that works in 15-minute or hourly windows would have no savings there. So its savings
unit also publishes a ``savings`` batch on the ``1d`` window (docs/METRICS.md,
"Baselines, EnPIs and savings"), the sums of the day's windows:

* ``expected_kwh``, ``avoided_kwh`` (and its kgce and kgCO2e): sums over the windows the
  running totals count. Uncertain, with the count, when some windows with energy had no
  prediction or an uncertain one (outside the validity range: counted; below the minimum
  coverage or known in part: left out, the sums then cover only part of the day).
* ``actual_kwh``: the metered energy of all the day's windows.
* ``cumulative_*``: the running totals when the day closes.
* the EnPIs: the day's energy over its good parts and its run hours.
* coverage: the covered time of the day's windows over the day's length, so a day the
  agent saw only part of is uncertain, as every window below the minimum coverage is.

The sums are kept with the unit's state: a restart in the middle of the day loses none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.specs import Context
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.window_history import Record
from edge_agent.metrics.windows import DAY
from edge_agent.model import Quality, SampleBatch


@dataclass
class DaySavings:
    """The running sums of one local day's savings windows."""

    start_ns: int
    end_ns: int
    covered_ns: float = 0.0
    #: Windows with metered energy, and how many of them had a prediction.
    with_energy: int = 0
    predicted: int = 0
    #: Windows whose prediction was uncertain, and the first reason.
    uncertain: int = 0
    reason: str = ""
    expected_kwh: float = 0.0
    avoided_kwh: float = 0.0
    actual_kwh: float = 0.0
    parts_good: float | None = None
    run_hours: float | None = None

    def add(
        self,
        record: Record,
        expected: float | None,
        avoided: float | None,
        uncertain: str,
        counted: bool = True,
    ) -> None:
        """One closed window of the day: its record, prediction, why it is uncertain, and
        whether the running totals counted it (only those are summed)."""
        self.covered_ns += record.coverage * (record.end_ns - record.start_ns)
        if record.energy_kwh is not None:
            self.with_energy += 1
            self.actual_kwh += record.energy_kwh
        good = record.variables.get("parts_good")
        if good is not None:
            self.parts_good = (self.parts_good or 0.0) + good
        hours = record.variables.get("run_hours")
        if hours is not None:
            self.run_hours = (self.run_hours or 0.0) + hours
        if expected is None or avoided is None:
            return
        self.predicted += 1
        if uncertain:
            self.uncertain += 1
            self.reason = self.reason or uncertain
        if not counted:
            return  # left out of the sums as out of the running totals
        self.expected_kwh += expected
        self.avoided_kwh += avoided

    def batch(
        self,
        name: str,
        names: tuple[str, ...],
        window: OpenWindow[Any],
        ctx: Context,
        cumulative: tuple[float, float] | None,
    ) -> SampleBatch:
        """The day's ``savings`` batch (``names`` in the order of the window batches)."""
        conv = ctx.conversions
        predicted = self.predicted > 0
        actual = self.actual_kwh if self.with_energy else None
        avoided = self.avoided_kwh if predicted else None
        figures: dict[str, float | None] = {
            "expected_kwh": self.expected_kwh if predicted else None,
            "actual_kwh": actual,
            "avoided_kwh": avoided,
            "avoided_kgce": None if avoided is None else conv.kgce(avoided),
            "avoided_kgco2e": None if avoided is None else conv.kgco2e(avoided),
            "cumulative_avoided_kwh": None if cumulative is None else cumulative[0],
            "cumulative_avoided_kgce": None if cumulative is None else cumulative[1],
            "kwh_per_good_part": actual / self.parts_good
            if actual is not None and self.parts_good
            else None,
            "kwh_per_operating_hour": actual / self.run_hours
            if actual is not None and self.run_hours
            else None,
        }
        length = window.end_ns - window.start_ns
        batch = metric_batch(
            name,
            DAY,
            window,
            "savings",
            names,
            [figures[n] for n in names],
            min(1.0, self.covered_ns / length),
            ctx.min_coverage,
        )
        why = ""
        if not predicted:
            why = "no window of the day had a prediction"
        elif self.predicted < self.with_energy:
            missing = self.with_energy - self.predicted
            why = f"{missing} of {self.with_energy} windows without a prediction"
        elif self.uncertain:
            why = f"{self.uncertain} of {self.predicted} windows uncertain: {self.reason}"
        if why:
            for index, figure in enumerate(names):
                if figure in ("expected_kwh", "avoided_kwh", "avoided_kgce", "avoided_kgco2e"):
                    batch.qualities[index] = Quality.UNCERTAIN
                    batch.reasons[index] = why
        return batch

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def load(cls, data: dict[str, Any] | None) -> DaySavings | None:
        if not data:
            return None
        try:
            return cls(**data)
        except TypeError:  # another version's shape: the day starts again
            return None
