"""The inverse of a tag's decoding: a value in engineering units -> what to write. Pure.

:func:`encode` takes a value as the tag shows it (``value = raw * scale + offset``, an
enum label, true/false, a text) and returns the registers (or the bit) that make the
device show it, plus ``expected``: those registers decoded back by the agent's own
decoder (:mod:`drivers.modbus.compiler`), so a float32's rounding or a label is exactly
what a read-back will show. A value the tag cannot hold raises :class:`NotRepresentable`
with words for the person who sent it (the nearest values it can hold, its range).

Written from the byte-order table of :mod:`drivers.modbus.codec` (which byte of the
big-endian value travels where), not from the decoder's code: the decoder packs
buffers and reads them little- or big-endian, this module permutes bytes. A shared
mistake would have to be made twice, differently; tests compare both with
``simulators/registers.py`` and with libmodbus.

Integers: ``raw = (value - offset) / scale`` is computed in decimal from the numbers
as written (``6.5`` and ``0.1``, not their binary approximations), and must be whole
within a relative 1e-9 and within the type's range. Floats: ``raw`` in binary
floating point, packed as IEEE 754 (a float32 rounds; beyond its range is refused).
The tag's ``sentinel`` (its "no data" raw value) is never written. Strings: ASCII,
NUL padded to ``length`` registers, high byte first (ABCD, CDAB) or low byte first
(BADC, DCBA), as the decoder reads them.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Final

from drivers.modbus.compiler import STRUCT_CODE, compile_decoder
from drivers.modbus.planner import ReadRequest
from edge_agent.config import ByteOrder, ModbusTag
from edge_agent.config.catalog import INTEGER_BITS
from edge_agent.model import Quality, Value
from edge_agent.rounding import DecimalScale

WriteValue = bool | int | float | str

#: How far from a whole raw number a value may be and still be written: floating-point
#: noise only (a value typed as 0.1 + 0.2), never a real fraction of a raw unit.
#: Absolute, plus a few ulps of the numbers the raw value is computed from (a relative
#: tolerance such as 1e-9 x raw would round 3000000000.5 on a uint32 to a whole number).
WHOLE_TOLERANCE: Final = Decimal("1e-9")
#: A few float64 ulps (relative): the noise a float carries from where it was computed.
FLOAT_NOISE: Final = Decimal(4 * sys.float_info.epsilon)
_EXACT = Context(prec=80)
#: Where each byte of the big-endian value (A = index 0) travels, per byte order, by
#: the value's size in bytes: the table in :mod:`drivers.modbus.codec`'s docstring.
_WIRE_ORDER: Final[dict[int, dict[str, tuple[int, ...]]]] = {
    2: {"ABCD": (0, 1), "CDAB": (0, 1), "BADC": (1, 0), "DCBA": (1, 0)},
    4: {"ABCD": (0, 1, 2, 3), "CDAB": (2, 3, 0, 1), "BADC": (1, 0, 3, 2), "DCBA": (3, 2, 1, 0)},
    8: {
        "ABCD": (0, 1, 2, 3, 4, 5, 6, 7),
        "CDAB": (6, 7, 4, 5, 2, 3, 0, 1),
        "BADC": (1, 0, 3, 2, 5, 4, 7, 6),
        "DCBA": (7, 6, 5, 4, 3, 2, 1, 0),
    },
}


class NotRepresentable(ValueError):
    """The tag cannot hold the value as configured; the message says why."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """What to write: ``registers`` (a register tag), or ``bit`` (a coil, or bit
    ``tag.bit`` of a holding register); ``expected``: what the tag then reads as."""

    registers: tuple[int, ...]
    bit: bool | None
    expected: WriteValue


def encode(tag: ModbusTag, value: WriteValue, default_order: ByteOrder = "ABCD") -> Encoded:
    """Encode ``value`` for ``tag`` (see the module doc); raises :class:`NotRepresentable`."""
    if tag.table in ("input", "discrete_input"):
        raise NotRepresentable(f"tag {tag.name} is in the {tag.table} table: read-only")
    order = tag.byte_order or default_order
    if tag.type == "bool":
        bit = _bool(tag, value)
        if tag.table == "coil":
            return _finish(tag, default_order, (), bit, [bit])
        return _finish(tag, default_order, (), bit, [int(bit) << (tag.bit or 0)])
    if tag.table == "coil":
        raise NotRepresentable(f"tag {tag.name}: a coil holds true/false, not {tag.type}")
    if tag.type == "string":
        registers = _string(tag, value, order)
    elif tag.type in INTEGER_BITS:
        raw = _enum_code(tag, value) if tag.enum is not None else _integer(tag, value)
        if tag.sentinel is not None and raw == tag.sentinel:
            raise _sentinel(tag, value)
        registers = _registers(struct.pack(">" + STRUCT_CODE[tag.type], raw), order)
    else:
        registers = _registers(_float(tag, value), order)
    return _finish(tag, default_order, registers, None, list(registers))


def decode_tag(
    tag: ModbusTag, data: Sequence[int] | Sequence[bool], default_order: ByteOrder, code: bool
) -> tuple[Value, Quality, str]:
    """``tag`` decoded from its own registers (or bit) by the agent's decoder, as a poll
    decodes it; with ``code``, the raw code of an enum tag (its ``<name>_code`` tag)."""
    request = ReadRequest(tag.table, tag.address, tag.register_count, (0,))
    decoder = compile_decoder(request, [tag], default_order, {0: 1} if code else None)
    values: list[Value] = [None, None]
    qualities = [Quality.BAD, Quality.BAD]
    reasons = ["", ""]
    decoder.decode(data, values, qualities, reasons)
    at = 1 if code else 0
    return values[at], qualities[at], reasons[at]


def _finish(
    tag: ModbusTag,
    default_order: ByteOrder,
    registers: tuple[int, ...],
    bit: bool | None,
    data: list[int] | list[bool],
) -> Encoded:
    value, quality, reason = decode_tag(tag, data, default_order, code=False)
    if quality is not Quality.GOOD or value is None:
        raise NotRepresentable(f"tag {tag.name} would read back as bad ({reason})")
    return Encoded(registers, bit, value)


def _registers(data: bytes, order: ByteOrder) -> tuple[int, ...]:
    wire = bytes(data[i] for i in _WIRE_ORDER[len(data)][order])
    return struct.unpack(f">{len(wire) // 2}H", wire)


def _bool(tag: ModbusTag, value: WriteValue) -> bool:
    if tag.enum is not None and isinstance(value, str):
        raw = _enum_code(tag, value)
    elif isinstance(value, bool):
        raw = int(value)
    elif isinstance(value, int) and value in (0, 1):
        raw = value
    else:
        raise NotRepresentable(f"tag {tag.name} takes true or false, not {value!r}")
    if raw not in (0, 1):
        raise NotRepresentable(f"tag {tag.name} is one bit: {value!r} stands for {raw}")
    if tag.sentinel is not None and raw == tag.sentinel:
        raise _sentinel(tag, value)
    return raw == 1


def _enum_code(tag: ModbusTag, value: WriteValue) -> int:
    labels = tag.enum or {}
    if isinstance(value, str):
        codes = [code for code, label in labels.items() if label == value]
        if len(codes) == 1:
            return codes[0]
        if codes:
            raise NotRepresentable(
                f"{value!r} stands for several codes of tag {tag.name} ({codes}): "
                "write the code instead"
            )
    elif isinstance(value, int) and not isinstance(value, bool) and value in labels:
        return value
    known = ", ".join(f"{label} ({code})" for code, label in labels.items())
    raise NotRepresentable(f"{value!r} is not one of the values of tag {tag.name}: {known}")


def _number(tag: ModbusTag, value: WriteValue) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotRepresentable(f"tag {tag.name} takes a number, not {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise NotRepresentable(f"tag {tag.name} takes a finite number, not {value!r}")
    return value


def _integer(tag: ModbusTag, value: WriteValue) -> int:
    number = _number(tag, value)
    bits = INTEGER_BITS[tag.type]
    low, high = (
        (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if tag.type[0] == "i"
        else (
            0,
            (1 << bits) - 1,
        )
    )
    if tag.scale == 1.0 and tag.offset == 0.0 and isinstance(number, int):
        raw = number  # exact: a 64-bit value must not pass through a float
    else:
        exact = _EXACT.divide(
            _EXACT.subtract(_decimal(number), _decimal(tag.offset)), _decimal(tag.scale)
        )
        nearest = exact.to_integral_value()
        noise = _EXACT.divide(
            FLOAT_NOISE * (abs(_decimal(number)) + abs(_decimal(tag.offset))),
            abs(_decimal(tag.scale)),
        )
        if abs(exact - nearest) > WHOLE_TOLERANCE + noise:
            below = int(exact.to_integral_value(ROUND_FLOOR))
            above = int(exact.to_integral_value(ROUND_CEILING))
            holds = [
                _show(tag, r) for r in (below, above) if low <= r <= high and r != tag.sentinel
            ]
            nearest_text = (
                f": the nearest values it can hold are {' and '.join(holds)}" if holds else ""
            )
            raise NotRepresentable(
                f"{_show_value(tag, number)} is not {_multiple(tag)}{nearest_text}"
            )
        raw = int(nearest)
    if not low <= raw <= high:
        ends = sorted((_eng(tag, low), _eng(tag, high)))
        span = f"{_span(low, high)} raw"
        if tag.scale != 1.0 or tag.offset != 0.0:
            span += f", i.e. {_span(*ends)}{_unit(tag)}"
        raise NotRepresentable(
            f"{_show_value(tag, number)} is out of range: tag {tag.name} ({tag.type}) holds {span}"
        )
    return raw


def _float(tag: ModbusTag, value: WriteValue) -> bytes:
    try:
        number = float(_number(tag, value))
    except OverflowError:  # an int beyond any float (10**400)
        raise NotRepresentable(
            f"a number that large is beyond what tag {tag.name} ({tag.type}) can hold"
        ) from None
    raw = number if tag.scale == 1.0 and tag.offset == 0.0 else (number - tag.offset) / tag.scale
    code = STRUCT_CODE[tag.type]
    try:
        if not math.isfinite(raw):
            raise OverflowError
        data = struct.pack(">" + code, raw)
    except OverflowError:
        raise NotRepresentable(
            f"{_show_value(tag, number)} is beyond what tag {tag.name} ({tag.type}) can hold"
        ) from None
    if tag.sentinel is not None:
        try:
            sentinel = struct.pack(">" + code, tag.sentinel)
        except OverflowError:
            sentinel = b""
        if data == sentinel:
            raise _sentinel(tag, value)
    return data


def _string(tag: ModbusTag, value: WriteValue, order: ByteOrder) -> tuple[int, ...]:
    length = tag.length or 0
    if not isinstance(value, str):
        raise NotRepresentable(f"tag {tag.name} takes a text, not {value!r}")
    if not value.isascii():
        raise NotRepresentable(f"tag {tag.name} takes ASCII text only: {value!r} is not")
    if "\0" in value:
        raise NotRepresentable(f"tag {tag.name}: a NUL character would end the text there")
    if len(value) > 2 * length:
        raise NotRepresentable(
            f"{value!r} is {len(value)} characters: tag {tag.name} holds at most "
            f"{2 * length} ({length} registers)"
        )
    data = value.encode("ascii").ljust(2 * length, b"\0")
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return tuple(int.from_bytes(w, "big") for w in words)


def _sentinel(tag: ModbusTag, value: WriteValue) -> NotRepresentable:
    return NotRepresentable(
        f"{value!r} would be written as {tag.sentinel}, the raw value tag {tag.name} "
        "reports for 'no data' (its sentinel): it would read back as bad"
    )


def _decimal(number: float) -> Decimal:
    """A number as the decimal it prints as (0.1 is one tenth), like DecimalScale."""
    return Decimal(repr(number)) if isinstance(number, float) else Decimal(number)


def _eng(tag: ModbusTag, raw: int) -> float:
    return DecimalScale(tag.scale, tag.offset)(raw)


def _num(number: float) -> str:
    """A number as a person writes it: 6.5, 0.1, 6553 (not 6553.0 or 6.500000000000001)."""
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def _span(low: float, high: float) -> str:
    """``0-65535``; ``-32768 to 32767`` (a dash between negative numbers misleads)."""
    return f"{_num(low)} to {_num(high)}" if low < 0 or high < 0 else f"{_num(low)}-{_num(high)}"


def _unit(tag: ModbusTag) -> str:
    return f" {tag.unit}" if tag.unit else ""


def _show(tag: ModbusTag, raw: int) -> str:
    return _num(_eng(tag, raw))


def _show_value(tag: ModbusTag, number: float) -> str:
    return f"{_num(number)}{_unit(tag)}"


def _multiple(tag: ModbusTag) -> str:
    if tag.offset == 0.0:
        if tag.scale == 1.0:
            return f"a whole number (tag {tag.name} is {tag.type})"
        return f"a multiple of the scale {_num(tag.scale)} of tag {tag.name}"
    return f"{_num(tag.offset)} plus a multiple of {_num(tag.scale)} (tag {tag.name})"


__all__ = ["Encoded", "NotRepresentable", "decode_tag", "encode"]
