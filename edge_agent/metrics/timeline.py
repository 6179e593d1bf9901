"""Today's state changes of one machine, for the console's state band.

The :class:`~edge_agent.metrics.utilization.StateTracker` tells a :class:`StateTimeline`
only when the state *changes* (or a gap longer than ``max_gap`` ends): never per
sample, so its cost on the data path is one call per change. Points are
``(t_ns, state)``: ``state`` holds from ``t_ns`` until the next point, and the last
one until the tracker's last sample (what comes after it is for the reader to judge
against ``max_gap``, see :meth:`StateTimeline.intervals`).

Bounded twice: a change on a new local day drops the points of earlier days (except
the one whose state held at midnight), and at most ``max_changes`` points are kept,
the oldest dropped first (:attr:`StateTimeline.dropped` counts them, so the reader
can say that the band starts later than midnight and why).

Kept in memory only: it is not in ``metrics-state.json`` (up to 2,000 points per
machine, saved every minute, would multiply the file). After a restart the band
starts at the machine's last saved state; what came before it is in the published
``utilization`` metrics, not on the band.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

#: The state of time that no good reading covers (a gap longer than ``max_gap``); the
#: four machine states are 0-3 (:data:`~edge_agent.metrics.utilization.STATE_NAMES`).
UNKNOWN: Final = 4
#: At most this many points per machine (a machine changing state every 43 s all day).
MAX_CHANGES: Final = 2000


class StateTimeline:
    """The state changes of one machine today (see the module docstring)."""

    __slots__ = ("_day_bounds", "_day_end_ns", "_day_start_ns", "dropped", "points")

    def __init__(
        self,
        day_bounds: Callable[[int], tuple[int, int]],
        max_changes: int = MAX_CHANGES,
    ) -> None:
        #: ``(start_ns, end_ns)`` of the local day containing a time.
        self._day_bounds = day_bounds
        self._day_start_ns = 0
        self._day_end_ns = 0
        self.points: deque[tuple[int, int]] = deque(maxlen=max_changes)
        #: Points of the current day dropped to stay within ``max_changes``.
        self.dropped = 0

    def change(self, t_ns: int, state: int, gap_from_ns: int | None = None) -> None:
        """From ``t_ns`` the state is ``state``; ``gap_from_ns``: unknown since then."""
        if t_ns >= self._day_end_ns:
            self._new_day(t_ns)
        points = self.points
        if gap_from_ns is not None:
            if points and points[-1][0] >= gap_from_ns:
                points.pop()  # a state that lasted no time before the gap
            self._append(gap_from_ns, UNKNOWN)
        self._append(t_ns, state)

    def _append(self, t_ns: int, state: int) -> None:
        points = self.points
        if points and points[-1][1] == state:
            return  # two gaps in a row, each after a single reading: one unknown stretch
        if len(points) == points.maxlen:
            self.dropped += 1
        points.append((t_ns, state))

    def _new_day(self, t_ns: int) -> None:
        """Forget earlier days, but keep the point whose state held at midnight."""
        self._day_start_ns, self._day_end_ns = self._day_bounds(t_ns)
        points = self.points
        while len(points) > 1 and points[1][0] <= self._day_start_ns:
            points.popleft()
        self.dropped = 0

    def intervals(
        self, start_ns: int, now_ns: int, last_ns: int | None, fresh: bool
    ) -> list[tuple[int, int, int]]:
        """``(start, end, state)`` intervals within ``[start_ns, now_ns)``, in order.

        ``last_ns`` is the tracker's last sample; ``fresh`` whether the state read then
        still holds at ``now_ns`` (the reader knows ``max_gap`` and any pending
        dwell): if so the last state runs to ``now_ns``, else it ends at ``last_ns``
        and the time after it is unknown, as the metrics will count it.
        """
        points = list(self.points)
        if not points or last_ns is None:
            return []
        tail = now_ns if fresh else last_ns
        out: list[tuple[int, int, int]] = []
        for index, (t, state) in enumerate(points):
            end = points[index + 1][0] if index + 1 < len(points) else tail
            _clip(out, max(t, start_ns), min(end, now_ns), state)
        if not fresh:
            _clip(out, max(last_ns, start_ns), now_ns, UNKNOWN)
        return out

    def first_ns(self) -> int | None:
        """When the kept timeline begins (``None``: no state seen yet)."""
        return self.points[0][0] if self.points else None


def _clip(out: list[tuple[int, int, int]], start: int, end: int, state: int) -> None:
    """Append ``[start, end)`` unless empty; merge it into a previous one of the same state."""
    if end <= start:
        return
    if out and out[-1][2] == state and out[-1][1] == start:
        out[-1] = (out[-1][0], end, state)
    else:
        out.append((start, end, state))
