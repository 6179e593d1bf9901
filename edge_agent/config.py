"""Pydantic models of the plant YAML: one file per plant.

Validated once, frozen, never edited by validators. Unknown keys are errors
(``extra="forbid"``); drivers and sinks are discriminated unions, so a typo in
``driver:`` or ``type:`` names the allowed values. Cross-field rules (duplicate
names, overlapping addresses, shared connections) live in
:mod:`edge_agent.config_checks` so that every finding can be reported with its
own line; loading, ``${VAR}`` expansion and error formatting live in
:mod:`edge_agent.config_loader`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from edge_agent.config_metrics import MetricsConfig

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
"""Names end up in MQTT topics and InfluxDB tags: no spaces, slashes, wildcards."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]

#: Shortest poll interval accepted: Modbus RTU at 9600 baud cannot do better anyway.
MIN_INTERVAL_S = 0.01
#: Longest poll interval accepted (one day).
MAX_INTERVAL_S = 86_400.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_SECONDS = {
    None: 1.0,
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(value: Any) -> Any:
    """Accept ``1.5``, ``"250ms"``, ``"1s"``, ``"15m"``, ``"1h"``; return seconds as float."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '250ms', '1s', '15m'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (examples: 0.5, '250ms', '1s', '15m')")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _known_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
    return value


#: An IANA time zone name (``Asia/Shanghai``), checked against the tz database.
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- plant


class PlantIdentity(Strict):
    name: Name
    site: str = ""
    timezone: TimeZoneName = "UTC"


# --------------------------------------------------------------------------- modbus

ModbusTable = Literal["coil", "discrete_input", "holding", "input"]
ModbusType = Literal[
    "bool",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float32",
    "float64",
    "string",
]
ByteOrder = Literal["ABCD", "BADC", "CDAB", "DCBA"]

#: Registers occupied by each fixed-size type (string: ``length``; bool in a register: 1).
REGISTER_COUNT: dict[str, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}


class ModbusTag(Strict):
    """One value on a Modbus device: ``value = raw * scale + offset``, or ``enum[raw]``."""

    name: Name
    table: ModbusTable = "holding"
    address: int = Field(ge=0, le=65535, description="Protocol address, 0-based.")
    type: ModbusType = "uint16"
    bit: int | None = Field(
        default=None, ge=0, le=15, description="For bool in a register: bit 0 = LSB."
    )
    length: int | None = Field(
        default=None, ge=1, le=125, description="For string: number of registers (2 chars each)."
    )
    byte_order: ByteOrder | None = Field(
        default=None, description="Overrides the device's byte_order for this tag."
    )
    scale: float = 1.0
    offset: float = 0.0
    enum: dict[int, str] | None = Field(
        default=None, description="Raw integer value -> label, e.g. {0: off, 1: idle, 2: run}."
    )
    sentinel: int | float | None = Field(
        default=None,
        description="Raw value the device reports for 'no data' (e.g. 65535): the sample is bad.",
    )
    unit: str = ""
    description: str = ""

    @field_validator("scale")
    @classmethod
    def _finite_nonzero_scale(cls, value: float) -> float:
        if not math.isfinite(value) or value == 0.0:
            raise ValueError("scale must be a finite, non-zero number")
        return value

    @property
    def register_count(self) -> int:
        """Registers (or bits, for coil/discrete_input tables) this tag occupies."""
        if self.table in ("coil", "discrete_input"):
            return 1
        if self.type == "string":
            return self.length or 0
        return REGISTER_COUNT[self.type]


class PollGroup(Strict):
    name: Name = "default"
    interval: Duration = Field(description="Seconds between reads, aligned to the wall clock.")
    tags: list[ModbusTag] = Field(min_length=1)

    @field_validator("interval")
    @classmethod
    def _possible_interval(cls, value: float) -> float:
        if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
            raise ValueError(
                f"interval {value:g}s is impossible: it must be between "
                f"{MIN_INTERVAL_S * 1000:g}ms and {MAX_INTERVAL_S / 3600:g}h"
            )
        return value


class ModbusTcp(Strict):
    transport: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)


class ModbusRtu(Strict):
    transport: Literal["rtu"]
    serial_port: str = Field(description="e.g. /dev/ttyUSB0 or /dev/serial/by-id/...")
    baudrate: int = Field(default=19200, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


ModbusConnection = Annotated[ModbusTcp | ModbusRtu, Field(discriminator="transport")]


class ModbusDeviceConfig(Strict):
    """A Modbus device; devices with the same connection share it (one request at a time)."""

    name: Name
    driver: Literal["modbus"]
    connection: ModbusConnection
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout: Duration = Field(default=1.0, gt=0, le=60)
    byte_order: ByteOrder = "ABCD"
    inter_frame_delay: Duration = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Pause between two requests on the shared connection (slow gateways, RS-485).",
    )
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_bits_per_read: int = Field(default=2000, ge=1, le=2000)
    max_gap: int = Field(
        default=16,
        ge=0,
        le=124,
        description="Unused registers (or bits) a coalesced read may span between two tags.",
    )
    device_type: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    poll_groups: list[PollGroup] = Field(min_length=1)


# Imported here, not at the top: config_opcua builds on Strict, Name and Duration above.
from edge_agent.config_opcua import OpcUaDeviceConfig  # noqa: E402

DeviceConfig = Annotated[ModbusDeviceConfig | OpcUaDeviceConfig, Field(discriminator="driver")]


# --------------------------------------------------------------------------- sinks


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
    qos: Literal[0, 1] = 1
    keepalive: int = Field(default=30, ge=5, le=3600)
    username: str = ""
    password: str = Field(default="", repr=False)
    tls: MqttTls | None = None
    max_inflight: int = Field(default=100, ge=1, le=65535)


# Sink and outbox models of their own modules; they build on Strict, Name and Duration above.
from edge_agent.config_influx import InfluxSinkConfig as InfluxSinkConfig  # noqa: E402
from edge_agent.config_outbox import OutboxConfig as OutboxConfig  # noqa: E402

SinkConfig = Annotated[MqttSinkConfig | InfluxSinkConfig, Field(discriminator="type")]


# --------------------------------------------------------------------------- plant file


# The service models build on Strict and Duration above, hence the late import; HealthConfig
# is imported so that the loader's "did you mean" knows its field names.
from edge_agent.config_service import HealthConfig, LoggerName, ServiceConfig  # noqa: E402, F401

LogLevel = Literal["debug", "info", "warning", "error"]


class LoggingConfig(Strict):
    level: LogLevel = "info"
    components: dict[LoggerName, LogLevel] = Field(
        default_factory=dict,
        description=(
            "Level per logger, by the name in each line's 'logger' field, e.g. "
            "{edge_agent.scheduler: debug, edge_agent.sink.mqtt: warning, pymodbus: error}."
        ),
    )
    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: colour on a terminal, JSON lines otherwise."
    )


class PlantConfig(Strict):
    plant: PlantIdentity
    state_dir: Path = Path("/var/lib/edge-agent")
    devices: list[DeviceConfig] = Field(min_length=1)
    sinks: list[SinkConfig] = Field(default_factory=list)
    outbox: OutboxConfig = OutboxConfig()
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()
    metrics: MetricsConfig | None = None
