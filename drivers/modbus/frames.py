"""Modbus frames of the reads we send, built and checked byte by byte. Pure: no I/O.

Why our own frames and not pymodbus' client (3.16): its framers and transaction manager
cannot check what must be checked before a value may be called good.

* the reply's function code is never compared with the request's (an fc 4 reply to an
  fc 3 read is decoded as registers);
* a reply with transaction id 0 matches any request, so a late answer from a sloppy
  gateway completes another request;
* the byte count of a coil / discrete-input reply is ignored (the bits are unpacked from
  whatever follows it), and neither MBAP length nor byte count is compared with the read;
* any exception code is accepted, and an exception reply for another function code is
  taken as this request's;
* the RTU framer hunts through garbage for anything that looks like a frame, and a
  malformed frame raises inside ``data_received`` (asyncio then logs a traceback).

So the channel sends the few requests it needs (read fc 1-4, and the diagnostics echo
fc 8/0 that proves an RTU slave is back in step) and checks every reply here: framing
(MBAP protocol id and length, or the RTU CRC), unit, function code, byte count against
the request, data length against the byte count, and exception codes against the ones
Modbus defines. Anything else is a :class:`FrameError`: the read is bad with the reason
``invalid response`` and a message that says what was wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final, Protocol

from edge_agent.config import ModbusTable

READ_FUNCTIONS: Final[dict[ModbusTable, int]] = {
    "coil": 1,
    "discrete_input": 2,
    "holding": 3,
    "input": 4,
}
DIAGNOSTICS: Final = 8
#: Diagnostics sub-function 0, "return query data": the slave echoes the request.
RETURN_QUERY_DATA: Final = 0
EXCEPTION_FLAG: Final = 0x80

#: The exception codes Modbus defines (application protocol v1.1b3, section 7).
EXCEPTION_MEANINGS: Final[dict[int, str]] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

#: MBAP header: transaction id, protocol id, length (unit id and PDU), unit id.
_MBAP = struct.Struct(">HHHB")
MBAP_SIZE: Final = _MBAP.size
#: Largest MBAP length field: unit id + a PDU of at most 253 bytes.
MAX_MBAP_LENGTH: Final = 254


class FrameError(Exception):
    """A reply that is not a valid answer to the request; the message says why."""


@dataclass(frozen=True, slots=True)
class Read:
    """A read request: ``count`` registers or bits from ``address`` of ``unit``."""

    unit: int
    function: int  # 1-4, see READ_FUNCTIONS
    address: int
    count: int

    @property
    def reads_bits(self) -> bool:
        return self.function in (1, 2)

    @property
    def byte_count(self) -> int:
        """The only byte count a correct reply may carry."""
        return (self.count + 7) // 8 if self.reads_bits else 2 * self.count

    def pdu(self) -> bytes:
        return struct.pack(">BHH", self.function, self.address, self.count)

    def describe(self) -> str:
        return f"function {self.function} {self.address}+{self.count} unit {self.unit}"


@dataclass(frozen=True, slots=True)
class Echo:
    """Diagnostics "return query data" with ``data``: any answer proves the slave heard it."""

    unit: int
    data: int

    def pdu(self) -> bytes:
        return struct.pack(">BHH", DIAGNOSTICS, RETURN_QUERY_DATA, self.data)


class Sendable(Protocol):
    """What goes on the wire: a unit and a PDU (reads, the echo, the writes of
    :mod:`drivers.modbus.frames_write`)."""

    @property
    def unit(self) -> int: ...

    def pdu(self) -> bytes: ...


Request = Read | Echo


@dataclass(frozen=True, slots=True)
class Frame:
    """A reply as it came off the wire: unit, function code (with 0x80 for an exception)
    and the rest of the PDU. Not matched to a request yet (see :func:`check_read`)."""

    unit: int
    function: int
    body: bytes

    @property
    def is_exception(self) -> bool:
        return bool(self.function & EXCEPTION_FLAG)

    def describe(self) -> str:
        return f"unit {self.unit} function {self.function:#04x} ({len(self.body)} bytes)"


@dataclass(frozen=True, slots=True)
class ExceptionReply:
    """The device answered the request with a defined exception code."""

    code: int


# ----------------------------------------------------------------------------- TCP


def tcp_adu(tid: int, request: Sendable) -> bytes:
    pdu = request.pdu()
    return _MBAP.pack(tid, 0, len(pdu) + 1, request.unit) + pdu


def split_tcp(buffer: bytearray) -> tuple[int, Frame] | None:
    """Take the first complete MBAP frame off ``buffer``: ``(transaction id, frame)``.

    None when more bytes are needed. A header that cannot start a frame raises
    :class:`FrameError`: the stream is out of step and the connection must be dropped.
    """
    if len(buffer) < MBAP_SIZE:
        return None
    tid, protocol, length, unit = _MBAP.unpack_from(buffer)
    if protocol != 0:
        raise FrameError(f"MBAP protocol id {protocol}, not 0 (Modbus): stream out of step")
    if not 3 <= length <= MAX_MBAP_LENGTH:
        raise FrameError(f"MBAP length {length}: no Modbus reply has that length")
    end = MBAP_SIZE - 1 + length
    if len(buffer) < end:
        return None
    frame = Frame(unit, buffer[MBAP_SIZE], bytes(buffer[MBAP_SIZE + 1 : end]))
    del buffer[:end]
    return tid, frame


# ----------------------------------------------------------------------------- RTU


def crc16(data: bytes | bytearray) -> int:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def rtu_adu(request: Sendable) -> bytes:
    body = bytes([request.unit]) + request.pdu()
    return body + struct.pack("<H", crc16(body))


def rtu_length(buffer: bytearray) -> int | None:
    """Length of the RTU reply that starts ``buffer``, or None until it can be known.

    Only the replies to what we send have a known length: exceptions (5 bytes), reads
    fc 1-4 (byte count + 5), the diagnostics echo and the writes fc 5, 6, 15, 16 (8),
    the mask write fc 22 (10). Any other function code is not a reply to us:
    :class:`FrameError`.
    """
    if len(buffer) < 2:
        return None
    function = buffer[1]
    if function & EXCEPTION_FLAG:
        return 5
    if function in (1, 2, 3, 4):
        return buffer[2] + 5 if len(buffer) >= 3 else None
    if function in (DIAGNOSTICS, 5, 6, 15, 16):
        return 8
    if function == 22:
        return 10
    raise FrameError(
        f"function code {function:#04x} from unit {buffer[0]}: not a reply to a request of ours"
    )


#: Bytes an RS-485 line shows when a transceiver switches over (a glitch read as 0x00 or
#: 0xFF before the answer). No slave has address 0 (broadcast, never answered) or, on a
#: serial line, 255 (reserved), so neither byte can start a reply.
LINE_NOISE = (0x00, 0xFF)


def drop_line_noise(buffer: bytearray, unit: int) -> int:
    """Drop noise bytes before a reply from ``unit``; how many were dropped.

    Without it one glitch byte made every reply fail its CRC. Only bytes that cannot be
    a slave's address are dropped, so a late reply from another unit keeps its first
    byte (and is then recognised as another unit's).
    """
    dropped = 0
    while buffer and buffer[0] in LINE_NOISE and buffer[0] != unit:
        del buffer[0]
        dropped += 1
    return dropped


def split_rtu(buffer: bytearray) -> Frame | None:
    """Take the first complete RTU frame off ``buffer``; None when more bytes are needed.

    A bad CRC or an unknown function code raises :class:`FrameError`; the bytes stay in
    the buffer (the caller waits for the line to go quiet and drops them).
    """
    length = rtu_length(buffer)
    if length is None or len(buffer) < length:
        return None
    (sent,) = struct.unpack_from("<H", buffer, length - 2)
    if crc16(buffer[: length - 2]) != sent:
        raise FrameError(f"CRC error in a {length}-byte frame from unit {buffer[0]}")
    frame = Frame(buffer[0], buffer[1], bytes(buffer[2 : length - 2]))
    del buffer[:length]
    return frame


# ----------------------------------------------------------------------------- checks


def check_read(request: Read, frame: Frame) -> tuple[int, ...] | list[bool] | ExceptionReply:
    """The registers (or bits, padded to whole bytes) of a reply that answers ``request``.

    Raises :class:`FrameError` unless unit, function code, byte count and data length
    fit the request exactly, or the frame is an exception reply to this very function
    code with a code Modbus defines.
    """
    refused = check_header(request.unit, request.function, frame, "a read")
    if refused is not None:
        return refused
    body = frame.body
    if not body:
        raise FrameError("a reply without byte count")
    byte_count = body[0]
    if byte_count != request.byte_count:
        unit = "bits" if request.reads_bits else "registers"
        raise FrameError(
            f"byte count {byte_count} for {request.count} {unit} ({request.byte_count} expected)"
        )
    if len(body) - 1 != byte_count:
        raise FrameError(f"{len(body) - 1} data bytes after byte count {byte_count}")
    data = body[1:]
    if request.reads_bits:
        return [bool(byte >> bit & 1) for byte in data for bit in range(8)]
    return struct.unpack(f">{request.count}H", data)


def check_header(unit: int, function: int, frame: Frame, what: str) -> ExceptionReply | None:
    """The unit and function code of a reply to ``what`` (``a read``, ``a write``) with
    ``function`` sent to ``unit``: an :class:`ExceptionReply` when it is a defined
    exception to this very function code, None when the body is to be checked next;
    :class:`FrameError` for any other unit or function code."""
    if frame.unit != unit:
        raise FrameError(f"unit {frame.unit} answered a request to unit {unit}")
    if frame.function == function | EXCEPTION_FLAG:
        return check_exception(frame)
    if frame.function != function:
        kind = "an exception reply to" if frame.is_exception else "a reply to"
        raise FrameError(
            f"{kind} function {frame.function & ~EXCEPTION_FLAG} "
            f"came for {what} with function {function}"
        )
    return None


def check_exception(frame: Frame) -> ExceptionReply:
    if len(frame.body) != 1:
        raise FrameError(f"an exception reply of {len(frame.body) + 1} bytes (2 expected)")
    code = frame.body[0]
    if code not in EXCEPTION_MEANINGS:
        raise FrameError(f"exception code {code}, which Modbus does not define")
    return ExceptionReply(code)


def answers_echo(frame: Frame) -> bool:
    """A diagnostics reply (echo or exception): the answer to a probe, never to a read."""
    return frame.function in (DIAGNOSTICS, DIAGNOSTICS | EXCEPTION_FLAG)


def echoed(frame: Frame) -> int | ExceptionReply | None:
    """Which probe a diagnostics reply answers: the data word it echoes, or an
    :class:`ExceptionReply` (which carries none: it answers the oldest probe unanswered).
    None when it is not an answer to an :class:`Echo` we send (another sub-function)."""
    if frame.function == DIAGNOSTICS | EXCEPTION_FLAG and len(frame.body) == 1:
        return ExceptionReply(frame.body[0])
    if frame.function == DIAGNOSTICS and len(frame.body) == 4:
        sub_function, data = struct.unpack(">HH", frame.body)
        if sub_function == RETURN_QUERY_DATA:
            return int(data)
    return None
