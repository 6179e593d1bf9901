"""StatusCodes, Variant conversion and batch assembly of the OPC UA driver (pure parts).

The inputs are real asyncua values (DataValue, Variant) as the client hands them over,
not mocks; the over-the-wire counterpart is tests/integration/test_opcua_driver.py.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from asyncua import ua

from drivers.opcua.batches import GroupAssembler
from drivers.opcua.convert import convert_value, datetime_ns, decode
from drivers.opcua.quality import classify
from edge_agent.model import Quality

GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD
T0 = dt.datetime(2026, 3, 1, 6, 0, 0, 250000, tzinfo=dt.UTC)
T0_NS = 1772344800_250000000


@pytest.mark.parametrize(
    ("code", "want"),
    [
        (0, (GOOD, "")),
        (0x00A5_0000, (GOOD, "")),  # GoodNoData-style good codes keep an empty reason
        (0x0000_0400, (GOOD, "")),  # info bits (limit, overflow) do not change severity
        (ua.StatusCodes.UncertainLastUsableValue, (UNCERTAIN, "UncertainLastUsableValue")),
        (ua.StatusCodes.BadNodeIdUnknown, (BAD, "BadNodeIdUnknown")),
        (ua.StatusCodes.BadNotReadable, (BAD, "BadNotReadable")),
        (ua.StatusCodes.BadSensorFailure | 0x0400, (BAD, "BadSensorFailure")),
        (0xC0FE_0000, (BAD, "0xC0FE0000")),  # not in the spec: the hex code
    ],
)
def test_status_codes_map_to_quality_with_the_code_name(
    code: int, want: tuple[Quality, str]
) -> None:
    assert classify(code) == want


@pytest.mark.parametrize(
    ("variant", "want"),
    [
        (ua.Variant(True, ua.VariantType.Boolean), (True, GOOD, "")),
        (ua.Variant(-5, ua.VariantType.SByte), (-5, GOOD, "")),
        (ua.Variant(2**64 - 1, ua.VariantType.UInt64), (2**64 - 1, GOOD, "")),
        (ua.Variant(2.5, ua.VariantType.Float), (2.5, GOOD, "")),
        (ua.Variant("Ölpumpe", ua.VariantType.String), ("Ölpumpe", GOOD, "")),
        (ua.Variant(T0, ua.VariantType.DateTime), ("2026-03-01T06:00:00.250000Z", GOOD, "")),
        (
            ua.Variant(dt.datetime(1601, 1, 1, tzinfo=dt.UTC), ua.VariantType.DateTime),
            (None, UNCERTAIN, "null DateTime"),
        ),
        (
            ua.Variant(ua.LocalizedText("Auto", "de"), ua.VariantType.LocalizedText),
            ("Auto", GOOD, ""),
        ),
        (
            ua.Variant(ua.QualifiedName("Motor", 3), ua.VariantType.QualifiedName),
            ("3:Motor", GOOD, ""),
        ),
        (ua.Variant(ua.NodeId("x", 2), ua.VariantType.NodeId), ("ns=2;s=x", GOOD, "")),
        (
            ua.Variant(uuid.UUID(int=1), ua.VariantType.Guid),
            ("00000000-0000-0000-0000-000000000001", GOOD, ""),
        ),
        (ua.Variant(b"\x00\xff", ua.VariantType.ByteString), ("AP8=", GOOD, "")),
        (
            ua.Variant(ua.StatusCode(ua.StatusCodes.BadTimeout), ua.VariantType.StatusCode),
            ("BadTimeout", GOOD, ""),
        ),
        (ua.Variant(None, ua.VariantType.Null), (None, BAD, "null value")),
        (ua.Variant([], ua.VariantType.Int32), (None, UNCERTAIN, "empty array")),
        (
            ua.Variant([[1, 2], [3, 4]], ua.VariantType.Int32),
            (None, BAD, "unsupported type 2x2 array (only 1-D arrays)"),
        ),
        (
            ua.Variant(ua.Argument(), ua.VariantType.ExtensionObject),
            (None, BAD, "unsupported type Argument"),
        ),
    ],
)
def test_variant_types_convert_to_sample_values(
    variant: ua.Variant, want: tuple[object, ...]
) -> None:
    assert convert_value(variant, None) == want


def test_arrays_convert_element_by_element() -> None:
    converted, quality, reason = convert_value(
        ua.Variant([1, 7], ua.VariantType.Int32), {1: "idle"}
    )
    assert converted == [("idle", GOOD, ""), ("7", UNCERTAIN, "unknown enum value 7")]
    assert (quality, reason) == (GOOD, "")


def test_enumerations_give_labels_and_flag_unknown_values() -> None:
    labels = {0: "Off", 1: "Idle", 2: "Run"}
    assert convert_value(ua.Variant(2, ua.VariantType.Int32), labels) == ("Run", GOOD, "")
    assert convert_value(ua.Variant(9, ua.VariantType.Int32), labels) == (
        "9",
        UNCERTAIN,
        "unknown enum value 9",
    )
    # A bool is never looked up in an enum map, although Python counts it as an int.
    assert convert_value(ua.Variant(True, ua.VariantType.Boolean), labels) == (True, GOOD, "")


def test_status_wins_over_the_value() -> None:
    bad = ua.DataValue(ua.Variant(3.0), StatusCode=ua.StatusCode(ua.StatusCodes.BadOutOfService))
    assert decode(bad, None) == (None, BAD, "BadOutOfService")
    uncertain = ua.DataValue(
        ua.Variant(3.0), StatusCode=ua.StatusCode(ua.StatusCodes.UncertainSensorNotAccurate)
    )
    assert decode(uncertain, None) == (3.0, UNCERTAIN, "UncertainSensorNotAccurate")


def test_datetimes_convert_to_nanoseconds_exactly() -> None:
    assert datetime_ns(T0) == T0_NS
    assert datetime_ns(T0.replace(tzinfo=None)) == T0_NS  # naive means UTC
    assert datetime_ns(dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)) == -1000


def _value(value: object, kind: ua.VariantType, source: dt.datetime | None = T0) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(value, kind),
        SourceTimestamp=source,
        ServerTimestamp=source and source + dt.timedelta(seconds=1),
    )


def test_read_batch_keeps_names_and_stamps_each_value() -> None:
    assembler = GroupAssembler("cnc", "fast", ("a", "b", "c"), use_source=True)
    results = [
        _value(1.5, ua.VariantType.Double),
        None,
        _value(4, ua.VariantType.Int32, source=None),
    ]
    batch = assembler.read_batch(99, results, ["", "namespace not on server: urn:x", ""])
    assert batch.names is assembler.names  # the same tuple every time: no copy per poll
    assert batch.values == [1.5, None, 4]
    assert batch.qualities == [GOOD, BAD, GOOD]
    assert batch.reasons == ["", "namespace not on server: urn:x", ""]
    assert batch.timestamps_ns == [T0_NS, 99, 99]
    server = GroupAssembler("cnc", "fast", ("a",), use_source=False)
    (stamp,) = server.read_batch(0, [_value(1.0, ua.VariantType.Double)], [""]).timestamps_ns or []
    assert stamp == T0_NS + 1_000_000_000


def test_read_batch_expands_arrays_and_caches_their_names() -> None:
    assembler = GroupAssembler("m", "g", ("v", "i"), use_source=True)
    first = assembler.read_batch(
        0,
        [_value([230.0, 231.0], ua.VariantType.Double), _value(1, ua.VariantType.Int32)],
        ["", ""],
    )
    assert list(first.names) == ["v[0]", "v[1]", "i"]
    assert first.values == [230.0, 231.0, 1]
    again = assembler.read_batch(
        0, [_value([1.0, 2.0], ua.VariantType.Double), _value(2, ua.VariantType.Int32)], ["", ""]
    )
    assert again.names is first.names
    longer = assembler.read_batch(
        0,
        [_value([1.0, 2.0, 3.0], ua.VariantType.Double), _value(2, ua.VariantType.Int32)],
        ["", ""],
    )
    assert list(longer.names) == ["v[0]", "v[1]", "v[2]", "i"]


def test_an_array_above_its_cap_is_one_bad_sample_with_its_length() -> None:
    """51,200 elements must not become 51,200 samples in every read (198 MB messages)."""
    huge = _value([0.5] * 51_200, ua.VariantType.Double)
    assert decode(huge, None, 1000) == (
        None,
        BAD,
        "array of 51200 elements, above max_array_length 1000",
    )
    assembler = GroupAssembler(
        "m", "g", ("spectrum", "phases"), use_source=True, max_array_lengths=[1000, 3]
    )
    batch = assembler.read_batch(
        0, [huge, _value([1.0, 2.0, 3.0], ua.VariantType.Double)], ["", ""]
    )
    assert list(batch.names) == ["spectrum", "phases[0]", "phases[1]", "phases[2]"]
    assert batch.qualities == [BAD, GOOD, GOOD, GOOD]
    assert batch.reasons[0] == "array of 51200 elements, above max_array_length 1000"
    (changed,) = assembler.change_batches(0, [(0, huge)])
    assert (list(changed.names), changed.qualities) == (["spectrum"], [BAD])


def test_changes_are_split_into_rounds_with_each_tag_once() -> None:
    assembler = GroupAssembler("cnc", "events", ("a", "b", "c"), use_source=True)
    t1, t2, t3 = T0, T0 + dt.timedelta(seconds=1), T0 + dt.timedelta(seconds=2)
    changes = [
        (0, _value(1.0, ua.VariantType.Double, t1)),
        (1, _value(10.0, ua.VariantType.Double, t1)),
        (0, _value(2.0, ua.VariantType.Double, t2)),
        (0, _value(3.0, ua.VariantType.Double, t3)),
        (1, ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadDeviceFailure))),
    ]
    batches = assembler.change_batches(7, changes, refused=[(2, "BadNodeIdUnknown")])
    assert [list(b.names) for b in batches] == [["c", "a", "b"], ["a", "b"], ["a"]]
    assert [b.values for b in batches] == [[None, 1.0, 10.0], [2.0, None], [3.0]]
    assert batches[0].reasons == ["BadNodeIdUnknown", "", ""]
    assert batches[1].reasons == ["", "BadDeviceFailure"]
    assert [b.timestamps_ns for b in batches] == [
        [7, T0_NS, T0_NS],
        [T0_NS + 1_000_000_000, 7],
        [T0_NS + 2_000_000_000],
    ]
    assert assembler.change_batches(8, []) == []


# A Float variable as asyncua hands it over: the float32's exact value, 17 digits.
F32 = 14.545377731323242


def test_a_float_is_its_shortest_float32_decimal_in_every_path() -> None:
    """Float (32-bit) variables read, subscribed, in arrays and uncertain: 14.545378.
    A Double is left alone: its repr is already the shortest."""
    assert convert_value(ua.Variant(F32, ua.VariantType.Float), None) == (14.545378, GOOD, "")
    assert convert_value(ua.Variant(F32, ua.VariantType.Double), None) == (F32, GOOD, "")
    elements, _, _ = convert_value(ua.Variant([F32, 0.5], ua.VariantType.Float), None)
    assert elements == [(14.545378, GOOD, ""), (0.5, GOOD, "")]
    uncertain = ua.DataValue(
        Value=ua.Variant(F32, ua.VariantType.Float),
        StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
    )
    assert decode(uncertain, None)[0] == 14.545378
    assembler = GroupAssembler("cnc", "fast", ("a", "b", "c"), use_source=True)
    results = [
        _value(F32, ua.VariantType.Float),
        _value(F32, ua.VariantType.Double),
        _value(0.10000000149011612, ua.VariantType.Float),
    ]
    batch = assembler.read_batch(99, results, ["", "", ""])
    assert batch.values == [14.545378, F32, 0.1]
    (changed,) = assembler.change_batches(7, [(0, _value(F32, ua.VariantType.Float))])
    assert changed.values == [14.545378]
