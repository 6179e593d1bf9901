"""Cross-field rules of the plant file, each finding tied to the path it is about.

Pydantic checks each value alone; what needs a whole device, several devices or the
whole plant is checked here, after validation, so that every finding names its own
line. Each protocol's rules are one entry of :data:`DEVICE_RULES`; each sink's rules
sit beside its model (:func:`~edge_agent.config.mqtt.mqtt_sink_problems`,
:func:`~edge_agent.config.influx.influx_sink_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from edge_agent.config.catalog import TagCatalog
from edge_agent.config.checks.common import Finding, Loc, duplicates, format_path
from edge_agent.config.checks.metrics import check_metrics
from edge_agent.config.checks.modbus import (
    check_modbus_connections,
    check_modbus_device,
    check_modbus_partial,
)
from edge_agent.config.checks.opcua import check_opcua_device, check_opcua_partial
from edge_agent.config.influx import influx_sink_problems
from edge_agent.config.mqtt import MqttSinkConfig, mqtt_sink_problems
from edge_agent.config.plant import DeviceConfig, PlantConfig

__all__ = ["DEVICE_RULES", "Finding", "Loc", "check_partial", "check_plant", "format_path"]


@dataclass(frozen=True, slots=True)
class DeviceRules:
    """The cross-field rules of one driver's devices."""

    #: Rules of one valid device (index in ``devices``, the device).
    device: Callable[[int, Any], list[Finding]]
    #: Rules of the valid parts of a device pydantic rejected (index, the raw mapping).
    partial: Callable[[int, Any], list[Finding]]
    #: Rules across every valid device of this driver: (index, device) pairs.
    across: Callable[[Sequence[tuple[int, Any]]], list[Finding]] | None = None


#: By the ``driver:`` value. A new protocol adds one line.
DEVICE_RULES: dict[str, DeviceRules] = {
    "modbus": DeviceRules(check_modbus_device, check_modbus_partial, check_modbus_connections),
    "opcua": DeviceRules(check_opcua_device, check_opcua_partial),
}

_DEVICE_ADAPTER: TypeAdapter[BaseModel] = TypeAdapter(DeviceConfig)


def check_plant(plant: PlantConfig) -> list[Finding]:
    findings: list[Finding] = []
    findings += duplicates(
        [(("devices", i, "name"), d.name) for i, d in enumerate(plant.devices)], "device name"
    )
    findings += duplicates(
        [(("sinks", i, "name"), s.name) for i, s in enumerate(plant.sinks)], "sink name"
    )
    by_driver: dict[str, list[tuple[int, Any]]] = {}
    for index, device in enumerate(plant.devices):
        findings += DEVICE_RULES[device.driver].device(index, device)
        by_driver.setdefault(device.driver, []).append((index, device))
    for driver, devices in by_driver.items():
        across = DEVICE_RULES[driver].across
        if across is not None:
            findings += across(devices)
    # Every device, a repeated name included (the InfluxDB rules report each), described once.
    described = [device.describe() for device in plant.devices]
    catalog = TagCatalog.of_described(described)
    for index, sink in enumerate(plant.sinks):
        problems = (
            mqtt_sink_problems(sink, plant.plant)
            if isinstance(sink, MqttSinkConfig)
            else influx_sink_problems(sink, described)
        )
        findings += [(("sinks", index, field), message) for field, message in problems]
    findings += check_metrics(plant, catalog)
    return findings


def check_partial(data: dict[str, Any]) -> list[Finding]:
    """Rules for the parts of an invalid plant file that are valid on their own.

    When pydantic rejects the file, the cross-field rules cannot run on the whole
    plant; running them per device, and per tag inside a broken device, still
    reports every problem in one pass instead of one layer per edit.
    """
    findings: list[Finding] = []
    devices = data.get("devices")
    if not isinstance(devices, list):
        return findings
    for index, item in enumerate(devices):
        try:
            device: Any = _DEVICE_ADAPTER.validate_python(item)
        except ValidationError:
            driver = item.get("driver") if isinstance(item, dict) else None
            rules = DEVICE_RULES.get(driver if isinstance(driver, str) else "")
            # A device without a known driver is checked as Modbus, as before.
            findings += (rules or DEVICE_RULES["modbus"]).partial(index, item)
        else:
            findings += DEVICE_RULES[device.driver].device(index, device)
    return findings
