"""Serve a profile's units over Modbus TCP (127.0.0.1 only) and Modbus RTU.

Built on pymodbus's declarative simulator (``SimDevice`` / ``SimData``), not the
deprecated ``ModbusServerContext``, so nothing logs deprecation warnings:

* each unit is a ``SimDevice`` with four separate tables (coils, discrete
  inputs, holding, input registers); each register point is its own ``SimData``
  block, so pymodbus itself answers ILLEGAL DATA ADDRESS in the gaps;
* the device's ``action`` hook runs on every access: it advances the simulation
  to the clock's "now" and rewrites the requested registers in place from the
  model, so every read sees live values;
* a ``trace_pdu`` guard checks each incoming request against the register map
  before pymodbus does. It is needed because pymodbus fills gaps between bits
  with readable zeros (no holes in coil / discrete-input tables), answers every
  unknown unit id with the first device, and has no way to make one unit
  silent. Refused requests are swapped for a PDU whose ``datastore_update``
  returns the exception (or raises ``NoSuchIdException``, which the server,
  built with ``ignore_missing_devices=True``, turns into silence);
* writes (functions 5, 6, 15, 16, 22) to a unit with writable points are swapped for
  a PDU that hands them to :func:`simulators.modbus_writes.handle_write` (its module
  doc says what a unit accepts and which exception it answers otherwise); a unit
  without writable points answers every write with exception 1, as a read-only
  device does.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import logging
import termios
from collections.abc import Callable, Mapping

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from simulators.equipment import Model, Simulation
from simulators.modbus_writes import WRITE_CODES, handle_write
from simulators.ports import bind_error, listen_failure
from simulators.profile import Point, RtuServer, TcpServer, Unit
from simulators.registers import BIT_TABLES, Table, encode, encode_bit
from simulators.schema import Value

LOOPBACK = "127.0.0.1"
"""The only address the simulator listens on: it is a test and demo tool."""

# pymodbus logs every client that goes away and every request it refuses at WARNING or
# ERROR; for test equipment that is noise in `edge-agent demo` (an explicit level from
# the logging config still wins).
_PYMODBUS_LOG = logging.getLogger("pymodbus")
if _PYMODBUS_LOG.level == logging.NOTSET:
    _PYMODBUS_LOG.setLevel(logging.CRITICAL)

_READ_TABLES: Mapping[int, Table] = {1: "coil", 2: "discrete_input", 3: "holding", 4: "input"}
_MAX_COUNT: Mapping[Table, int] = {
    "coil": 2000,
    "discrete_input": 2000,
    "holding": 125,
    "input": 125,
}
#: Order of the four tables in a ``SimDevice`` tuple.
_TABLES: tuple[Table, Table, Table, Table] = ("coil", "discrete_input", "holding", "input")


class ServeError(RuntimeError):
    """A server could not start (port in use, serial device missing)."""


class UnitFault(enum.Enum):
    """Fault injection for one unit, e.g. to test the agent's timeouts and backoff."""

    NO_RESPONSE = "no_response"
    """The unit stays silent, as a dead RS-485 device does: clients time out."""
    DEVICE_BUSY = "device_busy"
    """Exception code 6."""
    DEVICE_FAILURE = "device_failure"
    """Exception code 4."""
    GATEWAY_NO_RESPONSE = "gateway_no_response"
    """Exception code 11, what a TCP gateway reports for a dead serial device."""


class _Silence(enum.Enum):
    SILENT = "silent"


_FAULT_ANSWER: Mapping[UnitFault, ExcCodes | _Silence] = {
    UnitFault.NO_RESPONSE: _Silence.SILENT,
    UnitFault.DEVICE_BUSY: ExcCodes.DEVICE_BUSY,
    UnitFault.DEVICE_FAILURE: ExcCodes.DEVICE_FAILURE,
    UnitFault.GATEWAY_NO_RESPONSE: ExcCodes.GATEWAY_NO_RESPONSE,
}

Verdict = ExcCodes | _Silence | None


class UnitEndpoint:
    """One unit's register map bound to its model."""

    def __init__(self, unit: Unit, simulation: Simulation, clock: Callable[[], float]) -> None:
        self.unit = unit
        self.model: Model = simulation.model(unit.name)
        self.fault: UnitFault | None = None
        #: Read requests answered with data (refused or faulted ones are not counted):
        #: what end-to-end tests compare the delivered sample count with.
        self.reads_served = 0
        #: Write requests applied to the model, and refused with an exception.
        self.writes_applied = 0
        self.writes_refused = 0
        self._simulation = simulation
        self._clock = clock
        self._points: dict[Table, tuple[Point, ...]] = {
            table: tuple(sorted((p for p in unit.points if p.table == table), key=_address))
            for table in _TABLES
        }
        self._valid: dict[Table, frozenset[int]] = {
            table: frozenset(a for p in points for a in p.addresses())
            for table, points in self._points.items()
        }
        #: First address of each point, per table (sorted): finds a request's points.
        self._starts: dict[Table, list[int]] = {
            table: [p.address for p in points] for table, points in self._points.items()
        }
        self._writable: dict[Table, tuple[Point, ...]] = {
            table: tuple(p for p in points if p.writable) for table, points in self._points.items()
        }
        self.takes_writes = any(self._writable.values())

    def writable_points(self, table: Table) -> tuple[Point, ...]:
        """The writable points of ``table`` (holding or coil), by address."""
        return self._writable[table]

    def advance(self) -> None:
        """Bring the models to the clock's now (before a write: it happens now)."""
        self._simulation.advance_to(self._clock())

    def served_words(self, point: Point) -> list[int]:
        """What ``point`` serves now (the registers a mask write starts from)."""
        return point_words(point, self.model.read()[point.source])

    def check(self, function_code: int, address: int, count: int) -> Verdict:
        """How the unit answers a request: normally (None), an exception, or silence."""
        if self.fault is not None:
            return _FAULT_ANSWER[self.fault]
        table = _READ_TABLES.get(function_code)
        if table is None:
            # Writes: a unit without writable points implements no write function;
            # the others are vetted by handle_write. Other functions (diagnostics,
            # device identification) are left to pymodbus.
            if function_code in WRITE_CODES and not self.takes_writes:
                return ExcCodes.ILLEGAL_FUNCTION
            return None
        if not 1 <= count <= _MAX_COUNT[table]:
            return ExcCodes.ILLEGAL_VALUE
        valid = self._valid[table]
        if any(a not in valid for a in range(address, address + count)):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def sim_device(self) -> SimDevice:
        """A fresh pymodbus device for this unit (one per server start)."""
        blocks = tuple(self._blocks(table) for table in _TABLES)
        return SimDevice(
            id=self.unit.unit_id,
            simdata=(blocks[0], blocks[1], blocks[2], blocks[3]),
            action=self.refresh,
        )

    def _blocks(self, table: Table) -> list[SimData]:
        points = self._points[table]
        if table in BIT_TABLES:
            # pymodbus needs one block per table; the guard refuses the addresses.
            return [SimData(p.address, values=False, datatype=DataType.BITS) for p in points] or [
                SimData(0, values=False, datatype=DataType.BITS)
            ]
        blocks = [
            SimData(p.address, values=[0] * p.size, datatype=DataType.REGISTERS, readonly=True)
            for p in points
        ]
        return blocks or [SimData(0, datatype=DataType.INVALID)]

    async def refresh(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus action hook: bring the table's registers up to the clock's now.

        ``start_address`` is the table's first register; for bit tables pymodbus
        packs 16 bits per register (bit 0 = lowest address) and ``start_address``
        counts registers, i.e. the first bit address // 16.
        """
        table = _READ_TABLES.get(function_code)
        if table is None or set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # unreachable past the guard; kept as a backstop
        self.reads_served += 1
        self._simulation.advance_to(self._clock())
        values = self.model.read()
        points = self._points[table]
        if table not in BIT_TABLES:
            # Only the points the request touches: a unit with hundreds of points (a
            # PLC, a benchmark plant) then costs per read what the read covers. The
            # point before ``address`` may reach into the request; bits are few, and
            # their addresses are not ``address``'s unit, so a bit table is refreshed whole.
            starts = self._starts[table]
            first = max(bisect.bisect_right(starts, address) - 1, 0)
            points = points[first : bisect.bisect_left(starts, address + count)]
        for point in points:
            words = point_words(point, values[point.source])
            if table in BIT_TABLES:
                word, bit = divmod(point.address, 16)
                index = word - start_address
                if words[0]:
                    registers[index] |= 1 << bit
                else:
                    registers[index] &= ~(1 << bit)
                continue
            index = point.address - start_address
            registers[index : index + point.size] = words
        return None


def point_words(point: Point, value: Value) -> list[int]:
    """What ``point`` serves for the model's ``value``: its registers, or ``[bit]`` for a
    coil or discrete input (the device's own codes applied first)."""
    if point.codes is not None and isinstance(value, int):
        value = point.codes.get(value, value)
    if point.table in BIT_TABLES:
        return [int(encode_bit(value))]
    return encode(
        value,
        point.type,
        byte_order=point.byte_order,
        scale=point.scale,
        offset=point.offset,
        length=point.length,
    )


def _address(point: Point) -> int:
    return point.address


class _Refusal(ModbusPDU):
    """Stands in for a refused request; answers with an exception or not at all."""

    def __init__(self, request: ModbusPDU, answer: ExcCodes | _Silence) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id)
        self.function_code = request.function_code
        self._answer = answer

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        del context
        if isinstance(self._answer, _Silence):
            raise NoSuchIdException(f"unit {device_id} does not answer")
        return ExceptionResponse(self.function_code, self._answer)


class _Write(ModbusPDU):
    """Stands in for a write request to a unit that takes writes (see modbus_writes)."""

    def __init__(self, request: ModbusPDU, endpoint: UnitEndpoint) -> None:
        super().__init__(dev_id=request.dev_id, transaction_id=request.transaction_id)
        self.function_code = request.function_code
        self._request = request
        self._endpoint = endpoint

    async def datastore_update(self, context: ModbusServerContext, device_id: int) -> ModbusPDU:
        del context, device_id
        return await handle_write(self._endpoint, self._request)


class _Guard:
    """``trace_pdu`` hook of a server: vets every request against the register maps."""

    def __init__(self, endpoints: Mapping[int, UnitEndpoint], unknown_unit: ExcCodes | _Silence):
        self._endpoints = endpoints
        self._unknown_unit = unknown_unit

    def __call__(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending:
            return pdu
        endpoint = self._endpoints.get(pdu.dev_id)
        if endpoint is None:
            return _Refusal(pdu, self._unknown_unit)
        verdict = endpoint.check(pdu.function_code, pdu.address, pdu.count)
        if verdict is not None:
            return _Refusal(pdu, verdict)
        return _Write(pdu, endpoint) if pdu.function_code in WRITE_CODES else pdu


class ServerRunner:
    """One profile server; can be stopped and started again on the same address."""

    def __init__(self, spec: TcpServer | RtuServer, endpoints: Mapping[int, UnitEndpoint]):
        self.spec = spec
        self.endpoints = endpoints
        self._port = spec.port if isinstance(spec, TcpServer) else 0
        self._server: ModbusTcpServer | ModbusSerialServer | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """Bound TCP port (after the first start when the profile said 0)."""
        if not isinstance(self.spec, TcpServer):
            raise TypeError(f"server {self.name!r} is RTU; it has a device, not a port")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT`` for TCP, the serial device path for RTU."""
        if isinstance(self.spec, TcpServer):
            return f"{LOOPBACK}:{self._port}"
        return self.spec.device

    def describe(self) -> str:
        units = ", ".join(
            f"{e.unit.unit_id}={e.unit.name} ({e.unit.model.kind})" for e in self.endpoints.values()
        )
        return f"{self.name}: modbus-{self.spec.transport} {self.address} units {units}"

    async def start(self) -> None:
        if self._server is not None:
            return
        devices = [e.sim_device() for e in self.endpoints.values()]
        server: ModbusTcpServer | ModbusSerialServer
        if isinstance(self.spec, TcpServer):
            # A TCP gateway reports a unit id it does not know with exception 11.
            guard = _Guard(self.endpoints, ExcCodes.GATEWAY_NO_RESPONSE)
            server = ModbusTcpServer(
                devices,
                address=(LOOPBACK, self._port),
                ignore_missing_devices=True,
                trace_pdu=guard,
            )
        else:
            # On a serial line only the addressed device may talk: unknown ids get silence.
            guard = _Guard(self.endpoints, _Silence.SILENT)
            server = ModbusSerialServer(
                devices,
                port=self.spec.device,
                baudrate=self.spec.baudrate,
                parity=self.spec.parity,
                stopbits=self.spec.stopbits,
                bytesize=self.spec.bytesize,
                ignore_missing_devices=True,
                trace_pdu=guard,
            )
        try:
            await server.serve_forever(background=True)
        # pymodbus turns OSError into RuntimeError; termios.error is what pyserial
        # raises for settings the device rejects (a pty refuses parity E/O, 7 bits).
        except (RuntimeError, termios.error) as exc:
            where = f"server {self.name!r} cannot listen on {self.address}"
            if isinstance(self.spec, TcpServer):
                why = listen_failure(self._port, bind_error(LOOPBACK, self._port))
                if why:
                    raise ServeError(f"{where}: {why}") from None
            raise ServeError(where) from exc
        listener = server.transport
        if isinstance(listener, asyncio.Server):
            self._port = int(listener.sockets[0].getsockname()[1])
        self._server = server

    async def stop(self) -> None:
        """Close the listening socket (or serial port) and every client connection."""
        server, self._server = self._server, None
        if server is None:
            return
        listener = server.transport
        await server.shutdown()  # type: ignore[no-untyped-call]  # unannotated in pymodbus
        if isinstance(listener, asyncio.Server):
            await listener.wait_closed()
