"""Cross-field rules of a Modbus device, each finding tied to the path it is about.

Pydantic checks each value alone; what needs a whole device or several (duplicate
names, overlapping register ranges, two devices on one connection with the same unit
id) is checked here, after validation, so that every finding names its own line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from edge_agent.config.catalog import CODE_SUFFIX
from edge_agent.config.checks.common import Finding, Loc, duplicates
from edge_agent.config.modbus import ModbusDeviceConfig, ModbusRtu, ModbusTag, ModbusTcp

_BIT_TABLES = ("coil", "discrete_input")
_INTEGER_TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64")


def check_modbus_partial(index: int, item: Any) -> list[Finding]:
    """The tags of a Modbus device pydantic rejected that are valid on their own."""
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


def check_modbus_device(index: int, device: ModbusDeviceConfig) -> list[Finding]:
    base: Loc = ("devices", index)
    found: list[Finding] = []
    found += duplicates(
        [
            ((*base, "poll_groups", g, "name"), group.name)
            for g, group in enumerate(device.poll_groups)
        ],
        "poll group name",
    )
    tags = [
        ((*base, "poll_groups", g, "tags", t), tag)
        for g, group in enumerate(device.poll_groups)
        for t, tag in enumerate(group.tags)
    ]
    found += duplicates([((*path, "name"), tag.name) for path, tag in tags], "tag name")
    found += _code_clashes(tags)
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


def _code_clashes(tags: list[tuple[Loc, ModbusTag]]) -> list[Finding]:
    """A tag may not take the name the driver gives an enum tag's code (``state_code``)."""
    codes = {tag.code_name: tag.name for _, tag in tags if tag.code_name is not None}
    return [
        (
            (*path, "name"),
            f"tag name {tag.name!r} is taken by the raw code of enum tag {codes[tag.name]!r} "
            f"(every enum tag also publishes its number as <name>{CODE_SUFFIX}): "
            "rename this tag",
        )
        for path, tag in tags
        if tag.name in codes
    ]


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


def _overlaps(tags: list[tuple[Loc, ModbusTag]]) -> list[Finding]:
    """Two value tags may not share a register; bits of one register may share it."""
    found: list[Finding] = []
    by_table: dict[str, list[tuple[int, int, Loc, ModbusTag]]] = {}
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


def check_modbus_connections(devices: Sequence[tuple[int, ModbusDeviceConfig]]) -> list[Finding]:
    """Devices on one TCP gateway or one serial bus share it: unit ids must differ."""
    found: list[Finding] = []
    units: dict[tuple[str, ...], tuple[int, str]] = {}
    serial_settings: dict[str, tuple[int, ModbusRtu, str]] = {}
    for index, device in devices:
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
