"""The whole plant file: the device and sink unions and :class:`PlantConfig`.

Validated once, frozen, never edited by validators. Unknown keys are errors
(``extra="forbid"``); drivers and sinks are discriminated unions, so a typo in
``driver:`` or ``type:`` names the allowed values. A new protocol adds its device
model to :data:`DeviceConfig`, a new sink its model to :data:`SinkConfig`. Cross-field
rules live in :mod:`edge_agent.config.checks`, loading and error formatting in
:mod:`edge_agent.config.loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from edge_agent.config.base import PlantIdentity, Strict
from edge_agent.config.influx import InfluxSinkConfig
from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.modbus import ModbusDeviceConfig
from edge_agent.config.mqtt import MqttSinkConfig
from edge_agent.config.opcua import OpcUaDeviceConfig
from edge_agent.config.outbox import OutboxConfig
from edge_agent.config.remote_config import RemoteConfigSettings
from edge_agent.config.service import LoggingConfig, ServiceConfig
from edge_agent.config.sparkplug import SparkplugSinkConfig
from edge_agent.config.writes import CommandsConfig

DeviceConfig = Annotated[ModbusDeviceConfig | OpcUaDeviceConfig, Field(discriminator="driver")]

SinkConfig = Annotated[
    MqttSinkConfig | InfluxSinkConfig | SparkplugSinkConfig, Field(discriminator="type")
]


class PlantConfig(Strict):
    plant: PlantIdentity
    state_dir: Path = Path("/var/lib/edge-agent")
    templates_dir: Path | None = Field(
        default=None,
        description="Your own device templates (relative to the plant file); they win over "
        "the bundled ones of the same name.",
    )
    devices: list[DeviceConfig] = Field(min_length=1)
    sinks: list[SinkConfig] = Field(default_factory=list)
    outbox: OutboxConfig = OutboxConfig()
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()
    metrics: MetricsConfig | None = None
    commands: CommandsConfig = Field(
        default_factory=CommandsConfig,
        description="How write commands reach the agent (docs/WRITES.md); tags are "
        "read-only unless they have a write: block.",
    )
    remote_config: RemoteConfigSettings | None = Field(
        default=None,
        description="Take this plant file, signed, over MQTT (docs/REMOTE_CONFIG.md).",
    )
