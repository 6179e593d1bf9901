"""``edge-agent probe --scan-units`` and ``--scan-registers``: the scans on a real channel.

The scan logic and its politeness rules are in :mod:`drivers.modbus.scan`; this module
opens the channel, says up front how long the scan may take, prints each finding as it
comes, and prints the summary at the end, also when the scan is interrupted (Ctrl-C
cancels the scan's task; the summary is printed on the way out). Exit codes: see
:mod:`drivers.modbus.tools`.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TextIO

from drivers.modbus.answer import Answer, Outcome, ask
from drivers.modbus.scan import (
    RegisterScan,
    UnitScan,
    block_limit,
    register_scan_plan,
    scan_registers,
    scan_units,
    unit_scan_plan,
    unit_words,
)
from drivers.modbus.target import describe_target
from drivers.modbus.tools import (
    EXIT_NO_ANSWER,
    EXIT_OK,
    Device,
    connect_failed,
    open_channel,
    usage,
)
from edge_agent.config import ModbusTable
from edge_agent.errors import DriverConnectError


def _check_politeness(pause: float, budget: float) -> str:
    if pause < 0:
        return f"--pause {pause:g}: give seconds, 0 or more"
    if budget <= 0:
        return f"--budget {budget:g}: give seconds, more than 0"
    return ""


async def run_scan_units(
    target: Device,
    *,
    first: int,
    last: int,
    table: ModbusTable,
    address: int,
    pause: float,
    budget: float,
    out: TextIO = sys.stdout,
) -> int:
    """Ask each unit id in ``first..last`` for one register; list those that answer."""
    problem = _check_politeness(pause, budget)
    if first < 1:
        problem = "--scan-units starts at 1: unit 0 is the broadcast address (never answered)"
    if problem:
        return usage(problem)
    scan = UnitScan(first, last)
    where = describe_target(target.connection)
    print(unit_scan_plan(first, last, target.timeout, pause, budget), file=out)
    print(f"on {where}, reading {table} {address}; Ctrl-C stops and reports", file=out)
    out.flush()

    def found(unit: int, answer: Answer) -> None:
        if answer.device_answered or answer.outcome is Outcome.INVALID:
            print(f"  unit {unit:>3}: {unit_words(answer)}", file=out)
            out.flush()

    try:
        async with open_channel(target) as channel:
            asked = partial(ask, channel)
            try:
                await scan_units(
                    scan,
                    asked,
                    table=table,
                    address=address,
                    pause=pause,
                    budget=budget,
                    request_time=_worst_request_time(target.timeout),
                    on_answer=found,
                )
            finally:
                _unit_summary(scan, out)
    except DriverConnectError as exc:
        return connect_failed(exc)
    return EXIT_OK if scan.present else EXIT_NO_ANSWER


def _worst_request_time(timeout: float) -> float:
    """What one scan request may cost: on RTU a unit out of step gets a diagnostics echo
    before the read, on TCP a peer that breaks the stream gets a reconnect; each may take
    the timeout. The budget check reserves this much, so a scan never overruns it."""
    return 2 * timeout


def _unit_summary(scan: UnitScan, out: TextIO) -> None:
    asked = len(scan.answers)
    present = scan.present
    gateway = sorted(
        {a.code for a in scan.answers.values() if a.outcome is Outcome.EXCEPTION} & {10, 11}
    )
    if asked < scan.last - scan.first + 1 and not scan.stopped:
        scan.stopped = "interrupted"
    units = ", ".join(str(u) for u in present) or "none"
    print(f"{asked} unit ids asked; devices at: {units}", file=out)
    if gateway:
        print(
            f"  (a gateway answered exception {'/'.join(map(str, gateway))} for the ids "
            "it cannot reach: no device there)",
            file=out,
        )
    if scan.stopped:
        print(f"stopped early: {scan.stopped}", file=out)
    out.flush()


async def run_scan_registers(
    target: Device,
    *,
    table: ModbusTable,
    first: int,
    last: int,
    block: int,
    pause: float,
    budget: float,
    out: TextIO = sys.stdout,
) -> int:
    """Map the readable ranges and the holes of ``table`` between ``first`` and ``last``."""
    problem = _check_politeness(pause, budget)
    limit = block_limit(table)
    if not 1 <= block <= limit:
        problem = f"--block {block}: one read of the {table} table holds 1..{limit}"
    if not 0 <= first <= last <= 65535:
        problem = f"--from {first} --to {last}: addresses are 0..65535, from <= to"
    if problem:
        return usage(problem)
    scan = RegisterScan(table, target.unit, first, last)
    print(register_scan_plan(scan, block, target.timeout, pause, budget), file=out)
    print(f"on {describe_target(target.connection)}; Ctrl-C stops and reports", file=out)
    out.flush()

    try:
        async with open_channel(target) as channel:
            asked = partial(ask, channel)
            try:
                await scan_registers(
                    scan,
                    asked,
                    block=block,
                    pause=pause,
                    budget=budget,
                    request_time=_worst_request_time(target.timeout),
                )
            finally:
                _register_summary(scan, out)
    except DriverConnectError as exc:
        return connect_failed(exc)
    return EXIT_OK if scan.readable else EXIT_NO_ANSWER


def _register_summary(scan: RegisterScan, out: TextIO) -> None:
    plural = "" if scan.requests == 1 else "s"
    print(f"{scan.table} map of unit {scan.unit} ({scan.requests} request{plural}):", file=out)
    for span in scan.merged():
        print("  " + span.describe(scan.table), file=out)
    if not scan.spans:
        print("  nothing mapped", file=out)
    covered = sum(s.end - s.start + 1 for s in scan.spans)
    if not scan.stopped and covered < scan.last - scan.first + 1:
        scan.stopped = "interrupted"
    if scan.stopped:
        print(f"stopped early: {scan.stopped}", file=out)
    out.flush()
