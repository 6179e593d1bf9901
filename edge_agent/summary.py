"""The one-screen summary ``edge-agent check`` prints for a valid plant file.

Each device's lines come from its driver kind (:func:`drivers.registry.device_summary`).
"""

from __future__ import annotations

from drivers.registry import device_summary
from edge_agent.config import (
    InfluxSinkConfig,
    MqttBrokerConfig,
    PlantConfig,
    SparkplugSinkConfig,
)
from edge_agent.config.console import is_loopback
from edge_agent.config.metrics_summary import summary_lines
from edge_agent.redaction import redact_urls
from edge_agent.state_dir import resolved


def render_summary(config: PlantConfig, path: str, warnings: int = 0) -> str:
    """``warnings``: how many were printed (on stderr) before the summary."""
    plant = config.plant
    state_dir = resolved(config.state_dir)
    relative = "" if config.state_dir.is_absolute() else " (relative: from the current directory)"
    lines = [
        f"{path}: valid"
        + (f", {warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""),
        f"plant {plant.name}" + (f" ({plant.site})" if plant.site else "") + f", {plant.timezone}",
        f"state directory {state_dir}{relative}",
        "",
    ]
    total_tags = 0
    total_reads_per_s = 0.0
    for device in config.devices:
        total_tags += sum(len(g.tags) for g in device.poll_groups)
        summary = device_summary(device)
        lines.extend(summary.lines)
        total_reads_per_s += summary.reads_per_s
    lines.append("")
    if config.sinks:
        for sink in config.sinks:
            if isinstance(sink, InfluxSinkConfig):
                lines.append(
                    f"sink {sink.name}: influxdb {sink.url} org {sink.org} bucket {sink.bucket}, "
                    f"measurement per {sink.measurement}"
                )
                continue
            tls = ", tls" if sink.tls or any(e.tls for e in sink.endpoints()) else ""
            if isinstance(sink, SparkplugSinkConfig):
                host = f", primary host {sink.primary_host}" if sink.primary_host else ""
                lines.append(
                    f"sink {sink.name}: sparkplug {_brokers(sink)}{tls}, "
                    f"spBv1.0/{sink.group_id}/+/{sink.edge_node_id}{host}"
                )
                continue
            lines.append(
                f"sink {sink.name}: mqtt {_brokers(sink)} qos {sink.qos}{tls}, topic {sink.topic}"
            )
        outbox = config.outbox
        lines.append(
            f"outbox {resolved(outbox.path or config.state_dir / 'outbox.sqlite3')}: "
            f"at most {outbox.max_bytes / 1024**2:g} MiB and {outbox.max_age / 86400:g} days, "
            f"fsync {outbox.fsync}"
        )
    else:
        lines.append("no sinks: values are collected but published nowhere")
    if config.metrics is not None:
        lines.extend(summary_lines(config.metrics))
    lines.extend(_service_lines(config))
    lines.append(
        f"total: {_count(len(config.devices), 'device')}, {total_tags} tags, "
        f"{total_reads_per_s:.3g} reads/s after coalescing"
    )
    # A URL may carry its credentials (https://user:password@host): whichever line
    # prints it (an InfluxDB sink, an OPC UA endpoint), the password is not shown.
    return redact_urls("\n".join(lines))


def _service_lines(config: PlantConfig) -> list[str]:
    """The health listener and the web console: where, and who may use them."""
    health = config.service.health
    if health is None:
        return []
    scheme = "https" if health.tls is not None else "http"
    host = f"[{health.listen}]" if ":" in health.listen else health.listen
    base = f"{scheme}://{host}:{health.port}"
    lines = [f"health endpoint {base}/healthz, /metrics, /status"]
    console = config.service.console
    if console is not None:
        users = console.users
        login = (
            f"login required ({_count(len(users), 'user')})"
            if users or not is_loopback(health.listen)
            else "no login (loopback: look only)"
        )
        allowed = [user.name for user in users if user.commissioning]
        commissioning = (
            f"commissioning for {', '.join(allowed)}"
            if console.commissioning and allowed
            else "commissioning on, but no user may use it"
            if console.commissioning
            else "commissioning off"
        )
        lines.append(f"web console {base}/console/: {login}, {commissioning}")
    return lines


def _brokers(sink: MqttBrokerConfig) -> str:
    """``host:port``, or every broker of a failover list and its order."""
    endpoints = sink.endpoints()
    text = ", ".join(endpoint.address for endpoint in endpoints)
    return text if len(endpoints) == 1 else f"{text} ({sink.broker_order} failover)"


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
