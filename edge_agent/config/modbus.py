"""Pydantic models of a Modbus device in the plant YAML (TCP or RTU, tags, poll groups).

Cross-field rules (overlapping registers, unit ids on a shared connection) are in
:mod:`edge_agent.config.checks.modbus`; the driver is :mod:`drivers.modbus`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from edge_agent.config.base import Duration, Interval, Name, Strict
from edge_agent.config.catalog import INTEGER_BITS, DeviceInfo, TagInfo, code_name

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
    def code_name(self) -> str | None:
        """The name of the tag that carries this enum tag's raw code, None if no enum.

        Only integer tags have codes (``check`` refuses an enum on any other type).
        """
        if self.enum is None or self.type not in INTEGER_BITS:
            return None
        return code_name(self.name)

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
    interval: Interval = Field(description="Seconds between reads, aligned to the wall clock.")
    tags: list[ModbusTag] = Field(min_length=1)


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

    def describe(self) -> DeviceInfo:
        """This device for the :class:`~edge_agent.config.catalog.TagCatalog`.

        An enum tag's code tag (``state_code``) is listed too, as an integer of the
        enum's raw type: sinks, metrics and checks know it like any other tag.
        """
        tags: list[TagInfo] = []
        for group in self.poll_groups:
            interval = float(group.interval)
            tags += [
                TagInfo(
                    device=self.name,
                    group=group.name,
                    name=tag.name,
                    value_type=tag.type,
                    enum=tag.enum,
                    interval=interval,
                    scale=tag.scale,
                    unit=tag.unit,
                )
                for tag in group.tags
            ]
            tags += [
                TagInfo(self.name, group.name, tag.code_name, tag.type, None, interval)
                for tag in group.tags
                if tag.code_name is not None
            ]
        return DeviceInfo.of(self.name, self.driver, tags, self.device_type, self.labels)
