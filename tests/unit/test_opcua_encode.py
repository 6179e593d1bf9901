"""A command's value -> the Variant of the node's own type (drivers.opcua.encode), and
check's static rule for OPC UA writes (edge_agent.config.checks.opcua_writes)."""

from __future__ import annotations

import math
import struct

import pytest
from asyncua import ua

from drivers.opcua.convert import convert_value
from drivers.opcua.encode import INTEGER_RANGES, encode
from edge_agent.config.checks.opcua_writes import opcua_write_problems
from edge_agent.config.opcua import OpcUaDeviceConfig
from edge_agent.driver import WriteRefused

VT = ua.VariantType


@pytest.mark.parametrize("vtype", list(INTEGER_RANGES))
def test_integers_carry_the_nodes_type_and_its_whole_range(vtype: ua.VariantType) -> None:
    low, high = INTEGER_RANGES[vtype]
    for value in (low, high, 7):
        encoded = encode(value, vtype)
        assert encoded.variant.VariantType is vtype
        assert encoded.variant.Value == value
        assert encoded.expected == value
    for outside in (low - 1, high + 1):
        with pytest.raises(WriteRefused, match=f"out of range.*{vtype.name}"):
            encode(outside, vtype)


def test_an_int_beyond_any_float_is_refused_not_an_exception() -> None:
    for vtype in (VT.Double, VT.Float, VT.Int64):
        with pytest.raises(WriteRefused):
            encode(10**400, vtype)


def test_an_integer_type_refuses_fractions_bools_text_and_nan() -> None:
    with pytest.raises(WriteRefused, match=r"not a whole number.*nearest values .* are 6 and 7"):
        encode(6.5, VT.Int16)
    # Exactly whole, with no tolerance (no scale here, so no float noise to forgive):
    # a fraction is never rounded away, however large the number.
    with pytest.raises(WriteRefused, match=r"not a whole number.*3000000000 and 3000000001"):
        encode(3_000_000_000.5, VT.UInt32)
    assert encode(6.0, VT.Int16).variant.Value == 6  # a whole float is that integer
    assert type(encode(6.0, VT.Int16).variant.Value) is int
    for wrong in (True, "6", math.nan, math.inf):
        with pytest.raises(WriteRefused):
            encode(wrong, VT.Int32)


def test_float_is_rounded_to_float32_and_expected_is_what_a_read_shows() -> None:
    encoded = encode(0.1, VT.Float)
    single = struct.unpack("<f", struct.pack("<f", 0.1))[0]
    assert encoded.variant.VariantType is VT.Float
    assert encoded.variant.Value == single
    # What the poll will publish for that node (convert.py) is the expected value.
    assert convert_value(ua.Variant(single, VT.Float), None)[0] == encoded.expected == 0.1
    with pytest.raises(WriteRefused, match="Float"):
        encode(1e39, VT.Float)
    with pytest.raises(WriteRefused):
        encode(math.nan, VT.Float)


def test_double_takes_numbers_exactly_and_never_a_guess() -> None:
    encoded = encode(6, VT.Double)
    assert encoded.variant.VariantType is VT.Double
    assert type(encoded.variant.Value) is float
    with pytest.raises(WriteRefused, match="exactly"):
        encode(2**53 + 1, VT.Double)
    for wrong in (True, "6.5", math.inf):
        with pytest.raises(WriteRefused):
            encode(wrong, VT.Double)


def test_boolean_string_and_datetime() -> None:
    assert encode(True, VT.Boolean).variant == ua.Variant(True, VT.Boolean)
    assert encode(0, VT.Boolean).expected is False
    for wrong in (2, 1.0, "true"):
        with pytest.raises(WriteRefused, match="true/false"):
            encode(wrong, VT.Boolean)
    assert encode("Recipe 7", VT.String).variant == ua.Variant("Recipe 7", VT.String)
    with pytest.raises(WriteRefused, match="text"):
        encode(7, VT.String)
    moment = encode("2026-12-05T14:00:00+08:00", VT.DateTime)
    assert moment.variant.VariantType is VT.DateTime
    assert moment.expected == "2026-12-05T06:00:00.000000Z"
    assert convert_value(moment.variant, None)[0] == moment.expected
    with pytest.raises(WriteRefused, match="time zone"):
        encode("2026-12-05T06:00:00", VT.DateTime)
    with pytest.raises(WriteRefused, match="not supported"):
        encode("AAE=", VT.ByteString)


def test_enumerations_take_labels_or_their_codes() -> None:
    enum = {0: "off", 1: "idle", 2: "run"}
    encoded = encode("run", VT.Int32, enum, "tag mode")
    assert encoded.variant == ua.Variant(2, VT.Int32)
    assert encoded.expected == "run"
    assert "(run)" in encoded.shown
    assert encode(1, VT.Int32, enum).expected == "idle"
    with pytest.raises(WriteRefused, match=r"'fast' is not a state of tag mode.*off, idle, run"):
        encode("fast", VT.Int32, enum, "tag mode")
    with pytest.raises(WriteRefused, match="7 is not a code"):
        encode(7, VT.Int32, enum)
    # A configured enum on a UInt16 node: the node's type, not Int32.
    assert encode("idle", VT.UInt16, enum).variant == ua.Variant(1, VT.UInt16)


def _device(nodes: list[tuple[str, bool]]) -> OpcUaDeviceConfig:
    tags = [
        {"name": f"t{k}", "node": node} | ({"write": {"channels": ["cli"]}} if writable else {})
        for k, (node, writable) in enumerate(nodes)
    ]
    return OpcUaDeviceConfig.model_validate(
        {
            "name": "plc",
            "driver": "opcua",
            "endpoint": "opc.tcp://127.0.0.1:4840",
            "poll_groups": [{"interval": 1, "tags": tags}],
        }
    )


def test_a_write_block_on_a_namespace_0_node_is_a_check_error() -> None:
    device = _device(
        [
            ("i=2258", True),  # Server_ServerStatus_CurrentTime
            ("ns=0;i=2259", True),
            ("i=2256", False),  # read-only tag on ns 0: fine
            ("ns=2;s=Setpoint", True),
            ("nsu=urn:acme;s=Mode", True),
            ("/Objects/2:Machine/2:Setpoint", True),
        ]
    )
    problems = opcua_write_problems(device)
    assert [path for path, _ in problems] == [
        ("poll_groups", 0, "tags", 0, "write"),
        ("poll_groups", 0, "tags", 1, "write"),
    ]
    assert "namespace 0" in problems[0][1]
    assert "read-only" in problems[0][1]
