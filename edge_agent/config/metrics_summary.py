"""What ``edge-agent check`` prints about the ``metrics:`` section: one line per unit,
tariff, baseline and factor, so an engineer sees what the agent will compute."""

from __future__ import annotations

from edge_agent.config.baseline import FitCsv
from edge_agent.config.carriers import grid_factor
from edge_agent.config.metrics import MetricsConfig


def summary_lines(metrics: MetricsConfig) -> list[str]:
    """What ``edge-agent check`` prints about the metrics section."""
    lines = [f"metrics: windows {', '.join(metrics.windows)}; grace {metrics.grace:g}s"]
    for meter in metrics.meters:
        sources = [s for s, given in (("counter", meter.counter), ("power", meter.power)) if given]
        guard = meter.demand_guard
        limit = f", {guard.kind} demand {guard.limit_kw:g} kW guarded" if guard else ""
        lines.append(f"  meter {meter.metric_name}: {' + '.join(sources)} of {meter.device}{limit}")
    for machine in metrics.machines:
        how = "state tag" if machine.state is not None else "state from power"
        extras = [x for x, given in (("parts", machine.parts), ("energy", machine.energy)) if given]
        lines.append(
            f"  machine {machine.metric_name}: {how}"
            + (f", {', '.join(extras)}" if extras else "")
            + (f", ideal cycle {machine.ideal_cycle_time:g}s" if machine.ideal_cycle_time else "")
        )
    if metrics.shifts:
        shifts = ", ".join(f"{s.name} {s.start}-{s.end}" for s in metrics.shifts)
        lines.append(f"  shifts: {shifts}")
    if metrics.plant_total:
        lines.append(f"  plant total: {' + '.join(metrics.plant_total)}")
    for tariff in metrics.tariffs:
        priced = [m.metric_name for m in metrics.meters if metrics.tariff_of(m) is tariff]
        lines.append(
            f"  tariff {tariff.name} ({tariff.currency}, {len(tariff.seasons)} "
            f"season{'' if len(tariff.seasons) == 1 else 's'}): "
            + (", ".join(priced) if priced else "no meter")
        )
    for baseline in metrics.baselines:
        source = (
            f"csv {baseline.fit.csv}"
            if isinstance(baseline.fit, FitCsv)
            else f"{baseline.fit.start} to {baseline.fit.to}"
        )
        lines.append(
            f"  baseline {baseline.name}: {' + '.join(baseline.meters)} per {baseline.window} "
            f"on {', '.join(baseline.variables)}; fit from {source}"
        )
    detectors = (
        ("idle_energy", metrics.events.idle_energy),
        ("meter_stalled", metrics.events.meter_stalled),
    )
    events = [name for name, config in detectors if config is not None]
    if events:
        lines.append(f"  events: {', '.join(events)}")
    lines.append(f"  {metrics.coal_equivalent.coefficient:g} kgce/kWh")
    lines.append(f"  grid emission factor: {grid_factor(metrics.grid_emission_factor)[1]}")
    for meter in metrics.meters:
        if not meter.is_electric:
            units = meter.units
            lines.append(
                f"  carrier {meter.metric_name}: {meter.carrier}, "
                f"{units.kgce_per_unit:g} kgce/{units.amount_unit} ({units.kgce_source})"
            )
            if meter.carrier == "natural_gas" and units.kgce_source.startswith("GB/T"):
                lines.append(
                    "    natural gas ranges about 1.10-1.33 kgce/m3 with its calorific value: "
                    "set calorific_value (MJ per unit, from the gas bill)"
                )
    return lines
