"""One Modbus connection (a TCP gateway or an RS-485 bus), shared by every unit behind it.

Modbus masters may have one request outstanding per connection, and many gateways
and RTU slaves need a pause between frames. A :class:`ModbusChannel` owns the
pymodbus client, serialises requests with a lock, keeps the configured pause, and
decides when the connection itself is dead.

Why we decide, not pymodbus: pymodbus closes a TCP connection after three unanswered
requests in a row. Behind a gateway, one dead unit would then cut off its healthy
neighbours. The channel closes the connection only when *no* unit on it has answered
for ``dead_after`` requests in a row.

Late answers: a request that timed out may still be answered. Over TCP the
transaction id tells that answer apart; RTU frames carry none, so a late answer would
complete the *next* request and its registers would be taken for another block's. After
a timeout on a serial line the channel therefore keeps the bus quiet for one more
timeout (holding the lock): a late frame then arrives while no request waits and is
discarded. A request cancelled from outside drops the connection for the same reason.
Every response is also checked against its request (count of registers or bits).
A shared channel uses the longest timeout of its devices.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from edge_agent.config import ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.errors import DriverConnectError, DriverReadError
from edge_agent.model import (
    REASON_DISCONNECTED,
    REASON_INVALID_RESPONSE,
    REASON_TIMEOUT,
    exception_reason,
)

# pymodbus logs every timeout and reconnect at ERROR/WARNING; the scheduler already
# logs each change of device state once, so keep pymodbus to what it cannot tell us.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

#: Requests with no answer from any unit, in a row, before the connection is dropped.
DEAD_AFTER = 5


def _still_connected(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> bool:
    """Re-read the connection state after an await (a plain attribute check narrows for mypy)."""
    return client.connected


class ModbusExceptionResponse(DriverReadError):
    """The device answered with a Modbus exception code (e.g. 2, ILLEGAL DATA ADDRESS)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        super().__init__(exception_reason(code), detail)


def connection_key(connection: ModbusTcp | ModbusRtu) -> str:
    """Devices whose connections have the same key share one channel."""
    if isinstance(connection, ModbusTcp):
        return f"tcp://{connection.host.lower()}:{connection.port}"
    # /dev/serial/by-id/... and /dev/ttyUSB0 are one bus: compare the real device.
    return f"rtu://{os.path.realpath(connection.serial_port)}"


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
        self.serial = isinstance(connection, ModbusRtu)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._lock = asyncio.Lock()
        self._last_frame_end = 0.0
        self._unanswered = 0
        self.requests = 0
        #: Drivers using this channel; the last one to close it closes the connection.
        self.users = 0
        #: Poll groups of all those drivers: how many reads may queue for the lock at once.
        self.pollers = 0

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
            except BaseException:
                client.close()  # cancelled while connecting: leave no socket behind
                raise
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
            except (ConnectionException, OSError) as exc:
                self._drop_client()
                raise DriverReadError(REASON_DISCONNECTED, str(exc)) from exc
            except ModbusIOException as exc:
                if not _still_connected(client):  # the peer closed while we waited
                    self._drop_client()
                    raise DriverReadError(REASON_DISCONNECTED, str(exc)) from exc
                self._note_unanswered()
                await self._let_late_answers_pass()
                raise DriverReadError(REASON_TIMEOUT, str(exc)) from exc
            except ModbusException as exc:
                # A frame that does not belong to this request (another unit's, a stray).
                await self._let_late_answers_pass()
                raise DriverReadError(REASON_INVALID_RESPONSE, str(exc)) from exc
            except asyncio.CancelledError:
                # Cut off mid-request: its answer may still come; never reuse the line.
                self._drop_client()
                raise
            finally:
                self._last_frame_end = time.monotonic()
            self._unanswered = 0
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                raise ModbusExceptionResponse(code, f"{table} {address}+{count} unit {unit_id}")
            if table in ("coil", "discrete_input"):
                bits: Sequence[bool] = response.bits
                if not count <= len(bits) < count + 8:
                    raise DriverReadError(
                        REASON_INVALID_RESPONSE, f"{len(bits)} bits for a read of {count}"
                    )
                return bits
            registers: Sequence[int] = response.registers
            if len(registers) != count:
                raise DriverReadError(
                    REASON_INVALID_RESPONSE, f"{len(registers)} registers for a read of {count}"
                )
            return registers

    async def _let_late_answers_pass(self) -> None:
        """On a serial line, wait (holding the lock) for a late answer to arrive and be dropped."""
        if self.serial:
            await asyncio.sleep(self.timeout)

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
