"""Modbus frames of the writes we send, built and checked byte by byte. Pure: no I/O.

A write's reply is an echo, and the echo is the only proof the device took *this*
write: function 5, 6 and 22 echo the whole request; 15 and 16 echo the address and the
quantity. :func:`check_write` accepts exactly that, or an exception reply to this very
function code with a code Modbus defines (:func:`~drivers.modbus.frames.check_exception`).
Anything else (another unit, another function, an echo that differs in one byte, a
reply too long or too short) is a :class:`~drivers.modbus.frames.FrameError`: the
channel then reports the write's outcome as unknown, never as done.

Limits (application protocol v1.1b3, sections 6.11-6.16): function 15 writes 1-1968
coils, function 16 1-123 registers, in one request; nothing here splits a write into
several requests (the device would hold half a value in between).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drivers.modbus.frames import ExceptionReply, Frame, FrameError, check_header

WRITE_COIL: Final = 5
WRITE_REGISTER: Final = 6
WRITE_COILS: Final = 15
WRITE_REGISTERS: Final = 16
MASK_WRITE: Final = 22
#: Function 5's values: ON is 0xFF00, OFF 0x0000; any other value is illegal.
COIL_ON: Final = 0xFF00
COIL_OFF: Final = 0x0000
MAX_COILS: Final = 1968
MAX_REGISTERS: Final = 123


@dataclass(frozen=True, slots=True)
class Write:
    """One write request to ``unit``, from ``address``.

    ``values`` by function: 5 one coil (0/1); 6 one register; 15 the coils (0/1 each);
    16 the registers; 22 ``(and_mask, or_mask)``. Build it with the functions below,
    which check the limits.
    """

    unit: int
    function: int
    address: int
    values: tuple[int, ...]

    @property
    def count(self) -> int:
        """Registers or coils written (1 for 5, 6 and 22)."""
        return len(self.values) if self.function in (WRITE_COILS, WRITE_REGISTERS) else 1

    def pdu(self) -> bytes:
        function, address, values = self.function, self.address, self.values
        if function == WRITE_COIL:
            return struct.pack(">BHH", function, address, COIL_ON if values[0] else COIL_OFF)
        if function == WRITE_REGISTER:
            return struct.pack(">BHH", function, address, values[0])
        if function == MASK_WRITE:
            return struct.pack(">BHHH", function, address, values[0], values[1])
        if function == WRITE_COILS:
            data = bytearray((len(values) + 7) // 8)
            for i, bit in enumerate(values):
                if bit:
                    data[i // 8] |= 1 << (i % 8)
            return struct.pack(">BHHB", function, address, len(values), len(data)) + data
        head = struct.pack(">BHHB", function, address, len(values), 2 * len(values))
        return head + struct.pack(f">{len(values)}H", *values)

    def echo(self) -> bytes:
        """The body (after the function code) of the one reply that confirms this write."""
        if self.function in (WRITE_COILS, WRITE_REGISTERS):
            return struct.pack(">HH", self.address, self.count)
        return self.pdu()[1:]

    def describe(self) -> str:
        return f"write function {self.function} {self.address}+{self.count} unit {self.unit}"


def _check_span(address: int, count: int, most: int, what: str) -> None:
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"address {address} is not 0-65535")
    if not 1 <= count <= most:
        raise ValueError(f"{count} {what} in one write request (1-{most} allowed)")
    if address + count > 0x10000:
        raise ValueError(f"{what} {address}+{count} run past address 65535")


def _word(value: int) -> int:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} is not 0-65535")
    return value


def write_coil(unit: int, address: int, on: bool) -> Write:
    _check_span(address, 1, 1, "coils")
    return Write(unit, WRITE_COIL, address, (int(on),))


def write_register(unit: int, address: int, value: int) -> Write:
    _check_span(address, 1, 1, "registers")
    return Write(unit, WRITE_REGISTER, address, (_word(value),))


def write_coils(unit: int, address: int, bits: Sequence[bool]) -> Write:
    _check_span(address, len(bits), MAX_COILS, "coils")
    return Write(unit, WRITE_COILS, address, tuple(int(b) for b in bits))


def write_registers(unit: int, address: int, words: Sequence[int]) -> Write:
    _check_span(address, len(words), MAX_REGISTERS, "registers")
    return Write(unit, WRITE_REGISTERS, address, tuple(_word(w) for w in words))


def mask_write(unit: int, address: int, and_mask: int, or_mask: int) -> Write:
    """The register becomes ``(current & and_mask) | (or_mask & ~and_mask)``."""
    _check_span(address, 1, 1, "registers")
    return Write(unit, MASK_WRITE, address, (_word(and_mask), _word(or_mask)))


def bit_masks(bit: int, on: bool) -> tuple[int, int]:
    """(and_mask, or_mask) that set bit ``bit`` to ``on`` and keep the other 15."""
    if not 0 <= bit <= 15:
        raise ValueError(f"bit {bit} is not 0-15")
    return 0xFFFF & ~(1 << bit), (1 << bit) if on else 0


def apply_masks(current: int, and_mask: int, or_mask: int) -> int:
    """What function 22 makes of ``current`` (also the read-modify-write's new value)."""
    return (current & and_mask) | (or_mask & ~and_mask & 0xFFFF)


def check_write(request: Write, frame: Frame) -> ExceptionReply | None:
    """None when ``frame`` confirms ``request``; an :class:`ExceptionReply` when the device
    refused it. Raises :class:`FrameError` for anything else (see the module doc)."""
    refused = check_header(request.unit, request.function, frame, "a write")
    if refused is not None:
        return refused
    expected = request.echo()
    if frame.body != expected:
        raise FrameError(
            f"the echo {frame.body.hex(' ').upper() or '(empty)'} differs from "
            f"{expected.hex(' ').upper()}, what was written"
        )
    return None
