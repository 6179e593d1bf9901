"""Hostile Modbus devices written with raw frames, not with pymodbus.

A *behaviour* decides, for each request a device receives, which frames go back and
when. The honest answer carries known values (:func:`truth_register`,
:func:`truth_bit`), so a value published under the wrong tag, or a frame the agent
should have refused, shows up as a good sample that differs from the truth.

* :class:`HostileTcpServer`: asyncio sockets on 127.0.0.1; answers are scheduled on
  their own (a late answer does not hold back the next one), or, with ``in_order``,
  one after the other, as a gateway with a serial line behind it sends them.
* :class:`HostileRtuBus`: one thread on the server end of a socat pty pair, answering
  for every unit on the bus strictly in order, as a single slave's firmware does.

Writes (fc 5, 6, 15, 16, 22) are answered honestly with their echo (the values are not
kept: reads still answer the truth); a behaviour may swallow them or garble the echo.
The TCP server counts ``overlaps``: requests that arrived while an earlier one was still
waiting for its answer (a master must send one request at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import serial

LOOPBACK = "127.0.0.1"


def truth_register(unit: int, address: int) -> int:
    return (unit * 1000 + address) & 0xFFFF


def truth_bit(unit: int, address: int) -> bool:
    return (unit + address) % 3 == 1


def crc16(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


@dataclass(frozen=True)
class Asked:
    """One request as the device received it (``seq``: its number on this server)."""

    seq: int
    tid: int  # 0 on RTU
    unit: int
    function: int
    address: int
    count: int  # for fc 8: the echoed data word; fc 5/6: the value; fc 22: the AND mask
    #: The rest of the PDU (fc 15/16: byte count and values; fc 22: the OR mask).
    data: bytes = b""

    def pdu(self) -> bytes:
        """The request's PDU as it was received."""
        return struct.pack(">BHH", self.function, self.address, self.count) + self.data


@dataclass(frozen=True)
class Reply:
    """A frame to send ``delay`` seconds after the request.

    ``pdu`` is framed for the transport (MBAP with ``tid``/``unit``, or unit and CRC);
    ``raw`` is sent exactly as given instead.
    """

    pdu: bytes = b""
    delay: float = 0.0
    tid: int | None = None
    unit: int | None = None
    raw: bytes | None = None


Behaviour = Callable[[Asked], Sequence[Reply]]


def registers_pdu(function: int, values: Sequence[int]) -> bytes:
    return struct.pack(">BB", function, 2 * len(values)) + b"".join(
        struct.pack(">H", v & 0xFFFF) for v in values
    )


def bits_pdu(function: int, bits: Sequence[bool]) -> bytes:
    data = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            data[i // 8] |= 1 << (i % 8)
    return struct.pack(">BB", function, len(data)) + bytes(data)


def exception_pdu(function: int, code: int) -> bytes:
    return struct.pack(">BB", function | 0x80, code)


def honest_pdu(asked: Asked) -> bytes:
    """What a correct device answers (fc 8 sub-function 0: the echo)."""
    if asked.function in (3, 4):
        return registers_pdu(
            asked.function,
            [truth_register(asked.unit, asked.address + i) for i in range(asked.count)],
        )
    if asked.function in (1, 2):
        return bits_pdu(
            asked.function, [truth_bit(asked.unit, asked.address + i) for i in range(asked.count)]
        )
    if asked.function == 8 and asked.address == 0:
        return struct.pack(">BHH", 8, 0, asked.count)
    if asked.function in (5, 6, 22):
        return asked.pdu()
    if asked.function in (15, 16):
        return struct.pack(">BHH", asked.function, asked.address, asked.count)
    return exception_pdu(asked.function, 1)


def honest(asked: Asked) -> list[Reply]:
    return [Reply(honest_pdu(asked))]


def tcp_frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    body = bytes([unit]) + pdu
    return body + crc16(body)


@dataclass
class HostileTcpServer:
    """A Modbus TCP gateway whose units follow ``behaviours[unit]`` (honest if absent)."""

    behaviours: dict[int, Behaviour]
    port: int = 0
    in_order: bool = False
    asked: list[Asked] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # answers on their way
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    #: Requests that arrived while an earlier one still waited for its answer.
    overlaps: int = 0
    _waiting: int = 0

    async def __aenter__(self) -> HostileTcpServer:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        # Closing a connection ends its handler (never cancel it: asyncio logs that).
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        loop = asyncio.get_running_loop()
        ready = 0.0  # in order: when the previous answer goes out
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _, length, unit = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                function, address, count = struct.unpack(">BHH", pdu[:5])
                asked = Asked(len(self.asked), tid, unit, function, address, count, pdu[5:])
                self.asked.append(asked)
                if self._waiting:
                    self.overlaps += 1
                replies = list(self.behaviours.get(unit, honest)(asked))
                if replies:
                    self._waiting += 1
                for n, reply in enumerate(replies):
                    frame = reply.raw
                    if frame is None:
                        tid_out = tid if reply.tid is None else reply.tid
                        unit_out = unit if reply.unit is None else reply.unit
                        frame = tcp_frame(tid_out, unit_out, reply.pdu)
                    delay = reply.delay
                    if self.in_order:
                        ready = max(ready + 0.001, loop.time() + delay)  # strictly after
                        delay = ready - loop.time()
                    last = n == len(replies) - 1
                    send = asyncio.create_task(self._send(writer, frame, delay, last))
                    self._tasks.add(send)
                    send.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            self._handlers.discard(task)

    async def _send(
        self, writer: asyncio.StreamWriter, frame: bytes, delay: float, last: bool
    ) -> None:
        if delay:
            await asyncio.sleep(delay)
        if not writer.is_closing():
            writer.write(frame)
        if last:
            self._waiting -= 1


class HostileRtuBus:
    """Units on one RS-485 bus (the server end of a pty): each answers strictly in the
    order it was asked, as a slave's firmware does, independently of the others."""

    def __init__(self, path: Path, behaviours: dict[int, Behaviour]) -> None:
        self.path = path
        self.behaviours = behaviours
        self.asked: list[Asked] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hostile-rtu-bus")

    def __enter__(self) -> HostileRtuBus:
        self._port = serial.Serial(str(self.path), 19200, timeout=0.005)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._port.close()

    def _run(self) -> None:
        pending = b""
        outbox: list[tuple[float, int, bytes]] = []  # (when, order, frame), a heap
        ready: dict[int, float] = {}  # per unit: when its previous answer goes out
        order = 0
        while not self._stop.is_set():
            with contextlib.suppress(serial.SerialException):
                pending += self._port.read(64)
            # Reads (fc 1-4), the echo (fc 8) and single writes (fc 5, 6) are 8 bytes
            # long; a mask write (22) 10; multiple writes (15, 16) 9 + their byte count.
            while len(pending) >= 8:
                size = _request_size(pending)
                if size is None or len(pending) < size:
                    break
                frame, pending = pending[:size], pending[size:]
                if crc16(frame[:-2]) != frame[-2:]:
                    pending = b""  # out of step: drop what we have, as a slave would
                    break
                unit, function, address, count = struct.unpack(">BBHH", frame[:6])
                data = frame[6:-2]
                asked = Asked(len(self.asked), 0, unit, function, address, count, data)
                self.asked.append(asked)
                for reply in self.behaviours.get(unit, honest)(asked):
                    when = max(ready.get(unit, 0.0) + 0.001, time.monotonic() + reply.delay)
                    ready[unit] = when
                    out = reply.raw
                    if out is None:
                        out = rtu_frame(unit if reply.unit is None else reply.unit, reply.pdu)
                    order += 1
                    heapq.heappush(outbox, (when, order, out))
            while outbox and outbox[0][0] <= time.monotonic():
                self._port.write(heapq.heappop(outbox)[2])


def _request_size(pending: bytes) -> int | None:
    """Length of the RTU request at the start of ``pending`` (None: not known yet)."""
    function = pending[1]
    if function == 22:
        return 10
    if function in (15, 16):
        return 9 + pending[6] if len(pending) >= 7 else None
    return 8
