"""A command's value -> the Variant an OPC UA node takes: the node's own built-in type.

The inverse of :mod:`drivers.opcua.convert`: what is sent is typed by the node's
DataType (resolved to its built-in base type: a Duration node takes a Double, an enum
DataType an Int32), never by Python's guess, and ``expected`` is what a read of the
node will show once it holds the Variant (a Float's float32 rounding, an enum's
label), so the gate's read-back compares like with like.

A value the type cannot hold exactly is refused with words (:class:`WriteRefused`):
a fraction for an integer type, a number outside the type's range, NaN or infinity,
a Double beyond float32 for a Float node, a label the enum does not have. Pure: no
I/O; the node's facts come from :mod:`drivers.opcua.nodeinfo`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from asyncua import ua

from drivers.opcua.convert import iso_datetime
from edge_agent.driver import WriteRefused
from edge_agent.rounding import shortest_float32

VT = ua.VariantType

#: Range of each integer built-in type.
INTEGER_RANGES: dict[ua.VariantType, tuple[int, int]] = {
    VT.SByte: (-(2**7), 2**7 - 1),
    VT.Byte: (0, 2**8 - 1),
    VT.Int16: (-(2**15), 2**15 - 1),
    VT.UInt16: (0, 2**16 - 1),
    VT.Int32: (-(2**31), 2**31 - 1),
    VT.UInt32: (0, 2**32 - 1),
    VT.Int64: (-(2**63), 2**63 - 1),
    VT.UInt64: (0, 2**64 - 1),
}
#: The built-in types a command can write (an enumeration is an Int32 with labels).
WRITABLE_TYPES = frozenset({VT.Boolean, VT.Float, VT.Double, VT.String, VT.DateTime}) | set(
    INTEGER_RANGES
)

_F32 = struct.Struct("<f")
#: The earliest DateTime OPC UA can carry (earlier ones are its "null" DateTime).
_OPC_EPOCH = datetime(1601, 1, 2, tzinfo=UTC)

Value = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Encoded:
    """The Variant to send, what a read will show, and the value as sent, in words."""

    variant: ua.Variant
    expected: Value
    shown: str


def encode(
    value: Value, vtype: ua.VariantType, enum: Mapping[int, str] | None = None, what: str = ""
) -> Encoded:
    """``value`` as a Variant of ``vtype`` (a built-in type); raise WriteRefused with
    words when the type cannot hold it. ``enum`` (code -> label) makes an integer
    type take labels; ``what`` names the target in messages (``tag mode``)."""
    target = what or "the node"
    if enum is not None and vtype in INTEGER_RANGES:
        return _enum(value, vtype, enum, target)
    if vtype is VT.Boolean:
        return _boolean(value, target)
    if vtype in INTEGER_RANGES:
        code = _integer(value, vtype, target)
        return Encoded(ua.Variant(code, vtype), code, f"{vtype.name} {code}")
    if vtype is VT.Float:
        return _float(value, target)
    if vtype is VT.Double:
        number = _number(value, vtype, target)
        return Encoded(ua.Variant(number, VT.Double), number, f"Double {number!r}")
    if vtype is VT.String:
        if not isinstance(value, str):
            raise WriteRefused(f"{target} holds text (String): {_shown(value)} is not text")
        return Encoded(ua.Variant(value, VT.String), value, f"String {value!r}")
    if vtype is VT.DateTime:
        return _datetime(value, target)
    raise WriteRefused(
        f"{target} holds a {vtype.name}: writing that type is not supported "
        "(Boolean, integers, Float, Double, String, DateTime and enumerations are)"
    )


def _shown(value: Value) -> str:
    return (
        repr(value)
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _enum(value: Value, vtype: ua.VariantType, enum: Mapping[int, str], target: str) -> Encoded:
    labels = ", ".join(enum.values())
    if isinstance(value, str):
        codes = [code for code, label in enum.items() if label == value]
        if not codes:
            raise WriteRefused(f"{value!r} is not a state of {target} (it has: {labels})")
        code = codes[0]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value not in enum:
            raise WriteRefused(
                f"{value} is not a code of {target}: write a label ({labels}) or one of "
                f"the codes {', '.join(str(c) for c in enum)}"
            )
        code = value
    else:
        raise WriteRefused(f"{target} takes one of its labels ({labels}), not {_shown(value)}")
    low, high = INTEGER_RANGES[vtype]
    if not low <= code <= high:
        raise WriteRefused(f"code {code} of {enum[code]!r} does not fit {target}'s {vtype.name}")
    return Encoded(ua.Variant(code, vtype), enum[code], f"{vtype.name} {code} ({enum[code]})")


def _boolean(value: Value, target: str) -> Encoded:
    if isinstance(value, bool):
        flag = value
    elif isinstance(value, int) and value in (0, 1):
        flag = bool(value)
    else:
        raise WriteRefused(f"{target} holds true/false (Boolean), not {_shown(value)}")
    return Encoded(ua.Variant(flag, VT.Boolean), flag, f"Boolean {str(flag).lower()}")


def _number(value: Value, vtype: ua.VariantType, target: str) -> float:
    """A finite float exactly equal to ``value`` (a number, never a bool or text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteRefused(f"{target} holds a number ({vtype.name}), not {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise WriteRefused(f"{value} is not a value {target} can take (a finite number is)")
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float (10**400)
        raise WriteRefused(f"a number that large is beyond what {target} can hold") from None
    if number != value:
        raise WriteRefused(
            f"{value} cannot be held exactly by a {vtype.name} (nearest: {number!r}); "
            f"{target} would show another value"
        )
    return number


def _integer(value: Value, vtype: ua.VariantType, target: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WriteRefused(f"{target} holds a whole number ({vtype.name}), not {_shown(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WriteRefused(f"{value} is not a value {target} can take (a whole number is)")
        if not value.is_integer():
            low, high = math.floor(value), math.ceil(value)
            raise WriteRefused(
                f"{value} is not a whole number and {target} is a {vtype.name}: "
                f"the nearest values it can hold are {low} and {high}"
            )
        value = int(value)
    low, high = INTEGER_RANGES[vtype]
    if not low <= value <= high:
        raise WriteRefused(f"{value} is out of range: {target} is a {vtype.name} ({low} to {high})")
    return value


def _float(value: Value, target: str) -> Encoded:
    number = _number(value, VT.Float, target)
    try:
        (single,) = _F32.unpack(_F32.pack(number))
    except OverflowError:
        single = math.inf
    if not math.isfinite(single):
        raise WriteRefused(
            f"{value} is beyond what {target} can hold: it is a Float (32 bit, "
            "at most about ±3.4e38)"
        )
    expected = shortest_float32([single])[0]
    return Encoded(ua.Variant(single, VT.Float), expected, f"Float {expected!r}")


def _datetime(value: Value, target: str) -> Encoded:
    if not isinstance(value, str):
        raise WriteRefused(
            f"{target} holds a time (DateTime): write it as text, 2026-12-05T06:00:00Z"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise WriteRefused(
            f"{value!r} is not a time {target} can take: write 2026-12-05T06:00:00Z "
            "(ISO 8601 with Z or an offset)"
        ) from None
    if moment.tzinfo is None:
        raise WriteRefused(f"{value!r} has no time zone: add Z (UTC) or an offset such as +08:00")
    moment = moment.astimezone(UTC)
    if moment < _OPC_EPOCH:
        raise WriteRefused(f"{value!r} is before 1601-01-02, the earliest time OPC UA carries")
    expected = iso_datetime(moment)
    return Encoded(ua.Variant(moment, VT.DateTime), expected, f"DateTime {expected}")
