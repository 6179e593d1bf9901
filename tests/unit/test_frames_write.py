"""Modbus write frames byte by byte: only the exact echo confirms a write."""

from __future__ import annotations

import struct

import pytest

from drivers.modbus.frames import (
    ExceptionReply,
    Frame,
    FrameError,
    crc16,
    rtu_adu,
    rtu_length,
    split_rtu,
    tcp_adu,
)
from drivers.modbus.frames_write import (
    Write,
    apply_masks,
    bit_masks,
    check_write,
    mask_write,
    write_coil,
    write_coils,
    write_register,
    write_registers,
)

COIL_ON = write_coil(1, 0xAC, True)
REGISTER = write_register(1, 10, 0x028A)
COILS = write_coils(1, 19, [True, False, True, True, False, False, True, True, True, False])
REGISTERS = write_registers(1, 100, [0x40D0, 0x0000])
MASK = mask_write(1, 4, 0x00F2, 0x0025)


def test_requests_on_the_wire() -> None:
    # The examples of the Modbus application protocol v1.1b3, sections 6.5-6.16.
    assert COIL_ON.pdu().hex() == "0500acff00"
    assert write_coil(1, 0xAC, False).pdu().hex() == "0500ac0000"
    assert write_register(1, 1, 3).pdu().hex() == "0600010003"
    assert COILS.pdu().hex() == "0f0013000a02cd01"
    assert write_registers(1, 1, [0x000A, 0x0102]).pdu().hex() == "100001000204000a0102"
    assert MASK.pdu().hex() == "16000400f20025"
    assert tcp_adu(9, REGISTER).hex() == "000900000006" + "01" + "06000a028a"
    assert rtu_adu(REGISTER)[:-2].hex() == "0106000a028a"


@pytest.mark.parametrize("request_", [COIL_ON, REGISTER, COILS, REGISTERS, MASK])
def test_the_exact_echo_confirms(request_: Write) -> None:
    assert check_write(request_, Frame(1, request_.function, request_.echo())) is None


def test_echo_of_the_multiple_writes_is_address_and_quantity() -> None:
    assert COILS.echo().hex() == "0013000a"
    assert REGISTERS.echo().hex() == "00640002"
    assert MASK.echo().hex() == "000400f20025"


@pytest.mark.parametrize("request_", [COIL_ON, REGISTER, COILS, REGISTERS, MASK])
def test_an_exception_reply_to_this_function(request_: Write) -> None:
    reply = Frame(1, request_.function | 0x80, b"\x02")
    assert check_write(request_, reply) == ExceptionReply(2)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def _bad_echoes(request_: Write) -> list[tuple[Frame, str]]:
    echo = request_.echo()
    bad = [
        (Frame(2, request_.function, echo), "unit 2 answered"),
        (Frame(1, request_.function ^ 0x01, echo), "a reply to function"),
        (Frame(1, 0x83, b"\x02"), "an exception reply to function 3"),
        (Frame(1, request_.function | 0x80, b"\x09"), "exception code 9"),
        (Frame(1, request_.function | 0x80, b"\x02\x00"), "exception reply of 3 bytes"),
        (Frame(1, request_.function, echo[:-1]), "differs"),
        (Frame(1, request_.function, echo + b"\x00"), "differs"),
        (Frame(1, request_.function, b""), "differs"),
    ]
    bad += [(Frame(1, request_.function, _flip(echo, at)), "differs") for at in range(len(echo))]
    return bad


@pytest.mark.parametrize("request_", [COIL_ON, REGISTER, COILS, REGISTERS, MASK])
def test_every_other_reply_is_refused(request_: Write) -> None:
    for frame, why in _bad_echoes(request_):
        with pytest.raises(FrameError, match=why):
            check_write(request_, frame)


def test_limits_of_one_request() -> None:
    assert write_registers(1, 0, [0] * 123).count == 123
    with pytest.raises(ValueError, match="124 registers"):
        write_registers(1, 0, [0] * 124)
    with pytest.raises(ValueError, match="1969 coils"):
        write_coils(1, 0, [False] * 1969)
    with pytest.raises(ValueError, match="run past address 65535"):
        write_registers(1, 65535, [1, 2])
    with pytest.raises(ValueError, match="not 0-65535"):
        write_register(1, 0, 65536)
    with pytest.raises(ValueError, match="0 registers"):
        write_registers(1, 0, [])


def test_masks_change_one_bit_only() -> None:
    # The standard's example: current 0x12, AND 0xF2, OR 0x25 -> 0x17.
    assert apply_masks(0x12, 0x00F2, 0x0025) == 0x17
    for bit in range(16):
        for on in (False, True):
            and_mask, or_mask = bit_masks(bit, on)
            for current in (0x0000, 0xFFFF, 0xA50F, 0x5AF0):
                after = apply_masks(current, and_mask, or_mask)
                assert after & ~(1 << bit) & 0xFFFF == current & ~(1 << bit) & 0xFFFF
                assert bool(after >> bit & 1) is on


@pytest.mark.parametrize(
    ("request_", "reply_length"),
    [(COIL_ON, 8), (REGISTER, 8), (COILS, 8), (REGISTERS, 8), (MASK, 10)],
)
def test_rtu_length_of_a_write_reply(request_: Write, reply_length: int) -> None:
    body = bytes([1, request_.function]) + request_.echo()
    frame = body + struct.pack("<H", crc16(body))
    assert rtu_length(bytearray(frame)) == reply_length == len(frame)
    parsed = split_rtu(bytearray(frame))
    assert parsed is not None
    assert check_write(request_, parsed) is None
