"""One request of the commissioning tools, and what its answer means in plain words.

:func:`ask` sends one read through a :class:`~drivers.modbus.channel.ModbusChannel`
(the agent's own framing: every reply is checked for function code, unit, transaction id,
length and byte count before anything is decoded) and turns every outcome into an
:class:`Answer` instead of an exception, because for ``read`` and the scans an
exception reply is information, not a failure. :func:`explain` says what each outcome
means to a person standing at the cabinet, with a hint what to try next.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.modbus.channel import NOT_IN_STEP, ModbusChannel
from drivers.modbus.frames import READ_FUNCTIONS
from drivers.modbus.replies import ModbusExceptionResponse, exception_meaning
from drivers.registry import Explanation
from edge_agent.config import ModbusTable
from edge_agent.config.hints import register_number
from edge_agent.errors import DriverReadError
from edge_agent.model import REASON_DISCONNECTED, REASON_INVALID_RESPONSE, REASON_TIMEOUT


class Outcome(enum.Enum):
    DATA = "data"
    EXCEPTION = "exception"
    TIMEOUT = "timeout"
    INVALID = "invalid reply"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    #: Registers (or bits, exactly ``count`` of them) when the outcome is DATA.
    data: tuple[int, ...] = ()
    #: The Modbus exception code when the outcome is EXCEPTION.
    code: int = 0
    detail: str = ""
    #: Seconds from sending to the answer (or to giving up).
    elapsed: float = 0.0
    #: A timeout before the read was even sent (RTU: the unit missed an earlier answer
    #: and is not yet proven in step): it says nothing about the registers asked for.
    not_sent: bool = False

    @property
    def device_answered(self) -> bool:
        """Something at that unit id answered (data or an exception it raised itself;
        exceptions 10 and 11 come from a gateway speaking for a missing device)."""
        if self.outcome is Outcome.DATA:
            return True
        return self.outcome is Outcome.EXCEPTION and self.code not in (10, 11)

    def summary(self) -> str:
        if self.outcome is Outcome.DATA:
            return f"answered in {self.elapsed * 1000:.0f} ms"
        if self.outcome is Outcome.EXCEPTION:
            return f"exception {self.code} ({exception_meaning(self.code)})"
        return str(self.outcome.value)  # the detail is in explain()


async def ask(
    channel: ModbusChannel, table: ModbusTable, address: int, count: int, unit: int
) -> Answer:
    """One read request; never raises for what the device (or its absence) does."""
    started = time.monotonic()
    try:
        data = await channel.read(table, address, count, unit)
    except ModbusExceptionResponse as exc:
        return Answer(Outcome.EXCEPTION, code=exc.code, elapsed=time.monotonic() - started)
    except DriverReadError as exc:
        outcome = {
            REASON_TIMEOUT: Outcome.TIMEOUT,
            REASON_INVALID_RESPONSE: Outcome.INVALID,
            REASON_DISCONNECTED: Outcome.DISCONNECTED,
        }.get(exc.reason, Outcome.INVALID)
        return Answer(
            outcome,
            detail=exc.detail,
            elapsed=time.monotonic() - started,
            not_sent=outcome is Outcome.TIMEOUT and exc.detail.endswith(NOT_IN_STEP),
        )
    values = tuple(int(v) for v in data[:count])  # bits come padded to whole bytes
    return Answer(Outcome.DATA, data=values, elapsed=time.monotonic() - started)


def function_of(table: ModbusTable) -> int:
    return READ_FUNCTIONS[table]


def explain(
    answer: Answer,
    *,
    table: ModbusTable,
    address: int,
    count: int,
    unit: int,
    serial: bool,
    timeout: float,
) -> list[str]:
    """What a failed read means and what to try; empty for data."""
    last = address + count - 1
    span = f"{table} {address}" if count == 1 else f"{table} {address}-{last}"
    if answer.outcome is Outcome.DATA:
        return []
    if answer.outcome is Outcome.TIMEOUT:
        if serial:
            return [
                f"no answer from unit {unit} within {timeout:g} s on the serial line.",
                "hint: a wrong unit id, baud rate or parity (try ?baud=9600&parity=N), the "
                "RS-485 wires A/B swapped, or the device has no power. "
                "`edge-agent probe ... --scan-units 1..247` lists the units that answer.",
            ]
        return [
            f"no answer from unit {unit} within {timeout:g} s: the connection is up, "
            "but nothing answered the request.",
            "hint: a wrong unit id (many devices answer only their own id; gateways pass it "
            "to the serial side), or a gateway whose serial side is silent. "
            "`edge-agent probe ... --scan-units 1..247` lists the units that answer.",
        ]
    if answer.outcome is Outcome.INVALID:
        # The channel's detail starts with where ("tcp://... function 3 0+2 unit 1: "),
        # which the first line of the output already says.
        what = answer.detail.split(": ", 1)[-1]
        return [
            f"an answer came, but it does not fit the request ({what}); "
            "its contents are not trusted.",
            "hint: on a serial line usually another baud rate or parity, or a second "
            "master on the bus; on TCP a gateway mixing up answers.",
        ]
    if answer.outcome is Outcome.DISCONNECTED:
        return [f"the connection went away: {answer.detail}"]
    return _exception_words(answer.code, table, span, address, count, unit)


def _exception_words(
    code: int, table: ModbusTable, span: str, address: int, count: int, unit: int
) -> list[str]:
    function = function_of(table)
    # 10 and 11 are the gateway's own answers, speaking for a unit it cannot reach.
    who = "the gateway" if code in (10, 11) else f"unit {unit}"
    head = f"{who} answered exception {code} ({exception_meaning(code)}): "
    other_table = {"holding": "input", "input": "holding"}.get(table)
    if code == 1:
        return [
            head + f"it does not support reading the {table} table (function {function}).",
            "hint: try --table "
            + (other_table or "holding")
            + " (meters often keep measurements in input registers, PLCs in holding).",
        ]
    if code == 2:
        hints = [_numbering_hint(table, address)]
        if count > 1:
            hints.append("; or read fewer registers (--count 1): the read may run into a gap")
        if other_table and register_number(address) is None:  # else the hint names it
            hints.append(f"; or the value lives in the {other_table} table")
        return [
            head + f"the device has no readable register at {span}.",
            "".join(hints) + ".",
        ]
    if code == 3:
        return [
            head + f"the device refused a read of {count} at {span}.",
            "hint: ask for fewer registers, or for exactly the registers of one value "
            "(some meters only accept reads of whole values: --count 2 for a float32).",
        ]
    if code == 4:
        return [
            head + "the device failed internally while reading.",
            "hint: try again; if it persists, look at the device's own diagnostics.",
        ]
    if code in (5, 6):
        return [
            head + "the device is busy with something else.",
            "hint: try again after a pause; another master on the same bus or port?",
        ]
    if code == 10:
        return [
            head + f"the gateway has no route to unit {unit}.",
            "hint: the unit id is not configured on the gateway (check its unit id "
            "mapping), or the gateway's serial port is not set up.",
        ]
    if code == 11:
        return [
            head + f"the gateway passed the request on, but unit {unit} did not answer it.",
            "hint: a wrong unit id, the gateway's serial settings (baud, parity) do not "
            "match the device, or its RS-485 wiring (A/B swapped, no termination).",
        ]
    return [head.rstrip(": ") + "."]


#: For a configured tag (``run --once``): what to check in the config, per exception code.
TAG_HINTS: dict[int, str] = {
    1: "the device cannot read this table: check the tag's table (meters often keep "
    "measurements in input registers, PLCs in holding)",
    2: "the device has no such register: check the address, the table, and the "
    "manual's numbering (register 40001 is address 0)",
    3: "the device refused the read: try max_registers_per_read smaller, or tags that "
    "cover whole values only",
    4: "the device failed internally while reading: try again, then look at its own diagnostics",
    5: "the device is busy: try again; another master on the same bus or port?",
    6: "the device is busy: try again; another master on the same bus or port?",
    10: "the gateway has no route to this unit id: check unit_id against the gateway's "
    "unit id mapping, and that its serial port is set up",
    11: "no device answered at this unit id: check unit_id and wiring (and the gateway's "
    "baud rate and parity)",
}
TIMEOUT_HINT = (
    "nothing answered in time: check host and port (or the serial port, baud rate and "
    "parity), unit_id, and that the device is powered; raise timeout for a slow device"
)
_EXCEPTION = re.compile(r"exception code (\d+)\b")


def explain_reason(reason: str) -> Explanation | None:
    """A tag's reason as the driver writes it (``exception code 2``, ``timeout``...) in words."""
    if found := _EXCEPTION.match(reason):
        code = int(found[1])
        hint = TAG_HINTS.get(code)
        return None if hint is None else Explanation(exception_meaning(code), hint)
    if reason == REASON_TIMEOUT or reason.startswith(f"{REASON_TIMEOUT} ("):
        return Explanation("no answer", TIMEOUT_HINT)
    return None


def _numbering_hint(table: ModbusTable, address: int) -> str:
    """What exception 2 at ``address`` may mean about the manual's numbering; never the
    address just tried."""
    found = register_number(address)  # the same rule as `check` for a plant file
    if found is not None:
        meant, offset = found
        move = f"--address {offset}" if meant == table else f"--table {meant} --address {offset}"
        return (
            f"hint: {address} looks like a register number: {meant} register {offset + 1} "
            f"is address {offset}; use {move}"
        )
    if address == 0:
        return (
            "hint: address 0 is the first register of the table; check the manual's "
            "register map for where its values start"
        )
    return (
        f"hint: check the manual's numbering: register 1 (or 30001 / 40001) is "
        f"address 0, so try --address {address - 1}"
    )


def hex_registers(address: int, registers: Sequence[int]) -> list[str]:
    """A header, then one line per register: address, hex, unsigned decimal."""
    width = max(len("address"), len(str(address + len(registers) - 1)))
    lines = [f"  {'address':>{width}}  hex     uint16"]
    lines += [
        f"  {address + i:>{width}}  0x{value:04X}  {value:>6}" for i, value in enumerate(registers)
    ]
    return lines
