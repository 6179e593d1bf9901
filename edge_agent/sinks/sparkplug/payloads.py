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
        metric = payload.metrics.add(name=slot.name, alias=slot.alias, datatype=slot.datatype)
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
    """The latest sample of each metric name among ``latest`` (later batches win)."""
    current: dict[str, _Current] = {}
    for batch in latest:
        how = naming(batch)
        stamps = batch.timestamps_ns
        base_ms = known_time_ns(batch) // 1_000_000
        for i, name in enumerate(how.names(batch.names)):
            stamp = base_ms if stamps is None else stamps[i] // 1_000_000
            current[name] = _Current(
                batch.values[i], batch.qualities[i], batch.reasons[i], stamp, batch
            )
    return current


class CommandError(ValueError):
    """An NCMD/DCMD payload that is not a Sparkplug B payload."""


class Command(NamedTuple):
    """One metric of an NCMD or DCMD: its name or alias (whichever was sent; either may
    be None) and value (None when ``is_null`` or absent)."""

    name: str | None
    alias: int | None
    value: Value
    datatype: DataType | None


#: Oneof value fields we read back, and the datatype to assume when none is given.
_PLAIN_FIELDS: Final = {
    "int_value": DataType.UInt32,
    "long_value": DataType.UInt64,
    "float_value": DataType.Float,
    "double_value": DataType.Double,
    "boolean_value": DataType.Boolean,
    "string_value": DataType.String,
}


def decode_command(payload: bytes) -> list[Command]:
    """The metrics of an NCMD/DCMD payload; CommandError (with what is wrong, in words)
    for bytes that are not a Sparkplug B payload. Never raises anything else."""
    try:
        message = pb.Payload.FromString(payload)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise CommandError(f"not a Sparkplug B payload ({len(payload)} bytes): {exc}") from None
    commands = []
    for metric in message.metrics:
        datatype = _datatype(metric.datatype) if metric.HasField("datatype") else None
        commands.append(
            Command(
                metric.name if metric.HasField("name") else None,
                metric.alias if metric.HasField("alias") else None,
                None if metric.is_null else _value(metric, datatype),
                datatype,
            )
        )
    return commands


def _datatype(number: int) -> DataType | None:
    try:
        return DataType(number)
    except ValueError:
        return None


def _value(metric: Any, datatype: DataType | None) -> Value:
    which = metric.WhichOneof("value")
    if which not in _PLAIN_FIELDS:
        return None  # no value, or one we never accept (bytes, dataset, template)
    raw: Value = getattr(metric, which)
    signed = datatype is not None and FIELD.get(datatype) == which
    if signed and isinstance(raw, int) and not isinstance(raw, bool) and datatype is not None:
        return from_wire_int(datatype, raw)
    return raw
