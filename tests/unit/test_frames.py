"""Modbus frames byte by byte: what a reply must be before a value may be called good."""

from __future__ import annotations

import struct

import pytest

from drivers.modbus.frames import (
    Echo,
    ExceptionReply,
    Frame,
    FrameError,
    Read,
    answers_echo,
    check_read,
    crc16,
    echoed,
    rtu_adu,
    split_rtu,
    split_tcp,
    tcp_adu,
)

HOLDING = Read(unit=1, function=3, address=0, count=2)
COILS = Read(unit=1, function=1, address=0, count=4)


def test_requests_on_the_wire() -> None:
    assert tcp_adu(7, HOLDING).hex() == "000700000006" + "01" + "0300000002"
    assert rtu_adu(HOLDING).hex() == "010300000002c40b"  # the CRC every Modbus text shows
    assert rtu_adu(Echo(unit=17, data=0xBEEF)).hex()[:12] == "11080000beef"


def test_crc16_of_a_known_frame() -> None:
    assert struct.pack("<H", crc16(bytes.fromhex("110300 6b0003".replace(" ", "")))).hex() == "7687"


@pytest.mark.parametrize(
    ("request_", "frame", "result"),
    [
        (HOLDING, Frame(1, 3, bytes.fromhex("04 03e8 03e9")), (1000, 1001)),
        (COILS, Frame(1, 1, bytes.fromhex("01 09")), [True, False, False, True] + [False] * 4),
        (HOLDING, Frame(1, 0x83, b"\x02"), ExceptionReply(2)),
        (HOLDING, Frame(1, 0x83, b"\x0b"), ExceptionReply(11)),
    ],
)
def test_a_reply_that_fits_its_request(
    request_: Read, frame: Frame, result: tuple[int, ...] | list[bool] | ExceptionReply
) -> None:
    assert check_read(request_, frame) == result


@pytest.mark.parametrize(
    ("request_", "frame", "why"),
    [
        # B1: another function code with the right unit and count.
        (HOLDING, Frame(1, 4, bytes.fromhex("04 dead dead")), "reply to function 4"),
        # An exception reply for another function is not this read's exception.
        (HOLDING, Frame(1, 0x84, b"\x02"), "exception reply to function 4"),
        # Codes Modbus does not define are noise, not exceptions.
        (HOLDING, Frame(1, 0x83, bytes([104])), "exception code 104"),
        (HOLDING, Frame(1, 0x83, b"\x07"), "exception code 7"),
        (HOLDING, Frame(1, 0x83, b"\x02\x00"), "exception reply of 3 bytes"),
        # B4: byte count beyond the data, or more bytes than the bits asked for.
        (COILS, Frame(1, 1, bytes.fromhex("03 ff")), "byte count 3 for 4 bits"),
        (COILS, Frame(1, 1, bytes.fromhex("02 ffff")), "byte count 2 for 4 bits"),
        (COILS, Frame(1, 1, bytes.fromhex("01 ff ff")), "2 data bytes after byte count 1"),
        (HOLDING, Frame(1, 3, bytes.fromhex("06 0001 0002 0003")), "byte count 6"),
        (HOLDING, Frame(1, 3, bytes.fromhex("04 0001")), "2 data bytes"),
        (HOLDING, Frame(1, 3, b""), "without byte count"),
        (HOLDING, Frame(2, 3, bytes.fromhex("04 0001 0002")), "unit 2 answered"),
    ],
)
def test_a_reply_that_does_not_fit_is_refused(request_: Read, frame: Frame, why: str) -> None:
    with pytest.raises(FrameError, match=why):
        check_read(request_, frame)


def test_tcp_frames_are_cut_by_the_mbap_length() -> None:
    one = bytes.fromhex("0001 0000 0007 01 03 04 0001 0002")
    two = bytes.fromhex("0002 0000 0003 01 83 02")
    buffer = bytearray(one + two[:5])
    assert split_tcp(buffer) == (1, Frame(1, 3, bytes.fromhex("04 0001 0002")))
    assert split_tcp(buffer) is None  # half a header: wait for more
    buffer += two[5:]
    assert split_tcp(buffer) == (2, Frame(1, 0x83, b"\x02"))
    assert buffer == b""


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("0001 0001 0006 01", "protocol id 1"),
        ("0001 0000 0001 01", "MBAP length 1"),
        ("0001 0000 0200 01", "MBAP length 512"),
    ],
)
def test_a_tcp_header_that_cannot_start_a_frame_means_the_stream_is_out_of_step(
    header: str, why: str
) -> None:
    with pytest.raises(FrameError, match=why):
        split_tcp(bytearray(bytes.fromhex(header) + b"\x03\x00"))


def _rtu(hexed: str) -> bytes:
    body = bytes.fromhex(hexed)
    return body + struct.pack("<H", crc16(body))


def test_rtu_frames_are_cut_by_their_byte_count_and_checked_by_crc() -> None:
    reply = _rtu("01 03 04 03e8 03e9")
    buffer = bytearray(reply[:3])
    assert split_rtu(buffer) is None
    buffer += reply[3:] + _rtu("01 83 06") + _rtu("05 08 0000 beef")
    assert split_rtu(buffer) == Frame(1, 3, bytes.fromhex("04 03e8 03e9"))
    assert split_rtu(buffer) == Frame(1, 0x83, b"\x06")
    echo = split_rtu(buffer)
    assert echo == Frame(5, 8, bytes.fromhex("0000 beef"))
    assert answers_echo(echo)
    assert buffer == b""


def test_an_rtu_frame_with_a_bad_crc_or_an_unknown_function_is_refused() -> None:
    damaged = bytearray(_rtu("01 03 04 03e8 03e9"))
    damaged[4] ^= 0x01
    with pytest.raises(FrameError, match="CRC"):
        split_rtu(damaged)
    with pytest.raises(FrameError, match="function code 0x2b"):
        split_rtu(bytearray(_rtu("01 2b 0e 01")))


def test_a_diagnostics_reply_says_which_probe_it_answers() -> None:
    # The data word tells one probe's echo from another's; an exception carries none.
    assert echoed(Frame(5, 8, bytes.fromhex("0000 beef"))) == 0xBEEF
    assert echoed(Frame(5, 0x88, b"\x01")) == ExceptionReply(1)
    assert echoed(Frame(5, 8, bytes.fromhex("0001 beef"))) is None  # another sub-function
    assert echoed(Frame(5, 3, bytes.fromhex("02 beef"))) is None
