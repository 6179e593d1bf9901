"""OPC UA behind the driver registry: build, connection key, the text of ``check``."""

from __future__ import annotations

from collections.abc import Sequence

from drivers.registry import DeviceSummary, DriverKind
from edge_agent.config import OpcUaDeviceConfig, PlantConfig
from edge_agent.driver import Driver


def _build(devices: Sequence[OpcUaDeviceConfig], plant: PlantConfig) -> Sequence[Driver]:
    from drivers.opcua.driver import build_opcua_drivers  # lazy: asyncua only when built

    return build_opcua_drivers(plant, devices)


def _connection_key(device: OpcUaDeviceConfig) -> str:
    # One session per device: an OPC UA device owns its connection.
    return f"device:{device.name}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(device: OpcUaDeviceConfig) -> DeviceSummary:
    tags = sum(len(g.tags) for g in device.poll_groups)
    security = device.security
    secured = f"{security.policy}/{security.mode}" if security.policy != "None" else "no security"
    lines = [
        f"device {device.name}: opcua {device.endpoint} ({secured}, {device.identity.type}), "
        f"{tags} tags, timeout {device.timeout:g}s, {device.timestamp} timestamps"
    ]
    for group in device.poll_groups:
        if group.mode == "read":
            how = f"bulk read every {group.interval:g}s"
        else:
            sampling = (
                group.sampling_interval if group.sampling_interval is not None else group.interval
            )
            how = (
                f"subscription, publishing every {group.interval:g}s, "
                f"sampling {sampling:g}s, queue {group.queue_size}"
            )
        lines.append(f"  group {group.name}: {how}, {_plural(len(group.tags), 'tag')}")
    reads_per_s = sum(1 / g.interval for g in device.poll_groups if g.mode == "read")
    return DeviceSummary(lines, reads_per_s)


KIND = DriverKind(build=_build, connection_key=_connection_key, summary=_summary)
