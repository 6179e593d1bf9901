"""Encode physical values into Modbus registers, written independently of drivers/.

The simulator is the agent's reference: if this encoder and the agent's decoder
shared code, a shared mistake would pass every test. So this is plain
``struct`` on big-endian bytes followed by explicit re-ordering.

Conventions (the same ones the agent's config uses)::

    physical = raw * scale + offset         (so raw = (physical - offset) / scale)

* Integer types: ``raw`` is rounded to the nearest integer and wrapped modulo
  ``2**bits`` (two's complement for signed types), as device counters roll over.
  An integer value with scale 1 and offset 0 is encoded exactly (no float).
  Counters that real devices floor (energy, parts) are already floored by the
  model, so rounding here is exact for them.
* Float types: ``raw`` is packed as IEEE 754.
* Byte order of the value's big-endian bytes ``A B C D [E F G H]``:
  ``ABCD`` as is; ``BADC`` bytes swapped within each register; ``CDAB`` register
  order reversed (for 64-bit: ``GH EF CD AB``); ``DCBA`` fully reversed.
* Strings: ASCII, first character in the high byte of the first register,
  NUL padded to ``length`` registers (``BADC`` swaps the bytes in each register).
* Bits (coils, discrete inputs): one bool per address.

:func:`decode` is the inverse, for the registers a client writes: the simulator
turns them back into a physical value with the same rules, again without drivers/.
"""

from __future__ import annotations

import struct
from typing import Literal

Table = Literal["coil", "discrete_input", "holding", "input"]
RegisterType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
ByteOrder = Literal["ABCD", "BADC", "CDAB", "DCBA"]

BIT_TABLES: frozenset[Table] = frozenset({"coil", "discrete_input"})

#: struct code and register count of each fixed-size type.
_STRUCT: dict[str, tuple[str, int]] = {
    "int16": ("H", 1),
    "uint16": ("H", 1),
    "int32": ("I", 2),
    "uint32": ("I", 2),
    "int64": ("Q", 4),
    "uint64": ("Q", 4),
    "float32": ("f", 2),
    "float64": ("d", 4),
}


def register_count(type_: RegisterType, length: int | None = None) -> int:
    """Registers a value occupies (strings: ``length``; bool: one bit, counted as 1)."""
    if type_ == "string":
        if length is None:
            raise ValueError("a string needs a length in registers")
        return length
    if type_ == "bool":
        return 1
    return _STRUCT[type_][1]


def reorder(data: bytes, order: ByteOrder) -> bytes:
    """Apply ``order`` to big-endian bytes (length a multiple of 2)."""
    if order == "ABCD":
        return data
    if order == "DCBA":
        return data[::-1]
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order == "BADC":
        return b"".join(w[::-1] for w in words)
    return b"".join(reversed(words))  # CDAB


def to_registers(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def encode(
    value: bool | float | str,
    type_: RegisterType,
    *,
    byte_order: ByteOrder = "ABCD",
    scale: float = 1.0,
    offset: float = 0.0,
    length: int | None = None,
) -> list[int]:
    """Registers that represent ``value`` (see the module docstring for the rules)."""
    if type_ == "string":
        if not isinstance(value, str) or length is None:
            raise TypeError("a string point needs a str value and a length")
        raw_bytes = value.encode("ascii", errors="replace")[: 2 * length].ljust(2 * length, b"\0")
        return to_registers(reorder(raw_bytes, byte_order))
    if isinstance(value, str):
        raise TypeError(f"cannot encode the string {value!r} as {type_}")
    if type_ == "bool":
        raise TypeError("bool points live in coil / discrete_input tables; use encode_bit")
    code, count = _STRUCT[type_]
    if isinstance(value, int) and scale == 1 and offset == 0:
        raw: float = value  # exact: a 64-bit counter must not pass through a float
    else:
        raw = (float(value) - offset) / scale
    if code in "fd":
        data = struct.pack(f">{code}", raw)
    else:
        data = struct.pack(f">{code}", round(raw) % (1 << (16 * count)))
    return to_registers(reorder(data, byte_order))


def encode_bit(value: bool | float | str) -> bool:
    """A bit: true for any non-zero number."""
    if isinstance(value, str):
        raise TypeError("cannot encode a string as a bit")
    return bool(value)


#: Signed integer types: their raw value is two's complement.
_SIGNED = frozenset({"int16", "int32", "int64"})


def from_registers(registers: list[int]) -> bytes:
    """The big-endian bytes of ``registers`` (each 0-65535)."""
    if any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError("a register holds 0-65535")
    return b"".join(r.to_bytes(2, "big") for r in registers)


def decode(
    registers: list[int],
    type_: RegisterType,
    *,
    byte_order: ByteOrder = "ABCD",
    scale: float = 1.0,
    offset: float = 0.0,
    length: int | None = None,
) -> int | float | str:
    """The physical value ``registers`` hold: the inverse of :func:`encode`.

    Integer types with scale 1 and offset 0 give an exact ``int``; otherwise
    ``raw * scale + offset`` as a float. Floats give the IEEE 754 value (NaN and
    infinities included: whoever takes the value decides). Strings stop at the
    first NUL; a non-ASCII byte raises ``ValueError``.
    """
    if type_ == "bool":
        raise TypeError("bool points live in coil / discrete_input tables")
    size = register_count(type_, length)
    if len(registers) != size:
        raise ValueError(f"{type_} takes {size} registers, got {len(registers)}")
    data = reorder(from_registers(registers), byte_order)  # each order is its own inverse
    if type_ == "string":
        text = data.split(b"\0", 1)[0]
        return text.decode("ascii")  # raises UnicodeDecodeError (a ValueError)
    code, _count = _STRUCT[type_]
    if code in "fd":
        number = struct.unpack(f">{code}", data)[0]
        return float(number * scale + offset) if (scale, offset) != (1, 0) else float(number)
    raw = int.from_bytes(data, "big", signed=type_ in _SIGNED)
    if scale == 1 and offset == 0:
        return raw
    return raw * scale + offset
