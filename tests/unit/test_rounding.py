"""Values rounded to what the device can express: float32 shortest decimals, exact scales."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent import rounding as rounding_module
from edge_agent.rounding import (
    COMPILED_AFTER,
    DecimalScale,
    scaled_float,
    shortest_float32,
    shortest_float32_compiled,
    shortest_float32_exact,
    shortest_float32_listwise,
    shortest_float32_one,
)

_F32 = struct.Struct("<f")
_EXACT = Context(prec=200)


def from_bits(bits: int) -> float:
    return float(_F32.unpack(struct.pack("<I", bits))[0])


def bits_of(value: float) -> bytes:
    return _F32.pack(value)


def significant_digits(value: float) -> int:
    return len(Decimal(repr(value)).normalize().as_tuple().digits)


def no_shorter_decimal_round_trips(value: float, original: float) -> bool:
    """Independent of the module: every decimal one digit shorter near ``original``
    (rounded down and up) packs to other bits."""
    digits = significant_digits(value)
    if digits == 1:
        return True
    exact = Decimal(original)
    unit = Decimal(1).scaleb(exact.adjusted() - digits + 2)
    for rounding in ("ROUND_FLOOR", "ROUND_CEILING"):
        candidate = exact.quantize(unit, rounding=rounding)
        try:
            if _F32.pack(float(candidate)) == bits_of(original):
                return False
        except OverflowError:
            pass
    return True


float32_bits = st.integers(0, 2**32 - 1)


#: The compiled path (numpy + orjson, lists of COMPILED_FROM values or more) and the
#: list path must agree with the reference, and so with each other.
BOTH = pytest.mark.parametrize(
    "shortest",
    [shortest_float32_compiled, shortest_float32_listwise, shortest_float32],
    ids=["compiled", "listwise", "either"],
)


@BOTH
@settings(max_examples=3000, deadline=None)
@given(patterns=st.lists(float32_bits, min_size=1, max_size=60))
def test_shortest_float32_round_trips_and_is_the_shortest(
    shortest: Callable[[list[float]], list[float]], patterns: list[int]
) -> None:
    values = [from_bits(b) for b in patterns]
    rounded = shortest(values)
    assert len(rounded) == len(values)
    for value, got in zip(values, rounded, strict=True):
        if math.isnan(value):
            assert math.isnan(got)  # NaN passes through (the driver marks it bad)
            continue
        assert bits_of(got) == bits_of(value), (value, got)
        assert repr(got) == repr(shortest_float32_exact(value)), (value, got)
        assert no_shorter_decimal_round_trips(got, value), (value, got)
        assert repr(shortest_float32_one(value)) == repr(got)


@BOTH
def test_every_power_of_two_and_its_neighbours(
    shortest: Callable[[list[float]], list[float]],
) -> None:
    """Where the float32 spacing changes (the only place nearest-decimal search can
    miss the shortest), and the subnormals, which have fewer bits."""
    values = []
    for exponent in range(1, 255):
        bits = exponent << 23
        values += [from_bits(b) for b in (bits - 1, bits, bits + 1)]
    values += [from_bits(b) for b in (1, 2, 3, 5, 7, 0x7FFFFF, 0x400000, 0x123456)]
    values += [-v for v in values]
    for value, got in zip(values, shortest(values), strict=True):
        assert bits_of(got) == bits_of(value)
        assert repr(got) == repr(shortest_float32_exact(value)), value
        assert repr(shortest_float32_one(value)) == repr(got)
        assert no_shorter_decimal_round_trips(got, value), (value, got)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (14.545377731323242, "14.545378"),
        (from_bits(0x42F6E979), "123.456"),
        (from_bits(0x3DCCCCCD), "0.1"),  # float32 0.1
        (from_bits(0x7F7FFFFF), "3.4028235e+38"),  # the largest float32
        (from_bits(0x00000001), "1e-45"),  # the smallest subnormal
        (16777216.0, "16777216.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_known_values(value: float, expected: str) -> None:
    assert repr(shortest_float32([value])[0]) == expected
    assert [repr(v) for v in shortest_float32_compiled([value] * 5)] == [expected] * 5


@BOTH
def test_empty_and_nan(shortest: Callable[[list[float]], list[float]]) -> None:
    assert shortest([]) == []
    nan = from_bits(0x7FC00001)  # a quiet NaN with a payload: passed on as it came
    got = shortest([1.5, math.nan, nan, -math.inf, math.inf, 0.1])
    assert got[1] is not got[2]
    assert bits_of(got[1]) == bits_of(math.nan)
    assert struct.pack("<d", got[2]) == struct.pack("<d", nan)
    assert got[0] == 1.5
    assert got[3:] == [-math.inf, math.inf, shortest_float32_exact(0.1)]


def test_the_compiled_path_is_loaded_after_enough_values_and_not_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not during a plant's first polls (numpy takes 50 ms to load), and not for a plant
    with few float32 values; then for every list of COMPILED_FROM values or more."""
    loads: list[int] = []
    real = rounding_module._load_compiled

    def counted() -> Any:
        loads.append(1)
        return real()

    monkeypatch.setattr(rounding_module, "_load_compiled", counted)
    monkeypatch.setattr(rounding_module, "_compiled", None)
    monkeypatch.setattr(rounding_module, "_listed", 0)
    monkeypatch.setattr(rounding_module, "_since", None)
    block = [from_bits(0x42F6E979)] * 500
    for _ in range(2 * COMPILED_AFTER // len(block)):
        assert shortest_float32(block) == [123.456] * 500
    assert loads == []  # enough values, but the first came less than 3 s ago
    since = rounding_module._since
    assert since is not None
    monkeypatch.setattr(rounding_module, "_since", since - rounding_module.COMPILED_DELAY_S)
    assert shortest_float32(block) == [123.456] * 500
    assert loads == [1]
    assert rounding_module._compiled is not None
    shortest_float32(block)
    assert loads == [1]  # once


# --------------------------------------------------------------------------- scaled integers


@pytest.mark.parametrize(
    ("scale", "offset", "decimals"),
    [
        (0.1, 0.0, 1),
        (0.01, 0.0, 2),
        (0.001, 0.0, 3),
        (0.25, 0.0, 2),
        (1.0, 0.0, 0),
        (2.0, 0.0, 0),
        (1000.0, 0.0, 0),
        (1.0, 0.5, 1),
        (0.1, -40.25, 2),
        (1e-7, 0.0, 7),
    ],
)
def test_decimals_come_from_scale_and_offset(scale: float, offset: float, decimals: int) -> None:
    assert DecimalScale(scale, offset).decimals == decimals


def test_known_scaled_values() -> None:
    assert repr(DecimalScale(0.1)(121)) == "12.1"  # not 12.100000000000001
    assert repr(DecimalScale(0.01)(123456789)) == "1234567.89"
    assert repr(DecimalScale(0.25, -40.5)(3)) == "-39.75"
    assert repr(DecimalScale(0.001)(-1)) == "-0.001"
    assert type(DecimalScale(2.0)(3)) is float


scales = st.one_of(
    st.sampled_from([0.1, 0.01, 0.001, 0.0001, 0.25, 0.5, 2.0, 10.0, 1000.0, 0.3, 1.0]),
    st.decimals(
        min_value=Decimal("-1000"),
        max_value=Decimal("1000"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    )
    .filter(lambda d: d != 0)
    .map(float),
)
offsets = st.one_of(
    st.sampled_from([0.0, -273.15, 0.5, -40.0, 100.0]),
    st.decimals(
        min_value=Decimal("-10000"),
        max_value=Decimal("10000"),
        places=3,
        allow_nan=False,
        allow_infinity=False,
    ).map(float),
)


@settings(max_examples=3000, deadline=None)
@given(st.integers(-(2**63), 2**64 - 1), scales, offsets)
def test_scaled_integer_is_the_exact_decimal_value(raw: int, scale: float, offset: float) -> None:
    """The float nearest raw x scale + offset computed in decimal, with scale and offset
    taken as written (their shortest repr)."""
    exact = _EXACT.add(_EXACT.multiply(Decimal(raw), Decimal(repr(scale))), Decimal(repr(offset)))
    assert DecimalScale(scale, offset)(raw) == float(exact)


def test_a_scale_beyond_twenty_decimals_falls_back_to_float_arithmetic() -> None:
    tiny = DecimalScale(1e-25)
    assert not tiny.exact
    assert tiny(3) == pytest.approx(3e-25)


def test_scaled_float_is_exact_in_decimal() -> None:
    power = 14.545377731323242  # a float32 register in kW
    one, zero = Decimal("1000"), Decimal(0)
    assert repr(scaled_float(power, one, zero, float32=True)) == "14545.378"
    assert repr(scaled_float(0.30000000000000004, Decimal(10), zero, float32=False)) == (
        "3.0000000000000004"
    )
    assert math.isnan(scaled_float(math.nan, Decimal(2), zero, float32=True))
