"""Machine state from power (hysteresis, dwell), state timelines, ISO 22400-2 KPIs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.metrics.utilization import (
    IDLE,
    OFF,
    RUN,
    PowerStateDeriver,
    StateTracker,
    compute_kpis,
    kwh_per_part,
)

S = 1_000_000_000


def feed(deriver: PowerStateDeriver, powers: list[float]) -> list[tuple[int, int]]:
    points: list[tuple[int, int]] = []
    for second, kw in enumerate(powers):
        points += deriver.update(second * S, kw)
    return points


def test_noise_inside_the_hysteresis_band_does_not_flap_the_state() -> None:
    deriver = PowerStateDeriver(off_below=1.0, run_above=20.0, hysteresis=4.0, min_dwell_ns=0)
    noisy = [25.0, 19.0, 21.5, 18.5, 20.5, 19.2, 25.0]  # around 20, inside 18..22 once running
    assert {state for _, state in feed(deriver, noisy)} == {RUN}
    deriver = PowerStateDeriver(off_below=1.0, run_above=20.0, hysteresis=4.0, min_dwell_ns=0)
    assert [s for _, s in feed(deriver, [10.0, 21.0, 22.5])] == [IDLE, IDLE, RUN]


def test_a_change_must_dwell_and_is_then_dated_back_to_its_first_sample() -> None:
    deriver = PowerStateDeriver(off_below=1.0, run_above=20.0, hysteresis=0.0, min_dwell_ns=2 * S)
    # A 1 s spike to run is noise; a stop that lasts is off from its first second.
    points = feed(deriver, [10, 10, 30, 10, 10, 0, 0, 0, 0, 10])
    assert points == [
        (0, IDLE),
        (1 * S, IDLE),
        (2 * S, IDLE),  # the spike, released as the state that held
        (3 * S, IDLE),
        (4 * S, IDLE),
        (5 * S, OFF),  # confirmed at 7 s, dated back to 5 s
        (6 * S, OFF),
        (7 * S, OFF),
        (8 * S, OFF),
    ]
    assert deriver.pending == IDLE, "the last sample waits for its dwell"


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.lists(st.floats(0, 50), min_size=1, max_size=50))
def test_without_band_and_dwell_the_state_is_the_plain_threshold(powers: list[float]) -> None:
    deriver = PowerStateDeriver(off_below=2.0, run_above=20.0, hysteresis=0.0, min_dwell_ns=0)
    states = [s for _, s in feed(deriver, powers)]
    assert states == [RUN if p >= 20 else OFF if p < 2 else IDLE for p in powers]


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.lists(st.floats(0, 50), max_size=60), st.integers(0, 5))
def test_every_sample_is_released_once_in_order(powers: list[float], dwell_s: int) -> None:
    deriver = PowerStateDeriver(2.0, 20.0, 3.0, dwell_s * S)
    times = [t for t, _ in feed(deriver, powers)]
    assert times == sorted(set(times))
    assert len(times) + len(deriver.pending_times) == len(powers)


def test_thresholds_with_overlapping_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        PowerStateDeriver(off_below=5.0, run_above=6.0, hysteresis=2.0, min_dwell_ns=0)


def test_state_intervals_hold_the_previous_state_and_gaps_are_unknown() -> None:
    tracker = StateTracker(max_gap_ns=3 * S)
    assert tracker.update(0, IDLE) is None
    step = tracker.update(1 * S, RUN)
    assert step is not None
    assert (step.state, step.covered) == (IDLE, True)
    step = tracker.update(10 * S, RUN)
    assert step is not None
    assert (step.state, step.covered) == (RUN, False)
    assert tracker.update(10 * S, OFF) is None, "a repeated timestamp is ignored"


def test_iso_22400_kpis_of_a_shift() -> None:
    # 480 min planned, 400 min producing, 380 parts at 1 min ideal, 361 good.
    kpis = compute_kpis(480 * 60, 400 * 60, 380, 361, 60.0)
    assert kpis.availability == pytest.approx(400 / 480)
    assert kpis.effectiveness == pytest.approx(380 / 400)
    assert kpis.quality_ratio == pytest.approx(0.95)
    assert kpis.oee == pytest.approx(400 / 480 * 0.95 * 0.95)


def test_kpis_that_are_undefined_or_zero() -> None:
    nothing_planned = compute_kpis(0, 0, 0, 0, 60.0)
    assert nothing_planned.availability is None
    assert nothing_planned.oee is None
    stood_still = compute_kpis(3600, 0, 0, 0, 60.0)
    assert (stood_still.availability, stood_still.oee) == (0.0, 0.0)
    ran_empty = compute_kpis(3600, 1800, 0, 0, 60.0)
    assert (ran_empty.effectiveness, ran_empty.quality_ratio, ran_empty.oee) == (0.0, None, 0.0)
    no_parts = compute_kpis(3600, 1800, None, None, None)
    assert (no_parts.availability, no_parts.oee) == (0.5, None)
    assert kwh_per_part(12.0, 4.0) == 3.0
    assert kwh_per_part(12.0, 0.0) is None
