"""One Modbus connection (a TCP gateway or an RS-485 bus), shared by every unit behind it.

Modbus masters may have one request outstanding per connection, and many gateways
and RTU slaves need a pause between frames. A :class:`ModbusChannel` owns the link
(:mod:`drivers.modbus.link`), serialises requests with a lock, keeps the configured
pause, and decides when the connection itself is dead: only when *no* unit on it has
answered for ``dead_after`` requests in a row (one dead unit behind a gateway must not
cut off its healthy neighbours).

Every reply is checked against its request before anything is decoded
(:mod:`drivers.modbus.frames`): framing, unit, function code, byte count, data length,
exception code. What does not fit is ``invalid response``, never a value.

Late answers, the other way a value lands on the wrong tags:

TCP
    Each request carries its own transaction id; a request that timed out (or was
    cancelled) keeps its id reserved, and its late answer is recognised and dropped.
    A reply with transaction id 0 (sloppy gateways) is taken as the answer only while
    no earlier request is unanswered; otherwise whose answer it is cannot be told, and
    the connection is dropped instead (a late answer cannot follow us to a new one).
    With such a peer the connection is also dropped right after a timeout.

RTU
    Frames carry no transaction id, and a slave answers in the order it was asked. A
    unit that missed an answer (timeout, invalid frame, cancelled request) is *in
    doubt*: before it is asked anything else, the channel sends it a diagnostics echo
    (function 8, "return query data", a fresh data word each time). Until the echo
    comes back every frame is dropped: the slave's late answers come first. The echo
    (or an exception reply to it) proves the slave is in step again, whatever the delay,
    but only the answer to a probe sent *after* the unit's last read does: an earlier
    probe still unanswered (it timed out, and the slave was proven in step by the one
    before it) is answered before that read, so its echo (known by its data word; an
    exception reply answers the oldest probe unanswered) is dropped. A unit that never
    answered a diagnostics request in its life is let out of doubt after
    ``RTU_LATE_LIMIT`` timeouts without a sign of it (it may not implement function 8;
    the only assumption left is that it does not answer later than that). Before
    every request the line must be quiet and whatever arrived unasked is dropped.

Writes
    go through the same lock and the same checks (:mod:`drivers.modbus.frames_write`:
    the echo must be exactly the write's). A write is never retried: once its frame
    went out, a timeout, an invalid or mismatched reply or a lost connection is
    :class:`WriteUnconfirmed` (the device may or may not have taken it); a write that
    times out leaves its RTU unit in doubt like a read, and its TCP transaction id
    reserved. Before the frame goes out, a failure is a plain DriverError: nothing was
    sent. :meth:`ModbusChannel.read_modify_write` reads a register and writes it back
    changed while holding the lock: no other request of ours comes in between.

A shared channel uses the longest timeout of its devices.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from drivers.modbus.frames import (
    READ_FUNCTIONS,
    Echo,
    ExceptionReply,
    Frame,
    FrameError,
    Read,
    answers_echo,
    check_read,
    drop_line_noise,
    rtu_adu,
    split_rtu,
    split_tcp,
    tcp_adu,
)
from drivers.modbus.frames_write import (
    Write,
    apply_masks,
    check_write,
    write_register,
    write_registers,
)
from drivers.modbus.link import Link, SerialLink, TcpLink
from drivers.modbus.probes import ProbeLog
from drivers.modbus.replies import (
    ModbusExceptionResponse,
    ReadBeforeWriteRefused,
    WriteUnconfirmed,
    exception_meaning,
)
from edge_agent.config import ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.errors import DriverError, DriverReadError
from edge_agent.model import (
    REASON_DISCONNECTED,
    REASON_INVALID_RESPONSE,
    REASON_TIMEOUT,
)

#: Requests with no answer from any unit, in a row, before the connection is dropped.
DEAD_AFTER = 5
#: The detail of a timeout raised before the read was sent: the unit missed an answer
#: and has not answered the diagnostics echo since (RTU, see the module doc). Says
#: nothing about the registers asked for (the commissioning scans ask again).
NOT_IN_STEP = "no answer to the diagnostics request that must follow a missed answer"
#: Transaction ids of unanswered TCP requests kept reserved; beyond, reconnect.
MAX_STALE_TIDS = 32
#: Timeouts after which an RTU unit that never answers diagnostics leaves doubt.
RTU_LATE_LIMIT = 10
#: Shortest silence that ends a frame on a serial line (at least 3.5 characters).
MIN_RTU_GAP_S = 0.02

Request = Read | Echo | Write
_Reply = TypeVar("_Reply")


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
        self._link: Link | None = None
        #: The channel dropped the link itself (to shed late answers): reopen it at once.
        self._reopen = False
        self._lock = asyncio.Lock()
        self._last_frame_end = 0.0
        self._unanswered = 0
        self.requests = 0
        #: Drivers using this channel; the last one to close it closes the connection.
        self.users = 0
        #: Poll groups of all those drivers: how many reads may queue for the lock at once.
        self.pollers = 0
        # TCP: the last transaction id used, those still awaiting an answer, and whether
        # the peer answers with transaction id 0.
        self._tid = 0
        self._stale_tids: dict[int, int] = {}  # transaction id -> unit
        self._peer_sends_tid_0 = False
        # RTU: units in doubt (since when), and units known to answer diagnostics.
        self._in_doubt: dict[int, float] = {}
        self._answer_echo: set[int] = set()
        self._probes = ProbeLog()
        #: The last request whose frame went out (under the lock): was the write sent?
        self._sent: Request | None = None
        self._echo_data = random.randrange(0x10000)
        if isinstance(connection, ModbusRtu):
            self._gap = max(MIN_RTU_GAP_S, 3.5 * 11 / connection.baudrate)
        else:
            self._gap = 0.0

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.is_open

    async def connect(self) -> None:
        async with self._lock:
            if not self.connected:
                await self._open()

    async def _open(self) -> None:
        self._drop_link()
        conn = self._connection
        link: Link
        if isinstance(conn, ModbusTcp):
            link = await TcpLink.open(conn, self.timeout)
        else:
            link = await SerialLink.open(conn)
        self._link = link
        self._unanswered = 0
        # Transaction ids go on counting across connections: a gateway that hands a
        # queued answer to its newest client cannot make it match a new request.
        self._stale_tids.clear()
        # RTU doubt outlives the port: a slave may still answer what it heard before.

    async def read(
        self, table: ModbusTable, address: int, count: int, unit_id: int
    ) -> Sequence[int] | Sequence[bool]:
        """One read request; registers for register tables, bits (padded to 8) for bit tables."""
        request = Read(unit_id, READ_FUNCTIONS[table], address, count)
        async with self._lock:
            reply = await self._ask(request, partial(check_read, request))
        if isinstance(reply, ExceptionReply):
            raise ModbusExceptionResponse(
                reply.code, f"{exception_meaning(reply.code)}: {table} {address}+{count}"
            )
        return reply

    async def write(self, request: Write) -> None:
        """Send one write, once; return when the device confirmed it (its exact echo).

        Raises :class:`ModbusExceptionResponse` (the device refused it),
        :class:`WriteUnconfirmed` (sent, outcome unknown) or another DriverReadError
        (not sent: not connected, an RTU unit still in doubt, a line never quiet).
        """
        async with self._lock:
            await self._write(request)

    async def read_modify_write(
        self, unit_id: int, address: int, and_mask: int, or_mask: int, *, multiple: bool
    ) -> tuple[int, int]:
        """Change bits of one holding register: read it, write back
        ``(value & and_mask) | (or_mask & ~and_mask)`` with function 6 (16 if
        ``multiple``), both under the lock. Returns (before, after).

        A failed read raises as :meth:`read` does, with nothing written. What the lock
        cannot exclude: the device itself (or another master) changing the register
        between the read and the write; function 22 (mask write) does not have that gap.
        """
        request = Read(unit_id, READ_FUNCTIONS["holding"], address, 1)
        async with self._lock:
            reply = await self._ask(request, partial(check_read, request))
            if isinstance(reply, ExceptionReply):
                raise ReadBeforeWriteRefused(
                    reply.code,
                    f"{exception_meaning(reply.code)}: reading holding {address} to change "
                    "bits of it; nothing written",
                )
            before = int(reply[0])
            after = apply_masks(before, and_mask, or_mask)
            if multiple:
                await self._write(write_registers(unit_id, address, [after]))
            else:
                await self._write(write_register(unit_id, address, after))
        return before, after

    async def _write(self, request: Write) -> None:
        self._sent = None
        try:
            reply = await self._ask(request, partial(check_write, request))
        except DriverReadError as exc:
            if self._sent is request:
                raise WriteUnconfirmed(exc.reason, exc.detail) from None
            raise
        finally:
            self._sent = None
        if reply is not None:
            raise ModbusExceptionResponse(
                reply.code, f"{exception_meaning(reply.code)}: {request.describe()}"
            )

    async def _ask(self, request: Read | Write, check: Callable[[Frame], _Reply]) -> _Reply:
        """One request and its checked reply, under the lock (the caller holds it)."""
        if self._link is None and self._reopen:
            # Dropped on purpose by an earlier read: the readers queued behind it
            # (neighbours on the gateway) should not pay for it.
            self._reopen = False
            try:
                await self._open()
            except DriverError as exc:
                raise DriverReadError(REASON_DISCONNECTED, exc.detail) from None
        link = self._link
        if link is None or not link.is_open:
            why = link.closed_because if link is not None else "not connected"
            self._drop_link()
            raise DriverReadError(REASON_DISCONNECTED, f"{self.key}: {why}")
        self.requests += 1
        if self.serial:
            return await self._ask_rtu(link, request, check)
        await self._pause()
        try:
            return await self._ask_tcp(link, request, check)
        finally:
            self._last_frame_end = time.monotonic()

    async def close(self) -> None:
        async with self._lock:
            self._drop_link()

    # ------------------------------------------------------------------ TCP

    async def _ask_tcp(
        self, link: Link, request: Read | Write, check: Callable[[Frame], _Reply]
    ) -> _Reply:
        tid = self._next_tid()
        self._sent = request
        link.send(tcp_adu(tid, request))
        deadline = time.monotonic() + self.timeout
        answered = False
        try:
            while True:
                try:
                    parsed = split_tcp(link.received)
                except FrameError as exc:
                    self._drop_link(reopen=True)
                    raise self._invalid(request, f"{exc}; connection dropped") from None
                if parsed is None:
                    if not link.is_open:
                        self._drop_link()
                        raise DriverReadError(
                            REASON_DISCONNECTED, f"{self.key}: {link.closed_because}"
                        )
                    if not await link.wait(deadline):
                        self._timed_out()
                        if self._peer_sends_tid_0:
                            # Its late answer would carry id 0 too: let it go nowhere.
                            self._drop_link(reopen=True)
                        raise DriverReadError(REASON_TIMEOUT, self._where(request))
                    continue
                reply_tid, frame = parsed
                if reply_tid == 0:
                    self._peer_sends_tid_0 = True
                    if frame.unit != request.unit:
                        if self._drop_oldest_stale(frame.unit):
                            continue  # the late answer of an earlier request to that unit
                        raise self._invalid(
                            request, f"unit {frame.unit} answered (transaction id 0)"
                        )
                    if request.unit in self._stale_tids.values():
                        self._drop_link(reopen=True)
                        raise self._invalid(
                            request,
                            "a reply with transaction id 0 while an earlier request to the "
                            "unit is unanswered: whose answer it is cannot be told; "
                            "connection dropped",
                        )
                elif reply_tid != tid:
                    if self._stale_tids.pop(reply_tid, None) is not None:
                        continue  # a late answer: dropped
                    raise self._invalid(request, f"transaction id {reply_tid}, {tid} expected")
                answered = True
                self._unanswered = 0
                return self._check(request, frame, check)
        finally:
            if not answered and self._link is link:
                self._stale_tids[tid] = request.unit
                if len(self._stale_tids) > MAX_STALE_TIDS:
                    self._drop_link(reopen=True)

    def _drop_oldest_stale(self, unit: int) -> bool:
        """Forget the oldest unanswered request to ``unit`` (a gateway answers in order)."""
        for tid, asked in self._stale_tids.items():
            if asked == unit:
                del self._stale_tids[tid]
                return True
        return False

    def _next_tid(self) -> int:
        while True:
            self._tid = self._tid % 0xFFFF + 1  # 1..65535: 0 is what sloppy peers send
            if self._tid not in self._stale_tids:
                return self._tid

    # ------------------------------------------------------------------ RTU

    async def _ask_rtu(
        self, link: Link, request: Read | Write, check: Callable[[Frame], _Reply]
    ) -> _Reply:
        unit = request.unit
        if unit in self._in_doubt:
            await self._settle(link, unit)
        settled = False
        try:
            frame = await self._exchange(link, request)
            reply = self._check(request, frame, check)
            settled = True
        except TimeoutError:
            self._timed_out()
            raise DriverReadError(REASON_TIMEOUT, self._where(request)) from None
        finally:
            if not settled:
                # Whatever went wrong, its answer may still come: never take it for another.
                self._in_doubt.setdefault(unit, time.monotonic())
        self._unanswered = 0
        return reply

    async def _settle(self, link: Link, unit: int) -> None:
        """Bring a unit in doubt back in step: echo a diagnostics request (see module doc)."""
        self._echo_data = (self._echo_data + 1) % 0x10000
        try:
            await self._exchange(link, Echo(unit, self._echo_data))
        except TimeoutError:
            since = self._in_doubt[unit]
            if unit in self._answer_echo or (
                time.monotonic() - since < RTU_LATE_LIMIT * self.timeout
            ):
                self._timed_out()
                raise DriverReadError(
                    REASON_TIMEOUT,
                    f"{self.key} unit {unit}: {NOT_IN_STEP}",
                ) from None
            # It never answered diagnostics and has been silent for a long time.
        else:
            self._answer_echo.add(unit)
        del self._in_doubt[unit]

    async def _exchange(self, link: Link, request: Request) -> Frame:
        """Send ``request`` on a quiet line; the first frame that may be its answer.

        Late answers of units in doubt and leftover diagnostics echoes are dropped. While
        probing, only the unit's answer to a probe sent since its last read counts (see
        the module doc), and a garbled frame is dropped once the line is quiet again.
        Raises TimeoutError, or DriverReadError when the line goes away or a read gets
        garbage.
        """
        await self._quiet(link, request)
        await self._pause()  # also between a diagnostics echo and the read after it
        self._probes.sending(request)
        self._sent = request
        link.send(rtu_adu(request))
        try:
            return await self._receive(link, request)
        finally:
            self._last_frame_end = time.monotonic()

    async def _receive(self, link: Link, request: Request) -> Frame:
        deadline = time.monotonic() + self.timeout
        probing = isinstance(request, Echo)
        while True:
            drop_line_noise(link.received, request.unit)
            try:
                frame = split_rtu(link.received)
            except FrameError as exc:
                await self._quiet(link, request)
                if probing:
                    continue
                raise self._invalid(request, str(exc)) from None
            if frame is None:
                if not link.is_open:
                    self._drop_link()
                    raise DriverReadError(REASON_DISCONNECTED, f"{self.key}: {link.closed_because}")
                if not await link.wait(deadline):
                    raise TimeoutError
                continue
            if answers_echo(frame):
                proves = self._probes.answered(frame)
                if probing and proves and frame.unit == request.unit:
                    return frame
                continue  # a probe's answer is never a read's; an old one proves nothing
            if probing or (frame.unit != request.unit and frame.unit in self._in_doubt):
                continue  # late answers of units in doubt (while probing, the unit's own)
            return frame

    async def _quiet(self, link: Link, request: Request) -> None:
        """Wait until the line has been silent for a frame gap, then drop what arrived."""
        deadline = time.monotonic() + self.timeout
        while link.is_open:
            silent = time.monotonic() - link.last_received
            if silent >= self._gap:
                break
            if time.monotonic() >= deadline:
                raise self._invalid(request, "the line never went quiet")
            await asyncio.sleep(self._gap - silent)
        link.discard()

    # ------------------------------------------------------------------ both

    def _check(
        self, request: Read | Write, frame: Frame, check: Callable[[Frame], _Reply]
    ) -> _Reply:
        try:
            return check(frame)
        except FrameError as exc:
            raise self._invalid(request, str(exc)) from None

    def _invalid(self, request: Request, message: str) -> DriverReadError:
        return DriverReadError(REASON_INVALID_RESPONSE, f"{self._where(request)}: {message}")

    def _where(self, request: Request) -> str:
        if isinstance(request, Echo):
            return f"{self.key} unit {request.unit} diagnostics"
        return f"{self.key} {request.describe()}"

    async def _pause(self) -> None:
        if self.inter_frame_delay > 0:
            wait = self._last_frame_end + self.inter_frame_delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def _timed_out(self) -> None:
        self._unanswered += 1
        if self._unanswered >= self.dead_after:
            self._drop_link()

    def _drop_link(self, *, reopen: bool = False) -> None:
        self._reopen = reopen
        if self._link is not None:
            self._link.close()
            self._link = None
