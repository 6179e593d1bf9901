"""Today's KPIs per metric unit, for displays (``edge-agent demo`` and the console).

Read from the processor's open windows; nothing here is on the data path. The figures
are the ones the unit's ``1d`` window will publish when it closes (the same
calculators on the same accumulators), unrounded: a display rounds them as it shows
them (:func:`~edge_agent.metrics.output.published`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc, MachineAcc
from edge_agent.metrics.demand import PeakTracker, mean_kw
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.utilization import RUN, kwh_per_part
from edge_agent.metrics.windows import DAY, NS_PER_S


@dataclass(frozen=True, slots=True)
class LiveKpis:
    """Today's figures of one metric unit (today = the current local day).

    ``None`` wherever the value is not known yet (no data, no counter configured).
    """

    name: str
    kind: str
    energy_today_kwh: float | None
    demand_kw: float | None
    state: str | None
    utilization: float | None
    oee: float | None
    #: Parts made today (a machine with parts counters); None: no count, or none yet seen.
    parts_made: float | None = None
    parts_good: float | None = None
    availability: float | None = None
    effectiveness: float | None = None
    quality_ratio: float | None = None
    kgce: float | None = None
    kgco2e: float | None = None
    kwh_per_good_part: float | None = None
    idle_energy_kwh: float | None = None
    #: The day's highest closed 15-minute block so far (meters and the plant total).
    peak_demand_kw: float | None = None
    peak_demand_at_s: float | None = None


def live_kpis(processor: MetricsProcessor, now_ns: int | None = None) -> list[LiveKpis]:
    """Today's energy, demand, state and KPIs per unit, then the plant total (for displays)."""
    now_ns = processor.now_ns() if now_ns is None else now_ns
    conv = processor.context.conversions
    day_window = processor.context.day.window_at(now_ns)
    day_start = None if day_window is None else day_window.start_ns
    rows = []
    for unit in processor.units:
        unit.stager.flush()
    for meter in processor.meters:
        day = _open_at(meter.tracks[DAY].open, now_ns)
        block = _open_at(meter.tracks[DEMAND_WINDOW].open, now_ns)
        energy = _energy(day)
        rows.append(
            LiveKpis(
                meter.name,
                "meter",
                energy,
                _running_demand(block, meter.feed.counter is not None),
                None,
                None,
                None,
                kgce=None if energy is None else conv.kgce(energy),
                kgco2e=None if energy is None else conv.kgco2e(energy),
                **_peak(meter.peaks, day_start),
            )
        )
    for machine in processor.machines:
        acc: MachineAcc | None = _open_at(machine.tracks[DAY].open, now_ns)
        energy = utilization = None
        figures: dict[str, float | None] = {}
        if acc is not None:
            known = sum(acc.state_ns)
            utilization = acc.state_ns[RUN] / known if known else None
            kpis = machine.kpis(acc)
            made, good, _ = machine.parts_of(acc.parts, acc.parts_touched)
            figures = {
                "oee": kpis.oee,
                "availability": kpis.availability,
                "effectiveness": kpis.effectiveness,
                "quality_ratio": kpis.quality_ratio,
                "parts_made": made,
                "parts_good": good,
            }
            if machine.feed is not None:
                energy = _energy(acc.energy)
                figures["kwh_per_good_part"] = kwh_per_part(energy, good)
                figures["idle_energy_kwh"] = None if energy is None else acc.energy.idle_kwh
        demand = None
        if machine.feed is not None:
            block_acc = _open_at(machine.tracks[DEMAND_WINDOW].open, now_ns)
            demand = (
                None
                if block_acc is None
                else _running_demand(block_acc.energy, machine.feed.counter is not None)
            )
        oee = figures.pop("oee", None)
        rows.append(
            LiveKpis(
                machine.name,
                "machine",
                energy,
                demand,
                machine.state_name,
                utilization,
                oee,
                kgce=None if energy is None else conv.kgce(energy),
                kgco2e=None if energy is None else conv.kgco2e(energy),
                **figures,
            )
        )
    if processor.total is not None:
        members = [
            r for r in rows[: len(processor.meters)] if r.name in processor.config.plant_total
        ]
        # As PlantTotal publishes the day: the members with energy, once any has some.
        energies = [r.energy_today_kwh for r in members if r.energy_today_kwh is not None]
        demands = [r.demand_kw for r in members]
        total = sum(energies) if energies else None
        rows.append(
            LiveKpis(
                processor.total.name,
                "plant",
                total,
                None if None in demands else sum(d for d in demands if d is not None),
                None,
                None,
                None,
                kgce=None if total is None else conv.kgce(total),
                kgco2e=None if total is None else conv.kgco2e(total),
                **_peak(processor.total.peaks, day_start),
            )
        )
    return rows


def _open_at(windows: list[Any], t_ns: int) -> Any:
    for window in windows:
        if window.start_ns <= t_ns < window.end_ns:
            return window.acc
    return None


def _energy(acc: EnergyAcc | None) -> float | None:
    """A window's energy so far, as its energy batch will publish it (late energy included)."""
    return acc.kwh if acc is not None and acc.touched else None


#: Below this much known time a counter's block mean is its resolution's noise (one 0.01
#: kWh count in the block's first second reads as 36 kW): integrated power is used then.
MIN_RUNNING_NS: Final = 60 * NS_PER_S


def _running_demand(acc: Any, counted: bool = False) -> float | None:
    """Mean power so far in the current 15-minute block: its energy over the time whose
    energy is known (a gap the counter bridged included, its energy being in ``kwh``).

    ``counted``: the energy comes from a counter. Until :data:`MIN_RUNNING_NS` of the
    block is known its mean is the integrated power tag's, if the meter has one (smooth
    from the first interval), else not shown yet.
    """
    if acc is None or not acc.known_ns or not acc.touched:
        return None
    if counted and acc.known_ns < MIN_RUNNING_NS:
        return mean_kw(acc.alt_kwh, acc.alt_covered_ns) if acc.alt_covered_ns else None
    return mean_kw(acc.kwh - acc.late_kwh, acc.known_ns)


def _peak(peaks: PeakTracker, day_start_ns: int | None) -> dict[str, float | None]:
    """Today's peak block so far: the ``peak_demand_kw`` the last block batch published."""
    peak = None if day_start_ns is None else peaks.peak_of(day_start_ns)
    if peak is None:
        return {"peak_demand_kw": None, "peak_demand_at_s": None}
    return {"peak_demand_kw": peak.peak_kw, "peak_demand_at_s": peak.block_start_ns / NS_PER_S}
