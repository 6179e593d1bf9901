"""The one-screen summary ``edge-agent check`` prints for a valid plant file."""

from __future__ import annotations

from edge_agent.config import InfluxSinkConfig, ModbusRtu, ModbusTcp, PlantConfig
from edge_agent.config_opcua import OpcUaDeviceConfig


def _connection(conn: ModbusTcp | ModbusRtu) -> str:
    if isinstance(conn, ModbusTcp):
        return f"tcp {conn.host}:{conn.port}"
    return f"rtu {conn.serial_port} {conn.baudrate} {conn.bytesize}{conn.parity}{conn.stopbits}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_summary(config: PlantConfig, path: str) -> str:
    from drivers.modbus.planner import AdaptivePlan  # lazy: keeps core free of protocol code

    plant = config.plant
    lines = [
        f"{path}: valid",
        f"plant {plant.name}" + (f" ({plant.site})" if plant.site else "") + f", {plant.timezone}",
        f"state directory {config.state_dir}",
        "",
    ]
    total_tags = 0
    total_reads_per_s = 0.0
    for device in config.devices:
        tags = sum(len(g.tags) for g in device.poll_groups)
        total_tags += tags
        if isinstance(device, OpcUaDeviceConfig):
            lines.extend(_opcua_lines(device, tags))
            total_reads_per_s += sum(1 / g.interval for g in device.poll_groups if g.mode == "read")
            continue
        lines.append(
            f"device {device.name}: modbus {_connection(device.connection)} unit {device.unit_id}, "
            f"{tags} tags, timeout {device.timeout:g}s"
        )
        for group in device.poll_groups:
            plan = AdaptivePlan.for_device(group.tags, device)
            reads = len(plan.requests)
            total_reads_per_s += reads / group.interval
            lines.append(
                f"  group {group.name}: every {group.interval:g}s, "
                f"{_plural(len(group.tags), 'tag')} in {_plural(reads, 'read')} per poll"
            )
            lines.extend(f"    {line}" for line in plan.describe())
    lines.append("")
    if config.sinks:
        for sink in config.sinks:
            if isinstance(sink, InfluxSinkConfig):
                lines.append(
                    f"sink {sink.name}: influxdb {sink.url} org {sink.org} bucket {sink.bucket}, "
                    f"measurement per {sink.measurement}"
                )
                continue
            tls = ", tls" if sink.tls else ""
            lines.append(
                f"sink {sink.name}: mqtt {sink.host}:{sink.port} qos {sink.qos}{tls}, "
                f"topic {sink.topic}"
            )
        outbox = config.outbox
        lines.append(
            f"outbox {outbox.path or config.state_dir / 'outbox.sqlite3'}: "
            f"at most {outbox.max_bytes / 1024**2:g} MiB and {outbox.max_age / 86400:g} days, "
            f"fsync {outbox.fsync}"
        )
    else:
        lines.append("no sinks: values are collected but published nowhere")
    if config.metrics is not None:
        from edge_agent.config_metrics import summary_lines

        lines.extend(summary_lines(config.metrics))
    lines.append(
        f"total: {len(config.devices)} devices, {total_tags} tags, "
        f"{total_reads_per_s:.3g} reads/s after coalescing"
    )
    return "\n".join(lines)


def _opcua_lines(device: OpcUaDeviceConfig, tags: int) -> list[str]:
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
    return lines
