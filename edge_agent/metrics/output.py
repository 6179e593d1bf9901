"""Metric batches: names and units of each family, and how a closed window becomes a batch.

A metric batch (docs/METRICS.md): ``device`` = unit name, ``timestamp_ns`` = window
start, float values rounded to each metric's :data:`DECIMALS` (``None`` with quality
uncertain and a reason where not computable), quality uncertain when coverage is below
the minimum. Its group and
attributes, which the sinks and the pipeline read back, are the contract of
:mod:`~edge_agent.metrics.contract`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.metrics.conversions import Conversions
from edge_agent.metrics.demand import Block, PeakTracker, mean_kw
from edge_agent.metrics.energy import NS_PER_S, deviation_pct
from edge_agent.metrics.specs import Context
from edge_agent.metrics.tariff import PERIODS
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.windows import DAY
from edge_agent.model import Quality, SampleBatch, Value

DEMAND_WINDOW: Final = "15m"

ENERGY_NAMES: Final = ("energy_kwh", "mean_kw", "kgce", "kgco2e", "coverage", "late_kwh")
CROSS_CHECK_NAMES: Final = (
    "energy_integrated_kwh",
    "integrated_coverage",
    "integration_deviation_pct",
)
MACHINE_ENERGY_NAMES: Final = ("idle_energy_kwh", "kwh_per_good_part")
#: The ``carrier`` family of a non-electric meter (``kgco2e`` only when it has a CO2 factor);
#: ``amount`` and ``late_amount`` are in the meter's counter unit (docs/METRICS.md).
CARRIER_NAMES: Final = ("amount", "kgce", "kgco2e", "coverage", "late_amount")
DEMAND_BLOCK_NAMES: Final = ("demand_kw", "peak_demand_kw")
DEMAND_DAY_NAMES: Final = (
    "peak_demand_kw",
    "peak_demand_at_s",
    "month_peak_kw",
    "month_peak_at_s",
)
UTILIZATION_NAMES: Final = (
    "off_s",
    "idle_s",
    "run_s",
    "fault_s",
    "unknown_s",
    "planned_s",
    "utilization",
    "availability",
    "effectiveness",
    "quality_ratio",
    "oee",
    "parts_produced",
    "parts_good",
    "parts_scrap",
    "coverage",
)

#: Decimal places each metric is published with (docs/METRICS.md, "Precision"): what
#: its inputs support, without float noise (``12.100000000000001``) on a dashboard.
#: Energy to the watt-hour, power to the watt, masses to the gram, durations to the
#: millisecond, coal and CO2 to 0.1 g, ratios (0-1) to a hundredth of a percent.
DECIMALS: Final = {
    **dict.fromkeys(("energy_kwh", "late_kwh", "energy_integrated_kwh", "idle_energy_kwh"), 3),
    "kwh_per_good_part": 5,
    **dict.fromkeys(("mean_kw", "demand_kw", "peak_demand_kw", "month_peak_kw"), 3),
    **dict.fromkeys(("kgce", "kgco2e"), 4),
    **dict.fromkeys(("off_s", "idle_s", "run_s", "fault_s", "unknown_s", "planned_s"), 3),
    "peak_demand_at_s": 0,
    "month_peak_at_s": 0,
    **dict.fromkeys(
        (
            "coverage",
            "integrated_coverage",
            "utilization",
            "availability",
            "effectiveness",
            "quality_ratio",
            "oee",
        ),
        4,
    ),
    "integration_deviation_pct": 2,
    # A carrier's amount is in its counter unit (t, GJ, m3): six places cover g and kJ.
    **dict.fromkeys(("amount", "late_amount"), 6),
    **dict.fromkeys(("parts_produced", "parts_good", "parts_scrap"), 0),
    # The tariff family (metrics/cost.py): kWh to the watt-hour, money to 0.0001 (a
    # minute's cost is a few fen), the peak share like every ratio.
    **{f"kwh_{period}": 3 for period in PERIODS},
    **{f"cost_{period}": 4 for period in PERIODS},
    "cost": 4,
    "peak_share": 4,
}
#: For a metric not in :data:`DECIMALS` (a family added later): still no float noise.
DEFAULT_DECIMALS: Final = 6


def published(name: str, value: float) -> float:
    """``value`` rounded to the precision metric ``name`` is published with."""
    return round(value, DECIMALS.get(name, DEFAULT_DECIMALS))


#: Reason carried by a ``None`` value (UNCERTAIN quality), by metric name.
NONE_REASONS: Final = {
    "energy_kwh": "no data",
    "amount": "no data",
    "energy_integrated_kwh": "no data",
    "integration_deviation_pct": "not comparable (low coverage or no counter energy)",
    "utilization": "state unknown",
    "availability": "no planned time with known state",
    "effectiveness": "no production time, or no parts or ideal cycle time configured",
    "quality_ratio": "no parts produced, or no parts counters configured",
    "oee": "a component is undefined",
    "kwh_per_good_part": "no good parts",
    "demand_kw": "no data",
    "peak_demand_kw": "no block of this day had data",
    "peak_demand_at_s": "no block of this day had data",
    "month_peak_kw": "no block of this month had data",
    "month_peak_at_s": "no block of this month had data",
    "peak_share": "no energy in the window",
}


def metric_batch(
    device: str,
    kind: str,
    window: OpenWindow[Any],
    family: str,
    names: tuple[str, ...],
    values: Sequence[float | None],
    coverage: float,
    min_coverage: float,
    as_of: int | None = None,
) -> SampleBatch:
    """One metric batch of a closed window (see the module docstring); of a running
    window with ``as_of``, the time its values were known (the contract's ``as_of``)."""
    low = coverage < min_coverage
    base_quality = Quality.UNCERTAIN if low else Quality.GOOD
    base_reason = f"coverage {coverage:.1%} below {min_coverage:.0%}" if low else ""
    out_values: list[Value] = []
    qualities: list[Quality] = []
    reasons: list[str] = []
    for name, value in zip(names, values, strict=True):
        out_values.append(None if value is None else published(name, value))
        if value is None:
            qualities.append(Quality.UNCERTAIN)
            reasons.append(NONE_REASONS.get(name, "no data"))
        else:
            qualities.append(base_quality)
            reasons.append(base_reason)
    info = MetricInfo(family, kind, (window.start_ns, window.end_ns), window.label or None, as_of)
    return SampleBatch(
        device=device,
        group=metric_group(kind),
        timestamp_ns=window.start_ns,
        names=names,
        values=out_values,
        qualities=qualities,
        reasons=reasons,
        attributes=info.attributes(),
    )


def energy_values(
    acc: EnergyAcc, length_ns: int, conv: Conversions
) -> tuple[float | None, list[float | None]]:
    kwh = acc.kwh if acc.touched else None
    coverage = acc.covered_ns / length_ns
    values: list[float | None] = [
        kwh,
        None if kwh is None else mean_kw(kwh, length_ns),
        None if kwh is None else conv.kgce(kwh),
        None if kwh is None else conv.kgco2e(kwh),
        coverage,
        acc.late_kwh,
    ]
    return kwh, values


def cross_check_values(acc: EnergyAcc, length_ns: int, min_coverage: float) -> list[float | None]:
    coverage = acc.covered_ns / length_ns
    alt_coverage = acc.alt_covered_ns / length_ns
    integrated = acc.alt_kwh if acc.alt_covered_ns else None
    deviation = None
    if integrated is not None and coverage >= min_coverage and alt_coverage >= min_coverage:
        deviation = deviation_pct(integrated, acc.kwh)
    return [integrated, alt_coverage, deviation]


def energy_and_demand_batches(
    name: str,
    kind: str,
    window: OpenWindow[Any],
    names: tuple[str, ...],
    values: list[float | None],
    kwh: float | None,
    coverage: float,
    peaks: PeakTracker,
    ctx: Context,
) -> list[SampleBatch]:
    """The energy batch of a window, plus demand for 15-minute blocks and days."""
    out: list[SampleBatch] = []
    emitted = kind in ctx.emitted
    if emitted:
        out.append(
            metric_batch(name, kind, window, "energy", names, values, coverage, ctx.min_coverage)
        )
    if kind == DEMAND_WINDOW:
        # Late energy belongs to earlier blocks: counting it here would fake a peak.
        late = values[ENERGY_NAMES.index("late_kwh")] or 0.0
        demand = None if kwh is None else mean_kw(kwh - late, window.end_ns - window.start_ns)
        day_start = ctx.day.window_at(window.start_ns)
        peak = None
        if demand is not None and day_start is not None:
            month_ns = None if ctx.month_start is None else ctx.month_start(window.start_ns)
            peak = peaks.add_block(day_start.start_ns, window.start_ns, demand, month_ns)
        elif day_start is not None:
            peak = peaks.peak_of(day_start.start_ns)
        if day_start is not None:
            good = demand is not None and coverage >= ctx.min_coverage
            block = Block(window.start_ns, window.end_ns, demand, good)
            peaks.keep_block(day_start.start_ns, block)
        if emitted:
            values_block = [demand, None if peak is None else peak.peak_kw]
            out.append(
                metric_batch(
                    name,
                    kind,
                    window,
                    "demand",
                    DEMAND_BLOCK_NAMES,
                    values_block,
                    coverage,
                    ctx.min_coverage,
                )
            )
    elif kind == DAY and emitted:
        peak = peaks.peak_of(window.start_ns)
        month = None
        if ctx.month_start is not None:
            month = peaks.month_peak_of(ctx.month_start(window.start_ns))
        values_day = [
            None if peak is None else peak.peak_kw,
            None if peak is None else peak.block_start_ns / NS_PER_S,
            None if month is None else month.peak_kw,
            None if month is None else month.block_start_ns / NS_PER_S,
        ]
        out.append(
            metric_batch(
                name,
                kind,
                window,
                "demand",
                DEMAND_DAY_NAMES,
                values_day,
                coverage,
                ctx.min_coverage,
            )
        )
    return out
