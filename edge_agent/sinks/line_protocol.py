"""InfluxDB line protocol, built straight from sample batches (no Point objects).

``measurement,tag=v,tag=v field=1.5,count=3i,on=true,label="run" 1795719601000000000``

One line per batch (per distinct timestamp when a driver stamped values one by
one), one field per value. Escaping follows the line protocol reference
(https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/):

* measurement: ``,`` and space, and ``\\`` itself;
* tag keys, tag values, field keys: ``,`` ``=`` space, and ``\\``;
* string field values: ``"`` and ``\\``.

Line breaks cannot be carried anywhere except inside string fields, and not every
server accepts them there, so a line break in any name or string becomes the two
characters ``\\n`` (``\\r`` likewise); the official client does the same. A
trailing backslash can no longer escape the separator after it, because every
backslash is doubled.

Value types: ``bool`` -> ``true``/``false``; ``int`` -> ``123i`` (outside the
signed 64-bit range it is written as a float); ``float`` -> shortest round-trip
decimal (NaN and infinities cannot be written and are left out); ``str`` -> quoted;
``None`` -> left out. A line without any field is left out entirely.

The prefix (measurement and tags) of each stream is built once and cached by the
caller; the per-value work is one format per field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from edge_agent.model import Quality, SampleBatch

_MEASUREMENT: Final = str.maketrans(
    {"\\": "\\\\", ",": "\\,", " ": "\\ ", "\n": "\\\\n", "\r": "\\\\r"}
)
_KEY: Final = str.maketrans(
    {"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\\\n", "\r": "\\\\r"}
)
_STRING: Final = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\\\n", "\r": "\\\\r"})

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1

#: Nanoseconds per unit of each write precision.
PRECISION_NS: Final = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_key(key: str) -> str:
    """A tag key, tag value or field key."""
    return key.translate(_KEY)


def escape_string(value: str) -> str:
    """The inside of a string field value (without the quotes)."""
    return value.translate(_STRING)


def format_value(value: object) -> str | None:
    """The field value as written, or None when it cannot be written (None, NaN, inf)."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return f"{value}i"
        return repr(float(value))
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return f'"{value.translate(_STRING)}"'
    return None


def line_prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,k=v,k=v `` with tags sorted by key (the order InfluxDB stores them
    in) and tags with an empty value left out (line protocol has no empty tag value)."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags.items()) if v)
    return ",".join(parts) + " "


def field_keys(names: Sequence[str], quality_suffix: str | None) -> tuple[list[str], list[str]]:
    """Escaped ``name=`` of each value and, when qualities are written, ``name_q=``."""
    keys = [escape_key(n) + "=" for n in names]
    if quality_suffix is None:
        return keys, []
    return keys, [escape_key(n + quality_suffix) + "=" for n in names]


def batch_lines(
    batch: SampleBatch,
    prefix: str,
    keys: Sequence[str],
    quality_keys: Sequence[str],
    divisor: int,
) -> list[str]:
    """The lines of one batch: values of BAD quality are left out; with ``quality_keys``,
    every sample also writes its quality as an integer (0 good, 1 uncertain, 2 bad)."""
    if batch.timestamps_ns is None:
        line = _line(batch, range(len(batch.values)), prefix, keys, quality_keys)
        return [f"{line} {batch.timestamp_ns // divisor}"] if line else []
    by_stamp: dict[int, list[int]] = {}
    for index, stamp in enumerate(batch.timestamps_ns):
        by_stamp.setdefault(stamp, []).append(index)
    lines = []
    for stamp, indexes in by_stamp.items():
        line = _line(batch, indexes, prefix, keys, quality_keys)
        if line:
            lines.append(f"{line} {stamp // divisor}")
    return lines


def _line(
    batch: SampleBatch,
    indexes: Iterable[int],
    prefix: str,
    keys: Sequence[str],
    quality_keys: Sequence[str],
) -> str:
    values = batch.values
    qualities = batch.qualities
    fields: list[str] = []
    bad = Quality.BAD
    for i in indexes:
        quality = qualities[i]
        if quality != bad:
            text = format_value(values[i])
            if text is not None:
                fields.append(keys[i] + text)
        if quality_keys:
            fields.append(f"{quality_keys[i]}{int(quality)}i")
    if not fields:
        return ""
    return prefix + ",".join(fields)
