"""Today's KPIs per metric unit, for displays (``edge-agent demo`` and the console).

Read from the processor's open windows; nothing here is on the data path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_agent.metrics.demand import mean_kw
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.utilization import RUN
from edge_agent.metrics.windows import DAY


@dataclass(frozen=True, slots=True)
class LiveKpis:
    """What ``edge-agent demo`` shows per metric device (today = the current local day)."""

    name: str
    kind: str
    energy_today_kwh: float | None
    demand_kw: float | None
    state: str | None
    utilization: float | None
    oee: float | None
    #: Parts made today (a machine with parts counters); None: no count, or none yet seen.
    parts_made: float | None = None


def live_kpis(processor: MetricsProcessor) -> list[LiveKpis]:
    """Today's energy, current demand, state, utilization and OEE per unit (for displays)."""
    now_ns = processor.now_ns()
    rows = []
    for unit in processor.units:
        unit.stager.flush()
    for meter in processor.meters:
        day = _open_at(meter.tracks[DAY].open, now_ns)
        block = _open_at(meter.tracks[DEMAND_WINDOW].open, now_ns)
        rows.append(
            LiveKpis(
                meter.name,
                "meter",
                day.kwh if day is not None and day.touched else None,
                _running_demand(block),
                None,
                None,
                None,
            )
        )
    for machine in processor.machines:
        acc = _open_at(machine.tracks[DAY].open, now_ns)
        energy = utilization = oee = parts_made = None
        demand = None
        if acc is not None:
            known = sum(acc.state_ns)
            utilization = acc.state_ns[RUN] / known if known else None
            oee = machine.kpis(acc).oee
            parts_made = machine.parts_of(acc.parts, acc.parts_touched)[0]
            if machine.feed is not None and acc.energy.touched:
                energy = acc.energy.kwh
        if machine.feed is not None:
            block_acc = _open_at(machine.tracks[DEMAND_WINDOW].open, now_ns)
            demand = None if block_acc is None else _running_demand(block_acc.energy)
        rows.append(
            LiveKpis(
                machine.name,
                "machine",
                energy,
                demand,
                machine.state_name,
                utilization,
                oee,
                parts_made,
            )
        )
    if processor.total is not None:
        members = [
            r for r in rows[: len(processor.meters)] if r.name in processor.config.plant_total
        ]
        energies = [r.energy_today_kwh for r in members]
        demands = [r.demand_kw for r in members]
        rows.append(
            LiveKpis(
                processor.total.name,
                "plant",
                None if None in energies else sum(e for e in energies if e is not None),
                None if None in demands else sum(d for d in demands if d is not None),
                None,
                None,
                None,
            )
        )
    return rows


def _open_at(windows: list[Any], t_ns: int) -> Any:
    for window in windows:
        if window.start_ns <= t_ns < window.end_ns:
            return window.acc
    return None


def _running_demand(acc: Any) -> float | None:
    """Mean power so far in the current 15-minute block (over its covered time)."""
    if acc is None or not acc.covered_ns or not acc.touched:
        return None
    return mean_kw(acc.kwh - acc.late_kwh, acc.covered_ns)
