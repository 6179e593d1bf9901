"""How a :class:`~edge_agent.model.SampleBatch` is stored in one outbox row.

A row holds the batch's stream (device, group and tag names, stored once per stream
in their own table), its timestamp, sample count, and a body: ``marshal`` (format
version 4) of a tuple of plain lists. ``marshal`` is C code that round-trips every
value type a sample can hold exactly: ``bool`` stays ``bool`` (not ``1``), integers
of any size, floats bit for bit (NaN, -0.0), strings including lone surrogates,
``None``. Measured on the reference machine for a batch of 20 values: 1.4 µs to
encode, against 21 µs for JSON (float formatting) at equal exactness.

Common cases cost nothing extra: all-good qualities and all-empty reasons are
stored as ``None``. A batch whose tag names are not one of its group's usual sets
(an OPC UA subscription hands over whichever tags changed, so nearly every batch
names a different subset) carries its names in its body, as a seventh element,
instead of making a stream of its own: see ``OutboxStore``. Format version 4 is
readable by every Python since 3.4, and the database records the codec name so a
future change can migrate old rows.
The file lives in the agent's private state directory; nothing else writes it.

Every row carries a checksum (:func:`row_crc`, CRC-32 of its id, times, stream,
sample count and body), checked whenever the row is read back: SQLite checks the
structure of its pages, not the bytes inside a row, so a flipped bit in a float would
otherwise reach a sink as a wrong value with quality good. CRC-32 of ``zlib`` rather
than CRC-32C: it is in the standard library (no package to keep), runs in C at over a
GB/s (well under a microsecond for a row), and for rows of a few hundred bytes it
catches every error of up to three bits and every burst of up to 32, as CRC-32C does;
CRC-32C's advantage (hardware instructions, a better distance on long messages)
does not matter at this size. Stream rows carry one too (:func:`stream_crc`).
"""

from __future__ import annotations

import marshal
import struct
import zlib
from collections.abc import Sequence
from typing import Final

from edge_agent.model import Quality, SampleBatch, Value

#: Recorded in the database's meta table; bump when the body layout changes.
CODEC: Final = "marshal-4/v1"
MARSHAL_VERSION: Final = 4

_GOOD: Final = Quality.GOOD
#: The fixed-size columns of a row, as its checksum covers them.
_ROW_HEAD: Final = struct.Struct("<qqqqq")
_QUALITY_OF: Final = tuple(Quality)  # index by stored integer


class CodecError(ValueError):
    """A stored body could not be turned back into a batch (damaged or foreign data)."""


def row_crc(row_id: int, at_ns: int, ts_ns: int, stream: int, samples: int, body: bytes) -> int:
    """The checksum of a ``batches`` row: every column but itself."""
    return zlib.crc32(body, zlib.crc32(_ROW_HEAD.pack(row_id, at_ns, ts_ns, stream, samples)))


def stream_crc(device: str, group: str, names: bytes) -> int:
    """The checksum of a ``streams`` row (device, group and the encoded names)."""
    head = f"{device}\0{group}\0".encode("utf-8", "surrogatepass")
    return zlib.crc32(names, zlib.crc32(head))


def encode_names(names: Sequence[str]) -> bytes:
    return marshal.dumps(tuple(str(n) for n in names), MARSHAL_VERSION)


def decode_names(data: bytes) -> tuple[str, ...]:
    try:
        names = marshal.loads(data)
    except (EOFError, ValueError, TypeError) as exc:
        raise CodecError(f"tag names not readable: {exc}") from exc
    if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        raise CodecError("tag names are not a tuple of strings")
    return names


def encode_body(batch: SampleBatch, *, inline_names: bool = False) -> bytes:
    """Everything of ``batch`` except device, group, names and timestamp_ns (row columns);
    with ``inline_names``, its names too (its stream then names no tags)."""
    qualities = batch.qualities
    count = len(qualities)
    packed_qualities = None if qualities.count(_GOOD) == count else bytes(qualities)
    reasons = batch.reasons if any(batch.reasons) else None
    names = (tuple(batch.names),) if inline_names else ()
    body = (
        batch.values,
        packed_qualities,
        reasons,
        batch.timestamps_ns,
        batch.attributes or None,
        batch.historical,
        *names,
    )
    try:
        return marshal.dumps(body, MARSHAL_VERSION)
    except ValueError:
        # A subclass of a value type (IntEnum, numpy.float64, a str subclass) is not
        # marshallable as such: store its plain value. Rare, so the slow path is fine.
        plain = (
            [_plain(v) for v in batch.values],
            packed_qualities,
            None if reasons is None else [str(r) for r in reasons],
            None if batch.timestamps_ns is None else [int(t) for t in batch.timestamps_ns],
            {str(k): str(v) for k, v in batch.attributes.items()} or None,
            bool(batch.historical),
            *((tuple(str(n) for n in batch.names),) if inline_names else ()),
        )
        return marshal.dumps(plain, MARSHAL_VERSION)


def _plain(value: object) -> Value:
    if value is None:
        return None
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    raise TypeError(f"{value!r} ({type(value).__name__}) is not a sample value")


def decode_body(
    body: bytes,
    device: str,
    group: str,
    names: tuple[str, ...],
    timestamp_ns: int,
    *,
    historical: bool | None = None,
) -> SampleBatch:
    """The batch stored in ``body``; ``historical`` overrides the stored flag when given.
    Names carried in the body take the place of the stream's ``names``."""
    try:
        values, qualities, reasons, stamps, attributes, stored_historical, *inline = marshal.loads(
            body
        )
    except (EOFError, ValueError, TypeError) as exc:
        raise CodecError(f"batch body not readable: {exc}") from exc
    if inline:
        names = inline[0]
        if (
            len(inline) != 1
            or not isinstance(names, tuple)
            or not all(isinstance(n, str) for n in names)
        ):
            raise CodecError("batch body holds tag names that are not a tuple of strings")
    count = len(names)
    if not isinstance(values, list) or len(values) != count:
        raise CodecError(f"batch body does not hold a list of {count} values")
    try:
        quality_list = [_GOOD] * count if qualities is None else [_QUALITY_OF[q] for q in qualities]
    except (IndexError, TypeError) as exc:
        raise CodecError(f"batch qualities not readable: {exc}") from exc
    return SampleBatch(
        device=device,
        group=group,
        timestamp_ns=timestamp_ns,
        names=names,
        values=values,
        qualities=quality_list,
        reasons=[""] * count if reasons is None else reasons,
        timestamps_ns=stamps,
        historical=stored_historical if historical is None else historical,
        attributes=attributes or {},
    )
