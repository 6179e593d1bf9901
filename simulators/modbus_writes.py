"""Writes to a simulated Modbus unit: functions 5, 6, 15, 16 and 22, vetted as a device does.

The guard of :mod:`simulators.modbus_server` hands every write request of a unit that
has writable points to :func:`handle_write`, which answers it without pymodbus's
datastore (whose rules, such as bits between points being writable, are not a
device's). What the unit answers:

* a unit with no writable point implements no write function: exception 1 (decided
  in the guard, as before writes existed); function 23 (read/write multiple) is not
  implemented by any unit: exception 1;
* a count outside the function's limits (FC15 1-1968 bits, FC16 1-123 registers):
  exception 3;
* any address of the request that is not part of a writable point, or a writable
  point the request covers only in part (one register of a float32, a mask write on
  a 32-bit value): exception 2, and nothing is written. Real devices differ here
  (some store the half, some answer 3 or 4); refusing is the only answer that never
  lets a half-written value act, so the simulator refuses;
* a value the point or the model does not take (outside the point's ``min`` /
  ``max``, a mode that is not 0 or 1, a NaN): exception 3, and nothing is written;
* otherwise every point is written at once (all or none) and the request is echoed,
  as the standard prescribes (FC5/6/22 echo the request, FC15/16 address and count).

The registers are decoded with :func:`simulators.registers.decode`, the inverse of the
encoder that serves them, written without drivers/ so a shared mistake cannot hide.
The model follows from the next step (:meth:`simulators.machine.Machine.write`); the
registers read back show the new setting at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    WriteMultipleCoilsRequest,
    WriteMultipleCoilsResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.register_message import (
    MaskWriteRegisterRequest,
    MaskWriteRegisterResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from simulators.machine import Machine, SettingError
from simulators.registers import Table, decode
from simulators.schema import Value

if TYPE_CHECKING:
    from simulators.modbus_server import UnitEndpoint
    from simulators.profile import Point

#: Function codes that write (23 is refused by every unit: not implemented).
WRITE_CODES = frozenset({5, 6, 15, 16, 22, 23})
_MAX_COILS = 0x7B0  # the standard's limits per request
_MAX_REGISTERS = 0x7B


class _Refused(Exception):
    def __init__(self, code: ExcCodes) -> None:
        super().__init__(code.name)
        self.code = code


async def handle_write(endpoint: UnitEndpoint, pdu: ModbusPDU) -> ModbusPDU:
    """Apply one write request to the unit's model; the response (or exception) PDU."""
    try:
        return _apply(endpoint, pdu)
    except _Refused as refused:
        endpoint.writes_refused += 1
        return ExceptionResponse(pdu.function_code, refused.code)


def _apply(endpoint: UnitEndpoint, pdu: ModbusPDU) -> ModbusPDU:
    table, words = _request_words(pdu)
    address, count = pdu.address, len(words)
    points = _covered(endpoint, table, address, count)
    endpoint.advance()
    model = endpoint.model
    if not isinstance(model, Machine):  # the profile allows writable points on machines only
        raise _Refused(ExcCodes.ILLEGAL_ADDRESS)
    if isinstance(pdu, MaskWriteRegisterRequest):
        (point,) = points
        current = endpoint.served_words(point)[0]
        words = [(current & pdu.and_mask) | (pdu.or_mask & ~pdu.and_mask & 0xFFFF)]
    accepted: list[tuple[str, Value]] = []
    for point in points:
        start = point.address - address
        value = _model_value(point, words[start : start + point.size])
        try:
            accepted.append((point.source, model.check(point.source, value)))
        except SettingError as exc:
            raise _Refused(ExcCodes.ILLEGAL_VALUE) from exc
    for quantity, value in accepted:
        model.write(quantity, value)
    endpoint.writes_applied += 1
    return _echo(pdu, words)


def _request_words(pdu: ModbusPDU) -> tuple[Table, list[int]]:
    """The table a write request addresses and the words (or bits, as 0/1) it carries,
    after the checks of its own framing a device makes (exception 3 when they fail)."""
    if isinstance(pdu, WriteSingleCoilRequest):
        return "coil", [int(bool(pdu.bits[0]))]
    if isinstance(pdu, WriteSingleRegisterRequest | MaskWriteRegisterRequest):
        return "holding", [0] if isinstance(pdu, MaskWriteRegisterRequest) else [*pdu.registers]
    if isinstance(pdu, WriteMultipleCoilsRequest):
        whole = pdu.byte_count in (None, (pdu.count + 7) // 8) and (
            pdu.byte_count is None or pdu.data_byte_count == pdu.byte_count
        )
        if not whole or not 1 <= pdu.count <= _MAX_COILS or len(pdu.bits) != pdu.count:
            raise _Refused(ExcCodes.ILLEGAL_VALUE)
        return "coil", [int(bool(b)) for b in pdu.bits]
    if isinstance(pdu, WriteMultipleRegistersRequest):
        if not 1 <= pdu.count <= _MAX_REGISTERS or len(pdu.registers) != pdu.count:
            raise _Refused(ExcCodes.ILLEGAL_VALUE)
        if pdu.byte_count is not None and pdu.byte_count != 2 * pdu.count:
            raise _Refused(ExcCodes.ILLEGAL_VALUE)
        return "holding", [*pdu.registers]
    raise _Refused(ExcCodes.ILLEGAL_FUNCTION)  # 23 (read/write multiple): not implemented


def _covered(endpoint: UnitEndpoint, table: Table, address: int, count: int) -> list[Point]:
    """The writable points ``address .. address + count - 1`` covers, each wholly."""
    points = [p for p in endpoint.writable_points(table) if _overlaps(p, address, count)]
    covered = sum(p.size for p in points)
    whole = all(address <= p.address and p.address + p.size <= address + count for p in points)
    if covered != count or not whole:
        raise _Refused(ExcCodes.ILLEGAL_ADDRESS)
    return points


def _overlaps(point: Point, address: int, count: int) -> bool:
    return point.address < address + count and address < point.address + point.size


def _model_value(point: Point, words: Sequence[int]) -> Value:
    """The model value ``words`` mean for ``point`` (the inverse of what it serves)."""
    if point.table == "coil":
        raw: Value = int(words[0])
    else:
        try:
            raw = decode(
                list(words),
                point.type,
                byte_order=point.byte_order,
                scale=point.scale,
                offset=point.offset,
                length=point.length,
            )
        except ValueError as exc:
            raise _Refused(ExcCodes.ILLEGAL_VALUE) from exc
    if point.codes is not None and isinstance(raw, int):
        inverse = {served: value for value, served in point.codes.items()}
        raw = inverse.get(raw, raw)
    if isinstance(raw, str) or not point.takes(float(raw)):
        raise _Refused(ExcCodes.ILLEGAL_VALUE)
    return raw


def _echo(pdu: ModbusPDU, words: list[int]) -> ModbusPDU:
    dev, tid, address = pdu.dev_id, pdu.transaction_id, pdu.address
    if isinstance(pdu, WriteSingleCoilRequest):
        return WriteSingleCoilResponse(
            address=address, bits=[bool(words[0])], dev_id=dev, transaction_id=tid
        )
    if isinstance(pdu, WriteSingleRegisterRequest):
        return WriteSingleRegisterResponse(
            address=address, registers=words, dev_id=dev, transaction_id=tid
        )
    if isinstance(pdu, WriteMultipleCoilsRequest):
        return WriteMultipleCoilsResponse(
            address=address, count=pdu.count, dev_id=dev, transaction_id=tid
        )
    if isinstance(pdu, WriteMultipleRegistersRequest):
        return WriteMultipleRegistersResponse(
            address=address, count=pdu.count, dev_id=dev, transaction_id=tid
        )
    assert isinstance(pdu, MaskWriteRegisterRequest)
    return MaskWriteRegisterResponse(
        address=address,
        and_mask=pdu.and_mask,
        or_mask=pdu.or_mask,
        dev_id=dev,
        transaction_id=tid,
    )
