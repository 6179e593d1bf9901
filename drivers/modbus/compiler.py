"""Compiling the decoder of one read request: struct formats, lanes, fix-up lists.

Done once per :class:`~drivers.modbus.planner.ReadRequest` (:class:`DecoderCache`
keeps them), so that a poll's decoding (:class:`~drivers.modbus.codec.BlockDecoder`)
branches on nothing: which tags are read by which ``struct`` call, which need
scaling, a bit, an enum or a string, is decided here. Byte orders and value rules are
described in :mod:`drivers.modbus.codec`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from drivers.modbus.codec import (
    REASON_NAN,
    SWAPPED,
    WIRE,
    BlockDecoder,
    Finisher,
    Segment,
    gather,
    unknown_enum_reason,
)
from drivers.modbus.planner import ReadRequest
from edge_agent.config import REGISTER_COUNT, ByteOrder, ModbusTag
from edge_agent.errors import ConfigError
from edge_agent.model import REASON_DECODE, REASON_SENTINEL, Quality, Value
from edge_agent.rounding import DecimalScale, scaled_float

_GOOD = Quality.GOOD
_BAD = Quality.BAD
_UNCERTAIN = Quality.UNCERTAIN

#: struct codes of the fixed-size types (sizes are standard with an explicit "<" or ">").
STRUCT_CODE: dict[str, str] = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
    "float32": "f",
    "float64": "d",
}
_FLOAT_TYPES = frozenset({"float32", "float64"})
_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})

#: (buffer, struct byte order) for values of two or more registers.
_MULTI_REGISTER: dict[str, tuple[int, str]] = {
    "ABCD": (WIRE, ">"),
    "DCBA": (WIRE, "<"),
    "BADC": (SWAPPED, ">"),
    "CDAB": (SWAPPED, "<"),
}


def _layout(tag: ModbusTag, order: ByteOrder) -> tuple[int, str, str]:
    """(buffer, struct byte order, struct code) that reads ``tag`` from a register block."""
    if tag.type == "string":
        buffer = WIRE if order in ("ABCD", "CDAB") else SWAPPED
        return buffer, ">", f"{2 * (tag.length or 0)}s"
    if tag.type == "bool":
        return WIRE, ">", "H"
    code = STRUCT_CODE[tag.type]
    if REGISTER_COUNT[tag.type] == 1:
        return WIRE, (">" if order in ("ABCD", "CDAB") else "<"), code
    buffer, endian = _MULTI_REGISTER[order]
    return buffer, endian, code


def _sentinel(tag: ModbusTag) -> float:
    """The raw value to compare with, as the device would encode it; NaN never matches."""
    if tag.sentinel is None:
        return float("nan")
    if tag.type == "float32":
        try:
            return float(struct.unpack("<f", struct.pack("<f", tag.sentinel))[0])
        except OverflowError:  # beyond float32: no register pattern can match it
            return tag.sentinel
    return tag.sentinel


def _string_finisher() -> Finisher:
    def finish_string(
        raw: bytes, p: int, values: list[Value], qualities: list[Quality], reasons: list[str]
    ) -> None:
        try:
            values[p] = raw.split(b"\0", 1)[0].rstrip(b" ").decode("utf-8")
        except UnicodeDecodeError:
            values[p] = None
            qualities[p] = _BAD
            reasons[p] = REASON_DECODE

    return finish_string


def _general_finisher(tag: ModbusTag, mask: int) -> Finisher:
    """Slow path for the rare combinations (a sentinel with an enum or on a bool, a
    scaled float, a scale too fine for exact integer arithmetic)."""
    sentinel = _sentinel(tag)
    enum = tag.enum
    is_bool = tag.type == "bool"
    is_float = tag.type in _FLOAT_TYPES
    is_float32 = tag.type == "float32"
    scale: float = tag.scale
    offset: float = tag.offset
    identity = scale == 1.0 and offset == 0.0
    exact = DecimalScale(scale, offset)
    scale_dec, offset_dec = Decimal(repr(scale)), Decimal(repr(offset))

    def finish(
        raw: Any, p: int, values: list[Value], qualities: list[Quality], reasons: list[str]
    ) -> None:
        if mask:
            raw = 1 if raw & mask else 0
        elif is_bool:
            raw = 1 if raw else 0
        if raw == sentinel:
            values[p] = None
            qualities[p] = _BAD
            reasons[p] = REASON_SENTINEL
        elif is_float and raw - raw != 0.0:
            values[p] = None
            qualities[p] = _BAD
            reasons[p] = REASON_NAN
        elif enum is not None:
            label = enum.get(raw)
            if label is None:
                values[p] = str(raw)
                qualities[p] = _UNCERTAIN
                reasons[p] = unknown_enum_reason(raw)
            else:
                values[p] = label
        elif is_bool:
            values[p] = raw == 1
        elif is_float:
            values[p] = scaled_float(raw, scale_dec, offset_dec, is_float32)
        else:
            values[p] = raw if identity else exact(raw)

    return finish


Field = tuple[int, str, str, int]  # (buffer, struct byte order, struct code, byte offset)


def compile_decoder(
    request: ReadRequest,
    tags: Sequence[ModbusTag],
    default_byte_order: ByteOrder = "ABCD",
    codes: Mapping[int, int] | None = None,
) -> BlockDecoder:
    """Compile the decoder of ``request``; ``tags`` is the whole poll group, by position.

    ``codes`` maps the position of an integer enum tag to the position that gets its
    raw code (``state_code`` beside ``state``): see :mod:`drivers.modbus.codec`.

    Raises :class:`ConfigError` for tags the config checks should have refused
    (a non-bool in a bit table, a bool in a register without ``bit``, a string
    without ``length``, a tag outside the request), rather than guess.
    """
    problems: list[str] = []
    bits = request.reads_bits
    # Fields read from the block, deduplicated so that bits of one register share
    # one read of it. Bit tables have no fields: a tag's key is its bit's index.
    fields: dict[Field, int] = {}
    keys: list[tuple[int, Field | int]] = []
    floats: list[tuple[int, Field | int]] = []
    float32s: list[tuple[int, Field | int]] = []
    numeric: list[tuple[int, Field | int, int, int, int, float]] = []
    sentinels: list[tuple[int, Field | int, float]] = []
    masks: list[tuple[int, Field | int, int]] = []
    enums: list[tuple[int, Field | int, dict[int, str]]] = []
    general: list[tuple[int, Field | int, Finisher]] = []
    code_pairs: list[tuple[int, int]] = []
    codes = codes or {}

    for p in request.positions:
        tag = tags[p]
        if not request.start <= tag.address <= request.end or tag.table != request.table:
            problems.append(f"tag {tag.name!r} is not in {request.describe()}")
            continue
        if bits:
            if tag.type != "bool":
                problems.append(f"tag {tag.name!r}: a {tag.table} holds bools, not {tag.type}")
                continue
            key: Field | int = tag.address - request.start
            keys.append((p, key))
            if tag.sentinel is not None or tag.enum is not None:
                general.append((p, key, _general_finisher(tag, 0)))
            continue

        if tag.type == "bool" and tag.bit is None:
            problems.append(f"tag {tag.name!r}: a bool in a register needs bit")
            continue
        if tag.type == "string" and not tag.length:
            problems.append(f"tag {tag.name!r}: a string needs length")
            continue
        size = tag.length if tag.type == "string" else REGISTER_COUNT[tag.type]
        if tag.address + (size or 0) - 1 > request.end:
            problems.append(f"tag {tag.name!r} runs past the end of {request.describe()}")
            continue
        key = (
            *_layout(tag, tag.byte_order or default_byte_order),
            2 * (tag.address - request.start),
        )
        fields.setdefault(key, len(fields))
        keys.append((p, key))
        is_float = tag.type in _FLOAT_TYPES
        scaled = tag.scale != 1.0 or tag.offset != 0.0
        if tag.type == "string":
            general.append((p, key, _string_finisher()))
        elif tag.type == "bool":
            mask = 1 << (tag.bit or 0)
            if tag.sentinel is None and tag.enum is None:
                masks.append((p, key, mask))
            else:
                general.append((p, key, _general_finisher(tag, mask)))
        elif tag.enum is not None:
            if tag.sentinel is None and not is_float and not scaled:
                enums.append((p, key, tag.enum))
            else:
                general.append((p, key, _general_finisher(tag, 0)))
            if p in codes and tag.type in _INTEGER_TYPES:
                keys.append((codes[p], key))  # the raw integer itself, GOOD
                code_pairs.append((p, codes[p]))
        elif scaled:
            exact = DecimalScale(tag.scale, tag.offset)
            if is_float or not exact.exact:
                general.append((p, key, _general_finisher(tag, 0)))
            else:
                numeric.append((p, key, exact.factor, exact.shift, exact.divisor, _sentinel(tag)))
        else:
            if is_float:
                floats.append((p, key))
            if tag.type == "float32":
                float32s.append((p, key))
            if tag.sentinel is not None:
                sentinels.append((p, key, _sentinel(tag)))
    if problems:
        raise ConfigError(problems)

    lanes, index_of = _lanes(fields)

    def index(key: Field | int) -> int:
        return key if isinstance(key, int) else index_of[key]

    return BlockDecoder(
        request,
        lanes=lanes,
        segments=_segments([(p, index(k)) for p, k in keys]),
        floats=[(p, index(k)) for p, k in floats],
        float32s=[(p, index(k)) for p, k in float32s],
        numeric=[(p, index(k), m, sh, d, sen) for p, k, m, sh, d, sen in numeric],
        sentinels=[(p, index(k), sen) for p, k, sen in sentinels],
        masks=[(p, index(k), mask) for p, k, mask in masks],
        enums=[(p, index(k), labels) for p, k, labels in enums],
        general=[(p, index(k), finish) for p, k, finish in general],
        codes=code_pairs,
    )


def _lanes(
    fields: dict[Field, int],
) -> tuple[list[tuple[Callable[[bytes], tuple[Any, ...]], int]], dict[Field, int]]:
    """Pack the fields into as few ``Struct`` formats as possible.

    One format reads one buffer in one byte order, front to back with pad bytes
    over gaps; fields that overlap (only with unusual configs) go to another lane.
    Returns the lanes and each field's index in the concatenation of their tuples.
    """
    lane_keys: list[tuple[int, str]] = []
    lane_ends: list[int] = []
    lane_members: list[list[Field]] = []
    for key in sorted(fields, key=lambda k: (k[0], k[1], k[3])):
        buffer, endian, code, offset = key
        for n, lane_key in enumerate(lane_keys):
            if lane_key == (buffer, endian) and lane_ends[n] <= offset:
                break
        else:
            n = len(lane_keys)
            lane_keys.append((buffer, endian))
            lane_ends.append(0)
            lane_members.append([])
        lane_ends[n] = offset + struct.calcsize(endian + code)
        lane_members[n].append(key)

    compiled: list[tuple[Callable[[bytes], tuple[Any, ...]], int]] = []
    index_of: dict[Field, int] = {}
    for (buffer, endian), members in zip(lane_keys, lane_members, strict=True):
        parts, at = [endian], 0
        for _, _, code, offset in members:
            if offset > at:
                parts.append(f"{offset - at}x")  # pad bytes cost nothing to skip
            parts.append(code)
            at = offset + struct.calcsize(endian + code)
        compiled.append((struct.Struct("".join(parts)).unpack_from, buffer))
        for key in members:
            index_of[key] = len(index_of)
    return compiled, index_of


def _segments(keys: list[tuple[int, int]]) -> list[Segment]:
    """Group (position, raw index) pairs into runs of consecutive positions."""
    segments: list[Segment] = []
    keys.sort()
    start = 0
    for n in range(1, len(keys) + 1):
        if n < len(keys) and keys[n][0] == keys[n - 1][0] + 1:
            continue
        run = keys[start:n]
        length = len(run)
        p0 = run[0][0]
        segments.append(
            (p0, p0 + length, gather([i for _, i in run]), [_GOOD] * length, [""] * length)
        )
        start = n
    return segments


class DecoderCache:
    """Compiled decoders of one poll group, by request, compiled on first use.

    The requests a plan produces are few and, hole learning included, bounded, so
    the cache needs no eviction.
    """

    __slots__ = ("_codes", "_decoders", "_order", "_tags")

    def __init__(
        self,
        tags: Sequence[ModbusTag],
        default_byte_order: ByteOrder = "ABCD",
        codes: Mapping[int, int] | None = None,
    ) -> None:
        self._tags = tags
        self._order: ByteOrder = default_byte_order
        self._codes = dict(codes or {})
        self._decoders: dict[ReadRequest, BlockDecoder] = {}

    def __getitem__(self, request: ReadRequest) -> BlockDecoder:
        decoder = self._decoders.get(request)
        if decoder is None:
            decoder = compile_decoder(request, self._tags, self._order, self._codes)
            self._decoders[request] = decoder
        return decoder

    def __len__(self) -> int:
        return len(self._decoders)
