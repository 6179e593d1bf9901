"""Times of day as the plant file writes them (``"06:00"``, ``"24:00"``): shifts, breaks,
tariff periods. One check each, so every clock in the file is refused the same way."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from edge_agent.metrics.windows import parse_clock


def _start(value: str) -> str:
    parse_clock(value)
    return value


def _end(value: str) -> str:
    parse_clock(value, allow_24=True)
    return value


#: ``HH:MM`` from 00:00 to 23:59: where a stretch of the day starts.
ClockStart = Annotated[str, AfterValidator(_start)]
#: ``HH:MM`` from 00:00 to 24:00: where it ends (24:00 is the end of the day).
ClockEnd = Annotated[str, AfterValidator(_end)]
