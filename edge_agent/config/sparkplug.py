"""The ``type: sparkplug`` sink of the plant file: a Sparkplug B 3.0 edge node (docs/SPARKPLUG.md).

The broker connection is the MQTT sink's (:class:`~edge_agent.config.mqtt.MqttBrokerConfig`:
one broker or a ``brokers:`` list, client id, credentials from the environment with
``${VAR}``, TLS); the Sparkplug
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

from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.mqtt import MqttBrokerConfig

#: Characters a Sparkplug id cannot hold: the MQTT topic level separator and wildcards
#: (Sparkplug 3.0, "Topic Namespace Elements": group_id, edge_node_id, device_id and
#: the host id are single topic levels).
FORBIDDEN_ID_CHARACTERS = "/+#"


class SparkplugSinkConfig(MqttBrokerConfig):
    type: Literal["sparkplug"]
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
    sink: SparkplugSinkConfig,
    device_names: Iterable[str] | None = None,
    units: Iterable[str] = (),
) -> list[tuple[tuple[str | int, ...], str]]:
    """(path inside the sink, message) for every problem with its ids and credentials.

    ``device_names``: every device of the plant (None: not known, the ``device_ids``
    rules are skipped). ``units``: the metric units (plant total, baselines, a meter or
    machine with a name of its own), each a Sparkplug device of its own name: no agent
    device may be mapped onto one. The one place these rules live: ``check`` reports
    them with their line, the sink raises them when built from code.
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
        problems += _shared_ids(sink, names, [u for u in units if u not in names])
    if sink.password and not sink.username:
        # MQTT 3.1.1 cannot send a password without a user name; paho would drop it.
        problems.append((("password",), "a password needs a username"))
    return problems


def _shared_ids(
    sink: SparkplugSinkConfig, names: list[str], units: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Devices (and metric units) that would share a Sparkplug device id, or hold ids
    that differ only in case: a host that does not tell case apart (Ignition's tag
    paths) would merge them [tck-id-topic-structure-namespace-unique-device-id,
    tck-id-case-sensitivity-sparkplug-ids]."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for device in [*names, *dict.fromkeys(units)]:
        device_id = sink.device_id(device)
        owners.setdefault(device_id.casefold(), []).append((device, device_id))
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for owned in owners.values():
        if len(owned) < 2:
            continue
        devices = [device for device, _ in owned]
        where = ("device_ids", next((d for d in devices if d in sink.device_ids), devices[0]))
        ids = list(dict.fromkeys(device_id for _, device_id in owned))
        if len(ids) == 1:
            message = (
                f"devices {', '.join(devices)} would share the Sparkplug device id "
                f"{ids[0]!r}: each device needs an id of its own"
            )
        else:
            message = (
                f"the Sparkplug device ids {' and '.join(repr(i) for i in ids)} differ only "
                f"in case (devices {', '.join(devices)}): a host such as Ignition does not "
                "tell them apart; give each device an id of its own"
            )
        problems.append((where, message))
    return problems


def scan_rate_ms(devices: Iterable[DeviceInfo]) -> int:
    """``Node Control/Scan Rate`` of the NBIRTH: the plant's shortest poll interval, in ms
    (0 for a plant without tags)."""
    intervals = [tag.interval for device in devices for tag in device.tags.values()]
    return round(min(intervals) * 1000) if intervals else 0
