"""What a Modbus request came to, when it is not a value: the errors the channel raises."""

from __future__ import annotations

from drivers.modbus.frames import EXCEPTION_MEANINGS
from edge_agent.errors import DriverReadError
from edge_agent.model import exception_reason


class ModbusExceptionResponse(DriverReadError):
    """The device answered with a Modbus exception code (e.g. 2, ILLEGAL DATA ADDRESS)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        super().__init__(exception_reason(code), detail)


class ReadBeforeWriteRefused(ModbusExceptionResponse):
    """The read of a read-modify-write was answered with an exception: nothing was
    written, whatever the code (4 or 11 included, which after a write leave it unknown)."""


class WriteUnconfirmed(DriverReadError):
    """A write went out and no valid answer came (timeout, invalid or mismatched reply,
    connection lost): the device may or may not have taken it. Never retried."""


def exception_meaning(code: int) -> str:
    return EXCEPTION_MEANINGS.get(code, "undefined")
