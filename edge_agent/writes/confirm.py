"""The read-back after a write: read the tag until it shows what was sent, or time is up.

Reads right after the write, then every ``interval`` (100 ms) until ``within`` has
passed since the write; the first good reading equal to the expected value (within the
tolerance, for numbers) confirms it. A reading that fails (the device does not answer,
a bad sample) is not a mismatch by itself: the next one may tell. The clock and the
sleep are injected, so tests run on a clock of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_agent.driver import TagReading
from edge_agent.errors import DriverError
from edge_agent.writes.model import WriteValue
from edge_agent.writes.policy import values_match

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ReadBackResult:
    """What the read-back saw: confirmed or not, the last good value, the last failure."""

    matched: bool
    #: The last good value read (None: no good reading).
    value: WriteValue | None
    #: When the matching reading came (ns), 0 when none did.
    at_ns: int = 0
    #: Why the last reading failed, "" when it was good.
    last_error: str = ""
    reads: int = 0

    def mismatch(self, expected: WriteValue, unit: str, tolerance: float, within: float) -> str:
        """Why the read-back did not confirm ``expected``, in words."""
        if self.value is None:
            failure = f": {self.last_error}" if self.last_error else ""
            return f"no good read-back within {within:g} s{failure}"
        shown = f" {unit}" if unit else ""
        margin = f" (tolerance {tolerance:g})" if isinstance(expected, float | int) else ""
        return (
            f"read back {self.value}{shown}, expected {expected}{shown}{margin}: the device "
            f"did not show the value within {within:g} s"
        )


async def read_back(
    read: Callable[[], Awaitable[TagReading]],
    expected: WriteValue,
    tolerance: float,
    within: float,
    interval: float,
    now_ns: Callable[[], int],
    sleep: Callable[[float], Awaitable[None]],
) -> ReadBackResult:
    """Read until a good reading equals ``expected`` or ``within`` seconds have passed."""
    deadline = now_ns() + int(within * _NS)
    value: WriteValue | None = None
    error = ""
    reads = 0
    while True:
        reads += 1
        try:
            reading = await read()
        except DriverError as exc:
            error = str(exc)
        else:
            if reading.good:
                value, error = reading.value, ""
                if values_match(reading.value, expected, tolerance):
                    return ReadBackResult(True, value, now_ns(), "", reads)
            else:
                error = reading.reason or "bad reading"
        remaining = (deadline - now_ns()) / _NS
        if remaining <= 0:
            return ReadBackResult(False, value, 0, error, reads)
        await sleep(min(interval, remaining))
