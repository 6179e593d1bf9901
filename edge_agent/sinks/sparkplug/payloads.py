"""Sparkplug B payloads of an edge node: births, deaths, data, and commands read back.

Pure functions over the generated protobuf module (upb, protobuf's C backend, is the one
that runs: the wheel's default). The session (seq, bdSeq, topics, when to send what) is
the sink's; the tables (names, aliases, datatypes) are :mod:`.metric_table`'s.

Quality (docs/SPARKPLUG.md, "Quality"; spec: the ``Quality`` property, Int32, 0 BAD,
192 GOOD, 500 STALE, tck-id-payloads-propertyset-quality-value-type and -value-value):

* GOOD: the value; no Quality property in DATA (192 in births), except once after the
  metric's last live value was not GOOD, so a host that keeps the last quality sees it
  come back.
* BAD: ``is_null``, no value, Quality 0, String property ``Reason``.
* UNCERTAIN: the value (or ``is_null`` if there is none), Quality 0 (Sparkplug has no
  "uncertain", and it is not GOOD), ``Reason`` ``uncertain: <reason>``.
* A value the datatype cannot carry, or a float that is not finite: sent as BAD (as the
  JSON sink calls a NaN bad), never as a good value.

DDATA carries aliases only, never names (tck-id-payloads-alias-data-cmd-requirement), a
timestamp on every metric (tck-id-payloads-name-birth-data-requirement) and no datatype
(tck-id-payloads-metric-datatype-not-req). The hot path is in :mod:`.ddata`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

from google.protobuf.message import DecodeError

from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import FIELD, DataType, from_wire_int
from edge_agent.sinks.sparkplug.ddata import (
    QUALITY_BAD,
    QUALITY_GOOD,
    encode_data,
    set_property,
    set_sample,
    window_properties,
    wire_ms,
    wire_text,
)
from edge_agent.sinks.sparkplug.metric_table import (
    AliasAllocator,
    DeviceTable,
    known_time_ns,
    naming,
)

__all__ = [
    "BD_SEQ",
    "NODE_DEVICE",
    "QUALITY_BAD",
    "QUALITY_GOOD",
    "REBIRTH",
    "SCAN_RATE",
    "Command",
    "CommandError",
    "decode_command",
    "encode_data",
    "encode_dbirth",
    "encode_ddeath",
    "encode_nbirth",
    "encode_ndeath",
]

#: Node metrics (tck-id-payloads-nbirth-bdseq, tck-id-payloads-nbirth-rebirth-req).
BD_SEQ: Final = "bdSeq"
REBIRTH: Final = "Node Control/Rebirth"
SCAN_RATE: Final = "Node Control/Scan Rate"
PROPERTIES_FOLDER: Final = "Properties/"
#: The "device" of node metrics in the :class:`AliasAllocator`.
NODE_DEVICE: Final = ""

#: Metric properties of births, as Ignition reads them (engUnit) and names them.
ENG_UNIT: Final = "engUnit"
DOCUMENTATION: Final = "documentation"
WINDOW: Final = "window"


def encode_nbirth(
    bd_seq: int,
    seq: int,
    timestamp_ms: int,
    allocator: AliasAllocator,
    scan_rate_ms: int,
    properties: Mapping[str, str],
) -> bytes:
    """The NBIRTH: bdSeq (Int64), ``Node Control/Rebirth`` (false), ``Node Control/Scan
    Rate`` (Int64, ms) and a String ``Properties/<key>`` per property (agent version,
    plant, site), each with name, alias, datatype and timestamp; ``Node Control/Rebirth``
    without an alias (tck-id-operational-behavior-data-commands-rebirth-name-aliases: a
    host asks for a rebirth by name, whatever aliases it knows)."""
    payload = pb.Payload(timestamp=timestamp_ms, seq=seq)
    metrics: list[tuple[str, DataType, Value]] = [
        (BD_SEQ, DataType.Int64, bd_seq),
        (REBIRTH, DataType.Boolean, False),
        (SCAN_RATE, DataType.Int64, scan_rate_ms),
    ]
    metrics += [
        (PROPERTIES_FOLDER + key, DataType.String, text) for key, text in properties.items()
    ]
    for name, datatype, value in metrics:
        metric = payload.metrics.add(name=name, timestamp=timestamp_ms, datatype=datatype)
        if name != REBIRTH:
            metric.alias = allocator.alias(NODE_DEVICE, name)
        set_sample(metric, datatype, value, Quality.GOOD, "")
    return payload.SerializeToString()


def encode_ndeath(bd_seq: int, timestamp_ms: int) -> bytes:
    """The NDEATH (the Will): the bdSeq metric only, Int64, and no seq
    (tck-id-payloads-ndeath-bdseq, tck-id-payloads-sequence-num-always-included)."""
    payload = pb.Payload(timestamp=timestamp_ms)
    payload.metrics.add(
        name=BD_SEQ, timestamp=timestamp_ms, datatype=DataType.Int64, long_value=bd_seq
    )
    return payload.SerializeToString()


def encode_ddeath(seq: int, timestamp_ms: int) -> bytes:
    """A DDEATH: seq and timestamp, no metrics."""
    return pb.Payload(timestamp=timestamp_ms, seq=seq).SerializeToString()


class _Current(NamedTuple):
    value: Value
    quality: Quality
    reason: str
    timestamp_ms: int
    batch: SampleBatch


def encode_dbirth(
    table: DeviceTable, latest: Iterable[SampleBatch], seq: int, timestamp_ms: int
) -> bytes:
    """A DBIRTH of every metric of ``table`` in birth order: name, alias, datatype,
    timestamp, the current value from ``latest`` (or ``is_null`` with Quality 0 and
    reason ``no value yet``), and the properties (Quality always, engUnit, documentation,
    the window of a metric window's metric).

    Afterwards ``table.not_good`` holds exactly the metrics born without GOOD quality.
    """
    current = _current(latest)
    payload = pb.Payload(timestamp=timestamp_ms, seq=seq)
    not_good: set[int] = set()
    # tck-id-operational-behavior-data-publish-dbirth-order: in time order (stable: birth
    # order among equal times); a metric without a value is stamped with the birth.
    slots = sorted(
        table.metrics.values(),
        key=lambda slot: _time(current.get(slot.name), timestamp_ms),
    )
    for slot in slots:
        metric = payload.metrics.add(
            name=wire_text(slot.name), alias=slot.alias, datatype=slot.datatype
        )
        found = current.get(slot.name)
        if found is None:
            metric.timestamp = timestamp_ms
            quality = set_sample(metric, slot.datatype, None, Quality.BAD, "no value yet")
        else:
            metric.timestamp = found.timestamp_ms
            quality = set_sample(metric, slot.datatype, found.value, found.quality, found.reason)
            if slot.window is not None:
                window_properties(metric, found.batch)
        if quality == QUALITY_GOOD:
            set_property(metric, "Quality", DataType.Int32, QUALITY_GOOD)
        else:
            not_good.add(slot.alias)
        if slot.unit:
            set_property(metric, ENG_UNIT, DataType.String, slot.unit)
        if slot.description:
            set_property(metric, DOCUMENTATION, DataType.String, slot.description)
        if slot.window is not None:
            set_property(metric, WINDOW, DataType.String, slot.window)
    table.not_good = not_good
    return payload.SerializeToString()


def _time(found: _Current | None, default_ms: int) -> int:
    return default_ms if found is None else found.timestamp_ms


def _current(latest: Iterable[SampleBatch]) -> dict[str, _Current]:
    """The newest sample of each metric name among ``latest``, by its time (a name may
    be in batches of two groups, e.g. after a reload moved its tag); among equal times
    the later batch wins."""
    current: dict[str, _Current] = {}
    for batch in latest:
        how = naming(batch)
        stamps = batch.timestamps_ns
        base_ms = known_time_ns(batch) // 1_000_000
        for i, name in enumerate(how.names(batch.names)):
            stamp = base_ms if stamps is None else wire_ms(stamps[i], base_ms)
            found = current.get(name)
            if found is None or found.timestamp_ms <= stamp:
                current[name] = _Current(
                    batch.values[i], batch.qualities[i], batch.reasons[i], stamp, batch
                )
    return current


class CommandError(ValueError):
    """An NCMD/DCMD payload that is not a Sparkplug B payload."""


class Command(NamedTuple):
    """One metric of an NCMD or DCMD: its name or alias (whichever was sent; either may
    be None) and value (None when ``is_null``, absent, or not in the field its declared
    datatype puts it in)."""

    name: str | None
    alias: int | None
    value: Value
    datatype: DataType | None


#: Oneof value fields we read back.
_PLAIN_FIELDS: Final = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"}
)
#: The fields a value of a declared datatype may come in: its own (:data:`FIELD`), and
#: for UInt32 also ``int_value``, where the specification's table puts it.
_ACCEPTED: Final = {
    **{datatype: frozenset({field}) for datatype, field in FIELD.items()},
    DataType.UInt32: frozenset({"int_value", "long_value"}),
}


def decode_command(payload: bytes) -> list[Command]:
    """The metrics of an NCMD/DCMD payload; CommandError (with what is wrong, in words)
    for bytes that are not a Sparkplug B payload, including a name or string value that
    is not UTF-8 (protobuf hands those over as bytes). Never raises anything else.

    A metric that declares a datatype has its value only in that datatype's field: a
    ``Node Control/Rebirth`` declared String (or Int32 ...) with ``boolean_value`` true
    has no value, so it asks for nothing (tck-id-operational-behavior-data-commands-
    ncmd-rebirth-value: Boolean true). Without a datatype (commands need not carry one,
    tck-id-payloads-metric-datatype-not-req) the value is the field's.
    """
    try:
        message = pb.Payload.FromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CommandError(f"not a Sparkplug B payload ({len(payload)} bytes): {exc}") from None
    commands = []
    for metric in message.metrics:
        name = metric.name if metric.HasField("name") else None
        if isinstance(name, bytes):
            raise CommandError(f"a metric name is not UTF-8 text: {name!r}")
        value: Value = None
        datatype = None
        if metric.HasField("datatype"):
            datatype = _datatype(metric.datatype)
            if datatype is not None and not metric.is_null:
                value = _value(metric, datatype)
        elif not metric.is_null:
            value = _value(metric, None)
        if isinstance(value, bytes):
            raise CommandError(f"the string value of {name or 'a metric'} is not UTF-8 text")
        commands.append(
            Command(name, metric.alias if metric.HasField("alias") else None, value, datatype)
        )
    return commands


def _datatype(number: int) -> DataType | None:
    try:
        return DataType(number)
    except ValueError:
        return None


def _value(metric: Any, datatype: DataType | None) -> Value:
    """The value in ``metric``'s field; None when there is none we accept (bytes,
    dataset, template) or it is not where ``datatype`` puts it."""
    which = metric.WhichOneof("value")
    if which not in _PLAIN_FIELDS:
        return None
    if datatype is not None and which not in _ACCEPTED.get(datatype, ()):
        return None
    raw: Value = getattr(metric, which)
    if datatype is not None and isinstance(raw, int) and not isinstance(raw, bool):
        return from_wire_int(datatype, raw)
    return raw
