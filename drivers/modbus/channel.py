"""One Modbus connection (a TCP gateway or an RS-485 bus), shared by every unit behind it.

Modbus masters may have one request outstanding per connection, and many gateways
and RTU slaves need a pause between frames. A :class:`ModbusChannel` owns the
pymodbus client, serialises requests with a lock, keeps the configured pause, and
decides when the connection itself is dead.

Why we decide, not pymodbus: pymodbus closes a TCP connection after three unanswered
requests in a row. Behind a gateway, one dead unit would then cut off its healthy
neighbours. The channel closes the connection only when *no* unit on it has answered
for ``dead_after`` requests in a row.

Why no ``asyncio.timeout`` around a request: cancelling a request leaves its late
answer on the wire, and RTU frames carry no transaction id to tell it apart from the
next answer. The client's own timeout ends the request cleanly; a shared channel uses
the longest timeout of its devices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge_agent.config import ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.errors import DriverConnectError, DriverReadError
from edge_agent.model import REASON_DISCONNECTED, REASON_TIMEOUT, exception_reason

# pymodbus logs every timeout and reconnect at ERROR/WARNING; the scheduler already
# logs each change of device state once, so keep pymodbus to what it cannot tell us.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

#: Requests with no answer from any unit, in a row, before the connection is dropped.
DEAD_AFTER = 5


class ModbusExceptionResponse(DriverReadError):
    """The device answered with a Modbus exception code (e.g. 2, ILLEGAL DATA ADDRESS)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        super().__init__(exception_reason(code), detail)


def connection_key(connection: ModbusTcp | ModbusRtu) -> str:
    """Devices whose connections have the same key share one channel."""
    if isinstance(connection, ModbusTcp):
        return f"tcp://{connection.host}:{connection.port}"
    return f"rtu://{connection.serial_port}"


class ModbusChannel:
    def __init__(
        self,
        connection: ModbusTcp | ModbusRtu,
        *,
        timeout: float,
        inter_frame_delay: float = 0.0,
        dead_after: int = DEAD_AFTER,
    ) -> None:
        self.key = connection_key(connection)
        self.timeout = timeout
        self.inter_frame_delay = inter_frame_delay
        self.dead_after = dead_after
        self._connection = connection
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._last_frame_end = 0.0
        self._unanswered = 0
        self.requests = 0
        #: Drivers using this channel; the last one to close it closes the connection.
        self.users = 0

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        conn = self._connection
        # reconnect_delay=0: no reconnecting behind our back; the scheduler owns backoff.
        # retries=0: one timeout is one timeout; the next poll is the retry.
        client: AsyncModbusTcpClient | AsyncModbusSerialClient
        if isinstance(conn, ModbusTcp):
            client = AsyncModbusTcpClient(
                conn.host, port=conn.port, timeout=self.timeout, retries=0, reconnect_delay=0
            )
        else:
            client = AsyncModbusSerialClient(
                conn.serial_port,
                framer=FramerType.RTU,
                baudrate=conn.baudrate,
                parity=conn.parity,
                stopbits=conn.stopbits,
                bytesize=conn.bytesize,
                timeout=self.timeout,
                retries=0,
                reconnect_delay=0,
            )
        # Disable pymodbus's own "close after 3 unanswered" rule (see module docstring).
        client.set_max_no_responses(1_000_000)
        return client

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            self._drop_client()
            client = self._new_client()
            try:
                ok = await client.connect()
            except (OSError, ModbusException) as exc:
                client.close()
                raise DriverConnectError(REASON_DISCONNECTED, f"{self.key}: {exc}") from exc
            if not ok or not client.connected:
                client.close()
                raise DriverConnectError(REASON_DISCONNECTED, f"{self.key}: connection refused")
            self._client = client
            self._unanswered = 0

    async def read(
        self, table: ModbusTable, address: int, count: int, unit_id: int
    ) -> Sequence[int] | Sequence[bool]:
        """One read request; registers for register tables, bits (padded to 8) for bit tables."""
        async with self._lock:
            client = self._client
            if client is None or not client.connected:
                raise DriverReadError(REASON_DISCONNECTED, self.key)
            await self._pause()
            self.requests += 1
            try:
                response = await self._request(client, table, address, count, unit_id)
            except ModbusIOException as exc:
                self._note_unanswered()
                raise DriverReadError(REASON_TIMEOUT, str(exc)) from exc
            except (ConnectionException, OSError) as exc:
                self._drop_client()
                raise DriverReadError(REASON_DISCONNECTED, str(exc)) from exc
            finally:
                self._last_frame_end = time.monotonic()
            self._unanswered = 0
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                raise ModbusExceptionResponse(code, f"{table} {address}+{count} unit {unit_id}")
            if table in ("coil", "discrete_input"):
                return response.bits
            return response.registers

    @staticmethod
    async def _request(
        client: AsyncModbusTcpClient | AsyncModbusSerialClient,
        table: ModbusTable,
        address: int,
        count: int,
        unit_id: int,
    ) -> ModbusPDU:
        if table == "holding":
            return await client.read_holding_registers(address, count=count, device_id=unit_id)
        if table == "input":
            return await client.read_input_registers(address, count=count, device_id=unit_id)
        if table == "coil":
            return await client.read_coils(address, count=count, device_id=unit_id)
        return await client.read_discrete_inputs(address, count=count, device_id=unit_id)

    async def _pause(self) -> None:
        if self.inter_frame_delay > 0:
            wait = self._last_frame_end + self.inter_frame_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def _note_unanswered(self) -> None:
        self._unanswered += 1
        if self._unanswered >= self.dead_after:
            self._drop_client()

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def close(self) -> None:
        async with self._lock:
            self._drop_client()
