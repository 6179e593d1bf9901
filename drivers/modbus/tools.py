"""``edge-agent read`` and ``edge-agent probe`` for Modbus: commissioning at the device.

``read`` sends one request and prints the raw registers and the value as every type and
byte order that fits; ``probe --expect LOW..HIGH`` ranks the decodings that fall in the
range; ``probe --scan-units`` and ``probe --scan-registers`` map a bus and a table
(:mod:`drivers.modbus.scan`). All of them go through the agent's own channel and framing
(:mod:`drivers.modbus.channel`), so a reply the agent would refuse is refused here too.

Exit codes (docs/COMMISSIONING.md):

* 0 -- the device answered (``probe --expect``: and some decoding is in range; a scan:
  and found something);
* 1 -- it answered with an exception, did not answer in time, answered garbage
  (``probe --expect``: or nothing is in range; a scan: found nothing);
* 2 -- usage: the command line is wrong (nothing was sent);
* 3 -- no connection: the port or host could not be opened;
* 130 -- interrupted (Ctrl-C); a scan prints what it found until then.

The ``run_*`` coroutines do the work and return the exit code; the command line calls
them through :func:`run`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO, TypeVar

from drivers.modbus.answer import Outcome, ask
from drivers.modbus.channel import ModbusChannel
from drivers.modbus.decodings import NUMERIC_TYPES
from drivers.modbus.ranking import DEFAULT_SCALES
from drivers.modbus.results import Asked, ProbeResult, ReadResult, render_probe, render_read
from drivers.modbus.target import TargetError, describe_target, parse_target
from edge_agent.config import REGISTER_COUNT, ByteOrder, ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.config.hints import register_number
from edge_agent.errors import DriverConnectError

#: A tool's result (ReadResult, ProbeResult).
R = TypeVar("R")

EXIT_OK = 0
EXIT_NO_ANSWER = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_INTERRUPTED = 130

TABLES: dict[str, ModbusTable] = {
    "holding": "holding",
    "input": "input",
    "coil": "coil",
    "coils": "coil",
    "discrete": "discrete_input",
    "discrete_input": "discrete_input",
}
TYPES = (*NUMERIC_TYPES, "string")
#: A scan must never leave a unit "dead": the channel drops a connection after this many
#: silent requests in a row, which a unit scan of a sparse bus reaches at once.
NEVER_DEAD = 1 << 30


class UsageError(ValueError):
    """A command line the tools cannot act on; nothing was sent. ``field`` names the
    argument at fault (``address``, ``count``...; "" when it is the combination)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Device:
    """Where and whom to ask: a parsed target, a unit id, the reply timeout."""

    connection: ModbusTcp | ModbusRtu
    unit: int
    timeout: float

    @property
    def serial(self) -> bool:
        return isinstance(self.connection, ModbusRtu)

    @property
    def serial_port(self) -> str | None:
        """The serial port it opens (None over TCP): one opener at a time."""
        return self.connection.serial_port if isinstance(self.connection, ModbusRtu) else None

    def describe(self) -> str:
        return f"{describe_target(self.connection)} unit {self.unit}"

    def asked(self, table: ModbusTable, address: int, count: int) -> Asked:
        return Asked(self.describe(), self.unit, self.serial, self.timeout, table, address, count)


def device(target: str, unit: int, timeout: float) -> Device:
    """The target, unit id and timeout checked; :class:`UsageError` says what is wrong."""
    try:
        connection = parse_target(target)
    except TargetError as exc:
        raise UsageError(str(exc), "target") from None
    if unit == 0:
        raise UsageError(
            "--unit 0 is the broadcast address: no device answers it; use 1..255", "unit"
        )
    if not 1 <= unit <= 255:
        raise UsageError(f"--unit {unit}: unit ids are 1..247 (255 on some TCP devices)", "unit")
    if not 0 < timeout <= 60:
        raise UsageError(f"--timeout {timeout:g}: give seconds between 0 and 60", "timeout")
    return Device(connection, unit, timeout)


def table_of(name: str) -> ModbusTable:
    table = TABLES.get(name.lower())
    if table is None:
        raise UsageError(f"--table {name!r}: use holding, input, coil or discrete", "table")
    return table


def check_span(table: ModbusTable, address: int, count: int) -> None:
    limit = 2000 if table in ("coil", "discrete_input") else 125
    if not 0 <= address <= 65535:
        found = register_number(address)  # 300101: the same rule as `check`
        hint = ""
        if found is not None:
            meant, offset = found
            move = f"--table {meant} " if meant != table else ""
            hint = f"; {address} looks like {meant} register {offset + 1}: {move}--address {offset}"
        raise UsageError(
            f"--address {address}: protocol addresses are 0..65535 (0-based){hint}", "address"
        )
    if not 1 <= count <= limit:
        raise UsageError(
            f"--count {count}: one read holds 1..{limit} of the {table} table", "count"
        )
    if address + count > 65536:
        raise UsageError(f"--address {address} --count {count} runs past address 65535", "count")


@asynccontextmanager
async def open_channel(target: Device) -> AsyncIterator[ModbusChannel]:
    """The agent's channel to ``target``, connected; closed on exit.
    Raises :class:`DriverConnectError` when it cannot be opened."""
    channel = ModbusChannel(target.connection, timeout=target.timeout, dead_after=NEVER_DEAD)
    try:
        await channel.connect()
        yield channel
    finally:
        await channel.close()


def run(coroutine: Awaitable[int]) -> int:
    """Run one tool to its exit code (130 on Ctrl-C)."""

    async def main() -> int:
        return await coroutine

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def connect_failed(exc: DriverConnectError) -> int:
    print(f"error: cannot connect: {exc.detail or exc.reason}", file=sys.stderr)
    return EXIT_CONNECT


# ------------------------------------------------------------------------ read


def read_shape(
    table: ModbusTable,
    address: int,
    count: int | None = None,
    type_: str | None = None,
    byte_order: str | None = None,
    scale: float = 1.0,
) -> tuple[ByteOrder, int]:
    """The byte order and register count of a ``read`` as asked, checked before anything
    is sent; :class:`UsageError` says what is wrong."""
    order, count = _read_shape(table, type_, byte_order, count)
    check_span(table, address, count)
    if scale == 0:
        raise UsageError("--scale 0 would make every value 0", "scale")
    return order, count


async def read_result(
    target: Device,
    *,
    table: ModbusTable,
    address: int,
    count: int | None = None,
    type_: str | None = None,
    byte_order: str | None = None,
    scale: float = 1.0,
) -> ReadResult:
    """One request, decoded as every type and byte order that fits (or as ``type_``).

    Raises :class:`UsageError` (nothing sent) and :class:`DriverConnectError`; what the
    device answers, or that it does not, is in the result."""
    order, count = read_shape(table, address, count, type_, byte_order, scale)
    async with open_channel(target) as channel:
        answer = await ask(channel, table, address, count, target.unit)
    return ReadResult.of(target.asked(table, address, count), answer, type_, order, scale)


async def run_read(
    target: Device,
    *,
    table: ModbusTable,
    address: int,
    count: int | None = None,
    type_: str | None = None,
    byte_order: str | None = None,
    scale: float = 1.0,
    out: TextIO = sys.stdout,
) -> int:
    """One request; the registers in hex and the value decoded (exit codes: module doc)."""
    read = read_result(
        target,
        table=table,
        address=address,
        count=count,
        type_=type_,
        byte_order=byte_order,
        scale=scale,
    )
    return await _printed(read, lambda r: (render_read(r), r.ok), out)


def _read_shape(
    table: ModbusTable, type_: str | None, byte_order: str | None, count: int | None
) -> tuple[ByteOrder, int]:
    order = (byte_order or "ABCD").upper()
    if order not in ("ABCD", "CDAB", "BADC", "DCBA"):
        raise UsageError(f"--byte-order {byte_order!r}: use ABCD, CDAB, BADC or DCBA", "byte_order")
    if type_ is None:
        if byte_order is not None:
            raise UsageError(
                "--byte-order needs --type (without it every order is shown)", "byte_order"
            )
        default = 1 if table in ("coil", "discrete_input") else 2
        return "ABCD", default if count is None else count
    if type_ not in TYPES:
        hint = " (did you mean float32?)" if type_ in ("float", "real") else ""
        raise UsageError(f"--type {type_!r}{hint}: use one of {', '.join(TYPES)}", "type")
    if table in ("coil", "discrete_input"):
        raise UsageError(f"the {table} table holds bits: leave --type out", "type")
    if type_ == "string":
        return order, count or 1  # type: ignore[return-value]
    size = REGISTER_COUNT[type_]
    if count is not None and count < size:
        raise UsageError(f"--count {count}: a {type_} needs {size} registers", "count")
    return order, count or size  # type: ignore[return-value]


# ----------------------------------------------------------------------- probe


def check_probe(table: ModbusTable, address: int, count: int) -> None:
    """A ``probe --expect`` the tools can send; :class:`UsageError` says what is wrong."""
    if table in ("coil", "discrete_input"):
        raise UsageError("--expect ranks register values: use --table holding or input", "table")
    check_span(table, address, count)


async def probe_result(
    target: Device,
    *,
    table: ModbusTable,
    address: int,
    low: float,
    high: float,
    count: int = 4,
    scales: Sequence[float] = DEFAULT_SCALES,
    top: int = 8,
) -> ProbeResult:
    """Rank the decodings of the registers from ``address`` that fall in ``low..high``.

    Reads ``count`` registers (4: room for a float64, and for a value one register
    further than asked); when the device refuses that many (exception 2 or 3: the read
    ran past the end of a block), it tries 2 and then 1. Raises :class:`UsageError`
    (nothing sent) and :class:`DriverConnectError`.
    """
    check_probe(table, address, count)
    async with open_channel(target) as channel:
        answer = await ask(channel, table, address, count, target.unit)
        while answer.outcome is Outcome.EXCEPTION and answer.code in (2, 3) and count > 1:
            count = 2 if count > 2 else 1
            answer = await ask(channel, table, address, count, target.unit)
    asked = target.asked(table, address, count)
    return ProbeResult.of(asked, answer, low, high, scales, top)


async def run_probe(
    target: Device,
    *,
    table: ModbusTable,
    address: int,
    low: float,
    high: float,
    count: int = 4,
    scales: Sequence[float] = DEFAULT_SCALES,
    top: int = 8,
    out: TextIO = sys.stdout,
) -> int:
    """:func:`probe_result`, printed (exit codes: module doc)."""
    probe = probe_result(
        target,
        table=table,
        address=address,
        low=low,
        high=high,
        count=count,
        scales=scales,
        top=top,
    )
    return await _printed(probe, lambda r: (render_probe(r), bool(r.found)), out)


async def _printed(
    making: Awaitable[R], shown: Callable[[R], tuple[Iterable[str], bool]], out: TextIO
) -> int:
    """A tool's result as the terminal shows it, and its exit code (module doc)."""
    try:
        result = await making
    except UsageError as exc:
        return usage(str(exc))
    except DriverConnectError as exc:
        return connect_failed(exc)
    lines, good = shown(result)
    for line in lines:
        print(line, file=out)
    return EXIT_OK if good else EXIT_NO_ANSWER
