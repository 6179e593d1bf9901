"""Values rounded to what the device can express: float32 shortest decimals, exact scales."""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

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
    monkeypatch.setattr(rounding_module, "_missing", None)
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


#: Float32 whose Ryu decimal (numpy's, orjson's) is not the reference's, which reads a
#: decimal back through float64 as every consumer does: 7.0385307e-26 (0x15AE43FD,
#: odd) comes out of Ryu as 7.038531e-26, which float64 puts exactly on the midpoint to
#: its even neighbour 0x15AE43FE, so it packs to that neighbour; and that neighbour gets
#: 7.0385313e-26 from Ryu where the reference finds 7.038531e-26. Found by the review
#: running every positive float32 through the compiled path.
DOUBLE_ROUNDING = [0x15AE43FD, 0x15AE43FE]
#: Every positive float32 outside [2**20, 2**35) next to a midpoint that a decimal of 9
#: digits or fewer, not the midpoint itself, reads back onto in float64: the midpoint's
#: shortest repr has at most 9 digits but is not its exact value. A scan of every positive
#: float32 (the flag's arithmetic at a tighter bound, each confirmed by the midpoint's
#: repr); Ryu alone gets only DOUBLE_ROUNDING wrong among them. (Within that range the
#: midpoints that are short decimals are exact ones, x.5 and integers.)
_SCANNED = """
8623340 8623341 17011948 17011949 25400556 25400557 33323781 33323782 33789164 33789165
89073898 89073899 107510142 107510143 115898750 115898751 163672231 163672232 172060839
172060840 180449447 180449448 188838055 188838056 197226663 197226664 225218385
225218386 226134182 226134183 226542248 226542249 247309735 247309736 253245309
253245310 255698343 255698344 264086951 264086952 272475559 272475560 280864167
280864168 302156240 302156241 310544848 310544849 318933456 318933457 327322064
327322065 335710672 335710673 338576381 338576382 346964989 346964990 355353597
355353598 359609994 359609995 363742205 363742206 367998602 367998603 372130813
372130814 380519421 380519422 388908029 388908030 394344010 394344011 397296637
397296638 405685245 405685246 414073853 414073854 418112955 418112956 420442910
420442911 422462461 422462462 428831518 428831519 437220126 437220127 445608734
445608735 461222340 461222341 469610948 469610949 470404687 470404688 477999556
477999557 478793295 478793296 503368855 503368856 521621731 521621732 530010339
530010340 535391718 535391719 562680570 562680571 571069178 571069179 579457786
579457787 587846394 587846395 603662963 603662964 612051571 612051572 640699840
640699841 672506357 672506358 673217524 673217525 741256843 741256844 749645451
749645452 754407370 754407371 758034059 758034060 785695055 785695056 806722753
806722754 841049241 841049242 865249995 865249996 916476716 916476717 924865324
924865325 937320481 937320482 945709089 945709090 1608661506 1608661507 1617050114
1617050115 1647386336 1647386337 1655774944 1655774945 1664163552 1664163553 1671337012
1671337013 1672552160 1672552161 1673767308 1673767309 1682155916 1682155917 1690544524
1690544525 1697414197 1697414198 1698933132 1698933133 1707321740 1707321741 1715710348
1715710349 1724098956 1724098957 1732487564 1732487565 1732845292 1732845293 1749443644
1749443645 1757832252 1757832253 1803746128 1803746129 1812134736 1812134737 1814455412
1814455413 1871768137 1871768138 2005175141 2005175142 2006511516 2006511517 2007847891
2007847892 2009184266 2009184267 2010520641 2010520642 2011857016 2011857017 2014900124
2014900125 2021581999 2021582000 2023288732 2023288733 2029970607 2029970608 2031677340
2031677341 2038359215 2038359216 2040065948 2040065949 2046747823 2046747824 2055136431
2055136432 2063525039 2063525040 2066385000 2066385001 2085807793 2085807794 2090109289
2090109290 2094196401 2094196402 2118340447 2118340448
"""
NEAR_MIDPOINTS = [int(b) for b in _SCANNED.split()]
DOUBLE_ROUNDING_SIGNED = DOUBLE_ROUNDING + [b | 0x80000000 for b in DOUBLE_ROUNDING]


def _next_to(bits: list[int]) -> list[int]:
    return sorted({b + d for b in bits for d in (-1, 0, 1)})


#: Values next to short-decimal midpoints: float32 integers from 2**24 (even, then
#: multiples of 4, the midpoints integers), x.5 and x.25 midpoints below, the binades
#: left unflagged, the scanned coincidences, each with its neighbours and either sign.
near_midpoints = st.one_of(
    st.integers(2**24, 2**26).map(lambda n: int.from_bytes(_F32.pack(n), "little")),
    st.integers(0x4A800000, 0x4B800000),  # [2**22, 2**24]: midpoints x.25, x.5
    st.integers(0x4A000000, 0x51000000),  # [2**21, 2**35): x.125 to integers
    st.sampled_from(_next_to(NEAR_MIDPOINTS + DOUBLE_ROUNDING)),
).flatmap(lambda b: st.sampled_from([b - 1, b, b + 1, (b - 1) | 1 << 31, b | 1 << 31]))


@BOTH
@settings(max_examples=1500, deadline=None)
@given(patterns=st.lists(near_midpoints, min_size=1, max_size=40))
def test_values_next_to_short_decimal_midpoints_are_the_references(
    shortest: Callable[[list[float]], list[float]], patterns: list[int]
) -> None:
    values = [from_bits(b) for b in patterns]
    for value, got in zip(values, shortest(values), strict=True):
        assert bits_of(got) == bits_of(value), (value, got)
        assert repr(got) == repr(shortest_float32_exact(value)), (value, got)


@BOTH
def test_known_midpoint_cases_are_the_references(
    shortest: Callable[[list[float]], list[float]],
) -> None:
    patterns = _next_to(DOUBLE_ROUNDING_SIGNED + NEAR_MIDPOINTS)
    values = [from_bits(b) for b in patterns + [b | 1 << 31 for b in patterns]]
    expected = [shortest_float32_exact(v) for v in values]
    assert [bits_of(e) for e in expected] == [bits_of(v) for v in values]  # the reference
    assert [repr(v) for v in shortest(values)] == [repr(e) for e in expected]
    for bits in DOUBLE_ROUNDING_SIGNED:  # alone in a block, too
        value = from_bits(bits)
        got = shortest([value] * 4 + [1.5])
        assert [repr(v) for v in got] == [repr(shortest_float32_exact(value))] * 4 + ["1.5"]


def test_ryu_alone_gets_the_double_rounding_cases_wrong() -> None:
    """Why the compiled path checks: without it, the cases above fail (this pins that
    they are real, so the tests above can fail)."""
    import numpy as np
    import orjson

    values = [from_bits(b) for b in DOUBLE_ROUNDING]
    ryu = orjson.loads(
        orjson.dumps(np.array(values, np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    )
    assert bits_of(ryu[0]) != bits_of(values[0])  # a wrong value
    assert repr(ryu[1]) != repr(shortest_float32_exact(values[1]))  # not the shortest
    assert ryu == [7.038531e-26, 7.0385313e-26]


def test_the_check_flags_the_midpoint_cases_and_few_others() -> None:
    """rounding_compiled flags every value it cannot vouch for (the DOUBLE_ROUNDING ones
    among them); in a typical range (0 to 500) few others go to the list path."""
    from edge_agent.rounding_compiled import shortest_candidates

    cases = [from_bits(b) for b in DOUBLE_ROUNDING_SIGNED + NEAR_MIDPOINTS]
    flagged = shortest_candidates(struct.pack(f"<{len(cases)}f", *cases))[1]
    assert [b for i, b in enumerate(DOUBLE_ROUNDING_SIGNED) if i not in flagged] == []
    typical = [from_bits(b) for b in range(0x3F800000, 0x43FA0000, 997)]  # 1.0 to 500
    flagged = shortest_candidates(struct.pack(f"<{len(typical)}f", *typical))[1]
    assert len(flagged) < len(typical) // 100
    special = [0.0, -0.0, math.inf, -math.inf, math.nan, from_bits(1), from_bits(0x7F7FFFFF)]
    assert shortest_candidates(struct.pack("<7f", *special))[1] == [2, 3, 4, 5]


def _past_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module as in an agent a few seconds into a 10,000-tag plant: the next list
    of COMPILED_FROM values or more takes the compiled path (imports on this call)."""
    monkeypatch.setattr(rounding_module, "_compiled", None)
    monkeypatch.setattr(rounding_module, "_missing", None)
    monkeypatch.setattr(rounding_module, "_listed", COMPILED_AFTER)
    monkeypatch.setattr(rounding_module, "_since", -2 * rounding_module.COMPILED_DELAY_S)


@pytest.mark.parametrize("missing", ["numpy", "orjson"])
def test_without_numpy_or_orjson_the_list_path_serves_for_good_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Before: the first block after 10,000 values and 3 s raised ImportError out of
    shortest_float32, and every later block again: every float32 tag stopped."""
    _past_the_threshold(monkeypatch)
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` -> ImportError
    monkeypatch.delitem(sys.modules, "edge_agent.rounding_compiled", raising=False)
    block = [from_bits(0x42F6E979)] * 8  # 123.456 as a float32
    with capture_logs() as logs:
        assert shortest_float32(block) == [123.456] * 8
        assert shortest_float32(block) == [123.456] * 8  # and the next poll too
    assert [(e["event"], e["log_level"], e["missing"]) for e in logs] == [
        ("float32_rounding_without_numpy_or_orjson", "warning", missing)
    ]
    assert rounding_module._compiled is None


def _outcome(function: Callable[[list[Any]], list[float]], values: list[Any]) -> Any:
    try:
        return [(type(v).__name__, repr(v)) for v in function(values)]
    except OverflowError as exc:
        return type(exc).__name__


@pytest.mark.parametrize(
    "value",
    [1.00000001, 16777217, 2**31 + 1, 1e39, -1e39, 16777216, 3, 0.1, 2.0**-140],
    ids=[
        "float64-near-1",
        "int-2**24+1",
        "int-2**31+1",
        "beyond-float32",
        "below-float32",
        "int-2**24",
        "int-3",
        "float64-0.1",
        "float64-subnormal-in-float32",
    ],
)
def test_a_value_that_is_not_a_float32_gets_the_same_answer_on_both_paths(value: Any) -> None:
    """Outside the contract (exact float32 input), the answer must not depend on how
    long the process has run. Before: the compiled path rounded 1.00000001 to 1.0 and
    int 16777217 to 16777216.0 where the list path gave them back, and gave 1e39 back
    with a numpy RuntimeWarning where the list path raises OverflowError."""
    values = [value] * 4 + [1.5]
    assert _outcome(shortest_float32_compiled, values) == _outcome(
        shortest_float32_listwise, values
    )


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
