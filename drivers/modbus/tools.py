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
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

from drivers.modbus.answer import Answer, Outcome, ask, explain, function_of, hex_registers
from drivers.modbus.channel import ModbusChannel
from drivers.modbus.decodings import (
    NUMERIC_TYPES,
    decode,
    decode_string,
    format_value,
    layouts,
    orders_for,
    render_table,
)
from drivers.modbus.ranking import explain as explain_ranking
from drivers.modbus.ranking import label, one_in, rank, tag_yaml
from drivers.modbus.target import TargetError, describe_target, parse_target
from edge_agent.config import REGISTER_COUNT, ByteOrder, ModbusRtu, ModbusTable, ModbusTcp
from edge_agent.config.hints import register_number
from edge_agent.errors import DriverConnectError

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
    """A command line the tools cannot act on; nothing was sent."""


@dataclass(frozen=True, slots=True)
class Device:
    """Where and whom to ask: a parsed target, a unit id, the reply timeout."""

    connection: ModbusTcp | ModbusRtu
    unit: int
    timeout: float

    @property
    def serial(self) -> bool:
        return isinstance(self.connection, ModbusRtu)

    def describe(self) -> str:
        return f"{describe_target(self.connection)} unit {self.unit}"


def device(target: str, unit: int, timeout: float) -> Device:
    """The target, unit id and timeout checked; :class:`UsageError` says what is wrong."""
    try:
        connection = parse_target(target)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    if unit == 0:
        raise UsageError("--unit 0 is the broadcast address: no device answers it; use 1..255")
    if not 1 <= unit <= 255:
        raise UsageError(f"--unit {unit}: unit ids are 1..247 (255 on some TCP devices)")
    if not 0 < timeout <= 60:
        raise UsageError(f"--timeout {timeout:g}: give seconds between 0 and 60")
    return Device(connection, unit, timeout)


def table_of(name: str) -> ModbusTable:
    table = TABLES.get(name.lower())
    if table is None:
        raise UsageError(f"--table {name!r}: use holding, input, coil or discrete")
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
        raise UsageError(f"--address {address}: protocol addresses are 0..65535 (0-based){hint}")
    if not 1 <= count <= limit:
        raise UsageError(f"--count {count}: one read holds 1..{limit} of the {table} table")
    if address + count > 65536:
        raise UsageError(f"--address {address} --count {count} runs past address 65535")


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
    try:
        order, count = _read_shape(table, type_, byte_order, count)
        check_span(table, address, count)
        if scale == 0:
            raise UsageError("--scale 0 would make every value 0")
    except UsageError as exc:
        return usage(str(exc))
    try:
        async with open_channel(target) as channel:
            answer = await ask(channel, table, address, count, target.unit)
    except DriverConnectError as exc:
        return connect_failed(exc)
    span = f"{address}" if count == 1 else f"{address}-{address + count - 1}"
    print(
        f"{target.describe()}, {table} {span} (function {function_of(table)}): {answer.summary()}",
        file=out,
    )
    if answer.outcome is not Outcome.DATA:
        words = explain(
            answer,
            table=table,
            address=address,
            count=count,
            unit=target.unit,
            serial=target.serial,
            timeout=target.timeout,
        )
        for line in words:
            print(line, file=out)
        return EXIT_NO_ANSWER
    if table in ("coil", "discrete_input"):
        for i, bit in enumerate(answer.data):
            print(f"  {address + i:>5}  {'1 (on)' if bit else '0 (off)'}", file=out)
        return EXIT_OK
    for line in hex_registers(address, answer.data):
        print(line, file=out)
    if type_ is not None:
        _print_one(table, address, answer.data, type_, order, scale, out)
        return EXIT_OK
    decodings = decode(table, address, answer.data, layouts(count))
    if decodings:
        print(f"\nthe value at {table} {address}, read as:", file=out)
        for line in render_table(decodings):
            print("  " + line, file=out)
        print("  (16-bit types: CDAB reads as ABCD, DCBA as BADC)", file=out)
    for text in decode_string(table, address, answer.data):
        print(f"as text ({text.byte_order}): {text.value!r}", file=out)
    return EXIT_OK


def _read_shape(
    table: ModbusTable, type_: str | None, byte_order: str | None, count: int | None
) -> tuple[ByteOrder, int]:
    order = (byte_order or "ABCD").upper()
    if order not in ("ABCD", "CDAB", "BADC", "DCBA"):
        raise UsageError(f"--byte-order {byte_order!r}: use ABCD, CDAB, BADC or DCBA")
    if type_ is None:
        if byte_order is not None:
            raise UsageError("--byte-order needs --type (without it every order is shown)")
        default = 1 if table in ("coil", "discrete_input") else 2
        return "ABCD", default if count is None else count
    if type_ not in TYPES:
        hint = " (did you mean float32?)" if type_ in ("float", "real") else ""
        raise UsageError(f"--type {type_!r}{hint}: use one of {', '.join(TYPES)}")
    if table in ("coil", "discrete_input"):
        raise UsageError(f"the {table} table holds bits: leave --type out")
    if type_ == "string":
        return order, count or 1  # type: ignore[return-value]
    size = REGISTER_COUNT[type_]
    if count is not None and count < size:
        raise UsageError(f"--count {count}: a {type_} needs {size} registers")
    return order, count or size  # type: ignore[return-value]


def _print_one(
    table: ModbusTable,
    address: int,
    registers: Sequence[int],
    type_: str,
    order: ByteOrder,
    scale: float,
    out: TextIO,
) -> None:
    if type_ == "string":
        texts = [t for t in decode_string(table, address, registers) if t.byte_order == order]
        shown = repr(texts[0].value) if texts else "not readable as text"
        print(f"string {order} at {table} {address}: {shown}", file=out)
        return
    effective = order if order in orders_for(type_) else {"CDAB": "ABCD", "DCBA": "BADC"}[order]
    (decoding,) = decode(table, address, registers, [(0, type_, effective)], (scale,))  # type: ignore[list-item]
    scaled = "" if scale == 1.0 else f" x{scale:g}"
    print(f"{type_} {order}{scaled} at {table} {address}: {format_value(decoding)}", file=out)


# ----------------------------------------------------------------------- probe


async def run_probe(
    target: Device,
    *,
    table: ModbusTable,
    address: int,
    low: float,
    high: float,
    count: int = 4,
    scales: Sequence[float] = (1.0, 0.1, 0.01, 0.001),
    top: int = 8,
    out: TextIO = sys.stdout,
) -> int:
    """Rank the decodings of the registers from ``address`` that fall in ``low..high``.

    Reads ``count`` registers (4: room for a float64, and for a value one register
    further than asked); when the device refuses that many (exception 2 or 3: the read
    ran past the end of a block), it tries 2 and then 1.
    """
    if table in ("coil", "discrete_input"):
        return usage("--expect ranks register values: use --table holding or input")
    try:
        check_span(table, address, count)
    except UsageError as exc:
        return usage(str(exc))
    try:
        async with open_channel(target) as channel:
            answer = await ask(channel, table, address, count, target.unit)
            while answer.outcome is Outcome.EXCEPTION and answer.code in (2, 3) and count > 1:
                count = 2 if count > 2 else 1
                answer = await ask(channel, table, address, count, target.unit)
    except DriverConnectError as exc:
        return connect_failed(exc)
    span = f"{address}" if count == 1 else f"{address}-{address + count - 1}"
    print(f"{target.describe()}, {table} {span}: {answer.summary()}", file=out)
    if answer.outcome is not Outcome.DATA:
        for line in _explain(answer, target, table, address, count):
            print(line, file=out)
        return EXIT_NO_ANSWER
    for line in hex_registers(address, answer.data):
        print(line, file=out)
    registers = answer.data
    decodings = decode(table, address, registers, layouts(count, offsets=range(count)), scales)
    candidates = rank(decodings, registers, low, high)
    print(f"\ndecodings in {low:g}..{high:g}, likeliest first:", file=out)
    rows = [("address", "type", "order", "scale", "value", "by chance")]
    for c in candidates[:top]:
        d = c.decoding
        rows.append(
            (
                str(address + d.offset),
                d.type,
                d.byte_order,
                f"{d.scale:g}",
                format_value(d),
                one_in(c.chance),
            )
        )
    if len(rows) > 1:
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        for row in rows:
            print(
                "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                file=out,
            )
        if len(candidates) > top:
            print(f"  ... and {len(candidates) - top} more (--top)", file=out)
    else:
        print("  none", file=out)
    print("", file=out)
    for line in explain_ranking(candidates, low, high, address, tried=decodings):
        print(line, file=out)
    if not candidates:
        return EXIT_NO_ANSWER
    print(
        f"\nas a tag ({label(candidates[0])}):\n  {tag_yaml(candidates[0], table, address)}",
        file=out,
    )
    return EXIT_OK


def _explain(
    answer: Answer, target: Device, table: ModbusTable, address: int, count: int
) -> list[str]:
    return explain(
        answer,
        table=table,
        address=address,
        count=count,
        unit=target.unit,
        serial=target.serial,
        timeout=target.timeout,
    )
