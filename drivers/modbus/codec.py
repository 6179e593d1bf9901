"""Decoding whole Modbus register and bit blocks straight into a batch's parallel lists.

Pure: no I/O, no pymodbus. Once per :class:`~drivers.modbus.planner.ReadRequest` the
driver compiles a :class:`BlockDecoder` (:func:`compile_decoder`, or a
:class:`DecoderCache`); each poll it hands the decoder ``response.registers`` (or
``response.bits``) and the batch's ``values``, ``qualities`` and ``reasons`` lists.
The block is packed to bytes once, every value comes out of a handful of
precompiled :class:`struct.Struct` calls, is copied into place by slice
assignment, and the few values that need more (scale, bits, enum, strings, bad
samples) are fixed up in one loop per kind of work over precomputed tuples: nothing
branches on a tag's type and no object is created per sample.

Byte orders
    Letters name the bytes of the value, ``A`` the most significant; the order is
    the one in which they travel on the wire, each register's high byte first (which
    is how ``response.registers[i]`` holds them)::

        order  32-bit wire bytes  float32 123.456 (0x42F6E979)   64-bit wire bytes
        ABCD   A B C D            [0x42F6, 0xE979]  big-endian    A B C D E F G H
        CDAB   C D A B            [0xE979, 0x42F6]  word swap     G H E F C D A B
        BADC   B A D C            [0xF642, 0x79E9]  byte swap     B A D C F E H G
        DCBA   D C B A            [0x79E9, 0xF642]  little-end.   H G F E D C B A

    ABCD is the Modbus standard (big-endian). CDAB keeps each register big-endian
    but puts the least significant register first ("word swap", common on PLCs);
    BADC swaps the two bytes inside each register; DCBA is fully little-endian. For
    16-bit types ABCD and CDAB are big-endian, BADC and DCBA byte-swapped.

    How: the registers are packed big-endian once (the *wire* buffer) and, only if
    some tag needs it, little-endian once (the *swapped* buffer, each register's
    two bytes exchanged). ABCD reads the wire buffer big-endian, DCBA little-endian;
    BADC reads the swapped buffer big-endian, CDAB little-endian.

Values
    * Integers and floats: ``value = raw * scale + offset``; with scale 1 and offset
      0 an integer stays an ``int``, otherwise the value is a ``float``.
    * ``sentinel`` is compared with the raw value, before scaling (for float32 the
      sentinel is first rounded to float32, so ``-9999.9`` matches the register
      pattern a device writes for it): BAD, reason ``sentinel``.
    * A float NaN or ±inf: BAD, reason ``nan``.
    * ``enum`` maps the raw integer to its label (GOOD). A value missing from the
      map is UNCERTAIN with value ``str(raw)`` and reason ``unknown enum value N``:
      the device said something real we have no name for.
    * bool in a register: bit ``bit`` of the register value (bit 0 = LSB),
      whatever the byte order. Coils and discrete inputs: the bit itself.
    * string: ``length`` registers, two characters each, high byte first for
      ABCD/CDAB, low byte first for BADC/DCBA. The text ends at the first NUL (a
      C terminator: devices often leave stale bytes after it); trailing spaces are
      stripped; the bytes are decoded as strict UTF-8 (so ASCII too). Bytes that
      are not UTF-8 make the sample BAD with reason ``decode error``: a wrong
      ``length`` or ``byte_order`` should show up, not turn into mojibake.

    A BAD sample carries the value ``None``.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from drivers.modbus.planner import ReadRequest
from edge_agent.config import REGISTER_COUNT, ByteOrder, ModbusTag
from edge_agent.errors import ConfigError, DriverReadError
from edge_agent.model import REASON_DECODE, REASON_SENTINEL, Quality, Value

#: Reason on a float sample that is NaN or infinite.
REASON_NAN = "nan"


def unknown_enum_reason(raw: int) -> str:
    """Reason on an UNCERTAIN sample whose raw value is not in the tag's ``enum``."""
    return f"unknown enum value {raw}"


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

_WIRE = 0  # registers packed big-endian: the bytes as they came off the wire
_SWAPPED = 1  # registers packed little-endian: the two bytes of each register exchanged

#: (buffer, struct byte order) for values of two or more registers.
_MULTI_REGISTER: dict[str, tuple[int, str]] = {
    "ABCD": (_WIRE, ">"),
    "DCBA": (_WIRE, "<"),
    "BADC": (_SWAPPED, ">"),
    "CDAB": (_SWAPPED, "<"),
}

# A finisher (slow path: one call per sample) finishes position p, which already
# holds the raw value, GOOD and "": it overwrites the value, and the quality and
# reason when the sample is not good. Its raw argument is whatever struct produced
# for the tag's format (int, float or bytes), hence Any: the two are compiled together.
Finisher = Callable[[Any, int, list[Value], list[Quality], list[str]], None]


def _layout(tag: ModbusTag, order: ByteOrder) -> tuple[int, str, str]:
    """(buffer, struct byte order, struct code) that reads ``tag`` from a register block."""
    if tag.type == "string":
        buffer = _WIRE if order in ("ABCD", "CDAB") else _SWAPPED
        return buffer, ">", f"{2 * (tag.length or 0)}s"
    if tag.type == "bool":
        return _WIRE, ">", "H"
    code = STRUCT_CODE[tag.type]
    if REGISTER_COUNT[tag.type] == 1:
        return _WIRE, (">" if order in ("ABCD", "CDAB") else "<"), code
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
    """Slow path for the rare combinations (a sentinel with an enum or on a bool)."""
    sentinel = _sentinel(tag)
    enum = tag.enum
    is_bool = tag.type == "bool"
    is_float = tag.type in _FLOAT_TYPES
    scale: float = tag.scale
    offset: float = tag.offset
    identity = scale == 1.0 and offset == 0.0

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
        else:
            values[p] = raw if identity else raw * scale + offset

    return finish


Gather = Callable[[Sequence[Any]], Sequence[Any]]
Segment = tuple[int, int, Gather, list[Quality], list[str]]


def _gather(indexes: Sequence[int]) -> Gather:
    """A C-level ``lambda raw: [raw[i] for i in indexes]`` (a slice when contiguous)."""
    first = indexes[0]
    if list(indexes) == list(range(first, first + len(indexes))):
        return operator.itemgetter(slice(first, first + len(indexes)))
    return operator.itemgetter(*indexes)


class BlockDecoder:
    """Writes the tags of one :class:`ReadRequest` from its response into a batch.

    Compiled once per request (see :func:`compile_decoder`). :meth:`decode` works
    in two passes. First every covered position gets its raw value, GOOD and
    ``""`` by slice assignment, a run of consecutive positions at a time (C
    loops). Then a few Python loops overwrite only what differs: scaled values,
    register bits, enum labels, strings, and the samples that turn out bad. Plain
    integers, coils and floats (whose NaN check is one ``sum`` over the block)
    never reach a Python-level loop.
    """

    __slots__ = (
        "_bits",
        "_count",
        "_enums",
        "_float_check",
        "_floats",
        "_general",
        "_lanes",
        "_masks",
        "_numeric",
        "_pack_swapped",
        "_pack_wire",
        "_segments",
        "_sentinels",
        "request",
    )

    def __init__(
        self,
        request: ReadRequest,
        *,
        lanes: Sequence[tuple[Callable[[bytes], tuple[Any, ...]], int]],
        segments: Sequence[Segment],
        floats: Sequence[tuple[int, int]],
        numeric: Sequence[tuple[int, int, float, float, float]],
        sentinels: Sequence[tuple[int, int, float]],
        masks: Sequence[tuple[int, int, int]],
        enums: Sequence[tuple[int, int, dict[int, str]]],
        general: Sequence[tuple[int, int, Finisher]],
    ) -> None:
        self.request = request
        self._count = request.count
        self._bits = request.reads_bits
        self._pack_wire = struct.Struct(f">{request.count}H").pack
        needs_swapped = any(buffer == _SWAPPED for _, buffer in lanes)
        self._pack_swapped = struct.Struct(f"<{request.count}H").pack if needs_swapped else None
        self._lanes = tuple(lanes)
        self._segments = tuple(segments)
        self._floats = tuple(floats)
        self._float_check = _gather([i for _, i in floats]) if floats else None
        self._numeric = tuple(numeric)
        self._sentinels = tuple(sentinels)
        self._masks = tuple(masks)
        self._enums = tuple(enums)
        self._general = tuple(general)

    def decode(
        self,
        data: Sequence[int] | Sequence[bool],
        values: list[Value],
        qualities: list[Quality],
        reasons: list[str],
    ) -> None:
        """Decode ``response.registers`` (or ``response.bits``) of this request.

        Raises :class:`DriverReadError` (reason ``decode error``) if the response is
        shorter than requested or holds a value that is not a 16-bit register,
        before writing anything; the driver then marks the request's positions bad
        with ``exc.reason``.
        """
        raw = self._raw(data)
        for p0, p1, gather, goods, blanks in self._segments:
            values[p0:p1] = gather(raw)
            qualities[p0:p1] = goods
            reasons[p0:p1] = blanks
        if self._float_check is not None:
            # The sum of finite values is finite (float32 cannot overflow a double;
            # a float64 overflow only costs the exact check below): one C call
            # proves a whole block free of NaN and ±inf. x - x is 0 unless x is not.
            total = sum(self._float_check(raw))
            if total - total != 0:
                for p, i in self._floats:
                    v = raw[i]
                    if v - v != 0:
                        values[p] = None
                        qualities[p] = _BAD
                        reasons[p] = REASON_NAN
        for p, i, scale, offset, sentinel in self._numeric:
            v = raw[i]
            if v == sentinel:
                values[p] = None
                qualities[p] = _BAD
                reasons[p] = REASON_SENTINEL
            elif v - v != 0:
                values[p] = None
                qualities[p] = _BAD
                reasons[p] = REASON_NAN
            else:
                values[p] = v * scale + offset
        for p, i, sentinel in self._sentinels:  # after the NaN check: a sentinel wins
            if raw[i] == sentinel:
                values[p] = None
                qualities[p] = _BAD
                reasons[p] = REASON_SENTINEL
        for p, i, mask in self._masks:
            values[p] = raw[i] & mask != 0
        for p, i, labels in self._enums:
            v = raw[i]
            label = labels.get(v)
            if label is None:
                values[p] = str(v)
                qualities[p] = _UNCERTAIN
                reasons[p] = unknown_enum_reason(v)
            else:
                values[p] = label
        for p, i, finish in self._general:
            finish(raw[i], p, values, qualities, reasons)

    def _raw(self, data: Sequence[int] | Sequence[bool]) -> Sequence[Any]:
        """The raw value of every field: the bits themselves, or the unpacked registers."""
        if self._bits:
            if len(data) < self._count:  # pymodbus pads bits to a multiple of 8
                raise self._short(len(data))
            return data
        if len(data) != self._count:
            # Longer is as wrong as shorter: it is not the block that was asked for.
            raise self._short(len(data))
        try:
            buffers = (
                self._pack_wire(*data),
                self._pack_swapped(*data) if self._pack_swapped is not None else b"",
            )
        except struct.error as exc:
            raise DriverReadError(REASON_DECODE, f"{self.request.describe()}: {exc}") from None
        lanes = self._lanes
        if len(lanes) == 1:
            unpack, buffer = lanes[0]
            return unpack(buffers[buffer])
        raw: tuple[Any, ...] = ()
        for unpack, buffer in lanes:
            raw += unpack(buffers[buffer])
        return raw

    def _short(self, got: int) -> DriverReadError:
        unit = "bits" if self._bits else "registers"
        return DriverReadError(
            REASON_DECODE, f"{self.request.describe()}: the response holds {got} {unit}"
        )


Field = tuple[int, str, str, int]  # (buffer, struct byte order, struct code, byte offset)


def compile_decoder(
    request: ReadRequest, tags: Sequence[ModbusTag], default_byte_order: ByteOrder = "ABCD"
) -> BlockDecoder:
    """Compile the decoder of ``request``; ``tags`` is the whole poll group, by position.

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
    numeric: list[tuple[int, Field | int, float, float, float]] = []
    sentinels: list[tuple[int, Field | int, float]] = []
    masks: list[tuple[int, Field | int, int]] = []
    enums: list[tuple[int, Field | int, dict[int, str]]] = []
    general: list[tuple[int, Field | int, Finisher]] = []

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
        elif scaled:
            numeric.append((p, key, tag.scale, tag.offset, _sentinel(tag)))
        else:
            if is_float:
                floats.append((p, key))
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
        numeric=[(p, index(k), sc, off, sen) for p, k, sc, off, sen in numeric],
        sentinels=[(p, index(k), sen) for p, k, sen in sentinels],
        masks=[(p, index(k), mask) for p, k, mask in masks],
        enums=[(p, index(k), labels) for p, k, labels in enums],
        general=[(p, index(k), finish) for p, k, finish in general],
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
            (p0, p0 + length, _gather([i for _, i in run]), [_GOOD] * length, [""] * length)
        )
        start = n
    return segments


def fill_bad(
    positions: Iterable[int],
    reason: str,
    values: list[Value],
    qualities: list[Quality],
    reasons: list[str],
) -> None:
    """Mark ``positions`` BAD with ``reason`` (a failed or refused read)."""
    for p in positions:
        values[p] = None
        qualities[p] = _BAD
        reasons[p] = reason


class DecoderCache:
    """Compiled decoders of one poll group, by request, compiled on first use.

    The requests a plan produces are few and, hole learning included, bounded, so
    the cache needs no eviction.
    """

    __slots__ = ("_decoders", "_order", "_tags")

    def __init__(self, tags: Sequence[ModbusTag], default_byte_order: ByteOrder = "ABCD") -> None:
        self._tags = tags
        self._order: ByteOrder = default_byte_order
        self._decoders: dict[ReadRequest, BlockDecoder] = {}

    def __getitem__(self, request: ReadRequest) -> BlockDecoder:
        decoder = self._decoders.get(request)
        if decoder is None:
            decoder = compile_decoder(request, self._tags, self._order)
            self._decoders[request] = decoder
        return decoder

    def __len__(self) -> int:
        return len(self._decoders)
