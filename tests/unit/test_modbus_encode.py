"""The write encoder is the inverse of the decoder, and agrees with an independent encoder.

Every type x byte order x scale/offset: the registers must be what
simulators/registers.py (plain struct and explicit re-ordering, no code shared with
drivers/) makes of the value, and the agent's decoder must read them back as
``expected``, which is the value itself wherever the type can hold it exactly.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.encode import NotRepresentable, decode_tag, encode
from edge_agent.config import ModbusTag
from edge_agent.model import Quality
from simulators.registers import encode as sim_encode

ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")
RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
#: (scale, offset) pairs a plant writes.
SCALES = [(1.0, 0.0), (0.1, 0.0), (0.01, -40.0), (0.5, 3.0), (-0.25, 0.0), (10.0, 273.15)]


def tag(**fields: Any) -> ModbusTag:
    return ModbusTag.model_validate({"name": "t", "address": 7} | fields)


def _check(t: ModbusTag, value: Any, **sim: Any) -> Any:
    encoded = encode(t, value)
    order = t.byte_order or "ABCD"
    truth = sim_encode(value, t.type, byte_order=order, **sim)  # type: ignore[arg-type]
    assert list(encoded.registers) == truth
    decoded, quality, reason = decode_tag(t, list(encoded.registers), "ABCD", code=False)
    assert quality is Quality.GOOD, reason
    assert decoded == encoded.expected
    return encoded.expected


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", list(RANGES))
def test_integers_at_their_ends_and_inside(type_: str, order: str) -> None:
    low, high = RANGES[type_]
    for value in (low, high, 0, 1, -1 if low else 2, high // 3, low // 7):
        assert _check(tag(type=type_, byte_order=order), value) == value


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize(("scale", "offset"), SCALES)
@pytest.mark.parametrize("type_", ["int16", "uint16", "int32", "uint32", "int64", "uint64"])
def test_scaled_integers(type_: str, order: str, scale: float, offset: float) -> None:
    low, high = RANGES[type_]
    t = tag(type=type_, byte_order=order, scale=scale, offset=offset)
    exact = (scale, offset) == (1.0, 0.0) or type_ not in ("int64", "uint64")
    # A float carries no 64-bit raw value beyond 2**53 exactly: not a write's case.
    ends = (low, high) if exact else (-(2**53) if low else 0, 2**53)
    for raw in (*ends, max(low, -1234), min(high, 4321), 0):
        value = decode_tag(t, sim_encode(raw, type_, byte_order=order), "ABCD", False)[0]  # type: ignore[arg-type]
        assert isinstance(value, int | float)
        expected = encode(t, value).expected
        assert expected == value
        assert list(encode(t, value).registers) == sim_encode(raw, type_, byte_order=order)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("type_", ["float32", "float64"])
@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (2.0, 1.0), (0.1, -5.0)])
def test_floats(type_: str, order: str, scale: float, offset: float) -> None:
    t = tag(type=type_, byte_order=order, scale=scale, offset=offset)
    for value in (0.0, 123.456, -9876.54321, 1e-3, 3.0e30):
        expected = _check(t, value, scale=scale, offset=offset)
        assert math.isclose(expected, value, rel_tol=1e-6 if type_ == "float32" else 1e-12)
    if scale == 1.0:
        assert encode(t, 0.1).expected == 0.1  # float32: its shortest decimal, not 0.100000001
        assert encode(tag(type="float32"), 16777217).expected == 16777216.0


@pytest.mark.parametrize("order", ["ABCD", "BADC"])
def test_strings_against_the_simulator(order: str) -> None:
    t = tag(type="string", length=4, byte_order=order)
    assert _check(t, "PUMP-7", length=4) == "PUMP-7"
    assert _check(t, "ABCDEFGH", length=4) == "ABCDEFGH"
    assert _check(t, "", length=4) == ""


def test_strings_word_orders_only_swap_bytes() -> None:
    """Text is a character pair per register: CDAB reads as ABCD, DCBA as BADC."""
    for order, like in (("CDAB", "ABCD"), ("DCBA", "BADC")):
        assert encode(tag(type="string", length=3, byte_order=order), "abc") == encode(
            tag(type="string", length=3, byte_order=like), "abc"
        )


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(list(RANGES)),
    order=st.sampled_from(ORDERS),
    scale=st.sampled_from([s for s, _ in SCALES]),
    offset=st.sampled_from([o for _, o in SCALES]),
    fraction=st.floats(0, 1),
)
def test_any_value_a_poll_shows_encodes_back_to_its_registers(
    type_: str, order: str, scale: float, offset: float, fraction: float
) -> None:
    low, high = RANGES[type_]
    raw = low + int((high - low) * fraction)
    raw = max(low, min(high, raw))
    t = tag(type=type_, byte_order=order, scale=scale, offset=offset)
    registers = sim_encode(raw, type_, byte_order=order)  # type: ignore[arg-type]
    shown, quality, _ = decode_tag(t, registers, "ABCD", False)
    assert quality is Quality.GOOD
    assert isinstance(shown, int | float)
    if abs(raw) > 2**53 and (scale, offset) != (1.0, 0.0):
        return  # a float cannot carry every raw value beyond 2**53: not a write's case
    assert list(encode(t, shown).registers) == registers


def test_the_device_default_byte_order_applies_unless_the_tag_overrides() -> None:
    plain, own = tag(type="float32"), tag(type="float32", byte_order="BADC")
    cdab, badc = (sim_encode(1.5, "float32", byte_order=o) for o in ("CDAB", "BADC"))
    assert list(encode(plain, 1.5, "CDAB").registers) == cdab
    assert list(encode(own, 1.5, "CDAB").registers) == badc


def test_bools() -> None:
    coil = tag(table="coil", type="bool")
    assert encode(coil, True).bit is True
    assert encode(coil, 0).bit is False
    assert encode(coil, 0).expected is False
    bit = tag(type="bool", bit=12)
    assert encode(bit, 1).bit is True
    assert encode(bit, 1).expected is True
    with pytest.raises(NotRepresentable, match="true or false"):
        encode(coil, 2)
    with pytest.raises(NotRepresentable, match="true or false"):
        encode(coil, "yes")
    labelled = tag(table="coil", type="bool", enum={0: "closed", 1: "open"})
    assert encode(labelled, "open").bit is True
    assert encode(labelled, "open").expected == "open"


def test_enums() -> None:
    state = tag(type="uint16", enum={0: "off", 1: "idle", 2: "run"})
    assert encode(state, "run").registers == (2,)
    assert encode(state, "run").expected == "run"
    assert encode(state, 1).expected == "idle"  # a code is accepted too
    with pytest.raises(NotRepresentable, match=r"'fast' is not one of .* off \(0\), idle \(1\)"):
        encode(state, "fast")
    with pytest.raises(NotRepresentable, match="not one of"):
        encode(state, 7)
    with pytest.raises(NotRepresentable, match="not one of"):
        encode(state, True)
    twice = tag(type="uint16", enum={0: "off", 1: "on", 2: "on"})
    with pytest.raises(NotRepresentable, match="several codes"):
        encode(twice, "on")


@pytest.mark.parametrize(
    ("fields", "value", "message"),
    [
        (
            {"scale": 0.1, "unit": "bar"},
            6.55,
            "6.55 bar is not a multiple of the scale 0.1 of tag t: the nearest values it can "
            "hold are 6.5 and 6.6",
        ),
        (
            {"scale": 0.1, "unit": "bar"},
            6553.6,
            r"6553.6 bar is out of range: tag t \(uint16\) holds 0-65535 raw, i.e. 0-6553.5 bar",
        ),
        ({"type": "int16"}, 32768, r"holds -32768 to 32767 raw$"),
        ({"type": "int16"}, 1.5, "not a whole number"),
        ({"scale": 0.5, "offset": 0.2}, 1.0, r"0.2 plus a multiple of 0.5 .* 0.7 and 1.2"),
        ({}, float("nan"), "finite number"),
        ({"type": "float32"}, float("inf"), "finite number"),
        ({"type": "float32"}, 1e39, "beyond what tag t"),
        ({"type": "float64"}, 10**400, "beyond what tag t"),
        ({"scale": 0.1}, 10**400, "out of range"),
        ({}, "6.5", "takes a number"),
        ({}, True, "takes a number"),
        ({"sentinel": 65535}, 65535, "sentinel"),
        ({"type": "float32", "sentinel": -9999.9}, -9999.9, "sentinel"),
        ({"type": "string", "length": 2}, "abcde", "at most 4"),
        ({"type": "string", "length": 2}, "é", "ASCII"),
        ({"type": "string", "length": 2}, "a\0b", "NUL"),
        ({"type": "string", "length": 2}, 5, "takes a text"),
        ({"table": "input"}, 1, "read-only"),
        ({"table": "coil", "type": "bool", "sentinel": 0}, False, "sentinel"),
    ],
)
def test_refusals_say_why(fields: dict[str, Any], value: Any, message: str) -> None:
    with pytest.raises(NotRepresentable, match=message):
        encode(tag(**fields), value)


@pytest.mark.parametrize(
    ("fields", "value", "registers"),
    [
        ({"scale": 0.1}, 6.5000000001, (65,)),  # within 1e-9 of a raw unit
        ({"scale": 0.01}, 6.5, (650,)),  # 650.0000000000001 in floats
        ({"scale": 0.1}, 0.1 + 0.2, (3,)),  # 0.30000000000000004
        ({"scale": 0.1, "offset": 1e7, "type": "int32"}, 1e7 + 0.1, (0, 1)),  # cancellation
        ({"type": "uint32"}, 3_000_000_000.0, (0xB2D0, 0x5E00)),
    ],
)
def test_whole_within_float_noise(
    fields: dict[str, Any], value: float, registers: tuple[int, ...]
) -> None:
    assert encode(tag(**fields), value).registers == registers


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ({"scale": 0.1}, 6.50001),
        ({"type": "uint32"}, 3_000_000_000.5),  # 1e-9 x raw would be 3 raw units
        ({"type": "int64", "scale": 0.5}, 1e12 + 0.25),
        ({"type": "uint32", "offset": 1.0}, 4_000_000_000.5),
    ],
)
def test_a_fraction_of_a_raw_unit_is_refused_however_large_the_value(
    fields: dict[str, Any], value: float
) -> None:
    with pytest.raises(NotRepresentable, match=r"whole number|multiple"):
        encode(tag(**fields), value)


def test_big_integers_stay_exact() -> None:
    t = tag(type="uint64")
    assert encode(t, 2**64 - 1).registers == (0xFFFF,) * 4
    assert encode(t, 2**53 + 1).expected == 2**53 + 1
    raw = struct.unpack(">Q", struct.pack(">4H", *encode(t, 2**53 + 1).registers))[0]
    assert raw == 2**53 + 1
