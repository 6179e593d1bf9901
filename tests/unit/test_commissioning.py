"""The pure parts of ``read`` and ``probe``: targets, the decode table, ranking, scans."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import pytest

from drivers.modbus.answer import Answer, Outcome, explain
from drivers.modbus.decodings import decode, decode_string, format_value, layouts, render_table
from drivers.modbus.ranking import DEFAULT_SCALES, chance_in_range, label, one_in, rank, tag_yaml
from drivers.modbus.ranking import explain as explain_rank
from drivers.modbus.scan import RegisterScan, UnitScan, scan_registers, scan_units
from drivers.modbus.target import TargetError, parse_int_range, parse_range, parse_target
from drivers.modbus.tools import UsageError, check_span
from edge_agent.config import ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.rounding import shortest_float32_exact


def _abcd(value: float) -> list[int]:
    bits = struct.unpack(">I", struct.pack(">f", value))[0]
    return [bits >> 16, bits & 0xFFFF]


# --------------------------------------------------------------------- targets


def test_tcp_targets() -> None:
    assert parse_target("tcp://192.168.1.10:5020") == ModbusTcp(
        transport="tcp", host="192.168.1.10", port=5020
    )
    assert parse_target("TCP://meter.local") == ModbusTcp(
        transport="tcp", host="meter.local", port=502
    )
    assert parse_target("tcp://[::1]:502") == ModbusTcp(transport="tcp", host="::1", port=502)


def test_rtu_targets_take_the_serial_settings_from_the_query() -> None:
    rtu = parse_target("rtu:///dev/ttyUSB0?baud=9600&parity=e&stopbits=2")
    assert rtu == ModbusRtu(
        transport="rtu", serial_port="/dev/ttyUSB0", baudrate=9600, parity="E", stopbits=2
    )
    default = parse_target("rtu:///dev/serial/by-id/usb-FTDI-if00")
    assert isinstance(default, ModbusRtu)
    assert (default.baudrate, default.parity, default.stopbits) == (19200, "E", 1)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("192.168.1.10:502", "write the device as tcp://"),
        ("udp://1.2.3.4", "unknown scheme 'udp'"),
        ("tcp://1.2.3.4:99999", "port must be a number from 1 to 65535"),
        ("tcp://1.2.3.4:abc", "port must be a number"),
        ("tcp://:502", "no host"),
        ("rtu://ttyUSB0", "full path"),
        ("rtu:///dev/ttyUSB0?baud=fast", "is not a number"),
        ("rtu:///dev/ttyUSB0?parity=X", "parity must be N (none), E (even) or O (odd)"),
        ("rtu:///dev/ttyUSB0?speed=9600", "unknown setting 'speed'"),
        ("rtu:///dev/ttyUSB0?baud=9600&baudrate=19200", "given twice"),
        ("rtu:///dev/ttyUSB0?stopbits=3", "stopbits must be 1 or 2"),
    ],
)
def test_bad_targets_say_what_to_write(text: str, words: str) -> None:
    with pytest.raises(TargetError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_target(text)


def test_ranges() -> None:
    assert parse_range("220..240", "--expect") == (220.0, 240.0)
    assert parse_range("1.0..0.9", "--expect") == (0.9, 1.0)
    assert parse_range("-5..5", "--expect") == (-5.0, 5.0)
    with pytest.raises(TargetError, match=r"LOW\.\.HIGH"):
        parse_range("230", "--expect")
    with pytest.raises(TargetError, match="must be numbers"):
        parse_range("a..b", "--expect")
    assert parse_int_range("1..247", "--scan-units", 0, 255) == (1, 247)
    assert parse_int_range("5", "--scan-units", 0, 255) == (5, 5)
    with pytest.raises(TargetError, match=r"within 0\.\.255"):
        parse_int_range("1..300", "--scan-units", 0, 255)


# ---------------------------------------------------------------- decode table


def test_the_table_decodes_every_type_and_order_that_fits() -> None:
    registers = _abcd(230.1)
    decodings = decode("input", 0, registers, layouts(2))
    by_key = {(d.type, d.byte_order): d for d in decodings}
    # 16-bit types in two orders, 32-bit types in four; 64-bit types do not fit.
    assert len(decodings) == 2 * 2 + 3 * 4
    assert format_value(by_key["float32", "ABCD"]) == "230.1"
    assert by_key["uint16", "ABCD"].value == registers[0]
    assert by_key["uint16", "BADC"].value == struct.unpack("<H", struct.pack(">H", registers[0]))[0]
    cdab = struct.unpack(">f", struct.pack(">HH", registers[1], registers[0]))[0]
    # The agent's own decoder: a float32 as its shortest round-tripping decimal.
    assert by_key["float32", "CDAB"].value == shortest_float32_exact(cdab)
    assert struct.pack(">f", by_key["float32", "CDAB"].value) == struct.pack(">f", cdab)
    table = render_table(decodings)
    assert table[0].split() == ["type", "ABCD", "CDAB", "BADC", "DCBA"]
    assert any(line.startswith("float32") and "230.1" in line for line in table)


def test_scaled_values_print_to_the_scales_decimals() -> None:
    (d,) = decode("holding", 0, [121], [(0, "uint16", "ABCD")], (0.1,))
    assert d.value == pytest.approx(12.1)
    assert format_value(d) == "12.1"


def test_a_nan_is_shown_bad_not_as_a_number() -> None:
    (d,) = decode("holding", 0, [0x7FC0, 0], [(0, "float32", "ABCD")])
    assert format_value(d) == "nan"


def test_text_is_shown_only_when_readable() -> None:
    texts = decode_string("holding", 0, [0x4142, 0x4300])
    assert [(t.byte_order, t.value) for t in texts] == [("ABCD", "ABC"), ("BADC", "BA")]
    assert decode_string("holding", 0, [0x0102, 0x0304]) == []


# --------------------------------------------------------------------- ranking


def _ranked(registers: Sequence[int], low: float, high: float) -> list[tuple[str, int, str]]:
    decodings = decode(
        "input",
        0,
        registers,
        layouts(len(registers), offsets=range(len(registers))),
        DEFAULT_SCALES,
    )
    return [
        (label(c), c.decoding.offset, format_value(c.decoding))
        for c in rank(decodings, registers, low, high)
    ]


def test_a_float32_in_range_beats_integer_readings() -> None:
    ranked = _ranked([*_abcd(230.1), 2301, 0], 220, 240)
    assert ranked[0] == ("float32 ABCD", 0, "230.1")
    assert ("uint16 ABCD x0.1", 2, "230.1") in ranked


def test_a_word_swapped_float_is_found_in_cdab() -> None:
    high, low = _abcd(231.4)
    assert _ranked([low, high, 0, 0], 220, 240)[0] == ("float32 CDAB", 0, "231.4")


def test_a_scaled_uint16_beats_the_wide_integers_it_hides_in() -> None:
    # [2301, 0]: uint32 CDAB x0.1 reads 230.1 too, only because the next register is 0.
    ranked = _ranked([2301, 0, 0, 0], 220, 240)
    assert ranked[0] == ("uint16 ABCD x0.1", 0, "230.1")
    assert ("uint32 CDAB x0.1", 0, "230.1") in ranked


def test_off_by_one_is_found_and_said() -> None:
    registers = [0, *_abcd(0.93), 0]
    decodings = decode("input", 100, registers, layouts(4, offsets=range(4)), DEFAULT_SCALES)
    candidates = rank(decodings, registers, 0.9, 1.0)
    assert label(candidates[0]) == "float32 ABCD"
    assert candidates[0].decoding.offset == 1
    words = "\n".join(explain_rank(candidates, 0.9, 1.0, 100))
    assert "use address 101" in words
    assert tag_yaml(candidates[0], "input", 100) == (
        "- {name: value, table: input, address: 101, type: float32}"
    )


def test_nothing_in_range_says_what_to_check() -> None:
    assert _ranked([1, 2], 220, 240) == []
    (line,) = explain_rank([], 220, 240, 0)
    assert "unit id" in line
    assert "--address A-1" in line


def test_signed_and_unsigned_twins_are_listed_once() -> None:
    ranked = _ranked([2301], 220, 240)
    assert [r[0] for r in ranked] == ["uint16 ABCD x0.1"]
    ranked = _ranked([(-1200) & 0xFFFF], -130, -110)
    assert ranked == [("int16 ABCD x0.1", 0, "-120.0")]


def test_a_scaled_value_on_the_edge_of_the_range_is_a_hit_and_not_a_certainty() -> None:
    # 57 x 0.01 is 0.5700000000000001 in binary floating point, and 0.57 / 0.01 is
    # 56.99999999999999: the display's 0.57 is still in 0.50..0.57, and the raw value
    # 57 was not "impossible by chance" (which once scored it above any float).
    ranked = _ranked([57], 0.5, 0.57)
    assert ("uint16 ABCD x0.01", 0, "0.57") in ranked
    assert chance_in_range("uint16", 0.01, 0.57, 0.57) > 0
    assert chance_in_range("uint16", 0.1, 2.3, 2.3) > 0
    registers = [29, *_abcd(0.29), 0]
    decodings = decode("input", 0, registers, layouts(4, offsets=range(4)), DEFAULT_SCALES)
    candidates = rank(decodings, registers, 0.29, 0.29)
    assert candidates
    assert all(c.chance > 0 for c in candidates)
    assert "never" not in "\n".join(explain_rank(candidates, 0.29, 0.29, 0))


def _explained(registers: Sequence[int], low: float, high: float, address: int = 0) -> str:
    decodings = decode(
        "input",
        address,
        registers,
        layouts(len(registers), offsets=range(len(registers))),
        DEFAULT_SCALES,
    )
    candidates = rank(decodings, registers, low, high)
    return "\n".join(explain_rank(candidates, low, high, address, decodings))


@pytest.mark.parametrize(
    ("registers", "low", "high"),
    [
        # An Eastron SDM630's export energy 1.25 kWh (input 74-75) next to an empty
        # register: word-swapped it reads 2.28e-41, a subnormal that is in 0..10.
        ([0x3FA0, 0x0000], 0, 10),
        ([0x3FA0, 0x0000], 0, 100000),
        ([0x3FA0, 0x0000, 0x0000, 0x0000], 0, 10),
    ],
)
def test_a_round_float_beats_absurd_floats(registers: list[int], low: float, high: float) -> None:
    ranked = _ranked(registers, low, high)
    assert ranked[0] == ("float32 ABCD", 0, "1.25")
    absurd = [r for r in ranked if r[0].startswith("float") and "e-" in r[2]]
    assert absurd  # 2.282405e-41 and the like are decoded ...
    assert ranked[-len(absurd) :] == absurd  # ... and ranked last


def test_an_absurd_float_says_why_and_is_no_match() -> None:
    # [0000 0001] reads as float32 ABCD 1.4e-45, the smallest subnormal: no measurement.
    ranked = _ranked([0x0000, 0x0001], 1e-46, 1e-44)
    assert ranked == [("float32 ABCD", 0, "1e-45")]
    words = _explained([0x0000, 0x0001], 1e-46, 1e-44)
    assert "is no measurement" in words
    assert "no convincing match" in words
    assert "strong evidence" not in words


def test_a_float64_with_an_empty_low_half_is_a_float32_then_empty_registers() -> None:
    assert _ranked([0x3FA0, 0, 0, 0], 0, 10)[0] == ("float32 ABCD", 0, "1.25")
    # ... unless the float32 is itself cut short: float64 50 is 0x4049000000000000.
    assert _ranked([0x4049, 0, 0, 0], 0, 100)[0] == ("float64 ABCD", 0, "50")


def test_the_wording_counts_the_decodings_tried() -> None:
    # One float32 hit in 220..240 among ~200 decodings is still strong evidence ...
    assert "strong evidence" in _explained([*_abcd(230.1), 2301, 0], 220, 240)
    # ... one in 1..100 (1 in 78 per float32 decoding, a dozen of them) is not.
    high, low = _abcd(13.75469)
    words = _explained([low, high, 0, 0], 1, 100)
    assert "weak evidence" in words
    assert "strong evidence" not in words
    # A wide range: some decoding lands in it whatever the registers hold.
    words = _explained([0x3FA0, 0x0000], 0, 10)
    assert "no convincing match" in words
    assert "strong evidence" not in words


def test_empty_registers_are_no_evidence_for_any_type() -> None:
    # float32 0 is 2 bit patterns in 2**32, yet zeros say nothing about the type.
    words = _explained([0, 0, 0, 0], 0, 0)
    assert "no convincing match: its registers are 0" in words
    assert "strong evidence" not in words


def test_only_a_neighbour_one_register_away_is_called_off_by_one() -> None:
    words = _explained([0xFFFF, 0xFFFF, 0xFFFF, 2301], 220, 240, 100)
    assert "starts 3 registers after" in words
    assert "use address 103" in words
    assert "off by one" not in words


def test_chances() -> None:
    # The exact share of float32 bit patterns in 220..240 (between 2**7 and 2**8: one
    # exponent, 20/128 of its 2**23 mantissas).
    assert chance_in_range("float32", 1, 220, 240) == pytest.approx((20 / 128 * 2**23 + 1) / 2**32)
    assert chance_in_range("float32", 1, -240, -220) == chance_in_range("float32", 1, 220, 240)
    assert chance_in_range("float64", 1, 220, 240) < chance_in_range("float32", 1, 220, 240)
    # Integers: log-uniform magnitudes, so a wider type is not a million times rarer.
    u16 = chance_in_range("uint16", 0.1, 220, 240)
    assert u16 == pytest.approx(math.log(2402 / 2201) / math.log(2**16 + 1))
    assert chance_in_range("uint32", 0.1, 220, 240) == pytest.approx(u16 / 2, rel=0.01)
    assert chance_in_range("uint16", 1, -5, -1) == 0.0
    assert chance_in_range("uint16", 1, 0.2, 0.8) == 0.0  # no whole raw value in range
    assert one_in(1 / 3312) == "1 in 3,300"
    assert one_in(1 / 128.4) == "1 in 130"


# ------------------------------------------------------------------ explanations


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "does not support reading the holding table"),
        (2, "try --address 99"),
        (3, "refused a read of 2"),
        (4, "failed internally"),
        (6, "busy"),
        (10, "no route to unit 5"),
        (11, "did not answer it"),
    ],
)
def test_exceptions_in_words(code: int, words: str) -> None:
    answer = Answer(Outcome.EXCEPTION, code=code)
    text = " ".join(
        explain(answer, table="holding", address=100, count=2, unit=5, serial=False, timeout=1)
    )
    assert words in text
    assert f"exception {code}" in text


@pytest.mark.parametrize(
    ("table", "address", "words"),
    [
        (
            "input",
            30001,
            "30001 looks like a register number: input register 1 is address 0; use --address 0",
        ),
        ("holding", 40101, "holding register 101 is address 100; use --address 100"),
        ("holding", 30001, "use --table input --address 0"),
        ("holding", 0, "address 0 is the first register"),
        ("holding", 1, "try --address 0"),
    ],
)
def test_an_illegal_address_hints_at_the_numbering(
    table: ModbusTable, address: int, words: str
) -> None:
    answer = Answer(Outcome.EXCEPTION, code=2)
    text = " ".join(
        explain(answer, table=table, address=address, count=1, unit=1, serial=False, timeout=1)
    )
    assert words in text
    assert f"--address {address}" not in text  # never the address just asked


def test_a_six_digit_register_number_is_refused_with_the_address_it_means() -> None:
    with pytest.raises(UsageError, match="300101 looks like input register 101: --address 100"):
        check_span("input", 300101, 1)
    with pytest.raises(UsageError, match="register 1: --table holding --address 0"):
        check_span("input", 400001, 2)


@pytest.mark.parametrize("code", [10, 11])
def test_gateway_exceptions_are_said_to_come_from_the_gateway(code: int) -> None:
    # Exceptions 10 and 11 are the gateway speaking for a unit it cannot reach: saying
    # "unit 5 answered" would send the engineer looking for a device that is not there.
    answer = Answer(Outcome.EXCEPTION, code=code)
    text = " ".join(
        explain(answer, table="holding", address=100, count=2, unit=5, serial=False, timeout=1)
    )
    assert f"the gateway answered exception {code}" in text
    assert "unit 5 answered" not in text


def test_timeouts_in_words() -> None:
    answer = Answer(Outcome.TIMEOUT)
    tcp = " ".join(
        explain(answer, table="input", address=0, count=2, unit=5, serial=False, timeout=0.5)
    )
    assert "no answer from unit 5 within 0.5 s" in tcp
    assert "wrong unit id" in tcp
    rtu = " ".join(
        explain(answer, table="input", address=0, count=2, unit=5, serial=True, timeout=1)
    )
    assert "baud rate or parity" in rtu


# ------------------------------------------------------------------------ scans


class FakeDevice:
    """Answers reads like a device with ``readable`` addresses on ``units``; counts time."""

    def __init__(self, units: set[int], readable: set[int], *, gateway: bool = False) -> None:
        self.units = units
        self.readable = readable
        self.gateway = gateway
        self.now = 0.0
        self.asked: list[tuple[int, int, int]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def ask(self, table: ModbusTable, address: int, count: int, unit: int) -> Answer:
        self.asked.append((unit, address, count))
        self.now += 0.01
        if unit not in self.units:
            if self.gateway:
                return Answer(Outcome.EXCEPTION, code=11)
            self.now += 1.0
            return Answer(Outcome.TIMEOUT)
        if all(a in self.readable for a in range(address, address + count)):
            return Answer(Outcome.DATA, data=(0,) * count)
        return Answer(Outcome.EXCEPTION, code=2)


async def test_unit_scan_counts_exceptions_as_present_and_gateway_replies_not() -> None:
    device = FakeDevice({2, 5}, {0}, gateway=True)
    scan = UnitScan(1, 6)
    await scan_units(
        scan,
        device.ask,
        table="holding",
        address=7,
        pause=0.1,
        budget=60,
        request_time=1,
        clock=device.clock,
        sleep=device.sleep,
    )
    assert scan.present == [2, 5]  # address 7 is not readable: exception 2, still there
    assert not scan.stopped
    assert [u for u, _, _ in device.asked] == [1, 2, 3, 4, 5, 6]
    assert device.now == pytest.approx(6 * 0.01 + 5 * 0.1)  # a pause between requests


async def test_unit_scan_stops_within_its_budget() -> None:
    device = FakeDevice({1}, {0})
    scan = UnitScan(1, 247)
    await scan_units(
        scan,
        device.ask,
        table="holding",
        address=0,
        pause=0.1,
        budget=5,
        request_time=1,
        clock=device.clock,
        sleep=device.sleep,
    )
    assert device.now <= 5
    assert scan.present == [1]
    assert scan.stopped.startswith("time budget used up; unit ids")
    assert len(scan.answers) < 247


async def test_register_scan_bisects_down_to_the_holes() -> None:
    readable = set(range(12)) | set(range(16, 26)) | {40}
    device = FakeDevice({1}, readable)
    scan = RegisterScan("input", 1, 0, 49)
    await scan_registers(
        scan,
        device.ask,
        block=20,
        pause=0,
        budget=600,
        request_time=1,
        clock=device.clock,
        sleep=device.sleep,
    )
    spans = [(s.start, s.end, s.kind) for s in scan.merged()]
    assert spans == [
        (0, 11, "readable"),
        (12, 15, "refused"),
        (16, 25, "readable"),
        (26, 39, "refused"),
        (40, 40, "readable"),
        (41, 49, "refused"),
    ]
    assert scan.requests == len(device.asked) <= 2 * 50 - 3
    # Requests go out in address order of their blocks' starts (a person can follow it).
    starts = [a for _, a, _ in device.asked if a % 20 == 0]
    assert starts == sorted(starts)


async def test_register_scan_of_a_silent_unit_stops_at_once() -> None:
    device = FakeDevice(set(), set())
    scan = RegisterScan("holding", 3, 0, 999)
    await scan_registers(
        scan,
        device.ask,
        block=100,
        pause=0.1,
        budget=600,
        request_time=1,
        clock=device.clock,
        sleep=device.sleep,
    )
    assert scan.requests == 1
    assert "does not answer" in scan.stopped


async def test_register_scan_stops_on_illegal_function() -> None:
    async def no_such_table(table: ModbusTable, address: int, count: int, unit: int) -> Answer:
        return Answer(Outcome.EXCEPTION, code=1)

    scan = RegisterScan("input", 1, 0, 99)
    await scan_registers(scan, no_such_table, block=50, pause=0, budget=60, request_time=1)
    assert scan.requests == 1
    assert "does not support reading the input table" in scan.stopped


async def test_register_scan_asks_again_while_the_unit_is_not_back_in_step() -> None:
    # RTU: after a silent read the channel does not send the next read until the unit
    # is in step again; that timeout says nothing about the registers: no hole.
    left = [3]

    async def ask(table: ModbusTable, address: int, count: int, unit: int) -> Answer:
        if left[0]:
            left[0] -= 1
            return Answer(Outcome.TIMEOUT, not_sent=True)
        return Answer(Outcome.DATA, data=(0,) * count)

    async def no_sleep(seconds: float) -> None:
        pass

    scan = RegisterScan("holding", 1, 0, 9)
    await scan_registers(
        scan, ask, block=10, pause=0, budget=60, request_time=0, sleep=no_sleep, clock=lambda: 0
    )
    assert [(s.start, s.end, s.kind) for s in scan.merged()] == [(0, 9, "readable")]
    assert scan.requests == 4

    async def never(table: ModbusTable, address: int, count: int, unit: int) -> Answer:
        return Answer(Outcome.TIMEOUT, not_sent=True)

    scan = RegisterScan("holding", 1, 0, 9)
    await scan_registers(
        scan, never, block=10, pause=0, budget=60, request_time=0, sleep=no_sleep, clock=lambda: 0
    )
    assert scan.spans == []
    assert "stopped answering at holding 0" in scan.stopped
