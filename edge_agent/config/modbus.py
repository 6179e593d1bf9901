"""Pydantic models of a Modbus device in the plant YAML (TCP or RTU, tags, poll groups).

Cross-field rules (overlapping registers, unit ids on a shared connection) are in
:mod:`edge_agent.config.checks.modbus`; the driver is :mod:`drivers.modbus`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from edge_agent.config.base import Duration, Interval, Name, Strict
from edge_agent.config.catalog import (
    INTEGER_BITS,
    DeviceInfo,
    TagInfo,
    code_name,
    described_once,
)
from edge_agent.config.writes import ModbusWrites, WritePolicy

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


def _upper(value: object) -> object:
    """Byte orders are accepted in any case (``abcd`` is ``ABCD``)."""
    if isinstance(value, str) and value.strip().upper() in ("ABCD", "BADC", "CDAB", "DCBA"):
        return value.strip().upper()
    return value


#: Order of the bytes of a 32- or 64-bit value across registers, A the most significant.
ByteOrder = Annotated[Literal["ABCD", "BADC", "CDAB", "DCBA"], BeforeValidator(_upper)]

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


class RegisterAddress(Mapping[str, str | int]):
    """Where a Modbus tag is read, as the catalog publishes it: ``{"table": "holding",
    "address": 40}``, plus ``"bit"`` for a bit in a register.

    A read-only mapping of three slots rather than a dict: the catalog keeps one per tag,
    and a dict of two or three keys takes 200 bytes, this 56. It compares equal to the
    dict of the same items, and ``dict(address)`` is that dict.
    """

    __slots__ = ("_address", "_bit", "_table")

    def __init__(self, table: str, address: int, bit: int | None = None) -> None:
        self._table = table
        self._address = address
        self._bit = bit

    def __getitem__(self, key: str) -> str | int:
        if key == "table":
            return self._table
        if key == "address":
            return self._address
        if key == "bit" and self._bit is not None:
            return self._bit
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield "table"
        yield "address"
        if self._bit is not None:
            yield "bit"

    def __len__(self) -> int:
        return 2 if self._bit is None else 3

    def __repr__(self) -> str:
        return repr(dict(self))


def _usable_scale(value: float) -> float:
    if not math.isfinite(value) or value == 0.0:
        raise ValueError("scale must be a finite, non-zero number")
    return value


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
    write: WritePolicy | None = Field(
        default=None, description="Make the tag writable (docs/WRITES.md); read-only without."
    )

    @field_validator("scale")
    @classmethod
    def _finite_nonzero_scale(cls, value: float) -> float:
        return _usable_scale(value)

    def where(self) -> RegisterAddress:
        """Table and address (and bit) of this tag, for the catalog."""
        return RegisterAddress(self.table, self.address, self.bit)

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


class TagOverride(Strict):
    """A change to one tag of a device's template: any tag field but the name, or
    ``enabled: false`` to leave the tag out."""

    enabled: bool = True
    table: ModbusTable | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    type: ModbusType | None = None
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int | None = Field(default=None, ge=1, le=125)
    byte_order: ByteOrder | None = None
    scale: float | None = None
    offset: float | None = None
    enum: dict[int, str] | None = None
    sentinel: int | float | None = None
    unit: str | None = None
    description: str | None = None
    write: WritePolicy | None = None

    @field_validator("scale")
    @classmethod
    def _finite_nonzero_scale(cls, value: float | None) -> float | None:
        return value if value is None else _usable_scale(value)


_INTERVAL: TypeAdapter[float] = TypeAdapter(Interval)


def _interval(value: Any) -> float:
    """``value`` as a poll interval; ValueError in the words a poll group's would get."""
    try:
        return _INTERVAL.validate_python(value)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise ValueError(message) from None


def _groups_or_template(schema: dict[str, Any]) -> None:
    """In the JSON Schema (editors), a device needs poll_groups or a template."""
    required = schema.get("required")
    if isinstance(required, list) and "poll_groups" in required:
        required.remove("poll_groups")
        schema["anyOf"] = [{"required": ["poll_groups"]}, {"required": ["template"]}]


class ModbusDeviceConfig(Strict):
    """A Modbus device; devices with the same connection share it (one request at a time).

    With ``template:`` the loader fills in the template's tags and defaults before this
    model sees the device (:mod:`edge_agent.config.templates`); ``interval`` and
    ``overrides`` are already applied then and stay here as written.
    """

    model_config = ConfigDict(json_schema_extra=lambda schema, _: _groups_or_template(schema))

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
    writes: ModbusWrites = Field(
        default_factory=ModbusWrites,
        description="Bounds and function codes of the writes to this device's tags.",
    )
    template: Name | None = Field(
        default=None, description="Device template (edge-agent templates list) giving the tags."
    )
    interval: float | dict[Name, float] | None = Field(
        default=None,
        description="With a template: every poll group's interval, or poll group -> interval.",
    )
    overrides: dict[Name, TagOverride] = Field(
        default_factory=dict, description="With a template: tag name -> changed fields."
    )
    poll_groups: list[PollGroup] = Field(
        min_length=1, description="Required unless a template gives them; added to its groups."
    )

    @field_validator("interval", mode="before")
    @classmethod
    def _intervals(cls, value: Any) -> Any:
        """One interval, or one per poll group: each worded as a poll group's would be."""
        if not isinstance(value, dict):
            return None if value is None else _interval(value)
        result, problems = {}, []
        for name, each in value.items():
            try:
                result[name] = _interval(each)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return result

    @described_once
    def describe(self) -> DeviceInfo:
        """This device for the :class:`~edge_agent.config.catalog.TagCatalog`.

        An enum tag's code tag (``state_code``) is listed too, as an integer of the
        enum's raw type at the enum's address: sinks, metrics, checks and the meta
        message know it like any other tag.
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
                    description=tag.description,
                    address=tag.where(),
                    offset=tag.offset,
                )
                for tag in group.tags
            ]
            tags += [
                TagInfo(
                    device=self.name,
                    group=group.name,
                    name=tag.code_name,
                    value_type=tag.type,
                    enum=None,
                    interval=interval,
                    description=f"raw code of {tag.name}",
                    address=tag.where(),
                )
                for tag in group.tags
                if tag.code_name is not None
            ]
        return DeviceInfo.of(
            self.name, self.driver, tags, self.device_type, self.labels, self.template or ""
        )
