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
from dataclasses import dataclass
from itertools import chain, compress, repeat
from operator import add
from typing import Final, cast

from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.value_text import values_json

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
        line = _good_line(batch, prefix, keys, quality_keys)
        if line is None:
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


def split_lines(
    batch: SampleBatch,
    parts: Sequence[tuple[str, Sequence[int]]],
    keys: Sequence[str],
    quality_keys: Sequence[str],
    divisor: int,
) -> list[str]:
    """:func:`batch_lines` with the values spread over several lines: each part is a
    prefix (measurement and tags) and the indexes of the values written under it (the
    sink's ``unit`` tag: one line per unit). Every index belongs to one part."""
    if batch.timestamps_ns is None:
        stamp = batch.timestamp_ns // divisor
        fields = _good_fields(batch, keys, quality_keys)
        lines = []
        for prefix, indexes in parts:
            if fields is not None:
                line = prefix + ",".join([fields[i] for i in indexes])
            else:
                line = _line(batch, indexes, prefix, keys, quality_keys)
            if line:
                lines.append(f"{line} {stamp}")
        return lines
    part_of = {i: p for p, (_, indexes) in enumerate(parts) for i in indexes}
    by_stamp: dict[tuple[int, int], list[int]] = {}
    for index, at in enumerate(batch.timestamps_ns):
        by_stamp.setdefault((at, part_of[index]), []).append(index)
    lines = []
    for (at, part), indexes in by_stamp.items():
        line = _line(batch, indexes, parts[part][0], keys, quality_keys)
        if line:
            lines.append(f"{line} {at // divisor}")
    return lines


def _good_fields(
    batch: SampleBatch, keys: Sequence[str], quality_keys: Sequence[str]
) -> list[str] | None:
    """The field text of each value (``key=value``, with its quality field when asked)
    of a batch whose values are all good, the fast way of :func:`_good_line`; None when
    :func:`_line` must write them."""
    line = _good_line(batch, "", keys, quality_keys)
    if line is None:
        return None
    pieces = line.split(",")
    per_value = 2 if quality_keys else 1
    if len(pieces) != len(batch.values) * per_value:
        return None  # a comma inside a string value: the pieces do not tell
    if per_value == 1:
        return pieces
    return [f"{v},{q}" for v, q in zip(pieces[::2], pieces[1::2], strict=True)]


def _good_line(
    batch: SampleBatch, prefix: str, keys: Sequence[str], quality_keys: Sequence[str]
) -> str | None:
    """The line of a batch whose values are all good, without a Python step per value;
    None when :func:`_line` must write it (a bad value, None, NaN or infinity, an
    integer beyond 64 bits, a string that is not plain printable ASCII or holds a
    comma). Same text as :func:`_line` (tests/unit/test_line_protocol.py).

    The C JSON encoder writes a value list the way line protocol writes fields:
    shortest round-trip floats, ``true``/``false``, integer digits, and strings quoted
    with ``"`` and ``\\`` escaped, which for plain printable ASCII is exactly line
    protocol's escaping. Split at its commas (one piece per value unless a string
    holds a comma, which the count tells), the pieces only need the field keys in
    front and ``i`` after the integers. A poll group's values keep their types from
    poll to poll, so the types of a batch name a ready :class:`_Plan` saying where
    the integers and strings are. Turning floats into text is most of what is left.
    """
    values = batch.values
    count = len(values)
    if not count or batch.qualities.count(Quality.GOOD) != count:
        return None
    plan = _plan(tuple(map(type, values)))
    if plan is None:
        return None
    if plan.has_strings:
        strings = "".join(cast("Iterable[str]", compress(values, plan.strings)))
        if not (strings.isascii() and strings.isprintable()):
            return None
    if plan.has_ints:
        ints = cast("list[int]", list(compress(values, plan.ints)))
        if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
            return None  # written as a float by _line
    listed = values_json(values)  # shared with the MQTT payload of the same batch
    if listed is None:
        return None  # NaN or infinity: left out by _line
    texts = listed[1:-1].split(",")
    if len(texts) != count:
        return None
    fields = map(add, keys, texts)
    if plan.has_ints:
        fields = map(add, fields, plan.suffixes)
    if quality_keys:
        good = map(add, quality_keys, repeat("0i"))
        return prefix + ",".join(chain.from_iterable(zip(fields, good, strict=True)))
    return prefix + ",".join(fields)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where the integers (``i`` suffix, range check) and strings (ASCII check) are."""

    suffixes: tuple[str, ...]
    ints: tuple[bool, ...]
    strings: tuple[bool, ...]
    has_ints: bool
    has_strings: bool


_PLANS: dict[tuple[type, ...], _Plan | None] = {}
#: A plan that is never stored: "not in the cache" (None is cached: "no fast path").
_UNPLANNED: Final = _Plan((), (), (), False, False)
_PLANS_MAX: Final = 4096


def _plan(types: tuple[type, ...]) -> _Plan | None:
    """The :class:`_Plan` for values of these types (cached: a group's types rarely change);
    None for types the fast path does not write (None, and anything unexpected)."""
    plan = _PLANS.get(types, _UNPLANNED)  # one lookup: another sink's thread may clear()
    if plan is not _UNPLANNED:
        return plan
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    plan = None
    if all(t in (float, int, bool, str) for t in types):
        ints = tuple(t is int for t in types)
        strings = tuple(t is str for t in types)
        suffixes = tuple("i" if is_int else "" for is_int in ints)
        plan = _Plan(suffixes, ints, strings, any(ints), any(strings))
    _PLANS[types] = plan
    return plan


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
