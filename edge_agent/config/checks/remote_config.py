"""Cross-field rules of ``remote_config:``: the sink it rides is there and speaks MQTT JSON.

A Sparkplug sink cannot carry it (its topic namespace is Sparkplug's own), nor can
InfluxDB; a sink that is not there would leave the agent deaf to every document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edge_agent.config.checks.common import Finding, Loc
from edge_agent.config.mqtt import MqttSinkConfig
from edge_agent.config.remote_config import RemoteConfigSettings

SINK: Loc = ("remote_config", "sink")


def check_remote_config(
    settings: RemoteConfigSettings | None,
    sinks: Sequence[tuple[int, Any]],
    sink_names: Sequence[tuple[Loc, str]],
) -> list[Finding]:
    """``sinks``: (index, valid sink); ``sink_names``: every sink's name as written (a
    sink that failed validation is there but its type unknown: not judged)."""
    if settings is None:
        return []
    named = [sink for _, sink in sinks if sink.name == settings.sink]
    if not named and settings.sink not in {name for _, name in sink_names}:
        written = sorted({name for _, name in sink_names})
        known = f"the sinks are: {', '.join(written)}" if written else "the plant has no sinks"
        return [(SINK, f"no sink is named {settings.sink!r} ({known})")]
    if named and not isinstance(named[0], MqttSinkConfig):
        return [
            (
                SINK,
                f"sink {settings.sink!r} is of type {named[0].type}; remote configuration "
                "rides an MQTT sink (type: mqtt)",
            )
        ]
    return []
