"""The ``type: sparkplug`` sink of the plant file: a Sparkplug B 3.0 edge node (docs/SPARKPLUG.md).

The broker connection is the MQTT sink's (host, port, client id, credentials from the
environment with ``${VAR}``, :class:`~edge_agent.config.mqtt.MqttTls`); the Sparkplug
part is the namespace: ``group_id``, ``edge_node_id``, the Sparkplug id of each agent
device (``device_ids``) and the optional primary host application.

:func:`sparkplug_sink_problems` holds the rules a single field cannot see (the ids
become MQTT topic levels; ``device_ids`` names devices of the plant): ``check`` reports
them with their line, and the sink raises them when it is built from code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field

from edge_agent.config.base import Name, Strict
from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.mqtt import MqttTls

#: Characters a Sparkplug id cannot hold: the MQTT topic level separator and wildcards
#: (Sparkplug 3.0, "Topic Namespace Elements": group_id, edge_node_id, device_id and
#: the host id are single topic levels).
FORBIDDEN_ID_CHARACTERS = "/+#"


class SparkplugSinkConfig(Strict):
    name: Name
    type: Literal["sparkplug"]
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(
        default="",
        description="MQTT client id; '' = edge-agent-<group_id>-<edge_node_id>. The broker "
        "allows one connection per client id: two agents must not share one.",
    )
    group_id: str = Field(
        description="Sparkplug group id: the first level after spBv1.0 in every topic."
    )
    edge_node_id: str = Field(description="Sparkplug edge node id of this agent.")
    device_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Agent device name -> Sparkplug device id; a device not listed keeps its name.",
    )
    primary_host: str = Field(
        default="",
        description="Host application id to wait for (spBv1.0/STATE/<id>): no birth and "
        "no data while it is offline; the data waits in the outbox. '' = none.",
    )
    keepalive: int = Field(default=30, ge=5, le=3600)
    username: str = ""
    password: str = Field(default="", repr=False)
    tls: MqttTls | None = None
    max_inflight: int = Field(default=100, ge=1, le=65535)

    def device_id(self, device: str) -> str:
        """The Sparkplug device id of agent device (or metric unit) ``device``."""
        return self.device_ids.get(device, device)


def id_problem(value: str) -> str | None:
    """Why ``value`` cannot be a Sparkplug id (one MQTT topic level), or None if it can."""
    if not value:
        return "a Sparkplug id must not be empty"
    bad = sorted({c for c in value if c in FORBIDDEN_ID_CHARACTERS})
    if bad:
        held = " and ".join(repr(c) for c in bad)
        return f"{value!r} holds {held}: a Sparkplug id is one topic level (no /, + or #)"
    if "\0" in value:
        return f"{value!r} holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{value!r} is not valid UTF-8"
    return None


def sparkplug_sink_problems(
    sink: SparkplugSinkConfig, device_names: Iterable[str] | None = None
) -> list[tuple[tuple[str | int, ...], str]]:
    """(path inside the sink, message) for every problem with its ids and credentials.

    ``device_names``: every device of the plant (None: not known, the ``device_ids``
    rules are skipped). The one place these rules live: ``check`` reports them with
    their line, the sink raises them when built from code.
    """
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for field in ("group_id", "edge_node_id"):
        problem = id_problem(getattr(sink, field))
        if problem is not None:
            problems.append(((field,), problem))
    if sink.primary_host:
        problem = id_problem(sink.primary_host)
        if problem is not None:
            problems.append((("primary_host",), problem))
    for device, device_id in sink.device_ids.items():
        problem = id_problem(device_id)
        if problem is not None:
            problems.append((("device_ids", device), problem))
    if device_names is not None:
        names = list(dict.fromkeys(device_names))
        for device in sink.device_ids:
            if device not in names:
                known = ", ".join(names) or "none"
                problems.append(
                    (("device_ids", device), f"no device named {device!r} (devices: {known})")
                )
        owners: dict[str, list[str]] = {}
        for device in names:
            owners.setdefault(sink.device_id(device), []).append(device)
        for device_id, devices in owners.items():
            if len(devices) > 1:
                where = (
                    "device_ids",
                    next((d for d in devices if d in sink.device_ids), devices[0]),
                )
                problems.append(
                    (
                        where,
                        f"devices {', '.join(devices)} would share the Sparkplug device id "
                        f"{device_id!r}: each device needs an id of its own",
                    )
                )
    if sink.password and not sink.username:
        # MQTT 3.1.1 cannot send a password without a user name; paho would drop it.
        problems.append((("password",), "a password needs a username"))
    return problems


def scan_rate_ms(devices: Iterable[DeviceInfo]) -> int:
    """``Node Control/Scan Rate`` of the NBIRTH: the plant's shortest poll interval, in ms
    (0 for a plant without tags)."""
    intervals = [tag.interval for device in devices for tag in device.tags.values()]
    return round(min(intervals) * 1000) if intervals else 0
