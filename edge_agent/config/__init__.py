"""The plant file: pydantic models, one module per section, validated once and frozen.

Layout, from the bottom up: :mod:`.base` (Strict, Name, Duration, Interval,
TimeZoneName, PlantIdentity) and :mod:`.catalog` (the typed tag catalog) import
nothing of this package; one module per section builds on them (:mod:`.modbus`,
:mod:`.opcua`, :mod:`.mqtt`, :mod:`.influx`, :mod:`.sparkplug`, :mod:`.outbox`, :mod:`.service`,
:mod:`.metrics`); :mod:`.plant` joins them into the device and sink unions and
:class:`PlantConfig`. Above the models: :mod:`.checks` (cross-field rules) and
:mod:`.loader` (YAML with lines and limits, every problem as ``file:line: path:
message``; its steps in :mod:`.reading` and :mod:`.builder`). Import those from their
modules; this package re-exports the models.
"""

from edge_agent.config.base import (
    MAX_INTERVAL_S,
    MIN_INTERVAL_S,
    NAME_PATTERN,
    Duration,
    Interval,
    Name,
    PlantIdentity,
    Strict,
    TimeZoneName,
    parse_duration,
)
from edge_agent.config.catalog import DeviceInfo, TagCatalog, TagInfo
from edge_agent.config.influx import InfluxSinkConfig
from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.modbus import (
    REGISTER_COUNT,
    ByteOrder,
    ModbusConnection,
    ModbusDeviceConfig,
    ModbusRtu,
    ModbusTable,
    ModbusTag,
    ModbusTcp,
    ModbusType,
    PollGroup,
)
from edge_agent.config.mqtt import BrokerEndpoint, MqttBrokerConfig, MqttSinkConfig, MqttTls
from edge_agent.config.opcua import OpcUaDeviceConfig
from edge_agent.config.outbox import OutboxConfig
from edge_agent.config.plant import DeviceConfig, PlantConfig, SinkConfig
from edge_agent.config.service import HealthConfig, LoggingConfig, ServiceConfig
from edge_agent.config.sparkplug import SparkplugSinkConfig

__all__ = [
    "MAX_INTERVAL_S",
    "MIN_INTERVAL_S",
    "NAME_PATTERN",
    "REGISTER_COUNT",
    "BrokerEndpoint",
    "ByteOrder",
    "DeviceConfig",
    "DeviceInfo",
    "Duration",
    "HealthConfig",
    "InfluxSinkConfig",
    "Interval",
    "LoggingConfig",
    "MetricsConfig",
    "ModbusConnection",
    "ModbusDeviceConfig",
    "ModbusRtu",
    "ModbusTable",
    "ModbusTag",
    "ModbusTcp",
    "ModbusType",
    "MqttBrokerConfig",
    "MqttSinkConfig",
    "MqttTls",
    "Name",
    "OpcUaDeviceConfig",
    "OutboxConfig",
    "PlantConfig",
    "PlantIdentity",
    "PollGroup",
    "ServiceConfig",
    "SinkConfig",
    "SparkplugSinkConfig",
    "Strict",
    "TagCatalog",
    "TagInfo",
    "TimeZoneName",
    "parse_duration",
]
