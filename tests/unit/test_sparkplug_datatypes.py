"""Sparkplug datatypes: the proto's enum, what each tag is born as, how values travel.

Signed integers travel as two's complement in the unsigned protobuf fields (32-bit for
Int8/16/32, 64-bit for Int64), as Eclipse Tahu reads them; UInt32 in long_value, as the
TCK's Utils.hasValue and Tahu read it (docs/SPARKPLUG.md, "Datatypes").
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config.catalog import TagInfo
from edge_agent.model import Quality
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import (
    FIELD,
    INT_RANGE,
    DataType,
    fits,
    from_wire_int,
    tag_datatype,
    value_datatype,
    wire_int,
)
from edge_agent.sinks.sparkplug.ddata import QUALITY_GOOD, set_sample
from edge_agent.sinks.sparkplug.payloads import decode_command


def tag(value_type: str | None, **kwargs: object) -> TagInfo:
    return TagInfo("dev", "g", "t", value_type, None, 1.0, **kwargs)  # type: ignore[arg-type]


def test_the_enum_is_the_protos_value_for_value() -> None:
    assert {d.name: d.value for d in DataType} == dict(pb.DataType.items())


@pytest.mark.parametrize(
    ("value_type", "expected"),
    [
        ("bool", DataType.Boolean),
        ("int16", DataType.Int16),
        ("uint16", DataType.UInt16),
        ("int32", DataType.Int32),
        ("uint32", DataType.UInt32),
        ("int64", DataType.Int64),
        ("uint64", DataType.UInt64),
        ("float32", DataType.Float),
        ("float64", DataType.Double),
        ("string", DataType.String),
        (None, None),  # OPC UA: the first value tells
    ],
)
def test_declared_types(value_type: str | None, expected: DataType | None) -> None:
    assert tag_datatype(tag(value_type)) == expected


@pytest.mark.parametrize("value_type", ["int16", "uint16", "int32", "uint32", "float32"])
def test_a_scaled_or_offset_number_is_a_double(value_type: str) -> None:
    """The driver gives raw * scale + offset as a float (drivers/modbus/codec.py)."""
    assert tag_datatype(tag(value_type, scale=0.1)) == DataType.Double
    assert tag_datatype(tag(value_type, offset=-40.0)) == DataType.Double


def test_an_enum_tag_publishes_its_label_as_a_string() -> None:
    """As the JSON sink does ("run"); the raw number is the <name>_code tag."""
    enum_tag = TagInfo("dev", "g", "state", "uint16", {0: "off", 1: "run"}, 1.0)
    assert tag_datatype(enum_tag) == DataType.String
    opcua_enum = TagInfo("dev", "g", "state", None, {0: "off"}, 1.0)
    assert tag_datatype(opcua_enum) == DataType.String


def test_values_typed_at_run_time() -> None:
    assert value_datatype(True) == DataType.Boolean  # not Int64: bool is an int in Python
    assert value_datatype(-5) == DataType.Int64
    assert value_datatype(2**63 - 1) == DataType.Int64
    assert value_datatype(2**63) == DataType.UInt64
    assert value_datatype(2**64) is None
    assert value_datatype(-(2**63) - 1) is None
    assert value_datatype(1.5) == DataType.Double
    assert value_datatype("x") == DataType.String
    assert value_datatype(None) is None


def test_fits() -> None:
    assert not fits(DataType.Int16, True)
    assert not fits(DataType.Boolean, 1)
    assert fits(DataType.Int16, -32768)
    assert not fits(DataType.Int16, 32768)
    assert not fits(DataType.UInt32, -1)
    assert fits(DataType.Double, 2**53)
    assert not fits(DataType.Double, 2**53 + 1)
    assert not fits(DataType.Float, 1)
    assert not fits(DataType.String, 1.0)
    assert not fits(DataType.Double, None)
    assert fits(DataType.Float, 3.4028234663852886e38)
    assert not fits(DataType.Float, 1e39)  # would travel as inf
    assert not fits(DataType.Float, -1e39)


@pytest.mark.parametrize(
    ("datatype", "value", "wire"),
    [
        (DataType.Int8, -1, 0xFFFF_FFFF),
        (DataType.Int8, -128, 0xFFFF_FF80),
        (DataType.Int16, -32768, 0xFFFF_8000),
        (DataType.Int32, -(2**31), 0x8000_0000),
        (DataType.Int64, -1, 0xFFFF_FFFF_FFFF_FFFF),
        (DataType.Int64, -(2**63), 0x8000_0000_0000_0000),
        (DataType.UInt32, 2**32 - 1, 2**32 - 1),
        (DataType.Int16, 5, 5),
    ],
)
def test_signed_negatives_travel_as_twos_complement(
    datatype: DataType, value: int, wire: int
) -> None:
    assert wire_int(datatype, value) == wire
    assert from_wire_int(datatype, wire) == value


def test_a_value_out_of_range_is_refused_not_wrapped() -> None:
    with pytest.raises(ValueError, match="does not fit Int16"):
        wire_int(DataType.Int16, 40000)
    with pytest.raises(ValueError, match="does not fit UInt64"):
        wire_int(DataType.UInt64, -1)


def _round_trip(datatype: DataType, value: object) -> object:
    payload = pb.Payload()
    metric = payload.metrics.add(name="m", datatype=datatype)
    assert set_sample(metric, datatype, value, Quality.GOOD, "") == QUALITY_GOOD  # type: ignore[arg-type]
    parsed = pb.Payload.FromString(payload.SerializeToString()).metrics[0]
    assert parsed.WhichOneof("value") == FIELD[datatype]
    [command] = decode_command(payload.SerializeToString())
    return command.value


@pytest.mark.parametrize("datatype", sorted(INT_RANGE.keys() - {DataType.DateTime}))
@given(data=st.data())
def test_every_integer_datatype_round_trips(datatype: DataType, data: st.DataObject) -> None:
    low, high = INT_RANGE[datatype]
    value = data.draw(st.integers(low, high) | st.sampled_from([low, high, 0, -1 if low else 0]))
    assert _round_trip(datatype, value) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double_round_trips(value: float) -> None:
    assert _round_trip(DataType.Double, value) == value


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float_round_trips_a_float32(value: float) -> None:
    assert _round_trip(DataType.Float, value) == value


@pytest.mark.parametrize(
    ("datatype", "value"),
    [(DataType.Boolean, True), (DataType.Boolean, False), (DataType.String, "Ölpumpe 3 ✓")],
)
def test_boolean_and_string_round_trip(datatype: DataType, value: object) -> None:
    assert _round_trip(datatype, value) == value


def test_a_non_finite_float_is_never_sent_as_a_value() -> None:
    metric = pb.Payload().metrics.add()
    assert set_sample(metric, DataType.Double, math.nan, Quality.GOOD, "") != QUALITY_GOOD
    assert metric.is_null
    assert metric.WhichOneof("value") is None


def test_the_fields_are_those_tahu_and_the_tck_read() -> None:
    """Int8/16/32 and UInt8/16 in int_value; UInt32, Int64, UInt64, DateTime in long_value
    (the TCK's Utils.hasValue; Tahu JS getValue reads a UInt32 from longValue)."""
    ints = {d for d, f in FIELD.items() if f == "int_value"}
    longs = {d for d, f in FIELD.items() if f == "long_value"}
    assert ints == {DataType.Int8, DataType.Int16, DataType.Int32, DataType.UInt8, DataType.UInt16}
    assert longs == {DataType.UInt32, DataType.Int64, DataType.UInt64, DataType.DateTime}


def test_a_float32_metric_never_turns_a_finite_value_into_infinity() -> None:
    """A double beyond float32's range set into float_value reads back as inf: sent BAD
    with a reason, never inf as GOOD (review finding, issue 17)."""
    metric = pb.Payload().metrics.add()
    assert set_sample(metric, DataType.Float, 1e39, Quality.GOOD, "") != QUALITY_GOOD
    assert metric.is_null
    assert metric.WhichOneof("value") is None
    assert (
        "beyond the range of the metric's datatype Float"
        in metric.properties.values[1].string_value
    )


def test_a_string_protobuf_cannot_encode_is_sent_bad() -> None:
    """asyncua decodes OPC UA strings with errors="surrogateescape": bytes that are not
    UTF-8 arrive as lone surrogates, which protobuf refuses to set (UnicodeEncodeError)."""
    metric = pb.Payload().metrics.add()
    assert set_sample(metric, DataType.String, "Pumpe \udcc3", Quality.GOOD, "") == 0
    assert metric.is_null
    assert metric.WhichOneof("value") is None
    assert "not valid UTF-8" in metric.properties.values[1].string_value
    uncertain = pb.Payload().metrics.add()
    assert set_sample(uncertain, DataType.String, "\ud800", Quality.UNCERTAIN, "\udcff") == 0
    assert uncertain.is_null
    # A reason (or unit, description) that is not UTF-8 goes out escaped, not refused.
    assert uncertain.properties.values[1].string_value == "uncertain: \\udcff"
