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


#: ``check`` warns about array tags allowed more elements than this.
ARRAY_WARNING = 10_000


def _summary(device: OpcUaDeviceConfig) -> DeviceSummary:
    tags = sum(len(g.tags) for g in device.poll_groups)
    security = device.security
    secured = f"{security.policy}/{security.mode}" if security.policy != "None" else "no security"
    lines = [
        f"device {device.name}: opcua {device.endpoint} ({secured}, {device.identity.type}), "
        f"{tags} tags, timeout {device.timeout:g}s, {device.timestamp} timestamps, "
        f"arrays up to {device.max_array_length} elements"
    ]
    lines += _array_warnings(device)
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


def _array_warnings(device: OpcUaDeviceConfig) -> list[str]:
    """Each element of an array is a sample in every read: 12 tags of 51,200 elements
    made MQTT messages of 198 MB. Say so when the config allows that much."""
    lines = []
    for group in device.poll_groups:
        large = [
            (tag.name, cap)
            for tag in group.tags
            if (cap := tag.max_array_length or device.max_array_length) > ARRAY_WARNING
        ]
        if large:
            most = sum(cap for _, cap in large)
            names = ", ".join(name for name, _ in large[:3]) + (", ..." if len(large) > 3 else "")
            lines.append(
                f"  warning: group {group.name}: max_array_length lets "
                f"{_plural(len(large), 'tag')} ({names}) carry up to {most:,} samples per "
                "read, every one in the sinks' messages and the outbox"
            )
    return lines


KIND = DriverKind(build=_build, connection_key=_connection_key, summary=_summary)
