"""Counters (rollover, reset, jumps) and trapezoidal integration, by property."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge_agent.metrics.energy import (
    EVENT_JUMP,
    EVENT_RESET,
    EVENT_ROLLOVER,
    NS_PER_HOUR,
    NS_PER_S,
    CounterTracker,
    PowerIntegrator,
    counter_delta,
    deviation_pct,
    trapezoid_kwh,
)

MOD16 = 2**16
MOD32 = 2**32
allowances = st.one_of(st.none(), st.floats(min_value=0, max_value=MOD32))


@settings(deadline=None)  # timing varies on a shared CI machine
@given(
    st.integers(0, MOD32 - 1),
    st.integers(0, MOD32 - 1),
    st.sampled_from([None, MOD32]),
    allowances,
)
def test_a_counter_change_is_never_negative_nor_beyond_its_allowance(
    previous: int, current: int, modulus: int | None, allowance: float | None
) -> None:
    delta, _ = counter_delta(previous, current, modulus, allowance)
    assert delta is None or delta >= 0
    if delta is not None and allowance is not None:
        assert delta <= allowance
    if delta is not None and modulus is not None and allowance is None:
        assert delta < modulus // 2, "without a bound, at most half the range"


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(0, MOD32 - 1), st.integers(0, MOD32 // 2 - 1))
def test_a_rollover_is_recovered_exactly(previous: int, increase: int) -> None:
    current = (previous + increase) % MOD32
    delta, event = counter_delta(previous, current, MOD32, None)
    assert delta == increase
    assert event == (EVENT_ROLLOVER if current < previous else "")
    assert counter_delta(previous, current, MOD32, increase + 0.5)[0] == increase


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(1000, MOD32 - 1), st.integers(0, 999))
def test_a_reset_starts_a_new_segment_counted_from_zero_when_plausible(
    previous: int, current: int
) -> None:
    # A register cleared to zero that has counted up to `current` since.
    assert counter_delta(previous, current, None, 1000.0) == (current, EVENT_RESET)
    # Without a bound the change is unknown: not counted, never turned into a huge delta.
    assert counter_delta(previous, current, None, None) == (None, EVENT_RESET)
    assume(previous - current <= MOD32 // 2)  # wrapping would be a larger jump than that
    assert counter_delta(previous, current, MOD32, None) == (None, EVENT_RESET)


def test_a_forward_jump_beyond_the_plausible_is_rejected() -> None:
    assert counter_delta(100, 100 + 5000, None, 1000.0) == (None, EVENT_JUMP)
    assert counter_delta(100, 100 + MOD16 // 2, MOD16, None) == (None, EVENT_JUMP)
    assert counter_delta(100, 1100, None, None) == (1000, "")


@settings(deadline=None)  # timing varies on a shared CI machine
@given(
    st.integers(0, MOD16 - 1),
    st.lists(st.tuples(st.integers(1, 5), st.integers(0, MOD16 // 2 - 1)), max_size=60),
)
def test_tracker_sums_increments_across_any_number_of_rollovers(
    start: int, steps: list[tuple[int, int]]
) -> None:
    tracker = CounterTracker(0.01, MOD16, None, max_gap_ns=10 * NS_PER_S)
    t, raw = 0, start
    assert tracker.update(t, raw * 0.01) is None
    counted = 0
    for seconds, increase in steps:
        t += seconds * NS_PER_S
        raw = (raw + increase) % MOD16
        step = tracker.update(t, raw * 0.01)
        assert step is not None
        assert step.covered
        counted += step.ticks
    assert counted == sum(i for _, i in steps)
    assert tracker.rollovers == (start + counted) // MOD16


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(0, 2**40), st.sampled_from([0.01, 0.001, 0.1, 1.0]))
def test_scaled_register_values_round_trip_to_exact_ticks(raw: int, scale: float) -> None:
    tracker = CounterTracker(scale, None, None, NS_PER_S)
    tracker.update(0, raw * scale)
    assert tracker.last_ticks == raw


def test_readings_out_of_order_or_repeated_are_ignored() -> None:
    tracker = CounterTracker(1.0, None, None, 10 * NS_PER_S)
    tracker.update(5 * NS_PER_S, 100)
    assert tracker.update(5 * NS_PER_S, 100) is None
    assert tracker.update(4 * NS_PER_S, 90) is None
    step = tracker.update(6 * NS_PER_S, 103)
    assert step is not None
    assert (step.t1_ns, step.ticks) == (5 * NS_PER_S, 3)


def test_a_gap_is_bridged_by_the_counter_but_not_covered() -> None:
    tracker = CounterTracker(0.01, MOD32, 100.0 / 3600 / 0.01, max_gap_ns=3 * NS_PER_S)
    tracker.update(0, 10.0)
    step = tracker.update(600 * NS_PER_S, 12.5)
    assert step is not None
    assert (step.ticks, step.covered) == (250, False)


def test_state_round_trips() -> None:
    tracker = CounterTracker(0.01, MOD32, None, NS_PER_S)
    tracker.update(0, 1.0)
    tracker.update(NS_PER_S, 0.5)
    other = CounterTracker(0.01, MOD32, None, NS_PER_S)
    other.restore(tracker.state())
    assert other.state() == tracker.state()
    assert other.resets == 1


ramps = st.tuples(
    st.floats(-50, 500, allow_nan=False),
    st.floats(-1, 1, allow_nan=False),
    st.lists(st.integers(1, 2000), min_size=1, max_size=50),
)


@settings(deadline=None)  # timing varies on a shared CI machine
@given(ramps)
def test_trapezoid_integrates_a_linear_ramp_exactly(ramp: tuple[float, float, list[int]]) -> None:
    base, slope, gaps_ms = ramp
    integrator = PowerIntegrator(max_gap_ns=3 * NS_PER_S)
    t_ns, energy = 0, 0.0
    integrator.update(0, base)
    for gap in gaps_ms:
        t_ns += gap * 1_000_000
        step = integrator.update(t_ns, base + slope * t_ns / NS_PER_S)
        assert step is not None
        energy += step.kwh
    t_s = t_ns / NS_PER_S
    exact = (base * t_s + slope * t_s * t_s / 2) / 3600
    assert energy == pytest.approx(exact, rel=1e-9, abs=1e-12)


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.lists(st.integers(1, 10), min_size=2, max_size=40), st.floats(0, 1000))
def test_a_gap_longer_than_max_gap_is_not_bridged(gaps_s: list[int], kw: float) -> None:
    integrator = PowerIntegrator(max_gap_ns=5 * NS_PER_S)
    integrator.update(0, kw)
    t_ns, energy, covered_ns = 0, 0.0, 0
    for gap in gaps_s:
        t_ns += gap * NS_PER_S
        step = integrator.update(t_ns, kw)
        assert step is not None
        assert step.covered == (gap <= 5)
        energy += step.kwh
        covered_ns += gap * NS_PER_S if step.covered else 0
    assert energy == pytest.approx(kw * covered_ns / NS_PER_HOUR)


def test_deviation_of_integrated_power_from_the_counter() -> None:
    assert deviation_pct(101.0, 100.0) == pytest.approx(1.0)
    assert deviation_pct(5.0, 0.0) is None
    assert trapezoid_kwh(10.0, 20.0, NS_PER_HOUR) == 15.0
