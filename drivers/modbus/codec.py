"""Decoding whole Modbus register and bit blocks straight into a batch's parallel lists.

Pure: no I/O. Once per :class:`~drivers.modbus.planner.ReadRequest` the driver
compiles a :class:`BlockDecoder` (:mod:`drivers.modbus.compiler`: ``compile_decoder``,
or a ``DecoderCache``); each poll it hands the decoder the reply's registers (or bits)
and the batch's ``values``, ``qualities`` and ``reasons`` lists. The block is packed to
bytes once, every value comes out of a handful of precompiled :class:`struct.Struct`
calls, is copied into place by slice assignment, and the few values that need more
(scale, bits, enum, strings, bad samples) are fixed up in one loop per kind of work over
precomputed tuples: nothing branches on a tag's type and no object is created per sample.

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
    * Rounded to what the device can express (:mod:`edge_agent.rounding`): a float32
      is its shortest round-tripping decimal (``14.545378``, not
      ``14.545377731323242``); a scaled integer is exact in decimal (``121 * 0.1`` is
      ``12.1``, not ``12.100000000000001``); a scaled float is its shortest decimal
      times the scale, exact in decimal. A float64 is already printed shortest.
    * ``sentinel`` is compared with the raw value, before scaling (for float32 the
      sentinel is first rounded to float32, so ``-9999.9`` matches the register
      pattern a device writes for it): BAD, reason ``sentinel``.
    * A float NaN or ±inf: BAD, reason ``nan``.
    * ``enum`` maps the raw integer to its label (GOOD). A value missing from the
      map is UNCERTAIN with value ``str(raw)`` and reason ``unknown enum value N``:
      the device said something real we have no name for.
    * The raw integer of an enum tag is also written to the tag's *code* position
      (``state_code`` beside ``state``, when the caller asks for codes), GOOD even
      when the label is unknown: the code is what the device sent. When the label is
      BAD (a sentinel, a failed read), so is the code, with the same reason.
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
from edge_agent.errors import DriverReadError
from edge_agent.model import REASON_DECODE, REASON_SENTINEL, Quality, Value
from edge_agent.rounding import shortest_float32

#: Reason on a float sample that is NaN or infinite.
REASON_NAN = "nan"


def unknown_enum_reason(raw: int) -> str:
    """Reason on an UNCERTAIN sample whose raw value is not in the tag's ``enum``."""
    return f"unknown enum value {raw}"


_GOOD = Quality.GOOD
_BAD = Quality.BAD
_UNCERTAIN = Quality.UNCERTAIN

WIRE = 0  # registers packed big-endian: the bytes as they came off the wire
SWAPPED = 1  # registers packed little-endian: the two bytes of each register exchanged

# A finisher (slow path: one call per sample) finishes position p, which already
# holds the raw value, GOOD and "": it overwrites the value, and the quality and
# reason when the sample is not good. Its raw argument is whatever struct produced
# for the tag's format (int, float or bytes), hence Any: the two are compiled together.
Finisher = Callable[[Any, int, list[Value], list[Quality], list[str]], None]


Gather = Callable[[Sequence[Any]], Sequence[Any]]
Segment = tuple[int, int, Gather, list[Quality], list[str]]


def gather(indexes: Sequence[int]) -> Gather:
    """A C-level ``lambda raw: [raw[i] for i in indexes]`` (a slice when contiguous)."""
    first = indexes[0]
    if list(indexes) == list(range(first, first + len(indexes))):
        return operator.itemgetter(slice(first, first + len(indexes)))
    return operator.itemgetter(*indexes)


class BlockDecoder:
    """Writes the tags of one :class:`ReadRequest` from its response into a batch.

    Compiled once per request (:func:`drivers.modbus.compiler.compile_decoder`).
    :meth:`decode` works in two passes. First every covered position gets its raw value, GOOD and
    ``""`` by slice assignment, a run of consecutive positions at a time (C
    loops). Then a few Python loops overwrite only what differs: scaled values,
    register bits, enum labels, strings, and the samples that turn out bad. Plain
    integers, coils and floats (whose NaN check is one ``sum`` over the block)
    never reach a Python-level loop.
    """

    __slots__ = (
        "_bits",
        "_codes",
        "_count",
        "_enums",
        "_float32_positions",
        "_float32s",
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
        float32s: Sequence[tuple[int, int]],
        numeric: Sequence[tuple[int, int, int, int, int, float]],
        sentinels: Sequence[tuple[int, int, float]],
        masks: Sequence[tuple[int, int, int]],
        enums: Sequence[tuple[int, int, dict[int, str]]],
        general: Sequence[tuple[int, int, Finisher]],
        codes: Sequence[tuple[int, int]] = (),
    ) -> None:
        self.request = request
        self._count = request.count
        self._bits = request.reads_bits
        self._pack_wire = struct.Struct(f">{request.count}H").pack
        needs_swapped = any(buffer == SWAPPED for _, buffer in lanes)
        self._pack_swapped = struct.Struct(f"<{request.count}H").pack if needs_swapped else None
        self._lanes = tuple(lanes)
        self._segments = tuple(segments)
        self._floats = tuple(floats)
        self._float_check = gather([i for _, i in floats]) if floats else None
        self._float32_positions = tuple(p for p, _ in float32s)
        self._float32s = gather([i for _, i in float32s]) if float32s else None
        self._numeric = tuple(numeric)
        self._sentinels = tuple(sentinels)
        self._masks = tuple(masks)
        self._enums = tuple(enums)
        self._general = tuple(general)
        self._codes = tuple(codes)

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
        if self._float32s is not None:
            rounded = shortest_float32(self._float32s(raw))
            for p, value in zip(self._float32_positions, rounded, strict=True):
                values[p] = value
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
        for p, i, factor, shift, divisor, sentinel in self._numeric:
            v = raw[i]  # an integer: exact in decimal, see edge_agent.rounding.DecimalScale
            if v == sentinel:
                values[p] = None
                qualities[p] = _BAD
                reasons[p] = REASON_SENTINEL
            else:
                values[p] = (v * factor + shift) / divisor
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
        if self._codes:
            codes_follow(self._codes, values, qualities, reasons)

    def _raw(self, data: Sequence[int] | Sequence[bool]) -> Sequence[Any]:
        """The raw value of every field: the bits themselves, or the unpacked registers."""
        if self._bits:
            if len(data) < self._count:  # a bit reply is padded to a multiple of 8
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


def codes_follow(
    codes: Iterable[tuple[int, int]],
    values: list[Value],
    qualities: list[Quality],
    reasons: list[str],
) -> None:
    """An enum's code is BAD, for the same reason, wherever its label is BAD.

    ``codes`` holds (label position, code position) pairs. An UNCERTAIN label (a code
    with no name) keeps its GOOD code: the device did send that number.
    """
    for p, code in codes:
        if qualities[p] is _BAD:
            values[code] = None
            qualities[code] = _BAD
            reasons[code] = reasons[p]


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
