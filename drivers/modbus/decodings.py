"""A block of registers decoded as every type and byte order that fits: the ``read`` table.

Pure: no I/O. The values come from the agent's own decoder
(:func:`~drivers.modbus.compiler.compile_decoder`): each candidate decoding is a
:class:`~edge_agent.config.ModbusTag` compiled over the block, so what ``read`` and
``probe`` show is exactly what a tag written that way will publish (byte orders, NaN,
strings: see :mod:`drivers.modbus.codec`). There is no second decoder to disagree with.

For 16-bit types only two byte orders differ: ABCD (= CDAB, as sent) and BADC (= DCBA,
the two bytes of the register swapped). They are listed under ABCD and BADC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from drivers.modbus.compiler import compile_decoder
from drivers.modbus.planner import ReadRequest
from edge_agent.config import REGISTER_COUNT, ByteOrder, ModbusTable, ModbusTag
from edge_agent.model import Quality, Value

#: Numeric types in the order the table lists them.
NUMERIC_TYPES: Final = (
    "int16",
    "uint16",
    "int32",
    "uint32",
    "float32",
    "int64",
    "uint64",
    "float64",
)
BYTE_ORDERS: Final[tuple[ByteOrder, ...]] = ("ABCD", "CDAB", "BADC", "DCBA")
#: The orders that give distinct values for a one-register type.
SINGLE_REGISTER_ORDERS: Final[tuple[ByteOrder, ...]] = ("ABCD", "BADC")
FLOAT_TYPES: Final = frozenset({"float32", "float64"})
SIGNED_TYPES: Final = frozenset({"int16", "int32", "int64"})


@dataclass(frozen=True, slots=True)
class Decoding:
    """One way to read the block: ``type`` in ``byte_order`` starting ``offset`` registers
    after the first register read, times ``scale``."""

    offset: int
    type: str
    byte_order: ByteOrder
    scale: float
    value: Value
    quality: Quality
    reason: str

    @property
    def registers(self) -> int:
        return REGISTER_COUNT.get(self.type, 0)


def orders_for(type_: str) -> tuple[ByteOrder, ...]:
    """The byte orders that give distinct values for ``type_``."""
    return SINGLE_REGISTER_ORDERS if REGISTER_COUNT.get(type_, 0) == 1 else BYTE_ORDERS


def layouts(
    count: int,
    *,
    types: Iterable[str] = NUMERIC_TYPES,
    orders: Iterable[ByteOrder] | None = None,
    offsets: Iterable[int] = (0,),
) -> list[tuple[int, str, ByteOrder]]:
    """Every (offset, type, byte order) that fits in a block of ``count`` registers."""
    wanted = None if orders is None else tuple(orders)
    found = []
    for offset in offsets:
        for type_ in types:
            if offset + REGISTER_COUNT[type_] > count:
                continue
            for order in orders_for(type_):
                if wanted is None or order in wanted:
                    found.append((offset, type_, order))
    return found


def decode(
    table: ModbusTable,
    address: int,
    registers: Sequence[int],
    wanted: Sequence[tuple[int, str, ByteOrder]],
    scales: Sequence[float] = (1.0,),
) -> list[Decoding]:
    """Decode ``registers`` (read from ``address`` of ``table``) as each of ``wanted``
    times each of ``scales`` (floats only at scale 1: a scaled float is rare and would
    only add noise), with the agent's compiled decoder."""
    tags: list[ModbusTag] = []
    keys: list[tuple[int, str, ByteOrder, float]] = []
    for offset, type_, order in wanted:
        for scale in scales if type_ not in FLOAT_TYPES else (1.0,):
            tags.append(
                ModbusTag(
                    name=f"t{len(tags)}",
                    table=table,
                    address=address + offset,
                    type=type_,  # type: ignore[arg-type]
                    byte_order=order,
                    scale=scale,
                )
            )
            keys.append((offset, type_, order, scale))
    return _run(table, address, registers, tags, keys)


def decode_string(table: ModbusTable, address: int, registers: Sequence[int]) -> list[Decoding]:
    """The block as text, in both character orders; only the readable results
    (a block of numbers rarely decodes to printable text, and then it is noise)."""
    tags = [
        ModbusTag(
            name=f"s{n}",
            table=table,
            address=address,
            type="string",
            length=len(registers),
            byte_order=order,
        )
        for n, order in enumerate(SINGLE_REGISTER_ORDERS)
    ]
    keys = [(0, "string", order, 1.0) for order in SINGLE_REGISTER_ORDERS]
    return [
        d
        for d in _run(table, address, registers, tags, keys)
        if isinstance(d.value, str) and d.value and d.value.isprintable()
    ]


def _run(
    table: ModbusTable,
    address: int,
    registers: Sequence[int],
    tags: list[ModbusTag],
    keys: list[tuple[int, str, ByteOrder, float]],
) -> list[Decoding]:
    if not tags:
        return []
    request = ReadRequest(table, address, len(registers), tuple(range(len(tags))))
    decoder = compile_decoder(request, tags)
    values: list[Value] = [None] * len(tags)
    qualities = [Quality.BAD] * len(tags)
    reasons = [""] * len(tags)
    decoder.decode(registers, values, qualities, reasons)
    return [
        Decoding(offset, type_, order, scale, values[i], qualities[i], reasons[i])
        for i, (offset, type_, order, scale) in enumerate(keys)
    ]


def format_value(decoding: Decoding) -> str:
    """A value as a person compares it with a display: floats to their type's precision."""
    value = decoding.value
    if decoding.quality is Quality.BAD:
        return decoding.reason or "bad"
    if isinstance(value, float):
        if decoding.type == "float32":
            return f"{value:.7g}"
        if decoding.type == "float64":
            return f"{value:.15g}"
        return _scaled(value, decoding.scale)
    return str(value)


def _scaled(value: float, scale: float) -> str:
    """A scaled integer to the scale's decimals (12.100000000000001 -> 12.1)."""
    decimals = 0
    step = abs(scale)
    while decimals < 9 and abs(step * 10**decimals - round(step * 10**decimals)) > 1e-9:
        decimals += 1
    return f"{value:.{decimals}f}"


def render_table(decodings: Sequence[Decoding]) -> list[str]:
    """Rows of type x byte order (16-bit types under ABCD and BADC only)."""
    by_key = {(d.type, d.byte_order): format_value(d) for d in decodings}
    types = [t for t in NUMERIC_TYPES if any(d.type == t for d in decodings)]
    rows = [["type", *BYTE_ORDERS]]
    for type_ in types:
        rows.append([type_, *(by_key.get((type_, order), "") for order in BYTE_ORDERS)])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
