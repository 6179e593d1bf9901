"""Specs of the metric units from the plant file: what each calculator is told at start.

Tag facts (integer width for counter rollover, scale for resolution, poll interval for
the gap limit, enum labels for machine states) come from the typed
:class:`~edge_agent.config.catalog.TagCatalog`, so this works for every driver alike.
A unit whose device or tag is missing raises :class:`KeyError` (``check`` reports it
with its line; a config assembled in code is skipped with a warning by the processor).
"""

from __future__ import annotations

from typing import Final

from edge_agent.config.catalog import TagCatalog, TagInfo
from edge_agent.config.metrics import (
    KW_PER_UNIT,
    KWH_PER_UNIT,
    CounterTag,
    EnergyConfig,
    MachineConfig,
)
from edge_agent.metrics.energy import NS_PER_S
from edge_agent.metrics.specs import (
    CounterSpec,
    EnergySpec,
    MachineSpec,
    PartsSpec,
    PowerSpec,
    PowerStateSpec,
)
from edge_agent.metrics.utilization import STATE_NAMES

#: Default max_gap: a sample may be missed once (2 intervals) before time counts as a gap.
GAP_INTERVALS: Final = 2.5


def _tag(tags: TagCatalog, device: str, name: str) -> TagInfo:
    found = tags.tag(device, name)
    if found is None:
        raise KeyError(f"device {device!r} has no tag {name!r}")
    return found


def _gap_ns(explicit: float | None, interval: float) -> int:
    seconds = explicit if explicit is not None else GAP_INTERVALS * interval
    return round(seconds * NS_PER_S)


def counter_spec(
    counter: CounterTag, device: str, tags: TagCatalog, to_amount: float | None = None
) -> CounterSpec:
    """``to_amount``: counter unit -> the unit the feed adds up (default: kWh)."""
    tag = _tag(tags, device, counter.tag)
    interval = tag.interval
    bits = tag.integer_bits
    scale = abs(tag.scale)
    resolution = counter.resolution or (scale if bits else 1e-6)
    modulus: int | None = None
    if counter.rollover == "auto":
        modulus = round(2**bits * scale / resolution) if bits else None
    elif counter.rollover != "none":
        modulus = round(float(counter.rollover) / resolution)
    return CounterSpec(
        counter.tag,
        KWH_PER_UNIT[counter.unit] if to_amount is None else to_amount,
        resolution,
        modulus,
        _gap_ns(counter.max_gap, interval),
    )


def energy_spec(
    energy: EnergyConfig,
    device: str,
    tags: TagCatalog,
    units: tuple[float, float] | None = None,
) -> EnergySpec:
    """``units``: (counter, flow) factors into a carrier's amount unit; default kWh and kW."""
    power = None
    if energy.power is not None:
        interval = _tag(tags, device, energy.power.tag).interval
        power = PowerSpec(
            energy.power.tag,
            KW_PER_UNIT[energy.power.unit] if units is None else units[1],
            _gap_ns(energy.power.max_gap, interval),
        )
    counter = None
    if energy.counter is not None:
        to_amount = None if units is None else units[0]
        counter = counter_spec(energy.counter, device, tags, to_amount)
    return EnergySpec(counter, power, energy.max_power)


def machine_spec(machine: MachineConfig, tags: TagCatalog) -> MachineSpec:
    device = machine.device
    labels: dict[str, int] = {}
    power_state = None
    if machine.state is not None:
        state_tag = _tag(tags, device, machine.state.tag)
        interval = state_tag.interval
        for label in (state_tag.enum or {}).values():
            name = machine.state.map.get(label, label)
            if name in STATE_NAMES:
                labels[label] = STATE_NAMES.index(name)
    else:
        assert machine.state_from_power is not None
        p = machine.state_from_power
        interval = _tag(tags, device, p.tag).interval
        power_state = PowerStateSpec(
            p.tag,
            KW_PER_UNIT[p.unit],
            p.off_below,
            p.run_above,
            p.hysteresis,
            round(p.min_dwell * NS_PER_S),
        )
    parts = None
    if machine.parts is not None:
        names = (machine.parts.total, machine.parts.good, machine.parts.scrap)
        moduli: list[int | None] = []
        gaps: list[int] = []
        for part in names:
            if part is None:
                moduli.append(None)
                gaps.append(0)
                continue
            tag = _tag(tags, device, part)
            tag_interval = tag.interval
            bits = tag.integer_bits
            rollover = machine.parts.rollover
            if rollover == "auto":
                moduli.append(2**bits if bits else None)
            else:
                moduli.append(None if rollover == "none" else int(rollover))
            gaps.append(_gap_ns(machine.max_gap, tag_interval))
        parts = PartsSpec(names, (moduli[0], moduli[1], moduli[2]), (gaps[0], gaps[1], gaps[2]))
    return MachineSpec(
        name=machine.metric_name,
        device=device,
        state_tag=None if machine.state is None else machine.state.tag,
        state_labels=labels,
        power_state=power_state,
        max_gap_ns=_gap_ns(machine.max_gap, interval),
        ideal_cycle_s=machine.ideal_cycle_time,
        parts=parts,
        energy=None if machine.energy is None else energy_spec(machine.energy, device, tags),
        energy_device=device,
    )
