"""A fixed-bucket histogram cheap enough to observe every poll.

prometheus-client's own Histogram takes a lock and label lookups per observation
and lives in a global registry; the scheduler only needs to count, and the
metrics endpoint reads the counts when scraped (see :mod:`edge_agent.service.telemetry`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

#: Seconds. A Modbus TCP read on a LAN takes milliseconds, a serial read tens of
#: milliseconds, a timeout one to several seconds: the buckets cover all three.
READ_SECONDS_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Histogram:
    """Counts per bucket (upper bounds inclusive, like Prometheus' ``le``), sum and count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = READ_SECONDS_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("bucket bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        #: One more than the bounds: the last counts what is above every bound (+Inf).
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= bound)`` per bucket, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
