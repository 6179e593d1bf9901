"""The parts an Agent is built from, by config: sinks, the outbox, the metrics processor.

Drivers come from :mod:`drivers.registry`; these are the core's own parts. Kept apart
from :mod:`edge_agent.service.agent` so that the Agent reads as its lifecycle.
"""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import (
    MqttSinkConfig,
    PlantConfig,
    SinkConfig,
    SparkplugSinkConfig,
    TagCatalog,
)
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.outbox import Outbox
from edge_agent.sinks.base import Sink


def build_sink(config: SinkConfig, plant: PlantConfig, outbox: Outbox | None = None) -> Sink:
    if isinstance(config, MqttSinkConfig):
        from edge_agent.sinks.mqtt import MqttSink  # lazy: paho is only needed with MQTT

        return MqttSink(config, plant.plant, devices=TagCatalog.of(plant.devices).devices.values())
    if isinstance(config, SparkplugSinkConfig):
        from edge_agent.sinks.sparkplug.sink import SparkplugSink  # lazy: paho, protobuf

        return SparkplugSink(
            config,
            plant.plant,
            plant.state_dir,
            devices=TagCatalog.of(plant.devices).devices.values(),
        )
    from edge_agent.sinks.influxdb import InfluxSink  # lazy: influxdb-client likewise

    return InfluxSink(config, plant, dead_letters=outbox)


def outbox_path(config: PlantConfig) -> Path:
    return config.outbox.path or config.state_dir / "outbox.sqlite3"


def new_outbox(plant: PlantConfig) -> Outbox:
    """The plant's outbox with a view per configured sink; :meth:`Outbox.start` opens it."""
    return Outbox(plant.outbox, outbox_path(plant), [s.name for s in plant.sinks])


def build_metrics(plant: PlantConfig) -> MetricsProcessor | None:
    """The metrics processor of the plant's ``metrics:`` section, restored from state_dir."""
    if plant.metrics is None:
        return None
    from edge_agent.metrics.report_files import build_reporter
    from edge_agent.metrics.store import STATE_FILE, StateStore

    return MetricsProcessor(
        plant, store=StateStore(plant.state_dir / STATE_FILE), reporter=build_reporter(plant)
    )
