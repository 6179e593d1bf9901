"""Spreading intervals over windows: totals are exact, late parts land once, staging is exact."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.metrics.tracks import Stager, WindowTrack
from edge_agent.metrics.windows import (
    NS_PER_S,
    DayWindows,
    FixedWindows,
    LocalTime,
    ShiftCalendar,
    ShiftSpec,
    ShiftWindows,
    WindowKind,
)

T0 = 1_714_924_800 * NS_PER_S  # 2024-05-05 16:00 UTC, midnight in Shanghai
LOCAL = LocalTime("Asia/Shanghai")


class Acc:
    def __init__(self) -> None:
        self.amount = 0.0
        self.late = 0.0
        self.seconds = 0

    def state(self) -> dict[str, Any]:
        return {"amount": self.amount, "late": self.late, "seconds": self.seconds}

    def merge(self, other: Acc) -> None:
        self.amount += other.amount
        self.late += other.late
        self.seconds += other.seconds


def adder(amount: float, t1: int, t2: int) -> Any:
    def add(acc: Acc, a: int, b: int, late: bool) -> None:
        share = amount * (b - a) / (t2 - t1)
        acc.amount += share
        if late:
            acc.late += share
        else:
            acc.seconds += (b - a) // NS_PER_S

    return add


def kinds() -> list[WindowKind]:
    calendar = ShiftCalendar(
        [ShiftSpec("a", 6 * 60, 14 * 60), ShiftSpec("b", 14 * 60, 22 * 60)], LOCAL
    )
    return [
        FixedWindows(60, LOCAL),
        FixedWindows(900, LOCAL),
        DayWindows(LOCAL),
        ShiftWindows(calendar),
    ]


samples = st.lists(
    st.tuples(st.integers(1, 400), st.floats(0, 100), st.integers(0, 1200)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(samples, st.integers(0, 86_400))
def test_every_amount_is_counted_exactly_once_whatever_closes_when(
    steps: list[tuple[int, float, int]], offset_s: int
) -> None:
    """Intervals of random length (gaps too), windows closing on a random clock."""
    tracks = [WindowTrack(kind, Acc) for kind in kinds()]
    closed: list[list[Acc]] = [[] for _ in tracks]
    t = T0 + offset_s * NS_PER_S
    total = 0.0
    for seconds, amount, delay_s in steps:
        t1, t = t, t + seconds * NS_PER_S
        for track in tracks:
            track.spread(t1, t, adder(amount, t1, t))
        total += amount
        now = t + delay_s * NS_PER_S  # the clock runs ahead: some windows close first
        for track, bucket in zip(tracks, closed, strict=True):
            track.ensure(now)
            bucket += [w.acc for w in track.pop_due(now, 5 * NS_PER_S)]
    for track, bucket in zip(tracks[:3], closed[:3], strict=True):
        everything = bucket + [w.acc for w in track.open]
        assert sum(a.amount for a in everything) == pytest.approx(total, rel=1e-9, abs=1e-9)
        assert all(a.seconds * NS_PER_S <= track.kind.nominal_ns for a in everything)
    # Shift windows count only what lies in shifts: never more than the total.
    shift_total = sum(a.amount for a in closed[3] + [w.acc for w in tracks[3].open])
    assert shift_total <= total + 1e-6


@settings(max_examples=60, deadline=None)
@given(samples, st.integers(0, 86_400))
def test_staging_gives_the_same_windows_as_spreading_into_each(
    steps: list[tuple[int, float, int]], offset_s: int
) -> None:
    direct = [WindowTrack(kind, Acc) for kind in kinds()]
    staged_tracks = [WindowTrack(kind, Acc) for kind in kinds()]
    stager = Stager(staged_tracks, Acc, Acc.merge)
    t = T0 + offset_s * NS_PER_S
    for seconds, amount, _ in steps:
        t1, t = t, t + seconds * NS_PER_S
        for track in direct:
            track.spread(t1, t, adder(amount, t1, t))
        stager.spread(t1, t, adder(amount, t1, t))
    stager.flush()
    for a, b in zip(direct, staged_tracks, strict=True):
        staged = {(w.start_ns, w.end_ns): w.acc for w in b.open}
        for window in a.open:
            acc = staged.pop((window.start_ns, window.end_ns))
            assert acc.amount == pytest.approx(window.acc.amount, rel=1e-9, abs=1e-9)
            assert acc.seconds == window.acc.seconds
        # The stager may already have opened the window after the last sample: empty.
        assert all(acc.amount == 0 and acc.seconds == 0 for acc in staged.values())


def test_a_part_belonging_to_a_closed_window_is_late_in_the_window_it_ended_in() -> None:
    track = WindowTrack(FixedWindows(60, LOCAL), Acc)
    track.ensure(T0)
    track.spread(T0, T0 + 30 * NS_PER_S, adder(30.0, T0, T0 + 30 * NS_PER_S))
    assert len(track.pop_due(T0 + 65 * NS_PER_S, 5 * NS_PER_S)) == 1
    # A communication gap: the next sample comes at 1:30 and covers 0:30-1:30.
    t1, t2 = T0 + 30 * NS_PER_S, T0 + 90 * NS_PER_S
    track.spread(t1, t2, adder(60.0, t1, t2))
    (window,) = track.open
    assert window.start_ns == T0 + 60 * NS_PER_S
    assert window.acc.amount == pytest.approx(60.0)
    assert window.acc.late == pytest.approx(30.0)
    assert window.acc.seconds == 30, "time of the closed window is not moved"
