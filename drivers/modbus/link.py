"""Byte streams to Modbus devices: a TCP connection or a serial port, on the event loop.

A :class:`Link` only moves bytes: what arrived waits in :attr:`Link.received` until the
channel takes whole frames off it (:mod:`drivers.modbus.frames`). Nothing here parses, so
nothing here can raise inside ``data_received`` whatever a device sends.

Opening fails with :class:`~edge_agent.errors.DriverConnectError` and a message that
says what happened: connection refused, host not found, the serial port does not exist,
is in use, or refused a setting (a pty keeps no parity: asking for ``E`` is refused,
not silently ignored).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import termios
import time

import serial

from edge_agent.config import ModbusRtu, ModbusTcp
from edge_agent.errors import DriverConnectError
from edge_agent.model import REASON_DISCONNECTED

#: Bytes a link holds unread (no Modbus frame is larger): past it, see _overflow().
MAX_UNREAD = 4096


class Link:
    """A byte stream: :meth:`send`, :attr:`received`, :meth:`wait` for more, :meth:`close`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.received = bytearray()
        #: time.monotonic() of the last bytes received (the line's last sign of life).
        self.last_received = 0.0
        #: Why the link closed ("" while open).
        self.closed_because = ""
        self._arrived = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return not self.closed_because

    async def wait(self, deadline: float) -> bool:
        """Wait for more bytes (or the end of the link) until ``deadline`` (monotonic).
        False when the deadline passed first."""
        self._arrived.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            async with asyncio.timeout(remaining):
                await self._arrived.wait()
        except TimeoutError:
            return False
        return True

    def discard(self) -> int:
        """Drop everything received so far; returns how many bytes that was."""
        count = len(self.received)
        self.received.clear()
        return count

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed("closed by the agent")

    # ------------------------------------------------------------------ for subclasses

    def _feed(self, data: bytes) -> None:
        self.last_received = time.monotonic()
        if len(self.received) + len(data) > MAX_UNREAD:
            self._overflow()
            return
        self.received += data
        self._arrived.set()

    def _overflow(self) -> None:
        """A TCP stream cut anywhere is out of step: close it."""
        self._closed(f"more than {MAX_UNREAD} bytes nobody asked for")

    def _closed(self, because: str) -> None:
        if not self.closed_because:
            self.closed_because = because
        self._arrived.set()


class TcpLink(Link, asyncio.Protocol):
    """A TCP connection; the link is its own asyncio protocol (it only stores bytes)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._transport: asyncio.Transport | None = None

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._closed("the device closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(f"connection lost ({exc})" if exc else "connection closed")

    @classmethod
    async def open(cls, connection: ModbusTcp, connect_within: float) -> TcpLink:
        link = cls(f"tcp://{connection.host}:{connection.port}")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_within):
                transport, _ = await loop.create_connection(
                    lambda: link, connection.host, connection.port
                )
        except TimeoutError:
            raise _connect_error(link, f"no answer to connect within {connect_within:g}s") from None
        except socket.gaierror as exc:
            raise _connect_error(link, f"host {connection.host!r} not found ({exc})") from None
        except ConnectionRefusedError:
            raise _connect_error(link, "connection refused") from None
        except OSError as exc:
            raise _connect_error(link, exc.strerror or str(exc)) from None
        link._transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return link

    def send(self, data: bytes) -> None:
        if self._transport is not None and self.is_open:
            self._transport.write(data)

    def close(self) -> None:
        super().close()
        if self._transport is not None:
            self._transport.abort()  # no lingering: a late answer must not reach us
            self._transport = None


_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


class SerialLink(Link):
    """A serial port read with ``loop.add_reader`` (no thread), written without blocking."""

    def __init__(self, name: str, port: serial.Serial) -> None:
        super().__init__(name)
        self._port = port
        self._fd = port.fileno()
        self._unsent = b""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    @classmethod
    async def open(cls, connection: ModbusRtu) -> SerialLink:
        name = connection.serial_port
        port = serial.Serial()
        port.port = name
        port.baudrate = connection.baudrate
        port.bytesize = connection.bytesize
        port.parity = _PARITY[connection.parity]
        port.stopbits = connection.stopbits
        port.timeout = 0
        port.write_timeout = 0
        port.exclusive = True
        try:
            port.open()
        except serial.SerialException as exc:
            raise _serial_error(connection, exc) from None
        except (termios.error, OSError, ValueError) as exc:
            raise _connect_error_named(
                name, f"the port refused the settings {_settings(connection)} ({exc})"
            ) from None
        refused = _refused_settings(port, connection)
        if refused:
            port.close()
            raise _connect_error_named(
                name, f"the port does not keep {refused} (it is not a real UART, e.g. a pty?)"
            )
        return cls(name, port)

    def _overflow(self) -> None:
        """Chatter on an idle bus: drop it (every request waits for a quiet line anyway)."""
        self.received.clear()

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 1024)
        except BlockingIOError:
            return
        except OSError as exc:
            self._gone(f"read failed: {exc.strerror or exc}")
            return
        if not data:
            self._gone("the port reports end of file (unplugged?)")
            return
        self._feed(data)

    def send(self, data: bytes) -> None:
        if not self.is_open:
            return
        self._unsent += data
        self._writable()

    def _writable(self) -> None:
        try:
            written = os.write(self._fd, self._unsent)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._gone(f"write failed: {exc.strerror or exc}")
            return
        self._unsent = self._unsent[written:]
        if self._unsent:
            self._loop.add_writer(self._fd, self._writable)
        else:
            self._loop.remove_writer(self._fd)

    def _gone(self, because: str) -> None:
        self._closed(because)
        self._release()

    def close(self) -> None:
        super().close()
        self._release()

    def _release(self) -> None:
        if self._port.is_open:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._port.close()


def _settings(connection: ModbusRtu) -> str:
    return (
        f"{connection.baudrate} baud {connection.bytesize}{connection.parity}{connection.stopbits}"
    )


def _refused_settings(port: serial.Serial, connection: ModbusRtu) -> str:
    """What the port silently dropped: Linux ptys accept parity and 7 data bits, then
    keep 8N (pyserial's next reconfiguration then fails with EINVAL)."""
    cflag = termios.tcgetattr(port.fileno())[2]
    refused = []
    parity = "N"
    if cflag & termios.PARENB:
        parity = "O" if cflag & termios.PARODD else "E"
    if parity != connection.parity:
        refused.append(f"parity {connection.parity}")
    size = {7: termios.CS7, 8: termios.CS8}[connection.bytesize]
    if cflag & termios.CSIZE != size:
        refused.append(f"{connection.bytesize} data bits")
    if bool(cflag & termios.CSTOPB) != (connection.stopbits == 2):
        refused.append(f"{connection.stopbits} stop bits")
    return " and ".join(refused)


def _serial_error(connection: ModbusRtu, exc: serial.SerialException) -> DriverConnectError:
    name = connection.serial_port
    code = exc.errno
    if code == errno.ENOENT:
        return _connect_error_named(name, "the serial port does not exist")
    if code in (errno.EACCES, errno.EPERM):
        return _connect_error_named(name, "permission denied (is the agent in group dialout?)")
    if code in (errno.EAGAIN, errno.EBUSY):
        return _connect_error_named(name, "the serial port is in use by another program")
    if code in (errno.EINVAL, errno.ENOTTY):
        return _connect_error_named(
            name, f"the port refused the settings {_settings(connection)} ({exc})"
        )
    return _connect_error_named(name, str(exc))


def _connect_error(link: Link, message: str) -> DriverConnectError:
    return _connect_error_named(link.name, message)


def _connect_error_named(name: str, message: str) -> DriverConnectError:
    return DriverConnectError(REASON_DISCONNECTED, f"{name}: {message}")
