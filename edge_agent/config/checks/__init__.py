"""Cross-field rules of the plant file, each finding tied to the path it is about.

Pydantic checks each value alone; what needs a whole device, several devices or the
whole plant is checked here, after validation, so that every finding names its own
line. Each protocol's rules are one entry of :data:`DEVICE_RULES`; each sink's rules
sit beside its model (:func:`~edge_agent.config.mqtt.mqtt_sink_problems`,
:func:`~edge_agent.config.mqtt.broker_problems`,
:func:`~edge_agent.config.influx.influx_sink_problems`,
:func:`~edge_agent.config.sparkplug.sparkplug_sink_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_agent.config.base import PlantIdentity
from edge_agent.config.catalog import TagCatalog
from edge_agent.config.checks.baseline import baseline_warnings
from edge_agent.config.checks.common import Finding, Loc, format_path, used_twice
from edge_agent.config.checks.metrics import Unchecked, check_metrics, tariff_warning_findings
from edge_agent.config.checks.modbus import (
    check_modbus_connections,
    check_modbus_device,
    check_modbus_partial,
)
from edge_agent.config.checks.opcua import check_opcua_device, check_opcua_partial
from edge_agent.config.checks.parts import PlantParts
from edge_agent.config.checks.remote_config import check_remote_config
from edge_agent.config.checks.writes import check_writes, writes_warnings
from edge_agent.config.influx import influx_sink_problems
from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.mqtt import (
    MqttBrokerConfig,
    MqttSinkConfig,
    broker_problems,
    mqtt_sink_problems,
)
from edge_agent.config.plant import PlantConfig
from edge_agent.config.sparkplug import SparkplugSinkConfig, sparkplug_sink_problems

__all__ = [
    "DEVICE_RULES",
    "Finding",
    "Loc",
    "PlantParts",
    "check_parts",
    "check_plant",
    "format_path",
    "metrics_warnings",
    "write_warnings",
]


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


def check_plant(plant: PlantConfig, line_of: Callable[[Loc], int] | None = None) -> list[Finding]:
    """Every cross-field finding of a valid plant."""
    return check_parts(PlantParts.of_plant(plant), line_of)


def check_parts(parts: PlantParts, line_of: Callable[[Loc], int] | None = None) -> list[Finding]:
    """Every cross-field finding of the parts of a plant file that are valid.

    Runs on a valid plant and on the valid parts of an invalid one alike, so that one
    pass reports every problem. ``line_of`` puts lines into the messages about names
    used twice (both uses are named); paths in the findings are the file's.
    """
    findings: list[Finding] = []
    findings += used_twice(parts.device_names, "device name", line_of)
    findings += used_twice(parts.sink_names, "sink name", line_of)
    for index, raw in parts.broken_devices:
        driver = raw.get("driver") if isinstance(raw, dict) else None
        rules = DEVICE_RULES.get(driver if isinstance(driver, str) else "")
        # A device without a known driver is checked as Modbus, as before.
        findings += (rules or DEVICE_RULES["modbus"]).partial(index, raw)
    by_driver: dict[str, list[tuple[int, Any]]] = {}
    for index, device in parts.devices:
        findings += [
            (parts.original(path), message)
            for path, message in DEVICE_RULES[device.driver].device(index, device)
        ]
        findings += [(parts.original(path), m) for path, m in check_writes(index, device)]
        by_driver.setdefault(device.driver, []).append((index, device))
    for driver, devices in by_driver.items():
        across = DEVICE_RULES[driver].across
        if across is not None:
            findings += across(devices)
    # Every device, a repeated name included (the InfluxDB rules report each), described once.
    described = [device.describe() for _, device in parts.devices]
    catalog = TagCatalog.of_described(described)
    identity = parts.identity or PlantIdentity.model_construct(name="plant", site="")
    for index, sink in parts.sinks:
        if isinstance(sink, MqttBrokerConfig):
            findings += [
                (("sinks", index, *path), m)
                for path, m in broker_problems(sink, _broker_in_file(parts, index))
            ]
        if isinstance(sink, SparkplugSinkConfig):
            names = [name for _, name in parts.device_names]
            units = _metric_units(parts.metrics, identity.name)
            findings += [
                (("sinks", index, *path), message)
                for path, message in sparkplug_sink_problems(sink, names, units)
            ]
            continue
        problems = (
            mqtt_sink_problems(sink, identity)
            if isinstance(sink, MqttSinkConfig)
            else influx_sink_problems(sink, described)
        )
        findings += [(("sinks", index, field), message) for field, message in problems]
    findings += check_remote_config(parts.remote_config, parts.sinks, parts.sink_names)
    if parts.metrics is not None:
        names = [name for _, name in parts.device_names]
        unchecked = Unchecked(
            devices=parts.unchecked_devices | {n for n in names if names.count(n) > 1},
            tags=parts.unchecked_tags,
            metrics=parts.unchecked_metrics,
            shifts=parts.shifts_cut,
            tariffs=parts.tariffs_cut,
            pruned_tariffs=parts.tariffs_pruned,
        )
        plant_name = parts.identity.name if parts.identity is not None else None
        findings += [
            (parts.original(path), message)
            for path, message in check_metrics(parts.metrics, plant_name, catalog, unchecked)
        ]
    return findings


def _metric_units(metrics: MetricsConfig | None, plant_name: str) -> list[str]:
    """The metric units, each a device of its own name on a Sparkplug edge node: the
    meters and machines (their own ``name`` or their device's), the plant (its total, and
    its daily and shift reports: those go to device = the plant's name whether or not
    ``plant_total`` is set, metrics/reports.py), the baselines (docs/SPARKPLUG.md,
    "Metric names and folders")."""
    if metrics is None:
        return []
    units = [meter.name or meter.device for meter in metrics.meters]
    units += [machine.name or machine.device for machine in metrics.machines]
    if metrics.plant_total or any(metrics.reports.on(metrics.windows)):
        units.append(plant_name)
    return units + [baseline.name for baseline in metrics.baselines]


def metrics_warnings(parts: PlantParts) -> list[Finding]:
    """What is probably a mistake in the metrics section but may be meant (tariff prices),
    or was guessed (a baseline CSV's encoding)."""
    if parts.metrics is None:
        return []
    found = tariff_warning_findings(parts.metrics) + baseline_warnings(parts.metrics)
    return [(parts.original(path), m) for path, m in found]


def write_warnings(parts: PlantParts) -> list[Finding]:
    """Write channels no command can arrive on yet (a sink or a console user missing)."""
    found = writes_warnings(parts.devices, parts.sinks, parts.service)
    return [(parts.original(path), message) for path, message in found]


def _broker_in_file(parts: PlantParts, sink: int) -> Callable[[int], int]:
    """The index in the file of a broker of sink ``sink``'s model (a broker cut as
    invalid shifts the indices of the rest)."""

    def written(index: int) -> int:
        place = parts.original(("sinks", sink, "brokers", index))[-1]
        return place if isinstance(place, int) else index

    return written
