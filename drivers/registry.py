"""The one door from the core to the drivers: build, connection key, plan text.

The core (the Agent, reload, ``check``) knows a device only by its config and its
``driver:`` name; everything protocol-specific is behind a :class:`DriverKind` that
each protocol package exposes as ``KIND`` in its ``kind`` module. The module is
imported on first use, so a plant without OPC UA devices never loads asyncua.
Adding a protocol: ``drivers/<new>/`` with a ``kind.py``, its device model in
``edge_agent/config/<new>.py`` (added to ``DeviceConfig``) and one line in
:data:`KINDS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from edge_agent.config import DeviceConfig, PlantConfig
from edge_agent.driver import Driver

#: ``driver:`` value -> the module whose ``KIND`` serves it.
KINDS: dict[str, str] = {
    "modbus": "drivers.modbus.kind",
    "opcua": "drivers.opcua.kind",
}


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """What ``edge-agent check`` prints for one device, and its request rate."""

    lines: list[str]
    reads_per_s: float


class Explanation(NamedTuple):
    """A driver's reason in words a person at the cabinet understands, and what to try."""

    words: str
    hint: str


def _no_explanation(reason: str) -> Explanation | None:
    return None


def _shareable(device: Any) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class DriverKind:
    """What the core may ask of one protocol's drivers."""

    #: Drivers for these devices (all of this kind), in their order; devices that share
    #: a connection share it in the drivers too. The plant gives state_dir and name.
    build: Callable[[Sequence[Any], PlantConfig], Sequence[Driver]]
    #: Devices with the same key share a connection, and restart together on reload.
    connection_key: Callable[[Any], str]
    #: The device's lines in ``check``: connection, groups, the read plan.
    summary: Callable[[Any], DeviceSummary]
    #: A tag's reason (as the drivers write it) in words, with a hint; None: no words.
    explain: Callable[[str], Explanation | None] = _no_explanation
    #: What the device's connection holds that only one opener may (a serial port's
    #: path); None: a second connection (e.g. the console's) can be opened beside it.
    exclusive: Callable[[Any], str | None] = _shareable


def kind_of(driver: str) -> DriverKind:
    """The :class:`DriverKind` of a ``driver:`` name (imports its package on first use)."""
    kind: DriverKind = importlib.import_module(KINDS[driver]).KIND
    return kind


def build_drivers(
    plant: PlantConfig, devices: Sequence[DeviceConfig] | None = None
) -> list[Driver]:
    """One driver per device of ``plant`` (or of ``devices``), in config order."""
    chosen = plant.devices if devices is None else devices
    by_kind: dict[str, list[DeviceConfig]] = {}
    for device in chosen:
        by_kind.setdefault(device.driver, []).append(device)
    built: dict[str, Driver] = {}
    for driver, group in by_kind.items():
        built.update((d.device, d) for d in kind_of(driver).build(group, plant))
    return [built[device.name] for device in chosen]


def connection_key(device: DeviceConfig) -> str:
    """Devices with the same key share a connection (and restart together)."""
    return kind_of(device.driver).connection_key(device)


def device_summary(device: DeviceConfig) -> DeviceSummary:
    return kind_of(device.driver).summary(device)


def explain_reason(driver: str, reason: str) -> Explanation | None:
    """What a bad tag's ``reason`` from a ``driver:`` of this kind means, and a hint."""
    if driver not in KINDS or not reason:
        return None
    return kind_of(driver).explain(reason)


def exclusive_resource(device: DeviceConfig) -> str | None:
    """What only one opener may hold of the device's connection (a serial port), or None."""
    return kind_of(device.driver).exclusive(device)
