"""The MQTT broker connection shared by the ``mqtt`` and ``sparkplug`` sinks, and the
``type: mqtt`` sink of the plant file: broker(s), topics, credentials, TLS.

A sink names one broker (``host:``, ``port:``, ``tls:``) or several
(``brokers:``, tried in turn: docs/MQTT.md, "Several brokers (failover)").
:func:`mqtt_sink_problems` holds the rules that need the plant identity (topic
templates rendered with the real names) and :func:`broker_problems` those of the
broker list; ``check`` reports them with their line and the sink raises them when it
is built from code.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import Name, PlantIdentity, Strict

#: The port of a broker that gives none (MQTT's registered port).
MQTT_PORT = 1883


class MqttTls(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = Field(default=True, description="Check the broker's certificate and hostname.")


#: One label of a host name: letters, digits, ``-`` and ``_`` (some plant networks name
#: hosts with one), not starting or ending with ``-``.
_LABEL = re.compile(r"(?!-)[\w-]{1,63}(?<!-)")


def broker_host(host: str) -> str:
    """``host`` if it is a host name or an IP address (IPv6 without brackets), else a
    ValueError in words: a port, a URL or brackets written into ``host:`` would only fail
    at connect time, for ever, as "cannot resolve"."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host
    labels = host.removesuffix(".").split(".")
    numeric = all(label.isdigit() for label in labels)
    if numeric or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{host!r} is not a host name or IP address: write the host alone, without a "
            "port, a scheme (mqtt://) or [brackets], and write port: separately"
        )
    return host


def broker_key(host: str) -> str:
    """The one spelling of ``host`` that duplicates are found by: an IP address in its
    normal form (``0:0:0:0:0:0:0:1`` is ``::1``), a host name case-folded, a final dot
    dropped."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.casefold().removesuffix(".")


class BrokerEndpoint(Strict):
    """One broker of a ``brokers:`` list (one node of a cluster, or one of several brokers)."""

    host: str = Field(min_length=1, description="A host name or IP address (no port, no [ ]).")
    port: int = Field(default=MQTT_PORT, ge=1, le=65535)
    tls: MqttTls | None = Field(
        default=None, description="TLS of this broker; absent = the sink's own tls."
    )

    @field_validator("host")
    @classmethod
    def _a_host(cls, host: str) -> str:
        return broker_host(host)

    @property
    def address(self) -> str:
        """``host:port`` (``[v6]:port`` for an IPv6 literal), as logs and the status show it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class MqttBrokerConfig(Strict):
    """The broker connection of an MQTT-based sink: one broker or a list, client id,
    credentials, TLS. ``type`` is each sink's own."""

    name: Name
    type: str
    host: str | None = Field(
        default=None, min_length=1, description="The broker; or several in brokers:."
    )
    port: int = Field(default=MQTT_PORT, ge=1, le=65535, description="The port of host:.")
    brokers: list[BrokerEndpoint] | None = Field(
        default=None,
        description="Several brokers (the nodes of a cluster), tried in turn when the "
        "connection is lost or refused; instead of host:.",
    )
    broker_order: Literal["ordered", "shuffled"] = Field(
        default="ordered",
        description="ordered: the first broker that answers, from the top after a failed "
        "round; shuffled: a random order picked at start (spreads a fleet over the nodes).",
    )
    client_id: str = ""
    keepalive: int = Field(default=30, ge=5, le=3600)
    username: str = ""
    password: str = Field(default="", repr=False)
    tls: MqttTls | None = None
    max_inflight: int = Field(default=100, ge=1, le=65535)

    @field_validator("host")
    @classmethod
    def _a_host(cls, host: str | None) -> str | None:
        return None if host is None else broker_host(host)

    @field_validator("brokers")
    @classmethod
    def _some_brokers(cls, brokers: list[BrokerEndpoint] | None) -> list[BrokerEndpoint] | None:
        if brokers is not None and not brokers:
            raise ValueError("the list is empty: name at least one broker (host:, port:)")
        return brokers

    @model_validator(mode="after")
    def _one_way_to_the_broker(self) -> MqttBrokerConfig:
        # Messages start with the key they are about: check puts them on its line.
        if self.host is None and self.brokers is None:
            raise ValueError(
                "no broker: give host: (one broker) or brokers: (a list, for failover)"
            )
        if self.host is not None and self.brokers is not None:
            raise ValueError(
                "brokers: host: and brokers: are both given: write one broker as host: "
                "(with port:, tls:) or every broker in brokers:"
            )
        if self.brokers is not None and "port" in self.model_fields_set:
            raise ValueError("port: belongs to host:; with brokers: give each broker its own port")
        return self

    def endpoints(self) -> list[BrokerEndpoint]:
        """The brokers in the order written: ``brokers:``, or the one of ``host:``. An
        endpoint's ``tls`` is None where the sink's own :attr:`tls` applies."""
        if self.brokers is not None:
            return list(self.brokers)
        assert self.host is not None  # the model validator's rule
        return [BrokerEndpoint(host=self.host, port=self.port)]

    def endpoint_tls(self, endpoint: BrokerEndpoint) -> MqttTls | None:
        """The TLS settings that apply to ``endpoint``: its own, else the sink's."""
        return endpoint.tls if endpoint.tls is not None else self.tls


def broker_problems(
    sink: MqttBrokerConfig, written: Callable[[int], int] | None = None
) -> list[tuple[tuple[str | int, ...], str]]:
    """(path inside the sink, message) for a broker listed twice in ``brokers:``, in any
    spelling (:func:`broker_key`): a failover to the same broker is none, and a shuffled
    order would favour it. ``written``: the index in the file of a broker of the model
    (``check`` cuts an invalid broker out of the list, which shifts the rest)."""
    place = written or (lambda index: index)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    first: dict[tuple[str, int], int] = {}
    for index, endpoint in enumerate(sink.brokers or ()):
        key = (broker_key(endpoint.host), endpoint.port)
        if key in first:
            problems.append(
                (
                    ("brokers", place(index)),
                    f"{endpoint.address} is listed twice (also brokers[{place(first[key])}]): "
                    "each broker once",
                )
            )
        else:
            first[key] = index
    return problems


class MqttSinkConfig(MqttBrokerConfig):
    type: Literal["mqtt"]
    topic: str = Field(
        default="edge/{plant}/{device}/data",
        description="Placeholders: {plant}, {site}, {device}, {group}.",
    )
    status_topic: str = "edge/{plant}/status"
    metrics_topic: str = Field(
        default="edge/{plant}/{device}/metrics",
        description="Topic of metric batches. Placeholders: {plant}, {site}, {device}, "
        "{window}, {family}.",
    )
    meta_topic: str = Field(
        default="edge/{plant}/{device}/meta",
        description="Retained metadata of each device (units, descriptions, types, enum "
        "maps, addresses). Placeholders: {plant}, {site}, {device} (required). '' = none.",
    )
    events_topic: str = Field(
        default="edge/{plant}/events",
        description="Topic of event messages (demand limit, idle energy, stalled meter). "
        "Placeholders: {plant}, {site}, {device}, {event}.",
    )
    reports_topic: str = Field(
        default="edge/{plant}/reports/{report}",
        description="Topic of the daily and shift reports, retained. Placeholders: {plant}, "
        "{site}, {report} (daily or shift).",
    )
    qos: Literal[0, 1] = 1
    commands: bool = Field(
        default=False,
        description="Take write commands on edge/{plant}/{device}/cmd and answer on "
        ".../cmd/result; audit records go to edge/{plant}/audit (docs/WRITES.md).",
    )


_TOPIC_FIELDS = {
    "topic": ("plant", "site", "device", "group"),
    "status_topic": ("plant", "site"),
    "metrics_topic": ("plant", "site", "device", "window", "family"),
    "meta_topic": ("plant", "site", "device"),
    "events_topic": ("plant", "site", "device", "event"),
    "reports_topic": ("plant", "site", "report"),
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
        "event": "demand_limit",
        "report": "daily",
    }
    for field, allowed in _TOPIC_FIELDS.items():
        template: str = getattr(sink, field)
        if field == "meta_topic" and not template:
            continue  # no meta messages
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
        elif field == "meta_topic" and "{device}" not in template:
            problems.append(
                (
                    field,
                    f"{template!r} needs {{device}}: each device has its own retained "
                    "meta message ('' publishes none)",
                )
            )
    if sink.password and not sink.username:
        # MQTT 3.1.1 cannot send a password without a user name; paho would drop it.
        problems.append(("password", "a password needs a username"))
    return problems
