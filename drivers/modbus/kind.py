"""Modbus behind the driver registry: build, connection key, the plan text of ``check``."""

from __future__ import annotations

from collections.abc import Sequence

from drivers.modbus.answer import explain_reason
from drivers.modbus.channel import connection_key
from drivers.modbus.driver import build_modbus_drivers
from drivers.modbus.planner import AdaptivePlan
from drivers.registry import DeviceSummary, DriverKind
from edge_agent.config import ModbusDeviceConfig, ModbusRtu, ModbusTcp, PlantConfig
from edge_agent.driver import Driver


def _build(devices: Sequence[ModbusDeviceConfig], plant: PlantConfig) -> Sequence[Driver]:
    return build_modbus_drivers(devices)


def _connection_key(device: ModbusDeviceConfig) -> str:
    return connection_key(device.connection)


def _connection(conn: ModbusTcp | ModbusRtu) -> str:
    if isinstance(conn, ModbusTcp):
        return f"tcp {conn.host}:{conn.port}"
    return f"rtu {conn.serial_port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"


def _exclusive(device: ModbusDeviceConfig) -> str | None:
    """A serial port has one opener: the agent's poller, while it runs."""
    conn = device.connection
    return conn.serial_port if isinstance(conn, ModbusRtu) else None


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(device: ModbusDeviceConfig) -> DeviceSummary:
    tags = sum(len(g.tags) for g in device.poll_groups)
    lines = [
        f"device {device.name}: modbus {_connection(device.connection)} unit {device.unit_id}, "
        f"{tags} tags, timeout {device.timeout:g}s"
        + (f", template {device.template}" if device.template else "")
    ]
    reads_per_s = 0.0
    for group in device.poll_groups:
        plan = AdaptivePlan.for_device(group.tags, device)
        reads = len(plan.requests)
        reads_per_s += reads / group.interval
        lines.append(
            f"  group {group.name}: every {group.interval:g}s, "
            f"{_plural(len(group.tags), 'tag')} in {_plural(reads, 'read')} per poll"
        )
        lines.extend(f"    {line}" for line in plan.describe())
    return DeviceSummary(lines, reads_per_s)


KIND = DriverKind(
    build=_build,
    connection_key=_connection_key,
    summary=_summary,
    explain=explain_reason,
    exclusive=_exclusive,
)
