"""Which outbox ids a sink is done with: a floor plus a few ranges above it.

Ids are dense and increasing. A sink is done with an id once the batch was delivered
(or dropped by the disk budget). Mostly that is a prefix (the *floor*); while a
backlog drains, live batches above it are delivered first and recorded as ranges,
so that the backlog lane skips them and nothing is sent twice without need. In
practice there are zero to two ranges, so plain lists are the right structure.
"""

from __future__ import annotations

from collections.abc import Iterable

Span = tuple[int, int]


class Delivered:
    """Every id ``<= floor`` and every id in ``ranges`` (sorted, disjoint, all above
    ``floor + 1`` and not adjacent to each other)."""

    __slots__ = ("floor", "ranges")

    def __init__(self, floor: int, ranges: Iterable[Span] = ()) -> None:
        self.floor = floor
        self.ranges: list[Span] = []
        for lo, hi in ranges:
            self.add(lo, hi)

    def __repr__(self) -> str:
        return f"Delivered(floor={self.floor}, ranges={self.ranges})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Delivered):
            return NotImplemented
        return (self.floor, self.ranges) == (other.floor, other.ranges)

    def copy(self) -> Delivered:
        copy = Delivered(self.floor)
        copy.ranges = list(self.ranges)
        return copy

    def add(self, lo: int, hi: int) -> None:
        """Mark ``[lo, hi]`` done."""
        if hi < lo or hi <= self.floor:
            return
        lo = max(lo, self.floor + 1)
        merged: list[Span] = []
        for a, b in self.ranges:
            if b < lo - 1 or a > hi + 1:
                merged.append((a, b))
            else:
                lo, hi = min(lo, a), max(hi, b)
        merged.append((lo, hi))
        merged.sort()
        self.ranges = merged
        self._absorb()

    def raise_floor(self, upto: int) -> None:
        """Everything ``<= upto`` is done (dropped by the budget, or pruned)."""
        if upto <= self.floor:
            return
        self.floor = upto
        self.ranges = [(max(a, upto + 1), b) for a, b in self.ranges if b > upto]
        self._absorb()

    def _absorb(self) -> None:
        while self.ranges and self.ranges[0][0] <= self.floor + 1:
            self.floor = max(self.floor, self.ranges.pop(0)[1])

    def __contains__(self, seq: int) -> bool:
        return seq <= self.floor or any(a <= seq <= b for a, b in self.ranges)

    def pending(self, end: int) -> int:
        """How many ids in ``(floor, end)`` are not done."""
        done = sum(min(b, end - 1) - a + 1 for a, b in self.ranges if a < end)
        return max(0, end - 1 - self.floor - done)

    def first_gap(self, end: int) -> Span | None:
        """The first run of ids not done, ``[floor + 1, ...]``, below ``end``; None if none."""
        lo = self.floor + 1
        hi = (self.ranges[0][0] if self.ranges else end) - 1
        hi = min(hi, end - 1)
        return (lo, hi) if lo <= hi else None

    def text(self) -> str:
        return format_ranges(self.ranges)


def format_ranges(ranges: Iterable[Span]) -> str:
    return ",".join(f"{a}-{b}" for a, b in ranges)


def parse_ranges(text: str) -> list[Span]:
    """The ranges of :func:`format_ranges`; malformed parts are ignored (they only save resends)."""
    spans: list[Span] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if sep and lo.isdigit() and hi.isdigit() and int(lo) <= int(hi):
            spans.append((int(lo), int(hi)))
    return spans


def joined_after_late_open(
    stored: Delivered, file_next: int, memory_from: int, memory: Delivered
) -> Delivered:
    """A sink's cursor once the file opens after a start without it: ``stored`` (the
    file's, ids below ``file_next``), the ids between that nobody used, and what the
    sink did with this run's ids (``memory_from`` on) in the meantime (``memory``)."""
    joined = stored.copy()
    joined.add(file_next, memory_from - 1)
    joined.add(memory_from, memory.floor)
    for lo, hi in memory.ranges:
        joined.add(lo, hi)
    return joined
