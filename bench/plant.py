"""A synthetic plant of N devices x M tags: simulator profiles and the matching agent config.

Each device is one Modbus TCP server (its own port, unit id 1), as a plant of
PLCs and meters with their own network interfaces is. Every device serves M
points, one per agent tag, packed end to end in one register table, in a mix of
types a plant engineer meets on real equipment: float32 in two word orders,
scaled 16-bit values, 32-bit counters, signed scaled positions, float64 energy,
enumerated states and status bits. Every point maps a quantity of a real
equipment model (:mod:`simulators.equipment`), so values move the way plant data
moves (counters count, states change, power follows the state), not at random.

Device kinds cycle cnc, press, compressor, power meter; machines use holding
registers, meters input registers (as the demo plant's do). The generator is pure:
the same arguments give the same profile and config, so a run can be reproduced.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from edge_agent.config import REGISTER_COUNT

#: Device kinds in the order they are handed out.
KINDS = ("cnc", "press", "compressor", "power_meter")

#: State enum of the machines (see simulators/machine.py).
STATE_ENUM = {0: "off", 1: "idle", 2: "run", 3: "fault"}


@dataclass(frozen=True, slots=True)
class Slot:
    """One entry of the type mix: how a quantity is laid out in registers and read back."""

    quantity: str
    type: str
    byte_order: str = "ABCD"
    scale: float = 1.0
    #: Agent-side only: read one bit of the register as a bool.
    bit: int | None = None
    #: Agent-side only: label the raw value.
    enum: Mapping[int, str] | None = None

    @property
    def registers(self) -> int:
        return REGISTER_COUNT[self.type]


# Twelve slots per kind, cycled: per 12 tags 5 floats (3 float32, 1 float64, 1 scaled
# int), 4 counters or integers, 1 enum, 1 status bit, 1 signed scaled value. Ranges are
# chosen so that no value wraps its register (a uint16 x0.1 power stays under 6553.5).
MACHINE_MIX = (
    Slot("power_kw", "float32"),
    Slot("speed_rpm", "float32", byte_order="CDAB"),
    Slot("state", "uint16", enum=STATE_ENUM),
    Slot("parts_total", "uint32"),
    Slot("energy_kwh", "uint32", scale=0.001),
    Slot("position_mm", "int32", scale=0.001),
    Slot("status_word", "uint16", bit=1),
    Slot("last_cycle_time_s", "uint16", scale=0.1),
    Slot("energy_kwh", "float64"),
    Slot("alarm_code", "uint16"),
    Slot("parts_good", "uint32", byte_order="CDAB"),
    Slot("ideal_cycle_time_s", "float32"),
)
METER_MIX = (
    Slot("voltage_l1_n", "float32"),
    Slot("current_l1", "float32", byte_order="CDAB"),
    Slot("power_active_kw", "float32"),
    Slot("energy_import_kwh", "uint32", byte_order="CDAB", scale=0.01),
    Slot("voltage_l1_l2", "uint16", scale=0.1),
    Slot("power_factor", "int16", scale=0.001),
    Slot("frequency_hz", "uint16", scale=0.01),
    Slot("current_l2", "int32", scale=0.001),
    Slot("energy_import_kwh", "float64"),
    Slot("energy_import_counter", "uint32"),
    Slot("power_reactive_kvar", "float32"),
    Slot("voltage_l2_n", "float32", byte_order="CDAB"),
)

_MODEL_PARAMS: Mapping[str, Mapping[str, Any]] = {
    # Around the clock, so that the machines run whatever hour the benchmark starts.
    "cnc": {"shifts": [{"start": "00:00", "end": "24:00"}]},
    "press": {"shifts": [{"start": "00:00", "end": "24:00"}]},
    "compressor": {"shifts": [{"start": "00:00", "end": "24:00"}]},
    "power_meter": {"base_load_kw": 40.0},
}


@dataclass(frozen=True, slots=True)
class PlantSpec:
    """The size of a synthetic plant."""

    devices: int
    tags: int
    """Tags per device."""
    interval_s: float
    #: Tags per poll group (0: one group of all the device's tags).
    group_tags: int = 0
    seed: int = 7

    def __post_init__(self) -> None:
        if self.devices < 1 or self.tags < 1:
            raise ValueError("a plant needs at least one device with one tag")
        if self.group_tags < 0:
            raise ValueError("group_tags must be 0 (one group) or positive")

    @property
    def total_tags(self) -> int:
        return self.devices * self.tags

    def device_name(self, index: int) -> str:
        return f"dev{index:03d}"

    def kind(self, index: int) -> str:
        return KINDS[index % len(KINDS)]

    def groups(self) -> list[tuple[str, range]]:
        """(group name, tag positions) of every device's poll groups."""
        size = self.group_tags or self.tags
        return [
            (f"g{n}", range(start, min(start + size, self.tags)))
            for n, start in enumerate(range(0, self.tags, size))
        ]


def published_counts(spec: PlantSpec) -> dict[tuple[str, str], int]:
    """(device, group) -> values the agent publishes per poll: every tag, plus the raw
    code of every enum tag (``state_code`` beside ``state``, docs/MQTT.md)."""
    counts: dict[tuple[str, str], int] = {}
    for index in range(spec.devices):
        layout = _layout(spec, index)
        for group, positions in spec.groups():
            codes = sum(1 for p in positions if layout[p][2].enum is not None)
            counts[(spec.device_name(index), group)] = len(positions) + codes
    return counts


def _mix(kind: str) -> Sequence[Slot]:
    return METER_MIX if kind == "power_meter" else MACHINE_MIX


def _table(kind: str) -> str:
    return "input" if kind == "power_meter" else "holding"


def _layout(spec: PlantSpec, index: int) -> list[tuple[str, int, Slot]]:
    """(tag name, address, slot) of every tag of device ``index``, packed end to end."""
    mix = _mix(spec.kind(index))
    out: list[tuple[str, int, Slot]] = []
    address = 0
    for position in range(spec.tags):
        slot = mix[position % len(mix)]
        if address + slot.registers > 65536:
            raise ValueError(f"{spec.tags} tags do not fit in one register table")
        out.append((f"t{position:05d}", address, slot))
        address += slot.registers
    return out


def registers_per_device(spec: PlantSpec, index: int = 0) -> int:
    """Registers one device's tags occupy (what the read plan has to cover)."""
    return sum(slot.registers for _, _, slot in _layout(spec, index))


def profile_document(spec: PlantSpec, devices: Sequence[int], name: str) -> dict[str, Any]:
    """A simulator profile serving ``devices`` (indexes), each on its own TCP server, port 0."""
    servers = []
    for index in devices:
        kind = spec.kind(index)
        table = _table(kind)
        points = [
            {
                "name": tag,
                "table": table,
                "address": address,
                "type": slot.type,
                "byte_order": slot.byte_order,
                "scale": slot.scale,
                "quantity": slot.quantity,
            }
            for tag, address, slot in _layout(spec, index)
        ]
        unit = {
            "unit_id": 1,
            "name": spec.device_name(index),
            "model": {"kind": kind, **_MODEL_PARAMS[kind]},
            "points": points,
        }
        servers.append(
            {"name": spec.device_name(index), "transport": "tcp", "port": 0, "units": [unit]}
        )
    return {"name": name, "seed": spec.seed, "step_s": 1.0, "servers": servers}


def agent_document(
    spec: PlantSpec,
    ports: Mapping[str, int],
    *,
    plant: str,
    state_dir: str,
    sinks: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The agent's plant config for ``spec``; ``ports`` maps device name to its bound port.

    ``sinks`` and ``extra`` (top-level sections such as metrics or an outbox, once the
    agent has them) are passed through, so that a scenario adds a pipeline stage
    without touching the device part.
    """
    devices = []
    for index in range(spec.devices):
        name = spec.device_name(index)
        kind = spec.kind(index)
        table = _table(kind)
        layout = _layout(spec, index)
        groups = []
        for group, positions in spec.groups():
            tags = []
            for tag, address, slot in (layout[p] for p in positions):
                entry: dict[str, Any] = {"name": tag, "table": table, "address": address}
                if slot.bit is not None:
                    entry.update(type="bool", bit=slot.bit)
                else:
                    entry["type"] = slot.type
                if slot.byte_order != "ABCD":
                    entry["byte_order"] = slot.byte_order
                if slot.scale != 1.0:
                    entry["scale"] = slot.scale
                if slot.enum is not None:
                    entry["enum"] = dict(slot.enum)
                tags.append(entry)
            groups.append({"name": group, "interval": f"{spec.interval_s:g}s", "tags": tags})
        devices.append(
            {
                "name": name,
                "driver": "modbus",
                "device_type": kind,
                "connection": {"transport": "tcp", "host": "127.0.0.1", "port": ports[name]},
                "unit_id": 1,
                "timeout": "1s",
                "poll_groups": groups,
            }
        )
    document: dict[str, Any] = {
        "plant": {"name": plant, "site": "bench"},
        "state_dir": state_dir,
        "devices": devices,
        "sinks": list(sinks),
        "logging": {"level": "warning"},
    }
    if extra:
        document.update(extra)
    return document


def dump(document: Mapping[str, Any]) -> str:
    """YAML for a generated document (flow style inside lists keeps 20k tags readable)."""
    return yaml.safe_dump(dict(document), sort_keys=False, width=200)
