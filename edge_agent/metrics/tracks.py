"""Open windows of one kind for one device, and how an interval is spread over them.

Every calculator produces *intervals* (``[t1, t2)`` with an amount or a state). A
:class:`WindowTrack` holds the windows of one kind (``15m``, ``1d``, ``shift``...)
that are still open for one device, and adds each interval to the windows it
overlaps, in proportion to the overlap (linear interpolation: a counter delta
across a boundary is split by time).

A window stays open until ``end + grace``, so late samples are still counted; then
it is closed and published. A part of an interval that falls into a window that is
already closed (a late sample after the grace period, a communication gap, an agent
restart) is *late*: extensive quantities (energy, parts) are added to the window the
interval ended in and reported there as late, so that the sum over windows stays
exact; time-like quantities (time in state, coverage) of a closed window cannot be
repaired and are dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from edge_agent.metrics.windows import WindowKind

#: How many windows a track opens one by one to catch up after an absence; beyond
#: that (the agent was stopped for days) it jumps to the current window.
MAX_CATCHUP_WINDOWS = 100


class Accumulator(Protocol):
    def state(self) -> dict[str, Any]: ...


A = TypeVar("A", bound=Accumulator)

#: Adds the part ``[a_ns, b_ns)`` of an interval to a window's accumulator; ``late``
#: when that part belongs to an earlier, already closed window.
Add = Callable[[A, int, int, bool], None]


class OpenWindow(Generic[A]):
    """A window that is still accepting data, with its accumulator."""

    __slots__ = ("acc", "end_ns", "label", "start_ns")

    def __init__(self, start_ns: int, end_ns: int, label: str, acc: A) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.label = label
        self.acc = acc


class WindowTrack(Generic[A]):
    """The open windows of one kind for one device, oldest first."""

    __slots__ = ("_catchup_ns", "_new", "kind", "open")

    def __init__(self, kind: WindowKind, new_acc: Callable[[], A]) -> None:
        self.kind = kind
        self._new = new_acc
        self._catchup_ns = MAX_CATCHUP_WINDOWS * kind.nominal_ns
        self.open: list[OpenWindow[A]] = []

    def ensure(self, t_ns: int) -> None:
        """Open windows up to the one containing ``t_ns`` (for shifts: or the next one)."""
        open_ = self.open
        if open_ and open_[-1].end_ns > t_ns:
            return
        cursor = open_[-1].end_ns if open_ else t_ns
        if t_ns - cursor > self._catchup_ns:
            cursor = t_ns
        while True:
            window = self.kind.next_window(cursor)
            if window is None:
                return
            if open_ and window.start_ns < open_[-1].end_ns:
                return  # cannot happen with consistent kinds; never overlap windows
            open_.append(OpenWindow(window.start_ns, window.end_ns, window.label, self._new()))
            if window.end_ns > t_ns:
                return
            cursor = window.end_ns

    def spread(self, t1_ns: int, t2_ns: int, add: Add[A]) -> None:
        """Add the interval ``[t1_ns, t2_ns)`` to the windows it overlaps."""
        self.ensure(t2_ns - 1)
        open_ = self.open
        if not open_:
            return
        last = open_[-1]
        if last.start_ns <= t1_ns and t2_ns <= last.end_ns:
            add(last.acc, t1_ns, t2_ns, False)
            return
        first = open_[0]
        if first.start_ns <= t1_ns and t2_ns <= first.end_ns:
            add(first.acc, t1_ns, t2_ns, False)
            return
        # The window the interval ended in takes whatever belongs to closed windows.
        target = next((w for w in reversed(open_) if w.start_ns < t2_ns), first)
        cursor = t1_ns
        for window in open_:
            if window.end_ns <= cursor:
                continue
            if window.start_ns >= t2_ns:
                break
            if cursor < window.start_ns:
                for a, b in self.kind.inside(cursor, window.start_ns):
                    add(target.acc, a, b, True)
            end = min(t2_ns, window.end_ns)
            add(window.acc, max(cursor, window.start_ns), end, False)
            cursor = end
        if cursor < t2_ns:
            for a, b in self.kind.inside(cursor, t2_ns):
                add(target.acc, a, b, True)

    def containing(self, t_ns: int) -> OpenWindow[A] | None:
        """The open window containing ``t_ns``, if any."""
        for window in self.open:
            if window.start_ns <= t_ns < window.end_ns:
                return window
        return None

    def pop_due(self, now_ns: int, grace_ns: int, not_before_ns: int = 0) -> list[OpenWindow[A]]:
        """Remove and return the windows whose ``end + grace`` (and ``not_before``) has passed."""
        due: list[OpenWindow[A]] = []
        open_ = self.open
        while open_ and max(open_[0].end_ns + grace_ns, not_before_ns) <= now_ns:
            due.append(open_.pop(0))
        return due

    def deadline_ns(self, grace_ns: int, not_before_ns: int = 0) -> int | None:
        """When the oldest open window is due to close."""
        if not self.open:
            return None
        return max(self.open[0].end_ns + grace_ns, not_before_ns)

    def state(self) -> list[list[Any]]:
        return [[w.start_ns, w.end_ns, w.label, w.acc.state()] for w in self.open]

    def restore(self, state: list[list[Any]], load: Callable[[dict[str, Any]], A]) -> None:
        self.open = [
            OpenWindow(int(start), int(end), str(label), load(acc))
            for start, end, label, acc in state
        ]


class Stager(Generic[A]):
    """Adds intervals once, not once per window kind, while they stay in one *segment*.

    A segment is the intersection of the windows of every kind that contain the
    current time (with 1m, 15m, 1h, 1d windows: the current minute). Intervals inside
    it go to one staging accumulator; at its end (or before windows close, or the
    state is saved) the stage is merged into each kind's window once. With samples
    every second that turns six additions per interval into one.
    """

    __slots__ = ("_merge", "_new", "_tracks", "dirty", "end_ns", "stage", "start_ns")

    def __init__(
        self,
        tracks: list[WindowTrack[A]],
        new_acc: Callable[[], A],
        merge: Callable[[A, A], None],
    ) -> None:
        self._tracks = tracks
        self._new = new_acc
        self._merge = merge
        self.stage = new_acc()
        self.dirty = False
        self.start_ns = 0
        self.end_ns = 0

    def spread(self, t1_ns: int, t2_ns: int, add: Add[A]) -> None:
        if self.start_ns <= t1_ns and t2_ns <= self.end_ns:
            add(self.stage, t1_ns, t2_ns, False)
            self.dirty = True
            return
        self.flush()
        for track in self._tracks:
            track.spread(t1_ns, t2_ns, add)
        self._segment(t2_ns)

    def flush(self, *, invalidate: bool = False) -> None:
        """Merge the stage into the windows; ``invalidate``: windows may close next."""
        if self.dirty:
            for track in self._tracks:
                window = track.containing(self.start_ns)
                if window is not None:
                    self._merge(window.acc, self.stage)
            self.stage = self._new()
            self.dirty = False
        if invalidate:
            self.start_ns = self.end_ns = 0

    def _segment(self, t_ns: int) -> None:
        """Start the segment that contains ``t_ns`` (none if ``t_ns`` is in a closed window)."""
        low, high = t_ns, t_ns + (1 << 62)
        for track in self._tracks:
            track.ensure(t_ns)
            window = track.containing(t_ns)
            if window is not None:
                low, high = max(low, window.start_ns), min(high, window.end_ns)
                continue
            if track.kind.window_at(t_ns) is not None:
                self.start_ns = self.end_ns = 0  # late data: every interval takes the slow path
                return
            # Between two shifts: the segment ends where the next shift starts.
            upcoming = next((w for w in track.open if w.start_ns > t_ns), None)
            if upcoming is not None:
                high = min(high, upcoming.start_ns)
        self.start_ns, self.end_ns = low, high
