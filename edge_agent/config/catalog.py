"""The typed tag catalog: every device and tag of a plant, whatever its driver.

Metrics, config checks and sinks need a few facts about tags (is it a number, an
enum, how wide is an integer counter, how often is it read, does it report changes
only) and about devices (type, labels). Each device model describes itself as a
:class:`DeviceInfo` (:meth:`describe`); :meth:`TagCatalog.from_plant` collects them
once. Nobody else walks the device union, so mypy sees every access and a new
protocol only has to describe its own tags.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

#: Bit width of each integer value type: counters of that width roll over at 2**bits.
INTEGER_BITS: Mapping[str, int] = {
    "int16": 16,
    "uint16": 16,
    "int32": 32,
    "uint32": 32,
    "int64": 64,
    "uint64": 64,
}

#: Appended to an enum tag's name for the tag that carries its raw code, so that a
#: time-series database that drops strings still has the state: ``state`` ("run")
#: and ``state_code`` (2). The driver fills it; ``check`` refuses a tag of that name.
CODE_SUFFIX = "_code"


def code_name(enum_tag: str) -> str:
    """The name of the code tag of enum tag ``enum_tag``: ``state`` -> ``state_code``."""
    return enum_tag + CODE_SUFFIX


#: Value types that are not numbers (Modbus and OPC UA spellings).
NOT_NUMERIC = frozenset({"bool", "string", "str", "boolean", "bytes", "datetime"})


def write_kind(enum: Mapping[int, str] | None, value_type: str | None) -> str:
    """What a write to a tag takes: ``enum`` (a label), ``bool``, ``string``, ``number``,
    or ``any`` (an OPC UA node's type, known only from the server)."""
    if enum is not None:
        return "enum"
    if value_type is None:
        return "any"
    if value_type in ("bool", "boolean"):
        return "bool"
    if value_type in NOT_NUMERIC:
        return "string"
    return "number"


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What the rest of the agent may know about one tag, independent of its driver."""

    device: str
    group: str
    name: str
    #: The declared value type (``float32``, ``bool`` ...), or None when the device
    #: tells it at run time (OPC UA).
    value_type: str | None
    #: Raw integer -> label, when the tag is an enum.
    enum: Mapping[int, str] | None
    #: Seconds between reads of the tag's group (the publishing interval when
    #: change-based).
    interval: float
    #: True when the group hands over changes only (OPC UA subscriptions): silence
    #: means "unchanged", not "missing".
    change_based: bool = False
    scale: float = 1.0
    unit: str = ""
    description: str = ""
    #: Where the value is read, in the driver's own terms: ``{"table": "holding",
    #: "address": 40}`` (Modbus, plus ``bit`` for a bit in a register), ``{"node":
    #: "ns=2;s=Press.Power"}`` (OPC UA). Published as it is (the MQTT meta message).
    address: Mapping[str, str | int] = field(default_factory=dict)
    #: Added after scaling (Modbus ``offset``): with ``scale``, it tells whether the driver
    #: turns the raw integer into a float (the Sparkplug datatype depends on it).
    offset: float = 0.0

    @property
    def integer_bits(self) -> int:
        """Width of the raw integer (16, 32, 64), 0 when the tag is not a declared integer."""
        return INTEGER_BITS.get(self.value_type or "", 0)

    @property
    def numeric(self) -> bool:
        """True unless the tag is declared as a non-number or maps values to labels."""
        return self.value_type not in NOT_NUMERIC and self.enum is None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device: its name, driver, type and labels, and its tags by name."""

    name: str
    driver: str
    device_type: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    #: By tag name; a name used twice (an error ``check`` reports) keeps its first tag.
    tags: Mapping[str, TagInfo] = field(default_factory=dict)
    #: The device template the tags came from (``template:`` in the plant file), "" for
    #: none. Published in the device's MQTT meta message.
    template: str = ""

    @classmethod
    def of(
        cls,
        name: str,
        driver: str,
        tags: Iterable[TagInfo],
        device_type: str = "",
        labels: Mapping[str, str] | None = None,
        template: str = "",
    ) -> DeviceInfo:
        by_name: dict[str, TagInfo] = {}
        for tag in tags:
            by_name.setdefault(tag.name, tag)
        return cls(name, driver, device_type, dict(labels or {}), by_name, template)


_Device = TypeVar("_Device")

#: id(device model) -> (a weak reference to it, its description).
_DESCRIBED: dict[int, tuple[weakref.ref[object], DeviceInfo]] = {}


def _forget(key: int) -> Callable[[weakref.ref[object]], None]:
    def forget(_: weakref.ref[object]) -> None:
        _DESCRIBED.pop(key, None)

    return forget


def described_once(
    describe: Callable[[_Device], DeviceInfo],
) -> Callable[[_Device], DeviceInfo]:
    """Make a device model's ``describe`` compute its :class:`DeviceInfo` once per model.

    Device models are frozen, so their description never changes, and the loader's
    checks, the sinks, the metrics and the write policy each ask for it: at 100,000 tags
    that was five catalogs of 100,000 TagInfos built (3.6 s of a 6 s start) and more than
    one kept. Now they all share one, kept as long as the model lives (a weak reference:
    the entry goes with the model, as after a reload). A DeviceInfo is read-only by
    contract; sharing it makes that matter.
    """

    @functools.wraps(describe)
    def once(self: _Device) -> DeviceInfo:
        key = id(self)
        entry = _DESCRIBED.get(key)
        if entry is not None and entry[0]() is self:
            return entry[1]
        info = describe(self)
        _DESCRIBED[key] = (weakref.ref(self, _forget(key)), info)
        return info

    return once


class Describable(Protocol):
    """What every device model offers: a description of itself for the catalog."""

    def describe(self) -> DeviceInfo: ...


@dataclass(frozen=True, slots=True)
class TagCatalog:
    """Every device of a plant by name, in config order."""

    devices: Mapping[str, DeviceInfo]

    @classmethod
    def of(cls, devices: Iterable[Describable]) -> TagCatalog:
        return cls.of_described(device.describe() for device in devices)

    @classmethod
    def of_described(cls, described: Iterable[DeviceInfo]) -> TagCatalog:
        """From devices already described; a repeated name keeps its first device."""
        by_name: dict[str, DeviceInfo] = {}
        for info in described:
            by_name.setdefault(info.name, info)
        return cls(by_name)

    def device(self, name: str) -> DeviceInfo | None:
        return self.devices.get(name)

    def tag(self, device: str, name: str) -> TagInfo | None:
        found = self.devices.get(device)
        return None if found is None else found.tags.get(name)

    def change_groups(self) -> set[tuple[str, str]]:
        """(device, group) of every group that reports changes only."""
        return {
            (tag.device, tag.group)
            for device in self.devices.values()
            for tag in device.tags.values()
            if tag.change_based
        }
