"""Cross-field rules of the plant file, each finding tied to the path it is about.

Pydantic checks each value alone; what needs the whole plant (duplicate names,
overlapping register ranges, two devices on one connection with the same unit id)
is checked here, after validation, so that every finding names its own line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from edge_agent.config import (
    DeviceConfig,
    ModbusDeviceConfig,
    ModbusRtu,
    ModbusTag,
    ModbusTcp,
    MqttSinkConfig,
    PlantConfig,
    PlantIdentity,
)
from edge_agent.config_influx import influx_sink_problems
from edge_agent.config_metrics_checks import check_metrics
from edge_agent.config_opcua import OpcUaDeviceConfig

Finding = tuple[tuple[str | int, ...], str]

_BIT_TABLES = ("coil", "discrete_input")
_DEVICE_ADAPTER: TypeAdapter[ModbusDeviceConfig | OpcUaDeviceConfig] = TypeAdapter(DeviceConfig)
_INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")


def check_plant(plant: PlantConfig) -> list[Finding]:
    # Lazy: config_checks_opcua builds on the helpers of this module.
    from edge_agent.config_checks_opcua import check_opcua_device

    findings: list[Finding] = []
    findings += _duplicates(
        [(("devices", i, "name"), d.name) for i, d in enumerate(plant.devices)], "device"
    )
    findings += _duplicates(
        [(("sinks", i, "name"), s.name) for i, s in enumerate(plant.sinks)], "sink"
    )
    for index, device in enumerate(plant.devices):
        if isinstance(device, OpcUaDeviceConfig):
            findings += check_opcua_device(index, device)
        else:
            findings += _check_modbus_device(index, device)
    findings += _shared_connections(plant)
    for index, sink in enumerate(plant.sinks):
        problems = (
            mqtt_sink_problems(sink, plant.plant)
            if isinstance(sink, MqttSinkConfig)
            else influx_sink_problems(sink, plant.devices)
        )
        findings += [(("sinks", index, field), message) for field, message in problems]
    findings += check_metrics(plant)
    return findings


_TOPIC_FIELDS = {
    "topic": ("plant", "site", "device", "group"),
    "status_topic": ("plant", "site"),
    "metrics_topic": ("plant", "site", "device", "window", "family"),
}


def mqtt_sink_problems(sink: MqttSinkConfig, plant: PlantIdentity) -> list[tuple[str, str]]:
    """(field, message) for every problem with a sink's topics and credentials.

    The one place these rules live: ``check`` reports them with their line, and the
    sink raises them when built from code. Templates are rendered with the real plant
    name and site (the site is free text and may hold ``+`` or ``#``) and a sample
    device and group (names cannot).
    """
    problems: list[tuple[str, str]] = []
    values = {
        "plant": plant.name,
        "site": plant.site,
        "device": "device",
        "group": "group",
        "window": "15m",
        "family": "energy",
    }
    for field, allowed in _TOPIC_FIELDS.items():
        template: str = getattr(sink, field)
        try:
            topic = template.format_map({name: values[name] for name in allowed})
        except KeyError as exc:
            names = ", ".join("{" + a + "}" for a in allowed)
            problems.append(
                (field, f"unknown placeholder {{{exc.args[0]}}} in {template!r} (allowed: {names})")
            )
            continue
        except (ValueError, IndexError) as exc:
            problems.append((field, f"{template!r} is not a valid topic template: {exc}"))
            continue
        if not topic or any(c in topic for c in "+#\0"):
            problems.append(
                (field, f"{topic!r} is not a valid MQTT topic to publish to (no +, # or NUL)")
            )
    if sink.password and not sink.username:
        # MQTT 3.1.1 cannot send a password without a user name; paho would drop it.
        problems.append(("password", "a password needs a username"))
    return problems


def check_partial(data: dict[str, Any]) -> list[Finding]:
    """Rules for the parts of an invalid plant file that are valid on their own.

    When pydantic rejects the file, the cross-field rules cannot run on the whole
    plant; running them per device, and per tag inside a broken device, still
    reports every problem in one pass instead of one layer per edit.
    """
    from edge_agent.config_checks_opcua import check_opcua_device, check_opcua_partial

    findings: list[Finding] = []
    devices = data.get("devices")
    if not isinstance(devices, list):
        return findings
    for index, item in enumerate(devices):
        try:
            device = _DEVICE_ADAPTER.validate_python(item)
        except ValidationError:
            if isinstance(item, dict) and item.get("driver") == "opcua":
                findings += check_opcua_partial(index, item)
            else:
                findings += _partial_tags(index, item)
        else:
            if isinstance(device, OpcUaDeviceConfig):
                findings += check_opcua_device(index, device)
            else:
                findings += _check_modbus_device(index, device)
    return findings


def _partial_tags(index: int, item: Any) -> list[Finding]:
    findings: list[Finding] = []
    groups = item.get("poll_groups") if isinstance(item, dict) else None
    for g, group in enumerate(groups if isinstance(groups, list) else []):
        tags = group.get("tags") if isinstance(group, dict) else None
        for t, raw in enumerate(tags if isinstance(tags, list) else []):
            try:
                tag = ModbusTag.model_validate(raw)
            except ValidationError:
                continue
            path = ("devices", index, "poll_groups", g, "tags", t)
            findings += [((*path, key), message) for key, message in _tag_rules(tag)]
    return findings


def _duplicates(named: list[tuple[tuple[str | int, ...], str]], what: str) -> list[Finding]:
    first: dict[str, tuple[str | int, ...]] = {}
    found: list[Finding] = []
    for path, name in named:
        if name in first:
            found.append((path, f"duplicate {what} name {name!r} (also at {_short(first[name])})"))
        else:
            first[name] = path
    return found


def format_path(path: tuple[str | int, ...]) -> str:
    """``("devices", 3, "name")`` -> ``devices[3].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _short(path: tuple[str | int, ...]) -> str:
    return format_path(path[:-1] if path and path[-1] == "name" else path)


def _check_modbus_device(index: int, device: ModbusDeviceConfig) -> list[Finding]:
    base: tuple[str | int, ...] = ("devices", index)
    found: list[Finding] = []
    found += _duplicates(
        [
            ((*base, "poll_groups", g, "name"), group.name)
            for g, group in enumerate(device.poll_groups)
        ],
        "poll group",
    )
    tags = [
        ((*base, "poll_groups", g, "tags", t), tag)
        for g, group in enumerate(device.poll_groups)
        for t, tag in enumerate(group.tags)
    ]
    found += _duplicates([((*path, "name"), tag.name) for path, tag in tags], "tag")
    for path, tag in tags:
        found += [((*path, key), message) for key, message in _tag_rules(tag)]
        if tag.table not in _BIT_TABLES and tag.register_count > device.max_registers_per_read:
            found.append(
                (
                    (*path, "length" if tag.type == "string" else "type"),
                    f"{tag.register_count} registers do not fit in one read "
                    f"(max_registers_per_read is {device.max_registers_per_read})",
                )
            )
    found += _overlaps(tags)
    return found


def _tag_rules(tag: ModbusTag) -> Iterator[tuple[str, str]]:
    in_bit_table = tag.table in _BIT_TABLES
    if in_bit_table and tag.type != "bool":
        yield "type", f"a {tag.table} holds single bits: type must be bool, not {tag.type}"
    if in_bit_table and tag.bit is not None:
        yield "bit", f"bit applies to registers, not to a {tag.table}"
    if not in_bit_table and tag.type == "bool" and tag.bit is None:
        yield "bit", f"a bool in a {tag.table} register needs bit: 0-15"
    if tag.bit is not None and tag.type != "bool":
        yield "bit", f"bit applies only to type bool, not {tag.type}"
    if tag.type == "string" and tag.length is None:
        yield "length", "a string needs length: the number of registers (2 characters each)"
    if tag.type != "string" and tag.length is not None:
        yield "length", f"length applies only to type string, not {tag.type}"
    if tag.enum is not None and tag.type not in _INTEGER_TYPES:
        yield "enum", f"enum maps integer values; it does not apply to {tag.type}"
    if tag.sentinel is not None:
        problem = _sentinel_problem(tag.type, tag.sentinel)
        if problem:
            yield "sentinel", problem
    if tag.type in ("bool", "string") and (tag.scale != 1.0 or tag.offset != 0.0):
        yield "scale", f"scale and offset do not apply to {tag.type}"
    if tag.enum is not None and (tag.scale != 1.0 or tag.offset != 0.0):
        yield "enum", "enum maps the raw value; it cannot be combined with scale or offset"
    end = tag.address + tag.register_count - 1
    if end > 65535:
        yield (
            "address",
            (
                f"{tag.type} at {tag.address} needs {tag.register_count} registers "
                f"and runs past the last address 65535"
            ),
        )


_INTEGER_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def _sentinel_problem(kind: str, sentinel: float) -> str:
    """Why ``sentinel`` could never match a raw value of type ``kind`` ("" if it can)."""
    if kind in ("bool", "string"):
        return f"a sentinel does not apply to {kind}"
    if kind in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[kind]
        if sentinel != int(sentinel):
            return f"{sentinel:g} is not an integer, so no {kind} value can equal it"
        if not low <= sentinel <= high:
            return f"{sentinel:g} is outside the range of {kind} ({low} to {high})"
    return ""


def _overlaps(tags: list[tuple[tuple[str | int, ...], ModbusTag]]) -> list[Finding]:
    """Two value tags may not share a register; bits of one register may share it."""
    found: list[Finding] = []
    by_table: dict[str, list[tuple[int, int, tuple[str | int, ...], ModbusTag]]] = {}
    bits_seen: dict[tuple[str, int, int], ModbusTag] = {}
    for path, tag in tags:
        if tag.bit is not None:
            key = (tag.table, tag.address, tag.bit)
            if key in bits_seen:
                found.append(
                    (
                        (*path, "bit"),
                        f"bit {tag.bit} of {tag.table} {tag.address} is already "
                        f"tag {bits_seen[key].name!r}",
                    )
                )
            bits_seen[key] = tag
            continue
        start, end = tag.address, tag.address + tag.register_count - 1
        by_table.setdefault(tag.table, []).append((start, end, path, tag))
    for table, spans in by_table.items():
        spans.sort(key=lambda s: (s[0], s[1]))
        # Track the span reaching furthest so far: a long tag can overlap several later ones.
        reach_start, reach_end, reach_tag = spans[0][0], spans[0][1], spans[0][3]
        for start, end, path, tag in spans[1:]:
            if start <= reach_end:
                found.append(
                    (
                        (*path, "address"),
                        f"{tag.name!r} ({table} {start}-{end}) overlaps "
                        f"{reach_tag.name!r} ({table} {reach_start}-{reach_end})",
                    )
                )
            if end > reach_end:
                reach_start, reach_end, reach_tag = start, end, tag
    return found


def _shared_connections(plant: PlantConfig) -> list[Finding]:
    """Devices on one TCP gateway or one serial bus share it: unit ids must differ."""
    found: list[Finding] = []
    units: dict[tuple[str, ...], tuple[int, str]] = {}
    serial_settings: dict[str, tuple[int, ModbusRtu, str]] = {}
    for index, device in enumerate(plant.devices):
        if not isinstance(device, ModbusDeviceConfig):
            continue
        conn = device.connection
        if isinstance(conn, ModbusTcp):
            key: tuple[str, ...] = ("tcp", conn.host, str(conn.port))
        else:
            key = ("rtu", conn.serial_port)
            previous = serial_settings.get(conn.serial_port)
            if previous is not None and previous[1] != conn:
                found.append(
                    (
                        ("devices", index, "connection"),
                        f"serial port {conn.serial_port} is also used by device "
                        f"{previous[2]!r} with other settings (baudrate, parity, ...)",
                    )
                )
            serial_settings.setdefault(conn.serial_port, (index, conn, device.name))
        if isinstance(conn, ModbusRtu) and device.unit_id == 0:
            found.append(
                (
                    ("devices", index, "unit_id"),
                    "unit_id 0 is the RTU broadcast address: no device answers it (use 1-247)",
                )
            )
        unit_key = (*key, str(device.unit_id))
        if unit_key in units:
            other = units[unit_key][1]
            found.append(
                (
                    ("devices", index, "unit_id"),
                    f"unit_id {device.unit_id} on this connection is already device {other!r}",
                )
            )
        else:
            units[unit_key] = (index, device.name)
    return found
