"""Simulated plant -> agent batches in simulated time, without sockets (metrics tests).

:class:`SimulatedPolling` steps the simulator's models (simulators/) and turns their
quantities into the batches the Modbus driver would produce for the agent's config:
values go through the register encoding of the simulator's register map and the
agent's scale/offset/enum (so an energy counter arrives as ``raw x 0.01`` with the
register's rollover, a float32 power with float32 precision, a state as its enum
label). Faults are injected the way they look to the agent: all-bad batches for a
communication gap, a counter that restarts from zero for a meter reset.

A day of a five-device plant polled every second runs in seconds, which is what lets
the ground-truth test cover 24 hours of operation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import REGISTER_COUNT, ModbusTag, PlantConfig
from edge_agent.model import REASON_TIMEOUT, Quality, SampleBatch, Value
from simulators.equipment import GasMeter, Machine, PowerMeter, Simulation
from simulators.profile import Point, Profile, build_simulation
from simulators.stepping import UJ_PER_KWH

_SIGNED = {"int16": 16, "int32": 32, "int64": 64}
_UNSIGNED = {"uint16": 16, "uint32": 32, "uint64": 64}


def _point(profile: Profile, unit: str, tag: ModbusTag) -> Point:
    found = next(u for s in profile.servers for u in s.units if u.name == unit)
    for point in found.points:
        width = (point.length or 0) if point.type == "string" else REGISTER_COUNT.get(point.type, 1)
        if point.table == tag.table and point.address <= tag.address < point.address + width:
            return point
    raise KeyError(f"{unit}: no point at {tag.table} {tag.address}")


def wire(point: Point, tag: ModbusTag) -> Callable[[Any], tuple[Value, Quality]]:
    """The agent's decoded value for a model quantity, through the register encoding."""
    if tag.enum is not None:
        labels = tag.enum

        def enum_value(value: Any) -> tuple[Value, Quality]:
            label = labels.get(int(value))
            return (label, Quality.GOOD) if label is not None else (str(value), Quality.UNCERTAIN)

        return enum_value
    if point.type == "float32":
        pack = struct.Struct(">f")

        def float32(value: Any) -> tuple[Value, Quality]:
            raw = pack.unpack(pack.pack((float(value) - point.offset) / point.scale))[0]
            return raw * tag.scale + tag.offset, Quality.GOOD

        return float32
    if point.type == "float64":
        return lambda value: (
            (float(value) - point.offset) / point.scale * tag.scale + tag.offset,
            Quality.GOOD,
        )
    bits = _UNSIGNED.get(point.type) or _SIGNED[point.type]
    signed = point.type in _SIGNED
    identity = tag.scale == 1.0 and tag.offset == 0.0

    def integer(value: Any) -> tuple[Value, Quality]:
        if isinstance(value, int) and point.scale == 1 and point.offset == 0:
            raw = value % (1 << bits)
        else:
            raw = round((float(value) - point.offset) / point.scale) % (1 << bits)
        if signed and raw >= 1 << (bits - 1):
            raw -= 1 << bits
        return (raw if identity else raw * tag.scale + tag.offset), Quality.GOOD

    return integer


def _machine_quantities(machine: Machine) -> dict[str, Any]:
    """The quantities metrics use, without read()'s cost (checked against read() now and then)."""
    params = machine.params
    truth = machine.truth()
    good = params.initial_good + truth.parts_good
    scrap = params.initial_scrap + truth.parts_scrap
    resolution = params.energy_resolution_kwh
    count = round(params.initial_energy_kwh / resolution) + machine.energy_uj() // max(
        1, round(resolution * UJ_PER_KWH)
    )
    return {
        "state": int(machine.state),
        "power_kw": machine.power_kw,
        "parts_total": good + scrap,
        "parts_good": good,
        "parts_scrap": scrap,
        "energy_kwh": count * resolution,
        "outdoor_c": machine.outdoor_c(),
    }


@dataclass
class _Group:
    device: str
    name: str
    interval_ms: int
    names: tuple[str, ...]
    sources: list[tuple[str, Callable[[Any], tuple[Value, Quality]]]]


@dataclass
class SimulatedPolling:
    """Polls a simulated plant every ``interval`` of each group, in simulated time."""

    profile: Profile
    config: PlantConfig
    start: float
    #: Only these tags are produced (None: every tag of every group).
    only_tags: dict[str, set[str]] | None = None
    simulation: Simulation = field(init=False)
    #: (device, from_s, until_s): polls in [from, until) fail with a timeout.
    gaps: list[tuple[str, float, float]] = field(default_factory=list)
    #: meter -> (time of reset, counter ticks subtracted from then on).
    resets: dict[str, tuple[float, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reads = 0
        self.simulation = build_simulation(self.profile, self.start)
        self._groups: list[_Group] = []
        for device in self.config.devices:
            for group in device.poll_groups:
                tags = [
                    t
                    for t in group.tags
                    if self.only_tags is None or t.name in self.only_tags.get(device.name, set())
                ]
                if not tags:
                    continue
                sources = []
                for tag in tags:
                    point = _point(self.profile, device.name, tag)
                    sources.append((point.quantity or point.name, wire(point, tag)))
                self._groups.append(
                    _Group(
                        device.name,
                        group.name,
                        round(group.interval * 1000),
                        tuple(t.name for t in tags),
                        sources,
                    )
                )

    def reset_meter(self, meter: str, at: float) -> None:
        """Right after ``at`` the meter's import register is cleared: it counts from zero."""
        self.simulation.advance_to(at)
        model = self.simulation.meter(meter)
        self.resets[meter] = (at, model.truth().counter)

    def quantities(self, device: str) -> dict[str, Any]:
        model = self.simulation.model(device)
        if isinstance(model, PowerMeter):
            # Only what metrics need, without read()'s per-phase arithmetic (speed).
            truth = model.truth()
            counter = truth.counter
            reset = self.resets.get(device)
            if reset is not None and self.simulation.now > reset[0]:
                counter = (counter - reset[1]) % (1 << model.params.counter_bits)
            return {
                "power_active_kw": model.power_kw,
                "energy_import_kwh": counter * model.params.counter_resolution_kwh,
                "energy_import_counter": counter,
            }
        if isinstance(model, GasMeter):
            return model.read()  # three numbers: cheap enough as it is
        assert isinstance(model, Machine)
        fast = _machine_quantities(model)
        self._reads += 1
        if self._reads % 997 == 1:
            # The shortcut must say what the model's own read() says.
            full = model.read()
            assert all(full[name] == value for name, value in fast.items()), (fast, full)
        return fast

    def poll(self, t: float) -> list[SampleBatch]:
        """Every batch whose group is due at ``t`` (whole milliseconds)."""
        t_ms = round(t * 1000)
        self.simulation.advance_to(t)
        out: list[SampleBatch] = []
        cache: dict[str, dict[str, Any]] = {}
        t_ns = t_ms * 1_000_000
        for group in self._groups:
            if t_ms % group.interval_ms:
                continue
            if any(d == group.device and a <= t < b for d, a, b in self.gaps):
                out.append(
                    SampleBatch.all_bad(group.device, group.name, t_ns, group.names, REASON_TIMEOUT)
                )
                continue
            quantities = cache.get(group.device)
            if quantities is None:
                quantities = cache[group.device] = self.quantities(group.device)
            values: list[Value] = []
            qualities: list[Quality] = []
            for quantity, convert in group.sources:
                value, quality = convert(quantities[quantity])
                values.append(value)
                qualities.append(quality)
            out.append(
                SampleBatch(
                    group.device,
                    group.name,
                    t_ns,
                    group.names,
                    values,
                    qualities,
                    [""] * len(values),
                )
            )
        return out

    def run(self, until: float, step: float = 1.0) -> Iterator[tuple[float, list[SampleBatch]]]:
        """``(t, batches)`` for every step from the start to ``until`` (inclusive)."""
        steps = round((until - self.start) / step)
        for k in range(steps + 1):
            t = self.start + k * step
            yield t, self.poll(t)


def metric_tags(config: PlantConfig) -> dict[str, set[str]]:
    """Per device, the tags the metrics section uses (what the harness needs to produce)."""
    metrics = config.metrics
    assert metrics is not None
    tags: dict[str, set[str]] = {}
    for meter in metrics.meters:
        tags.setdefault(meter.device, set()).update(
            s.tag for s in (meter.counter, meter.power) if s is not None
        )
    for machine in metrics.machines:
        wanted = tags.setdefault(machine.device, set())
        if machine.state is not None:
            wanted.add(machine.state.tag)
        if machine.state_from_power is not None:
            wanted.add(machine.state_from_power.tag)
        if machine.parts is not None:
            wanted.update(
                t for t in (machine.parts.total, machine.parts.good, machine.parts.scrap) if t
            )
        if machine.energy is not None:
            wanted.update(
                s.tag for s in (machine.energy.counter, machine.energy.power) if s is not None
            )
    for baseline in metrics.baselines:
        if baseline.temperature is not None:
            t = baseline.temperature
            tags.setdefault(t.device, set()).add(t.tag)
    return tags
