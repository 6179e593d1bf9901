"""The command-line entry points of ``read`` and ``probe`` for Modbus targets.

Output goes to ``sys.stdout`` as it is at call time (a test's capture included).

:mod:`edge_agent.cli` parses the arguments and calls these lazily; they check what the
arguments mean together (which probe mode, a range, an address), then run one tool of
:mod:`drivers.modbus.tools` / :mod:`drivers.modbus.scan_tools` to its exit code.
"""

from __future__ import annotations

import sys

from drivers.modbus.scan_tools import run_scan_registers, run_scan_units
from drivers.modbus.target import TargetError, parse_int_range, parse_range
from drivers.modbus.tools import (
    UsageError,
    device,
    run,
    run_probe,
    run_read,
    table_of,
    usage,
)

#: Default extent of ``--scan-registers`` without ``--from`` / ``--to``.
DEFAULT_SCAN_SPAN = 1000


def read_command(
    target: str,
    *,
    unit: int,
    table: str,
    address: int | None,
    count: int | None,
    type_: str | None,
    byte_order: str | None,
    scale: float,
    timeout: float,
) -> int:
    try:
        where = device(target, unit, timeout)
        which = table_of(table)
        if address is None:
            raise UsageError("--address A is needed: the 0-based protocol address to read")
    except UsageError as exc:
        return usage(str(exc))
    return run(
        run_read(
            where,
            table=which,
            address=address,
            count=count,
            type_=type_,
            byte_order=byte_order,
            scale=scale,
            out=sys.stdout,
        )
    )


def probe_command(
    target: str,
    *,
    unit: int,
    table: str,
    address: int | None,
    count: int,
    expect: str | None,
    scan_units: str | None,
    scan_registers: bool,
    first: int | None,
    last: int | None,
    block: int,
    pause: float,
    budget: float,
    timeout: float,
    scales: str,
    top: int,
) -> int:
    modes = [
        m
        for m, on in (
            ("--expect", expect),
            ("--scan-units", scan_units),
            ("--scan-registers", scan_registers),
        )
        if on
    ]
    try:
        if len(modes) != 1:
            raise UsageError(
                "give one of --expect LOW..HIGH, --scan-units A..B or --scan-registers"
                + (f" (not {' and '.join(modes)})" if modes else "")
            )
        where = device(target, unit, timeout)
        which = table_of(table)
        if scan_units:
            units = parse_int_range(scan_units, "--scan-units", 0, 255)
            return run(
                run_scan_units(
                    where,
                    first=units[0],
                    last=units[1],
                    table=which,
                    address=address or 0,
                    pause=pause,
                    budget=budget,
                    out=sys.stdout,
                )
            )
        if scan_registers:
            start = first if first is not None else (address or 0)
            end = last if last is not None else min(start + DEFAULT_SCAN_SPAN - 1, 65535)
            return run(
                run_scan_registers(
                    where,
                    table=which,
                    first=start,
                    last=end,
                    block=block,
                    pause=pause,
                    budget=budget,
                    out=sys.stdout,
                )
            )
        assert expect is not None
        low, high = parse_range(expect, "--expect")
        if address is None:
            raise UsageError("--address A is needed: where the value should be")
        factors = _scales(scales)
        if top < 1:
            raise UsageError(f"--top {top}: show at least 1")
    except (UsageError, TargetError) as exc:
        return usage(str(exc))
    return run(
        run_probe(
            where,
            table=which,
            address=address,
            low=low,
            high=high,
            count=count,
            scales=factors,
            top=top,
            out=sys.stdout,
        )
    )


def _scales(text: str) -> tuple[float, ...]:
    try:
        factors = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(
            f"--scales {text!r}: numbers separated by commas, e.g. 1,0.1,0.01"
        ) from None
    if not factors or any(f == 0 or f != f for f in factors):
        raise UsageError(f"--scales {text!r}: numbers other than 0, e.g. 1,0.1,0.01")
    return factors
