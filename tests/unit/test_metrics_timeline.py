"""A machine's state band: kept per change, bounded, and equal to the time the metrics count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.metrics.timeline import UNKNOWN, StateTimeline
from edge_agent.metrics.utilization import FAULT, IDLE, OFF, RUN, StateTracker

S = 1_000_000_000
DAY = 86_400 * S


def days(t_ns: int) -> tuple[int, int]:
    """UTC days, for these tests."""
    start = t_ns - t_ns % DAY
    return start, start + DAY


def tracked(max_changes: int = 2000, max_gap_s: int = 3) -> tuple[StateTracker, StateTimeline]:
    timeline = StateTimeline(days, max_changes)
    return StateTracker(max_gap_ns=max_gap_s * S, timeline=timeline), timeline


def test_a_steady_state_is_one_point_however_many_samples() -> None:
    tracker, timeline = tracked()
    for second in range(10_000):
        tracker.update(second * S, RUN)
    assert list(timeline.points) == [(0, RUN)]
    tracker.update(10_000 * S, IDLE)
    tracker.update(10_001 * S, IDLE)
    assert list(timeline.points) == [(0, RUN), (10_000 * S, IDLE)]


def test_a_gap_is_unknown_from_the_last_reading_to_the_next() -> None:
    tracker, timeline = tracked()
    for second in (0, 1, 2, 10, 11):
        tracker.update(second * S, RUN)
    assert list(timeline.points) == [(0, RUN), (2 * S, UNKNOWN), (10 * S, RUN)]
    assert timeline.intervals(0, 12 * S, 11 * S, fresh=True) == [
        (0, 2 * S, RUN),
        (2 * S, 10 * S, UNKNOWN),
        (10 * S, 12 * S, RUN),
    ]
    # Nothing read since 11 s, and the reader says that is too long: unknown from 11 s.
    assert timeline.intervals(0, 20 * S, 11 * S, fresh=False)[-1] == (11 * S, 20 * S, UNKNOWN)


def test_a_state_read_once_before_a_gap_lasted_no_time() -> None:
    tracker, timeline = tracked()
    tracker.update(0, RUN)
    tracker.update(1 * S, FAULT)
    tracker.update(9 * S, FAULT)
    assert list(timeline.points) == [(0, RUN), (1 * S, UNKNOWN), (9 * S, FAULT)]


def test_at_most_max_changes_are_kept_and_the_dropped_are_counted() -> None:
    tracker, timeline = tracked(max_changes=5)
    for second in range(8):
        tracker.update(second * S, (RUN, IDLE)[second % 2])
    assert len(timeline.points) == 5
    assert timeline.dropped == 3
    assert timeline.first_ns() == 3 * S
    assert timeline.intervals(0, 8 * S, 7 * S, fresh=True)[0] == (3 * S, 4 * S, IDLE)


def test_a_new_day_forgets_yesterday_but_the_state_held_at_midnight() -> None:
    tracker, timeline = tracked(max_changes=5, max_gap_s=10)
    for second in range(8):
        tracker.update(DAY - 10 * S + second * S, (RUN, IDLE)[second % 2])
    assert timeline.dropped == 3
    tracker.update(DAY + 5 * S, OFF)  # today's first change
    assert list(timeline.points) == [(DAY - 3 * S, IDLE), (DAY + 5 * S, OFF)]
    assert timeline.dropped == 0, "nothing of today was dropped"
    assert timeline.intervals(DAY, DAY + 6 * S, DAY + 5 * S, fresh=True) == [
        (DAY, DAY + 5 * S, IDLE),
        (DAY + 5 * S, DAY + 6 * S, OFF),
    ]


def test_a_restored_tracker_starts_the_band_at_its_saved_state() -> None:
    tracker, timeline = tracked()
    tracker.restore({"last_ns": 100 * S, "state": RUN})
    tracker.update(101 * S, RUN)
    assert list(timeline.points) == [(100 * S, RUN)], "it held: one reading later, still run"
    tracker, timeline = tracked()
    tracker.restore({"last_ns": 100 * S, "state": RUN})
    tracker.update(500 * S, RUN)  # down for 400 s
    assert list(timeline.points) == [(100 * S, UNKNOWN), (500 * S, RUN)]


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from((OFF, IDLE, RUN, FAULT)))))
def test_the_band_is_the_time_the_metrics_count(samples: list[tuple[int, int]]) -> None:
    """Every StateStep (covered: its state, not: unknown) lies on the band, and nothing else."""
    tracker, timeline = tracked()
    t = 0
    expected: list[tuple[int, int, int]] = []
    for step_s, state in samples:
        t += step_s * S
        step = tracker.update(t, state)
        if step is not None:
            known = step.state if step.covered else UNKNOWN
            if expected and expected[-1][2] == known:
                expected[-1] = (expected[-1][0], step.t2_ns, known)
            else:
                expected.append((step.t1_ns, step.t2_ns, known))
    assert timeline.intervals(0, t, tracker.last_ns, fresh=True) == expected
    # Merged, neighbouring stretches differ: a point per stretch, and one at the last reading.
    assert len(timeline.points) <= len(expected) + 1
