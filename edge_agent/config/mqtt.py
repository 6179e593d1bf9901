"""The ``type: mqtt`` sink of the plant file: broker, topics, credentials, TLS.

:func:`mqtt_sink_problems` holds the rules that need the plant identity (topic
templates rendered with the real names); ``check`` reports them with their line and
the sink raises them when it is built from code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from edge_agent.config.base import Name, PlantIdentity, Strict


class MqttTls(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = Field(default=True, description="Check the broker's certificate and hostname.")


class MqttSinkConfig(Strict):
    name: Name
    type: Literal["mqtt"]
    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = ""
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
    keepalive: int = Field(default=30, ge=5, le=3600)
    username: str = ""
    password: str = Field(default="", repr=False)
    tls: MqttTls | None = None
    max_inflight: int = Field(default=100, ge=1, le=65535)
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
