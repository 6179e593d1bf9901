"""The DDATA of one batch (the hot path), and how one sample is set on a Metric.

Every batch the sink delivers becomes one DDATA, so :func:`encode_data` is built for the
common batch: every sample GOOD, of the types the device was born with. For it, each
plan (one poll group's ``names`` tuple, :class:`~.metric_table.Plan`) keeps one protobuf
Payload with a Metric per sample, its alias already set; a batch then only stamps the
timestamps and values into it, in loops grouped by value field (no branch per value),
and serializes it. Measured alternatives, 100 doubles per batch, per value: building
Metric objects and passing them to Payload() 740 ns, ``metrics.add(**fields)`` 435 ns,
``metrics.add()`` then attribute sets 347 ns, hand-written wire bytes 312 ns, the reused
message 162 ns (``python -m bench.bench_encode``; the reused message is what is kept).

Any other batch (a sample not GOOD, a value that does not fit its datatype or is not a
finite float, text protobuf refuses, per-value timestamps, a metric whose last live value
was not GOOD) takes the general path: a new Payload, each sample set by
:func:`set_sample`. Both paths give the same bytes for a batch both can encode
(tests/unit/test_sparkplug_payloads.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any, Final

from edge_agent.metrics.contract import metric_info
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import (
    FIELD,
    FLOAT32_MAX,
    INT_RANGE,
    SIGNED_WIDTH,
    DataType,
    fits,
    wire_int,
)
from edge_agent.sinks.sparkplug.metric_table import DeviceTable, Plan, known_time_ns

#: Values of the ``Quality`` property (Int32; tck-id-payloads-propertyset-quality-value-value).
QUALITY_BAD: Final = 0
QUALITY_GOOD: Final = 192
QUALITY: Final = "Quality"
REASON: Final = "Reason"
#: Reason of a sample that went out null because its datatype cannot carry the value.
REASON_NOT_FINITE: Final = "not finite"
#: Reason of a string value that is not valid UTF-8 text (Sparkplug strings are UTF-8).
REASON_NOT_UTF8: Final = "text that is not valid UTF-8 (bytes the source sent undecoded)"

Metric = Any  # pb.Payload.Metric (upb's class is not a static type mypy can follow)


#: What protobuf raises for a value it cannot carry (text that is not UTF-8, an integer
#: beyond its field): caught around every value set, so that one such sample goes out BAD
#: and never stops the encoder (a batch that raised would be re-sent forever).
ENCODE_ERRORS: Final = (ValueError, TypeError, OverflowError)
_UINT64_END: Final = 2**64


def wire_text(text: str) -> str:
    """``text`` as protobuf can carry it: unchanged, unless it holds lone surrogates
    (asyncua decodes OPC UA strings with ``surrogateescape``; YAML and JSON ``\\udcc3``
    escapes), which become ``\\udcc3`` escapes. For names and properties (a reason, a
    unit); a string *value* that is not UTF-8 goes out BAD instead (:func:`set_sample`)."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def wire_ms(stamp_ns: int, default_ms: int) -> int:
    """A per-value time in ms as the uint64 ``timestamp`` field carries it; ``default_ms``
    (the batch's time) for one it cannot: before 1970 (an OPC UA server whose clock or
    SourceTimestamp says 1601) or beyond 2**64 ms."""
    stamp_ms = stamp_ns // 1_000_000
    return stamp_ms if 0 <= stamp_ms < _UINT64_END else default_ms


def set_property(metric: Metric, key: str, datatype: DataType, value: int | str) -> None:
    """Append one property (type and value) to ``metric``'s PropertySet."""
    properties = metric.properties
    properties.keys.append(key)
    entry = properties.values.add(type=datatype)
    if isinstance(value, str):
        value = wire_text(value)
    setattr(entry, FIELD[datatype], value)  # int, long or string value: non-negative ints


def set_sample(
    metric: Metric, datatype: DataType, value: Value, quality: Quality, reason: str
) -> int:
    """Set one sample on ``metric`` by the quality rules; returns the Quality it carries
    (QUALITY_GOOD or QUALITY_BAD). The Quality property itself is set here only when it is
    BAD; the caller adds 192 where the rules want it (births, a return to GOOD).

    A BAD sample never gets a value; an UNCERTAIN one never goes without Quality 0.
    """
    if quality is Quality.GOOD and value is not None:
        problem = _set_value(metric, datatype, value)
        if problem is None:
            return QUALITY_GOOD
        value, reason = None, problem
    elif quality is Quality.UNCERTAIN:
        if value is None or _set_value(metric, datatype, value) is not None:
            metric.is_null = True
        reason = f"uncertain: {reason or 'no reason given'}"
    else:
        reason = reason or ("no value" if value is None else "bad")
    if value is None or quality is Quality.BAD:
        metric.is_null = True
        metric.ClearField("value")
    set_property(metric, QUALITY, DataType.Int32, QUALITY_BAD)
    set_property(metric, REASON, DataType.String, reason)
    return QUALITY_BAD


def _problem(datatype: DataType, value: Value) -> str | None:
    """Why ``value`` cannot go out as ``datatype``, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{REASON_NOT_FINITE} ({value!r})"
    if not fits(datatype, value):
        shown = wire_text(repr(value))
        if datatype is DataType.Float and isinstance(value, float):
            return f"value {shown} is beyond the range of the metric's datatype Float (float32)"
        return f"value {shown} does not fit the metric's datatype {datatype.name}"
    return None


def _set_value(metric: Metric, datatype: DataType, value: Value) -> str | None:
    """Set ``value`` as ``datatype`` on ``metric``; or leave it unset and say why not."""
    problem = _problem(datatype, value)
    if problem is not None:
        return problem
    field = FIELD[datatype]
    if field in ("int_value", "long_value"):
        value = wire_int(datatype, value)  # type: ignore[arg-type]  # fits() said int
    try:
        setattr(metric, field, value)
    except UnicodeEncodeError:
        return REASON_NOT_UTF8
    except ENCODE_ERRORS as exc:  # the last guard: fits() let through what protobuf refuses
        return wire_text(f"cannot be encoded as {datatype.name}: {exc}")
    return None


def window_properties(metric: Metric, batch: SampleBatch) -> None:
    """``window_start`` / ``window_end`` (DateTime, ms) and ``shift`` of a metric window."""
    info = metric_info(batch)
    if info is None:
        return
    if info.bounds is not None:
        set_property(metric, "window_start", DataType.DateTime, info.bounds[0] // 1_000_000)
        set_property(metric, "window_end", DataType.DateTime, info.bounds[1] // 1_000_000)
    if info.shift is not None:
        set_property(metric, "shift", DataType.String, info.shift)


class _Codec:
    """A plan's reused Payload and its Metrics grouped by how their values are set."""

    __slots__ = ("aliases", "groups", "historical", "message", "metrics")

    def __init__(self, plan: Plan) -> None:
        self.message = pb.Payload()
        self.metrics: list[Metric] = [
            self.message.metrics.add(alias=slot.alias) for slot in plan.slots
        ]
        self.aliases = frozenset(slot.alias for slot in plan.slots)
        self.historical = False
        by_type: dict[DataType, list[int]] = {}
        for i, slot in enumerate(plan.slots):
            by_type.setdefault(slot.datatype, []).append(i)
        self.groups = [
            _Group(datatype, indices, [self.metrics[i] for i in indices])
            for datatype, indices in by_type.items()
        ]


class _Group:
    """The metrics of one datatype in a plan: how to pick their values out of a batch,
    check them in bulk (C-level min/max/sum) and set them."""

    __slots__ = ("check", "metrics", "pick", "put")

    def __init__(self, datatype: DataType, indices: list[int], metrics: list[Metric]) -> None:
        self.metrics = metrics
        self.pick: Callable[[Sequence[Value]], tuple[Value, ...]] = (
            itemgetter(*indices) if len(indices) > 1 else _one(indices[0])
        )
        self.put = _PUT[FIELD.get(datatype, "")] if datatype in FIELD else None
        self.check = _checker(datatype)
        if datatype in SIGNED_WIDTH:
            self.put = _put_signed32 if SIGNED_WIDTH[datatype] == 32 else _put_signed64


def _one(index: int) -> Callable[[Sequence[Value]], tuple[Value, ...]]:
    return lambda values: (values[index],)


def _checker(datatype: DataType) -> Callable[[tuple[Any, ...]], bool]:
    """A bulk test that the values of a group need no second look (True = fine)."""
    if datatype in INT_RANGE:
        low, high = INT_RANGE[datatype]
        return lambda values: low <= min(values) and max(values) <= high
    if datatype is DataType.Float:
        # float32 range first (a finite double beyond it would be set as inf), then finite:
        # min() and max() of values within the range cannot overflow their sum.
        return lambda values: (
            min(values) >= -FLOAT32_MAX
            and max(values) <= FLOAT32_MAX
            and math.isfinite(sum(values))
        )
    if datatype is DataType.Double:
        # The sum of finite floats is finite unless it overflows (then the general path
        # finds nothing wrong and sends them all the same): one C loop, no branch per value.
        return lambda values: math.isfinite(sum(values))
    return lambda values: True


def _put_int(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.int_value = value


def _put_long(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.long_value = value


def _put_signed32(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.int_value = value if value >= 0 else value + 0x1_0000_0000


def _put_signed64(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.long_value = value if value >= 0 else value + 0x1_0000_0000_0000_0000


def _put_float(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.float_value = value


def _put_double(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.double_value = value


def _put_bool(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.boolean_value = value


def _put_string(metrics: list[Metric], values: tuple[Any, ...]) -> None:
    for metric, value in zip(metrics, values, strict=True):
        metric.string_value = value


_PUT: Final = {
    "int_value": _put_int,
    "long_value": _put_long,
    "float_value": _put_float,
    "double_value": _put_double,
    "boolean_value": _put_bool,
    "string_value": _put_string,
}


def encode_data(
    table: DeviceTable,
    batch: SampleBatch,
    seq: int,
    historical: bool,
    *,
    sent_ms: int | None = None,
) -> bytes:
    """The DDATA of ``batch`` for a device born as ``table`` (call ``table.admit`` first:
    a value that does not fit goes out as BAD here, it is not learned).

    ``historical`` sets ``is_historical`` on every metric; such a batch leaves the
    quality memory of live values (``table.not_good``) alone. ``sent_ms``: the payload
    timestamp, the time of publishing (tck-id-payloads-ddata-timestamp), now unless given.
    """
    plan = table.plan(batch)
    # The payload is stamped when it is published, a replayed one too; its metrics when
    # their values became known (a poll's time, a metric window's end, a report's end).
    stamp_ms = known_time_ns(batch) // 1_000_000
    timestamp_ms = time.time_ns() // 1_000_000 if sent_ms is None else sent_ms
    fast = _fast(table, plan, batch, seq, timestamp_ms, stamp_ms, historical)
    if fast is not None:
        return fast
    return _general(table, plan, batch, seq, timestamp_ms, stamp_ms, historical)


def _fast(
    table: DeviceTable,
    plan: Plan,
    batch: SampleBatch,
    seq: int,
    timestamp_ms: int,
    stamp_ms: int,
    historical: bool,
) -> bytes | None:
    """The reused-message path, or None when the batch needs the general one."""
    values = batch.values
    count = len(values)
    if (
        batch.timestamps_ns is not None
        or batch.attributes  # metric windows carry properties; events and reports are rare
        or count == 0
        or batch.qualities.count(Quality.GOOD) != count
        or tuple(map(type, values)) != plan.expected
    ):
        return None
    codec = plan.codec
    if not isinstance(codec, _Codec):
        codec = plan.codec = _Codec(plan)
    if not historical and table.not_good and not table.not_good.isdisjoint(codec.aliases):
        return None
    picked = [group.pick(values) for group in codec.groups]
    for group, chosen in zip(codec.groups, picked, strict=True):
        if group.put is None or not group.check(chosen):
            return None
    message = codec.message
    message.timestamp = timestamp_ms
    message.seq = seq
    if codec.historical != historical:
        for metric in codec.metrics:
            if historical:
                metric.is_historical = True
            else:
                metric.ClearField("is_historical")
        codec.historical = historical
    for metric in codec.metrics:
        metric.timestamp = stamp_ms
    try:
        for group, chosen in zip(codec.groups, picked, strict=True):
            group.put(group.metrics, chosen)  # type: ignore[misc]  # None excluded above
    except ENCODE_ERRORS:
        # Text that is not UTF-8 (protobuf refuses it): the general path sends it BAD.
        # Every field of the reused message is set again by its next batch.
        return None
    return message.SerializeToString()


def _general(
    table: DeviceTable,
    plan: Plan,
    batch: SampleBatch,
    seq: int,
    timestamp_ms: int,
    stamp_ms: int,
    historical: bool,
) -> bytes:
    payload = pb.Payload(timestamp=timestamp_ms, seq=seq)
    stamps = batch.timestamps_ns
    order: Sequence[int] = range(len(batch.values))
    if stamps is not None:
        # tck-id-operational-behavior-data-publish-dbirth-order: live values in time order.
        order = sorted(order, key=stamps.__getitem__)
    not_good = table.not_good
    windowed = batch.attributes and metric_info(batch) is not None
    for i in order:
        slot = plan.slots[i]
        metric = payload.metrics.add(
            alias=slot.alias, timestamp=stamp_ms if stamps is None else wire_ms(stamps[i], stamp_ms)
        )
        if historical:
            metric.is_historical = True
        quality = set_sample(
            metric, slot.datatype, batch.values[i], batch.qualities[i], batch.reasons[i]
        )
        if windowed:
            window_properties(metric, batch)
        if historical:
            continue
        if quality == QUALITY_GOOD:
            if slot.alias in not_good:
                set_property(metric, QUALITY, DataType.Int32, QUALITY_GOOD)
                not_good.discard(slot.alias)
        else:
            not_good.add(slot.alias)
    return payload.SerializeToString()
