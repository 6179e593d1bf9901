"""Polite scans: which unit ids answer, and which addresses of a table are readable.

The scan logic talks to the device only through an ``ask(table, address, count, unit)``
callable (:func:`drivers.modbus.answer.ask` on a real channel), so it is tested without a
device; the tools give it the real one.

Polite by default, because the bus or gateway being scanned is usually in production:

* one request at a time (the channel never sends a second before the first is done);
* a pause between requests (``pause``), so other masters and the device itself keep
  their share of the line;
* a time budget: a scan stops before a request could end past it, and says where it
  stopped and what was not scanned;
* :func:`unit_scan_plan` and :func:`register_scan_plan` say up front how many requests
  a scan needs and how long it takes at most.

Results accumulate in the :class:`UnitScan` / :class:`RegisterScan` object passed in, so
an interrupted scan (Ctrl-C) still reports everything found until then.

Units: an answer with data, and also any exception the device raises itself, means a
device is there (it understood its unit id). Exceptions 10 and 11 come from a gateway
speaking for a unit it cannot reach: no device. Silence means nothing at that id.

Registers: blocks of ``block`` addresses are read; a block refused with exception 2
(illegal data address) or 3, or not answered, is split in two halves and each half read
again, down to single addresses: the holes. At most ``2n - 1`` requests per block of
``n``. Exception 1 (the table does not exist) or the gateway's 10/11 end the scan.
On RTU a missed answer puts the unit in doubt (:mod:`drivers.modbus.channel`): until it
is in step again a read is not even sent, and the block is asked again, not mapped as a
hole (a unit without the diagnostics function costs a few timeouts after each silence).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from drivers.modbus.answer import Answer, Outcome
from drivers.modbus.replies import exception_meaning
from edge_agent.config import ModbusTable

Ask = Callable[[ModbusTable, int, int, int], Awaitable[Answer]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: Most registers / bits one read may ask for (Modbus application protocol, fc 3/4, 1/2).
MAX_REGISTERS = 125
MAX_BITS = 2000
#: Reads in a row not sent because the unit is not back in step (see scan_registers).
NOT_SENT_RETRIES = 30


def duration_text(seconds: float) -> str:
    """``45 s``, ``4 min 32 s``."""
    seconds = math.ceil(seconds)
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60} s"


# ------------------------------------------------------------------------ units


@dataclass
class UnitScan:
    first: int
    last: int
    #: Unit id -> its answer, for every unit asked so far.
    answers: dict[int, Answer] = field(default_factory=dict)
    #: Why the scan ended before ``last`` ("" when it did not).
    stopped: str = ""

    @property
    def present(self) -> list[int]:
        return [unit for unit, answer in self.answers.items() if answer.device_answered]


def unit_scan_plan(first: int, last: int, timeout: float, pause: float, budget: float) -> str:
    count = last - first + 1
    most = count * (timeout + pause)
    line = (
        f"scanning unit ids {first}..{last}: {count} requests, one at a time, "
        f"{pause:g} s apart; at most {duration_text(min(most, budget))} "
        f"(a silent id costs the timeout of {timeout:g} s)"
    )
    if most > budget:
        line += f"; the budget of {duration_text(budget)} may end it early (--budget)"
    return line


def unit_words(answer: Answer) -> str:
    if answer.outcome is Outcome.DATA:
        return f"answers ({answer.elapsed * 1000:.0f} ms)"
    if answer.outcome is Outcome.EXCEPTION:
        if answer.device_answered:
            return (
                f"is there: answered exception {answer.code} "
                f"({exception_meaning(answer.code)}) for the register asked"
            )
        return f"no device: the gateway answered exception {answer.code}"
    if answer.outcome is Outcome.INVALID:
        return f"something answered, garbled ({answer.detail})"
    return str(answer.outcome.value)


async def scan_units(
    scan: UnitScan,
    ask: Ask,
    *,
    table: ModbusTable,
    address: int,
    pause: float,
    budget: float,
    request_time: float,
    on_answer: Callable[[int, Answer], None] = lambda unit, answer: None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> None:
    started = clock()
    for unit in range(scan.first, scan.last + 1):
        if unit != scan.first:
            await sleep(pause)
        if clock() - started + request_time > budget:
            scan.stopped = f"time budget used up; unit ids {unit}..{scan.last} not asked"
            return
        answer = await ask(table, address, 1, unit)
        scan.answers[unit] = answer
        on_answer(unit, answer)
        if answer.outcome is Outcome.DISCONNECTED:
            scan.stopped = f"the connection went away ({answer.detail})"
            return


# -------------------------------------------------------------------- registers


@dataclass(frozen=True, slots=True)
class Span:
    """Addresses ``start..end`` (inclusive) and what reading them gave."""

    start: int
    end: int
    #: "readable", "refused" (exception 2/3), "silent" (no answer), "failed" (another
    #: exception, a garbled answer).
    kind: str
    code: int = 0

    def describe(self, table: ModbusTable) -> str:
        where = f"{self.start}" if self.start == self.end else f"{self.start}-{self.end}"
        size = self.end - self.start + 1
        unit = "bit" if table in ("coil", "discrete_input") else "register"
        count = f"{size} {unit}{'s' if size != 1 else ''}"
        if self.kind == "readable":
            what = "readable"
        elif self.kind == "refused":
            what = f"hole: exception {self.code} ({exception_meaning(self.code)})"
        elif self.kind == "silent":
            what = "hole: no answer"
        else:
            what = f"failed: exception {self.code} ({exception_meaning(self.code)})"
            if not self.code:
                what = "failed: garbled answer"
        return f"{where:>11}  {count:<14} {what}"


@dataclass
class RegisterScan:
    table: ModbusTable
    unit: int
    first: int
    last: int
    spans: list[Span] = field(default_factory=list)
    requests: int = 0
    stopped: str = ""

    def merged(self) -> list[Span]:
        """Spans in address order, neighbours of the same kind joined."""
        merged: list[Span] = []
        for span in sorted(self.spans, key=lambda s: s.start):
            if (
                merged
                and merged[-1].end + 1 == span.start
                and (merged[-1].kind, merged[-1].code) == (span.kind, span.code)
            ):
                merged[-1] = Span(merged[-1].start, span.end, span.kind, span.code)
            else:
                merged.append(span)
        return merged

    @property
    def readable(self) -> int:
        return sum(s.end - s.start + 1 for s in self.spans if s.kind == "readable")


def block_limit(table: ModbusTable) -> int:
    return MAX_BITS if table in ("coil", "discrete_input") else MAX_REGISTERS


def register_scan_plan(
    scan: RegisterScan, block: int, timeout: float, pause: float, budget: float
) -> str:
    size = scan.last - scan.first + 1
    blocks = math.ceil(size / block)
    worst = 2 * size - blocks
    most = worst * (timeout + pause)
    line = (
        f"mapping {scan.table} {scan.first}..{scan.last} of unit {scan.unit} in blocks of "
        f"{block}: {blocks} request{'s' if blocks != 1 else ''} if all is readable, up to "
        f"{worst} where blocks must be split around holes; one at a time, {pause:g} s apart; "
        f"at most {duration_text(min(most, budget))}"
    )
    if most > budget:
        line += f" (the budget of {duration_text(budget)}, --budget)"
    return line


async def scan_registers(
    scan: RegisterScan,
    ask: Ask,
    *,
    block: int,
    pause: float,
    budget: float,
    request_time: float,
    on_span: Callable[[Span], None] = lambda span: None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> None:
    started = clock()
    # Blocks still to read, the next one last (a stack keeps address order).
    todo = [
        (start, min(block, scan.last - start + 1))
        for start in range(scan.first, scan.last + 1, block)
    ][::-1]
    answered = False
    not_sent = 0
    while todo:
        start, count = todo.pop()
        if scan.requests:
            await sleep(pause)
        if clock() - started + request_time > budget:
            rest = min([start, *(s for s, _ in todo)])
            scan.stopped = f"time budget used up; {scan.table} {rest}..{scan.last} not scanned"
            return
        scan.requests += 1
        answer = await ask(scan.table, start, count, scan.unit)
        end = start + count - 1
        outcome = answer.outcome
        if outcome is Outcome.DATA:
            answered = True
            _add(scan, Span(start, end, "readable"), on_span)
            continue
        if outcome is Outcome.DISCONNECTED:
            scan.stopped = f"the connection went away ({answer.detail})"
            return
        if answer.not_sent:
            # RTU: the unit still owes an answer to an earlier (silent) read, and the
            # channel will not ask it anything until it is in step again (it gives up
            # waiting after a while): ask for the same block again, never call it a hole.
            not_sent += 1
            if not_sent >= NOT_SENT_RETRIES:
                scan.stopped = (
                    f"unit {scan.unit} stopped answering at {scan.table} {start} "
                    "(not even the diagnostics request); is it still there?"
                )
                return
            todo.append((start, count))
            continue
        not_sent = 0
        if outcome is Outcome.TIMEOUT and not answered:
            scan.stopped = f"unit {scan.unit} does not answer (timeout at {start}); is it there?"
            return
        if outcome is Outcome.EXCEPTION and answer.code in (1, 10, 11):
            scan.stopped = _stop_words(scan, answer.code)
            return
        splittable = outcome is Outcome.TIMEOUT or (
            outcome is Outcome.EXCEPTION and answer.code in (2, 3)
        )
        if outcome is Outcome.EXCEPTION:
            answered = True
        if splittable and count > 1:
            half = count // 2
            todo.append((start + half, count - half))
            todo.append((start, half))
            continue
        if outcome is Outcome.TIMEOUT:
            span = Span(start, end, "silent")
        elif splittable:
            span = Span(start, end, "refused", answer.code)
        else:
            span = Span(start, end, "failed", answer.code)
        _add(scan, span, on_span)


def _add(scan: RegisterScan, span: Span, on_span: Callable[[Span], None]) -> None:
    scan.spans.append(span)
    on_span(span)


def _stop_words(scan: RegisterScan, code: int) -> str:
    if code == 1:
        return (
            f"unit {scan.unit} does not support reading the {scan.table} table "
            "(exception 1, illegal function)"
        )
    return (
        f"the gateway cannot reach unit {scan.unit} (exception {code}, {exception_meaning(code)})"
    )
