"""Golden table of the Modbus codec: registers in, value out, every expectation by hand.

The register patterns are written out by hand from the value's IEEE 754 / two's
complement bit pattern (noted in each comment), never produced by an encoder of
ours, so a mistake in the byte-order logic cannot cancel itself out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.codec import REASON_NAN, fill_bad, unknown_enum_reason
from drivers.modbus.compiler import DecoderCache, compile_decoder
from drivers.modbus.planner import AdaptivePlan, ReadRequest
from edge_agent.config import ByteOrder, ModbusTag
from edge_agent.errors import ConfigError, DriverReadError
from edge_agent.model import REASON_DECODE, REASON_SENTINEL, Quality, Value, exception_reason

GOOD, UNCERTAIN, BAD = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


def decode_one(
    registers: Sequence[int], default_order: ByteOrder = "ABCD", **tag: Any
) -> tuple[Value, Quality, str]:
    """Decode a single tag at address 100 from a block holding exactly its registers."""
    spec = ModbusTag(name="t", address=100, **tag)
    request = ReadRequest("holding", 100, len(registers), (0,))
    values: list[Value] = [None]
    qualities = [BAD]
    reasons = ["unset"]
    compile_decoder(request, [spec], default_order).decode(registers, values, qualities, reasons)
    return values[0], qualities[0], reasons[0]


# (type, byte order, registers as they arrive, expected value)
NUMBERS: list[tuple[str, ByteOrder, list[int], int | float]] = [
    # int16 -2 = 0xFFFE; 0x1234 = 4660 shows the byte swap of BADC / DCBA.
    ("int16", "ABCD", [0xFFFE], -2),
    ("int16", "CDAB", [0xFFFE], -2),
    ("int16", "BADC", [0xFEFF], -2),
    ("int16", "DCBA", [0xFEFF], -2),
    ("int16", "ABCD", [0x1234], 4660),
    ("int16", "CDAB", [0x1234], 4660),
    ("int16", "BADC", [0x3412], 4660),
    ("int16", "DCBA", [0x3412], 4660),
    ("int16", "ABCD", [0x8000], -32768),
    # uint16 65534 = 0xFFFE
    ("uint16", "ABCD", [0xFFFE], 65534),
    ("uint16", "CDAB", [0xFFFE], 65534),
    ("uint16", "BADC", [0xFEFF], 65534),
    ("uint16", "DCBA", [0xFEFF], 65534),
    # int32 -123456789 = 0xF8A432EB
    ("int32", "ABCD", [0xF8A4, 0x32EB], -123456789),
    ("int32", "CDAB", [0x32EB, 0xF8A4], -123456789),
    ("int32", "BADC", [0xA4F8, 0xEB32], -123456789),
    ("int32", "DCBA", [0xEB32, 0xA4F8], -123456789),
    # uint32 3000000000 = 0xB2D05E00 (above 2**31)
    ("uint32", "ABCD", [0xB2D0, 0x5E00], 3000000000),
    ("uint32", "CDAB", [0x5E00, 0xB2D0], 3000000000),
    ("uint32", "BADC", [0xD0B2, 0x005E], 3000000000),
    ("uint32", "DCBA", [0x005E, 0xD0B2], 3000000000),
    # int64 0x0102030405060708 = 72623859790382856, and its negation 0xFEFDFCFBFAF9F8F8
    ("int64", "ABCD", [0x0102, 0x0304, 0x0506, 0x0708], 72623859790382856),
    ("int64", "CDAB", [0x0708, 0x0506, 0x0304, 0x0102], 72623859790382856),
    ("int64", "BADC", [0x0201, 0x0403, 0x0605, 0x0807], 72623859790382856),
    ("int64", "DCBA", [0x0807, 0x0605, 0x0403, 0x0201], 72623859790382856),
    ("int64", "ABCD", [0xFEFD, 0xFCFB, 0xFAF9, 0xF8F8], -72623859790382856),
    ("int64", "CDAB", [0xF8F8, 0xFAF9, 0xFCFB, 0xFEFD], -72623859790382856),
    ("int64", "BADC", [0xFDFE, 0xFBFC, 0xF9FA, 0xF8F8], -72623859790382856),
    ("int64", "DCBA", [0xF8F8, 0xF9FA, 0xFBFC, 0xFDFE], -72623859790382856),
    # uint64 0xFEDCBA9876543210 = 18364758544493064720 (above 2**63)
    ("uint64", "ABCD", [0xFEDC, 0xBA98, 0x7654, 0x3210], 18364758544493064720),
    ("uint64", "CDAB", [0x3210, 0x7654, 0xBA98, 0xFEDC], 18364758544493064720),
    ("uint64", "BADC", [0xDCFE, 0x98BA, 0x5476, 0x1032], 18364758544493064720),
    ("uint64", "DCBA", [0x1032, 0x5476, 0x98BA, 0xDCFE], 18364758544493064720),
    # float32 -2.5 = 0xC0200000 (exact)
    ("float32", "ABCD", [0xC020, 0x0000], -2.5),
    ("float32", "CDAB", [0x0000, 0xC020], -2.5),
    ("float32", "BADC", [0x20C0, 0x0000], -2.5),
    ("float32", "DCBA", [0x0000, 0x20C0], -2.5),
    # float64 -2.5 = 0xC004000000000000 (exact)
    ("float64", "ABCD", [0xC004, 0x0000, 0x0000, 0x0000], -2.5),
    ("float64", "CDAB", [0x0000, 0x0000, 0x0000, 0xC004], -2.5),
    ("float64", "BADC", [0x04C0, 0x0000, 0x0000, 0x0000], -2.5),
    ("float64", "DCBA", [0x0000, 0x0000, 0x0000, 0x04C0], -2.5),
    # float64 123.456 = 0x405EDD2F1A9FBE77 (the nearest double: compares equal)
    ("float64", "ABCD", [0x405E, 0xDD2F, 0x1A9F, 0xBE77], 123.456),
    ("float64", "CDAB", [0xBE77, 0x1A9F, 0xDD2F, 0x405E], 123.456),
    ("float64", "BADC", [0x5E40, 0x2FDD, 0x9F1A, 0x77BE], 123.456),
    ("float64", "DCBA", [0x77BE, 0x9F1A, 0x2FDD, 0x5E40], 123.456),
]


@pytest.mark.parametrize(("type_", "order", "registers", "expected"), NUMBERS)
def test_number_golden(
    type_: str, order: ByteOrder, registers: list[int], expected: int | float
) -> None:
    value, quality, reason = decode_one(registers, type=type_, byte_order=order)
    assert (value, quality, reason) == (expected, GOOD, "")
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x42F6, 0xE979]),
        ("CDAB", [0xE979, 0x42F6]),
        ("BADC", [0xF642, 0x79E9]),
        ("DCBA", [0x79E9, 0xF642]),
    ],
)
def test_float32_123_456_every_order(order: ByteOrder, registers: list[int]) -> None:
    """0x42F6E979 is the float32 nearest 123.456: 123.45600128173828."""
    value, quality, _ = decode_one(registers, type="float32", byte_order=order)
    assert repr(value) == "123.456"  # its shortest decimal, not 123.45600128173828
    assert quality is GOOD


def test_device_default_order_applies_and_tag_order_overrides() -> None:
    # uint32 0x00010002 = 65538 read CDAB is [0x0002, 0x0001].
    assert decode_one([0x0002, 0x0001], "CDAB", type="uint32")[0] == 65538
    assert decode_one([0x0001, 0x0002], "CDAB", type="uint32", byte_order="ABCD")[0] == 65538


@pytest.mark.parametrize(
    ("tag", "registers", "expected"),
    [
        # raw 1234 x 0.1: value is a float even though the raw is an integer
        ({"type": "uint16", "scale": 0.1}, [1234], 123.4),
        # 121 x 0.1 is 12.100000000000001 in float arithmetic; exact in decimal
        ({"type": "uint16", "scale": 0.1}, [121], 12.1),
        ({"type": "int16", "scale": 0.001, "sentinel": 7}, [0xFFFD], -0.003),
        ({"type": "uint16", "scale": 0.25, "offset": -40.5}, [3], -39.75),
        # float32 14.545378 (0x4168B9DE) in kW x 1000 -> W, exact in decimal
        ({"type": "float32", "scale": 1000}, [0x4168, 0xB9DE], 14545.378),
        # int16 -10 = 0xFFF6; -10 x 0.5 + 100 = 95.0
        ({"type": "int16", "scale": 0.5, "offset": 100}, [0xFFF6], 95.0),
        ({"type": "uint16", "offset": -273}, [300], 27.0),
        # float32 1.5 = 0x3FC00000; 1.5 x 2 - 1 = 2.0
        ({"type": "float32", "scale": 2, "offset": -1}, [0x3FC0, 0x0000], 2.0),
        # uint32 100000 = 0x000186A0 in kWh x 1000 -> Wh
        ({"type": "uint32", "scale": 1000}, [0x0001, 0x86A0], 100_000_000.0),
    ],
)
def test_scale_and_offset(tag: dict[str, Any], registers: list[int], expected: object) -> None:
    value, quality, reason = decode_one(registers, **tag)
    assert (value, quality, reason) == (expected, GOOD, "")
    assert type(value) is float


# --------------------------------------------------------------------------- enum codes


def decode_with_codes(
    registers: Sequence[int], tags: Sequence[ModbusTag]
) -> tuple[list[Value], list[Quality], list[str]]:
    """Decode ``tags`` with the code of every integer enum tag after them, as the driver asks."""
    codes = {}
    for p, tag in enumerate(tags):
        if tag.code_name is not None:
            codes[p] = len(tags) + len(codes)
    size = len(tags) + len(codes)
    request = ReadRequest("holding", 0, len(registers), tuple(range(len(tags))))
    values: list[Value] = [None] * size
    qualities = [BAD] * size
    reasons = ["not read"] * size
    compile_decoder(request, tags, "ABCD", codes).decode(registers, values, qualities, reasons)
    return values, qualities, reasons


def test_an_enum_tag_carries_its_raw_code_good_even_without_a_label() -> None:
    states = {0: "off", 1: "idle", 2: "run"}
    tags = [
        ModbusTag(name="state", address=0, enum=states),
        ModbusTag(name="mode", address=1, type="int16", enum={-1: "manual"}),
        ModbusTag(name="speed", address=2, scale=0.1),
        ModbusTag(name="other", address=3, enum=states),
        ModbusTag(name="held", address=4, enum=states, sentinel=0xFFFF),
    ]
    values, qualities, reasons = decode_with_codes([2, 0xFFFF, 121, 7, 0xFFFF], tags)
    assert values == ["run", "manual", 12.1, "7", None, 2, -1, 7, None]
    assert qualities == [GOOD, GOOD, GOOD, UNCERTAIN, BAD, GOOD, GOOD, GOOD, BAD]
    # the code of an unknown label is what the device sent: GOOD; a sentinel is bad for both
    assert reasons[3:] == ["unknown enum value 7", "sentinel", "", "", "", "sentinel"]
    assert all(type(v) is int for v in values[5:8])


def test_only_integer_enum_tags_have_codes() -> None:
    assert ModbusTag(name="s", address=0, enum={1: "a"}).code_name == "s_code"
    assert ModbusTag(name="s", address=0).code_name is None
    assert ModbusTag(name="s", address=0, type="float32", enum={1: "a"}).code_name is None


def test_unscaled_integers_stay_int() -> None:
    assert type(decode_one([7], type="uint16", sentinel=65535)[0]) is int
    assert type(decode_one([0, 7], type="int32", scale=1.0, offset=0.0)[0]) is int


@pytest.mark.parametrize(
    ("tag", "registers"),
    [
        ({"type": "uint16", "sentinel": 65535}, [0xFFFF]),
        ({"type": "int16", "sentinel": -32768}, [0x8000]),
        # before scaling: the raw 65535 is the sentinel, not 6553.5
        ({"type": "uint16", "sentinel": 65535, "scale": 0.1}, [0xFFFF]),
        # uint32 0xFFFFFFFF = 4294967295, word-swapped (symmetric anyway)
        ({"type": "uint32", "sentinel": 4294967295, "byte_order": "CDAB"}, [0xFFFF, 0xFFFF]),
        # float32 -9999.9 is 0xC61C3F9A: the sentinel is rounded to float32 to match
        ({"type": "float32", "sentinel": -9999.9}, [0xC61C, 0x3F9A]),
        ({"type": "float64", "sentinel": -1.0}, [0xBFF0, 0, 0, 0]),
        # enum tags check the sentinel first
        ({"type": "uint16", "sentinel": 65535, "enum": {0: "off"}}, [0xFFFF]),
    ],
)
def test_sentinel_is_bad(tag: dict[str, Any], registers: list[int]) -> None:
    assert decode_one(registers, **tag) == (None, BAD, REASON_SENTINEL)


def test_value_next_to_sentinel_is_good() -> None:
    assert decode_one([0xFFFE], type="uint16", sentinel=65535, scale=0.5) == (32767.0, GOOD, "")


@pytest.mark.parametrize(
    ("type_", "registers"),
    [
        ("float32", [0x7FC0, 0x0000]),  # quiet NaN
        ("float32", [0xFFC0, 0x0001]),  # negative NaN with payload
        ("float32", [0x7F80, 0x0000]),  # +inf
        ("float32", [0xFF80, 0x0000]),  # -inf
        ("float64", [0x7FF8, 0x0000, 0x0000, 0x0000]),  # NaN
        ("float64", [0xFFF0, 0x0000, 0x0000, 0x0000]),  # -inf
    ],
)
def test_nan_and_infinity_are_bad(type_: str, registers: list[int]) -> None:
    assert decode_one(registers, type=type_) == (None, BAD, REASON_NAN)
    assert decode_one(registers, type=type_, scale=10.0) == (None, BAD, REASON_NAN)


ENUM = {0: "off", 1: "idle", 2: "run"}


@pytest.mark.parametrize(
    ("tag", "registers", "expected"),
    [
        ({"type": "uint16"}, [2], ("run", GOOD, "")),
        ({"type": "uint16"}, [0], ("off", GOOD, "")),
        ({"type": "uint16"}, [7], ("7", UNCERTAIN, "unknown enum value 7")),
        ({"type": "int16"}, [0xFFFF], ("-1", UNCERTAIN, "unknown enum value -1")),
        ({"type": "uint16", "byte_order": "BADC"}, [0x0100], ("idle", GOOD, "")),
        # uint32 2 in CDAB
        ({"type": "uint32", "byte_order": "CDAB"}, [0x0002, 0x0000], ("run", GOOD, "")),
    ],
)
def test_enum(tag: dict[str, Any], registers: list[int], expected: tuple[Any, ...]) -> None:
    assert decode_one(registers, enum=ENUM, **tag) == expected
    assert unknown_enum_reason(7) == "unknown enum value 7"


@pytest.mark.parametrize(
    ("order", "registers", "expected"),
    [
        # "Hi!" = 0x48 0x69 0x21, NUL-padded to two registers
        ("ABCD", [0x4869, 0x2100], "Hi!"),
        ("CDAB", [0x4869, 0x2100], "Hi!"),
        ("BADC", [0x6948, 0x0021], "Hi!"),
        ("DCBA", [0x6948, 0x0021], "Hi!"),
        # trailing spaces (0x20) and NULs go, leading and inner spaces stay
        ("ABCD", [0x2041, 0x2042, 0x2020, 0x0000], " A B"),
        # the text ends at the first NUL; stale bytes after it are ignored
        ("ABCD", [0x4100, 0xFFFF], "A"),
        ("ABCD", [0x0000, 0x0000], ""),
        # UTF-8: "°C" = C2 B0 43
        ("ABCD", [0xC2B0, 0x4300], "°C"),
    ],
)
def test_string(order: ByteOrder, registers: list[int], expected: str) -> None:
    value = decode_one(registers, type="string", length=len(registers), byte_order=order)
    assert value == (expected, GOOD, "")


def test_string_that_is_not_utf8_is_a_decode_error() -> None:
    # 0xFF never occurs in UTF-8; a latin-1 "°" (0xB0) alone is not UTF-8 either.
    assert decode_one([0xFF41], type="string", length=1) == (None, BAD, REASON_DECODE)
    assert decode_one([0xB043], type="string", length=1) == (None, BAD, REASON_DECODE)


def decode_block(
    request: ReadRequest, tags: Sequence[ModbusTag], data: Sequence[int] | Sequence[bool]
) -> tuple[list[Value], list[Quality], list[str]]:
    n = len(tags)
    values: list[Value] = [None] * n
    qualities = [BAD] * n
    reasons = ["unset"] * n
    compile_decoder(request, tags, "ABCD").decode(data, values, qualities, reasons)
    return values, qualities, reasons


def test_bits_of_a_register_and_the_register_itself() -> None:
    tags = [
        ModbusTag(name="status", address=10, type="uint16"),
        ModbusTag(name="b0", address=10, type="bool", bit=0),
        ModbusTag(name="b1", address=10, type="bool", bit=1),
        ModbusTag(name="b2", address=10, type="bool", bit=2),
        ModbusTag(name="b15", address=10, type="bool", bit=15),
        # byte order does not move bits: bit N of the register value
        ModbusTag(name="b8", address=11, type="bool", bit=8, byte_order="DCBA"),
    ]
    request = ReadRequest("holding", 10, 2, (0, 1, 2, 3, 4, 5))
    values, qualities, reasons = decode_block(request, tags, [0x8005, 0x0100])
    assert values == [0x8005, True, False, True, True, True]
    assert qualities == [GOOD] * 6
    assert reasons == [""] * 6
    assert all(type(v) is bool for v in values[1:])


def test_coils_with_padding() -> None:
    """pymodbus pads bits to a multiple of 8: 10 coils come back as 16 bits."""
    tags = [
        ModbusTag(name="c10", table="coil", address=10, type="bool"),
        ModbusTag(name="c12", table="coil", address=12, type="bool"),
        ModbusTag(name="c13", table="coil", address=13, type="bool"),
        ModbusTag(name="c19", table="coil", address=19, type="bool"),
        ModbusTag(name="c11", table="coil", address=11, type="bool"),
    ]
    request = ReadRequest("coil", 10, 10, (0, 4, 1, 2, 3))
    bits = [True, False, True, True, False, False, False, False]
    bits += [False, True, True, True, True, True, True, True]  # bit 9 = coil 19, then padding
    assert decode_block(request, tags, bits) == (
        [True, True, True, True, False],
        [GOOD] * 5,
        [""] * 5,
    )


def test_discrete_input_with_sentinel_takes_the_slow_path() -> None:
    tags = [ModbusTag(name="d", table="discrete_input", address=0, type="bool", sentinel=1)]
    request = ReadRequest("discrete_input", 0, 1, (0,))
    assert decode_block(request, tags, [True] + [False] * 7) == ([None], [BAD], ["sentinel"])
    assert decode_block(request, tags, [False] * 8) == ([False], [GOOD], [""])


def test_mixed_block_with_gaps_orders_and_positions() -> None:
    """One request, tags in any order, several byte orders and an overlap: one pass."""
    tags = [
        ModbusTag(name="f_cdab", address=4, type="float32", byte_order="CDAB"),
        ModbusTag(name="u16", address=0, type="uint16"),
        ModbusTag(name="i32_badc", address=8, type="int32", byte_order="BADC"),
        ModbusTag(name="i16", address=1, type="int16"),
        ModbusTag(name="f_abcd", address=2, type="float32"),
        ModbusTag(name="run", address=10, type="uint16", enum={1: "run"}),
        ModbusTag(name="s", address=11, type="string", length=2),
        ModbusTag(name="u64_dcba", address=14, type="uint64", byte_order="DCBA"),
        ModbusTag(name="bit", address=0, type="bool", bit=1),
    ]
    registers = [
        0x0003,  # 0 u16 = 3, bit 1 set
        0xFFFF,  # 1 i16 = -1
        0xC020, 0x0000,  # 2-3 float32 -2.5 ABCD
        0x0000, 0xC020,  # 4-5 float32 -2.5 CDAB
        0xDEAD, 0xBEEF,  # 6-7 unused
        0xA4F8, 0xEB32,  # 8-9 int32 -123456789 BADC
        0x0001,  # 10 enum run
        0x4F4B, 0x0000,  # 11-12 "OK"
        0x1234,  # 13 unused
        0x1032, 0x5476, 0x98BA, 0xDCFE,  # 14-17 uint64 0xFEDCBA9876543210 DCBA
    ]  # fmt: skip
    request = ReadRequest("holding", 0, 18, (1, 8, 3, 4, 0, 2, 5, 6, 7))
    values, qualities, reasons = decode_block(request, tags, registers)
    assert values == [-2.5, 3, -123456789, -1, -2.5, "run", "OK", 18364758544493064720, True]
    assert qualities == [GOOD] * 9
    assert reasons == [""] * 9


def test_numbers_decoded_from_a_plan() -> None:
    """The plan's requests and the decoders agree on positions, end to end."""
    tags = [ModbusTag(name=f"r{i}", address=i * 3, type="int16") for i in range(50)]
    plan = AdaptivePlan(tags, max_registers=40, max_gap=2)
    decoders = DecoderCache(tags)
    values: list[Value] = [None] * 50
    qualities = [BAD] * 50
    reasons = ["unset"] * 50
    for request in plan.requests:
        block = [(request.start + k) // 3 for k in range(request.count)]
        decoders[request].decode(block, values, qualities, reasons)
    assert values == list(range(50))
    assert qualities == [GOOD] * 50
    assert len(decoders) == len(plan.requests) == 4


def test_decoder_cache_compiles_once() -> None:
    tags = [ModbusTag(name="a", address=0)]
    request = ReadRequest("holding", 0, 1, (0,))
    cache = DecoderCache(tags)
    assert cache[request] is cache[request]


def test_short_response_is_a_read_error() -> None:
    tags = [ModbusTag(name="a", address=0, type="float32")]
    decoder = compile_decoder(ReadRequest("holding", 0, 2, (0,)), tags)
    with pytest.raises(DriverReadError, match="holds 1 registers") as caught:
        decoder.decode([0x4000], [None], [BAD], [""])
    assert caught.value.reason == REASON_DECODE
    coils = [ModbusTag(name="c", table="coil", address=0, type="bool")]
    coil_decoder = compile_decoder(ReadRequest("coil", 0, 9, (0,)), coils)
    with pytest.raises(DriverReadError, match="holds 8 bits"):
        coil_decoder.decode([True] * 8, [None], [BAD], [""])


def test_register_out_of_range_is_a_read_error() -> None:
    tags = [ModbusTag(name="a", address=0)]
    decoder = compile_decoder(ReadRequest("holding", 0, 1, (0,)), tags)
    with pytest.raises(DriverReadError):
        decoder.decode([70000], [None], [BAD], [""])


def test_longer_response_is_rejected_not_truncated() -> None:
    """A block of the wrong size is not the block asked for (e.g. a late RTU answer)."""
    tags = [ModbusTag(name="a", address=0)]
    decoder = compile_decoder(ReadRequest("holding", 0, 1, (0,)), tags)
    values: list[Value] = [None]
    with pytest.raises(DriverReadError, match="2 registers"):
        decoder.decode([5, 6], values, [BAD], [""])


@pytest.mark.parametrize(
    ("tag", "request_", "message"),
    [
        ({"table": "coil", "type": "uint16"}, ReadRequest("coil", 0, 1, (0,)), "holds bools"),
        ({"type": "bool"}, ReadRequest("holding", 0, 1, (0,)), "needs bit"),
        ({"type": "string"}, ReadRequest("holding", 0, 1, (0,)), "needs length"),
        ({"type": "float32"}, ReadRequest("holding", 0, 1, (0,)), "runs past"),
        ({"address": 5}, ReadRequest("holding", 0, 1, (0,)), "is not in"),
    ],
)
def test_tags_the_config_checks_refuse_are_config_errors(
    tag: dict[str, Any], request_: ReadRequest, message: str
) -> None:
    spec = ModbusTag(name="t", **{"address": 0, **tag})
    with pytest.raises(ConfigError, match=message):
        compile_decoder(request_, [spec])


def test_fill_bad() -> None:
    values: list[Value] = [1, 2, 3]
    qualities = [GOOD] * 3
    reasons = [""] * 3
    fill_bad([0, 2], exception_reason(2), values, qualities, reasons)
    assert (values, qualities, reasons) == (
        [None, 2, None],
        [BAD, GOOD, BAD],
        ["exception code 2", "", "exception code 2"],
    )


def test_one_nan_in_a_block_of_floats_marks_only_that_sample() -> None:
    tags = [ModbusTag(name=f"f{i}", address=2 * i, type="float32") for i in range(3)]
    request = ReadRequest("holding", 0, 6, (0, 1, 2))
    decoder = compile_decoder(request, tags)
    values: list[Value] = [None] * 3
    qualities = [BAD] * 3
    reasons = ["unset"] * 3
    # 1.5 = 0x3FC00000, NaN = 0x7FC00000, -2.5 = 0xC0200000
    decoder.decode([0x3FC0, 0, 0x7FC0, 0, 0xC020, 0], values, qualities, reasons)
    assert (values, qualities, reasons) == ([1.5, None, -2.5], [GOOD, BAD, GOOD], ["", "nan", ""])
    # The next poll into the same lists: the bad sample recovers.
    decoder.decode([0x3FC0, 0, 0x3FC0, 0, 0xC020, 0], values, qualities, reasons)
    assert (values, qualities, reasons) == ([1.5, 1.5, -2.5], [GOOD] * 3, [""] * 3)


def test_huge_finite_float64s_whose_sum_overflows_stay_good() -> None:
    # 0x7FEFFFFFFFFFFFFF is the largest finite double (1.7976931348623157e308).
    tags = [ModbusTag(name=f"d{i}", address=4 * i, type="float64") for i in range(2)]
    registers = [0x7FEF, 0xFFFF, 0xFFFF, 0xFFFF] * 2
    values, qualities, _ = decode_block(ReadRequest("holding", 0, 8, (0, 1)), tags, registers)
    assert values == [1.7976931348623157e308] * 2
    assert qualities == [GOOD, GOOD]


def test_infinite_sentinel_reads_as_sentinel_not_nan() -> None:
    # +inf = 0x7F800000; the sentinel is compared first, as documented.
    inf = float("inf")
    assert decode_one([0x7F80, 0], type="float32", sentinel=inf) == (None, BAD, REASON_SENTINEL)
    assert decode_one([0x7F80, 0], type="float32", sentinel=inf, scale=2) == (
        None,
        BAD,
        REASON_SENTINEL,
    )


@pytest.mark.parametrize(
    ("tag", "registers", "expected"),
    [
        # Combinations the config checks refuse still decode predictably.
        ({"type": "uint16", "enum": {2: "run"}, "scale": 10}, [2], ("run", GOOD, "")),
        ({"type": "float32", "enum": {2: "two"}}, [0x4000, 0], ("two", GOOD, "")),
        (
            {"type": "uint16", "enum": {2: "run"}, "sentinel": 0},
            [3],
            ("3", UNCERTAIN, "unknown enum value 3"),
        ),
        ({"type": "bool", "bit": 2, "sentinel": 1}, [0x0004], (None, BAD, "sentinel")),
        ({"type": "bool", "bit": 2, "enum": {0: "no", 1: "yes"}}, [0x0004], ("yes", GOOD, "")),
        ({"type": "uint16", "sentinel": 0.5}, [0], (0, GOOD, "")),
    ],
)
def test_slow_path_combinations(
    tag: dict[str, Any], registers: list[int], expected: tuple[Any, ...]
) -> None:
    assert decode_one(registers, **tag) == expected


# --------------------------------------------------------------------------- block == one by one

_KINDS: list[dict[str, Any]] = [
    {"type": "uint16"},
    {"type": "int16", "byte_order": "BADC"},
    {"type": "int32", "byte_order": "CDAB"},
    {"type": "uint32", "scale": 0.5},
    {"type": "int64", "byte_order": "DCBA"},
    {"type": "uint64", "byte_order": "BADC"},
    {"type": "float32"},
    {"type": "float32", "byte_order": "CDAB", "sentinel": 0},
    {"type": "float64", "byte_order": "DCBA"},
    {"type": "uint16", "sentinel": 7},
    {"type": "uint16", "enum": {0: "a", 1: "b"}},
    {"type": "bool", "bit": 3},
    {"type": "string", "length": 2, "byte_order": "BADC"},
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(range(len(_KINDS)))), min_size=1, max_size=25
    ),
    st.sampled_from(["ABCD", "BADC", "CDAB", "DCBA"]),
    st.data(),
)
def test_a_block_decodes_like_each_tag_alone(
    layout: list[tuple[int, int]], default_order: ByteOrder, data: st.DataObject
) -> None:
    """Lanes, shared fields, gathers and fix-up loops change nothing about the values."""
    tags = [ModbusTag(name=f"t{n}", address=a, **_KINDS[k]) for n, (a, k) in enumerate(layout)]
    end = max(t.address + t.register_count for t in tags)
    registers = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=end, max_size=end))
    request = ReadRequest("holding", 0, end, tuple(data.draw(st.permutations(range(len(tags))))))
    values: list[Value] = [None] * len(tags)
    qualities = [BAD] * len(tags)
    reasons = ["unset"] * len(tags)
    compile_decoder(request, tags, default_order).decode(registers, values, qualities, reasons)
    for p, t in enumerate(tags):
        alone = registers[t.address : t.address + t.register_count]
        expected = decode_one(alone, default_order, **_KINDS[layout[p][1]])
        assert (values[p], qualities[p], reasons[p]) == expected, t


def test_the_driver_loop_writes_every_position_while_learning_holes() -> None:
    """The read loop as the driver writes it: every sample is set, every poll."""
    tags = [ModbusTag(name=f"r{a}", address=a) for a in (*range(10), *range(12, 21), 22)]
    holes = {10, 22}  # 10 sits in a gap; 22 is a configured tag the device refuses
    plan = AdaptivePlan(tags)
    decoders = DecoderCache(tags)
    for _ in range(3):
        values: list[Value] = [None] * len(tags)
        qualities = [BAD] * len(tags)
        reasons = ["never written"] * len(tags)
        poll = plan.poll()
        for request in poll:
            if holes & set(range(request.start, request.end + 1)):  # exception code 2
                poll.refused(request)
                continue
            poll.accepted(request)
            registers = list(range(request.start, request.end + 1))  # register a holds a
            decoders[request].decode(registers, values, qualities, reasons)
        fill_bad(poll.refused_positions, exception_reason(2), values, qualities, reasons)
        assert values == [t.address for t in tags[:-1]] + [None]
        assert reasons == [""] * (len(tags) - 1) + ["exception code 2"]
    assert plan.describe() == [
        "holding 0-9 (10 registers, 10 tags)",
        "holding 12-20 (9 registers, 9 tags)",
        "holding 22 (1 register, 1 tag): refused by the device (exception code 2), not read",
    ]
