"""What a plant lets commands write, and whether one value passes (pure: no I/O).

:class:`PlantWrites` is the plant file's write policy gathered once per config: per
device, its writable tags (a ``write:`` block on a Modbus tag, template-expanded ones
included, or on an OPC UA tag) and its callable methods (OPC UA ``methods:``), with the
device's own bound. Deny by default: a tag without a ``write:`` block is not here.

:func:`check_value` and :func:`check_arguments` are the contract's step 6 before the
driver's ``prepare``: the value's type by the tag's declared type (a number, an enum
label or code, true/false, a text), ``min``/``max``, ``step`` (within 1e-9 of a step
plus float noise, never a real fraction of one) and ``allowed``. Each refusal is one
sentence naming the rule and the limit, in the tag's unit: ``7.5 bar is above max 7.0
bar for pressure_setpoint``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.config.catalog import write_kind
from edge_agent.config.modbus import ModbusDeviceConfig
from edge_agent.config.opcua import OpcUaDeviceConfig, OpcUaMethod
from edge_agent.config.plant import PlantConfig
from edge_agent.config.writes import (
    AllowedValue,
    CommandsConfig,
    WriteChannel,
    WriteCondition,
    WritePolicy,
)
from edge_agent.writes.model import WriteValue

#: How close to a step a value must be, as a fraction of the step.
STEP_TOLERANCE = 1e-9
#: Plus a few float64 ulps (relative) of the numbers compared: floating-point noise
#: (6.5 from 5 + 15 x 0.1), never a real fraction of a step however large the value
#: (a tolerance relative to the value lets 3000000000.5 pass a step of 1).
FLOAT_NOISE = 4 * sys.float_info.epsilon


@dataclass(frozen=True, slots=True)
class WritableTag:
    """One tag a command may write, with what the checks need to know about it."""

    device: str
    name: str
    policy: WritePolicy
    #: The declared value type (``float32``, ``bool``, ``string``); None when the device
    #: tells it at run time (OPC UA): then the driver's ``prepare`` checks the type.
    value_type: str | None
    enum: Mapping[int, str] | None = None
    unit: str = ""

    @property
    def kind(self) -> str:
        """``enum``, ``bool``, ``string``, ``number`` or ``any`` (type known only later)."""
        return write_kind(self.enum, self.value_type)


@dataclass(frozen=True, slots=True)
class CallableMethod:
    """One method a command may call (OPC UA ``methods:``)."""

    device: str
    name: str
    method: OpcUaMethod

    @property
    def channels(self) -> Sequence[WriteChannel]:
        return self.method.channels

    @property
    def only_when(self) -> WriteCondition | None:
        return self.method.only_when

    @property
    def max_per_minute(self) -> int:
        return self.method.max_per_minute


@dataclass(frozen=True, slots=True)
class DeviceTargets:
    """What commands may do to one device."""

    name: str
    max_per_minute: int
    tags: Mapping[str, WritableTag] = field(default_factory=dict)
    methods: Mapping[str, CallableMethod] = field(default_factory=dict)
    #: Every tag of the device, writable or not (to tell "not writable" from "no such tag").
    all_tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PlantWrites:
    """The write policy of one plant file, by device name."""

    plant: str
    commands: CommandsConfig
    devices: Mapping[str, DeviceTargets]
    #: Console users with ``writes: true``.
    console_writers: frozenset[str] = frozenset()

    @classmethod
    def of(cls, plant: PlantConfig) -> PlantWrites:
        devices: dict[str, DeviceTargets] = {}
        for device in plant.devices:
            devices.setdefault(device.name, device_targets(device))
        console = plant.service.console
        writers = frozenset(u.name for u in console.users if u.writes) if console else frozenset()
        return cls(plant.plant.name, plant.commands, devices, writers)

    @property
    def anything_writable(self) -> bool:
        return any(d.tags or d.methods for d in self.devices.values())


def device_targets(device: ModbusDeviceConfig | OpcUaDeviceConfig) -> DeviceTargets:
    """The writable tags and callable methods of one device, as configured.

    A template's tags are already in ``poll_groups`` (the loader expands templates, with
    their ``overrides:``, before the model is validated), so they are found here too.
    """
    described = device.describe()
    tags: dict[str, WritableTag] = {}
    for group in device.poll_groups:
        for tag in group.tags:
            if tag.write is None or tag.name in tags:
                continue
            info = described.tags.get(tag.name)
            tags[tag.name] = WritableTag(
                device=device.name,
                name=tag.name,
                policy=tag.write,
                value_type=info.value_type if info is not None else None,
                enum=tag.enum,
                unit=tag.unit,
            )
    methods: dict[str, CallableMethod] = {}
    if isinstance(device, OpcUaDeviceConfig):
        for method in device.methods:
            methods.setdefault(method.name, CallableMethod(device.name, method.name, method))
    return DeviceTargets(
        name=device.name,
        max_per_minute=device.writes.max_per_minute,
        tags=tags,
        methods=methods,
        all_tags=frozenset(described.tags),
    )


class ValueRefused(ValueError):
    """A value the policy does not let through; the message says which rule and limit."""


def check_value(tag: WritableTag, value: WriteValue) -> WriteValue:
    """``value`` as the driver's ``prepare`` gets it, or :class:`ValueRefused`.

    Enum tags take a label or one of the enum's codes (handed on as the label); bool
    tags take true/false or 0/1 (handed on as a bool); numeric tags a finite number
    within ``min``/``max``, on a ``step``, among ``allowed``; string tags a text.
    """
    _check_size(tag.name, value)
    kind = tag.kind
    if kind == "enum":
        return _check_enum(tag, value)
    if kind == "bool":
        return _check_bool(tag, value)
    if kind == "string":
        if not isinstance(value, str):
            raise ValueRefused(f"{tag.name} takes a text, not {_show(value)}")
        _check_allowed(tag.name, value, tag.policy.allowed, "")
        return value
    if kind == "number" or _has_bounds(tag.policy):
        number = _number(tag.name, value)
        _check_number(tag.name, number, tag.policy.min, tag.policy.max, tag.policy.step, tag.unit)
        _check_allowed(tag.name, number, tag.policy.allowed, tag.unit)
        return number
    # A tag whose type the device tells (OPC UA) and no numeric bound: only allowed.
    _check_allowed(tag.name, value, tag.policy.allowed, tag.unit)
    return value


def check_arguments(
    method: CallableMethod, args: Mapping[str, WriteValue]
) -> dict[str, WriteValue]:
    """A method's arguments by name, each within its configured bounds, in the method's
    order; :class:`ValueRefused` for a missing, unknown or out-of-bounds argument."""
    configured = method.method.arguments
    names = [a.name for a in configured]
    unknown = sorted(set(args) - set(names))
    if unknown:
        takes = ", ".join(names) if names else "no arguments"
        raise ValueRefused(
            f"method {method.name} has no argument {', '.join(unknown)} (it takes {takes})"
        )
    missing = [n for n in names if n not in args]
    if missing:
        raise ValueRefused(f"method {method.name} needs argument {', '.join(missing)}")
    checked: dict[str, WriteValue] = {}
    for argument in configured:
        value = args[argument.name]
        label = f"argument {argument.name} of {method.name}"
        _check_size(label, value)
        if argument.min is not None or argument.max is not None or argument.step is not None:
            value = _number(label, value)
            _check_number(label, value, argument.min, argument.max, argument.step, "")
        _check_allowed(label, value, argument.allowed, "")
        checked[argument.name] = value
    return checked


def values_match(read: WriteValue | None, expected: WriteValue, tolerance: float) -> bool:
    """A read-back equals what was sent: numbers within ``tolerance``, anything else
    (bools, enum labels, texts) exactly and of the same kind (true is not 1)."""
    if read is None:
        return False
    if isinstance(read, bool) or isinstance(expected, bool):
        return isinstance(read, bool) and isinstance(expected, bool) and read == expected
    if isinstance(read, int | float) and isinstance(expected, int | float):
        if isinstance(read, int) and isinstance(expected, int):
            return abs(read - expected) <= tolerance  # exact, whatever their size
        if not (_float_sized(read) and _float_sized(expected)):
            return False  # NaN, infinity, or an int no float comes near
        return abs(read - expected) <= tolerance
    return type(read) is type(expected) and read == expected


def condition_met(condition: WriteCondition, value: WriteValue | None) -> bool:
    """The condition's tag shows one of its values (labels and texts exactly, numbers
    by value, bools as bools)."""
    return value is not None and any(values_match(value, v, 0.0) for v in condition.values)


def describe_values(values: Sequence[AllowedValue]) -> str:
    """``idle/off``: a condition's or an allowed list's values, for a sentence."""
    return "/".join(_plain(v) for v in values)


# -- the rules

#: The largest number a command may carry: beyond it no float (and no device type) can
#: hold it, and a float conversion would raise instead of refusing.
LARGEST = int(sys.float_info.max)


def _float_sized(number: int | float) -> bool:
    """A finite float, or an int that converts to one (checked without converting)."""
    if isinstance(number, float):
        return math.isfinite(number)
    return abs(number) <= LARGEST


def _check_size(name: str, value: WriteValue) -> None:
    """Refuse an integer beyond any float (10**400: JSON has no limit) before anything
    converts it to a float; it is not repeated in full (it may have 4300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and not _float_sized(value):
        raise ValueRefused(
            f"a number of {len(str(abs(value)))} digits is too large for {name} "
            f"(no tag or argument holds a number beyond ±{sys.float_info.max:.2g})"
        )


def _has_bounds(policy: WritePolicy) -> bool:
    return policy.min is not None or policy.max is not None or policy.step is not None


def _check_enum(tag: WritableTag, value: WriteValue) -> str:
    enum = tag.enum or {}
    labels = list(enum.values())
    if isinstance(value, str):
        if value not in labels:
            raise ValueRefused(
                f"{value!r} is not a state of {tag.name} (its labels: {', '.join(labels)})"
            )
        label = value
    elif isinstance(value, int) and not isinstance(value, bool) and value in enum:
        label = enum[value]
    else:
        raise ValueRefused(
            f"{tag.name} takes one of its labels ({', '.join(labels)}), not {_show(value)}"
        )
    _check_allowed(tag.name, label, tag.policy.allowed, "")
    return label


def _check_bool(tag: WritableTag, value: WriteValue) -> bool:
    if isinstance(value, bool):
        flag = value
    elif isinstance(value, int) and value in (0, 1):
        flag = bool(value)
    else:
        raise ValueRefused(f"{tag.name} takes true or false (or 1/0), not {_show(value)}")
    _check_allowed(tag.name, flag, tag.policy.allowed, "")
    return flag


def _number(name: str, value: WriteValue) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueRefused(f"{name} takes a number, not {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueRefused(f"{name} takes a finite number, not {value}")
    return value


def _check_number(
    name: str,
    value: int | float,
    low: float | None,
    high: float | None,
    step: float | None,
    unit: str,
) -> None:
    if low is not None and value < low:
        raise ValueRefused(f"{_u(value, unit)} is below min {_u(low, unit)} for {name}")
    if high is not None and value > high:
        raise ValueRefused(f"{_u(value, unit)} is above max {_u(high, unit)} for {name}")
    if step is None:
        return
    base = low if low is not None else 0.0
    steps = (value - base) / step
    nearest = round(steps)
    off = abs(value - (base + nearest * step))
    if off <= STEP_TOLERANCE * abs(step) + FLOAT_NOISE * (abs(value) + abs(base)):
        return
    below = base + math.floor(steps) * step
    above = base + math.ceil(steps) * step
    origin = f"min {_g(low)}" if low is not None else "0"
    raise ValueRefused(
        f"{_u(value, unit)} is not on a step of {_g(step)} from {origin} for {name}: "
        f"the nearest allowed values are {_g(below)} and {_g(above)}"
    )


def _check_allowed(
    name: str, value: WriteValue, allowed: Sequence[AllowedValue] | None, unit: str
) -> None:
    if allowed is None or any(values_match(value, a, 0.0) for a in allowed):
        return
    raise ValueRefused(
        f"{_u(value, unit)} is not one of the values allowed for {name} "
        f"({describe_values(allowed)})"
    )


def _g(number: float) -> str:
    """A number as people write it: ``7``, ``6.5``, ``0.1`` (no float noise)."""
    return f"{number:.12g}"


def _u(value: WriteValue, unit: str) -> str:
    text = _g(value) if isinstance(value, float) else _plain(value)
    return f"{text} {unit}" if unit else text


def _plain(value: AllowedValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _g(value)
    return str(value)


def _show(value: WriteValue) -> str:
    """A refused value and its kind: ``the text 'abc'``, ``true``, ``6.5``."""
    if isinstance(value, str):
        return f"the text {value!r}"
    return _plain(value)
