"""Counters (rollover, reset, jumps) and trapezoidal integration, by property."""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from edge_agent.metrics.energy import (
    EVENT_GLITCH,
    EVENT_JUMP,
    EVENT_OUT_OF_RANGE,
    EVENT_RESET,
    EVENT_ROLLOVER,
    NS_PER_HOUR,
    NS_PER_S,
    ROLLOVER_SHARE,
    CounterStep,
    CounterTracker,
    PowerIntegrator,
    counter_delta,
    deviation_pct,
    trapezoid_kwh,
)

MOD16 = 2**16
MOD32 = 2**32
#: The largest wrapped increase taken for a rollover without a rate bound.
WRAP16 = MOD16 // ROLLOVER_SHARE
WRAP32 = MOD32 // ROLLOVER_SHARE
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
@given(st.integers(0, MOD32 - 1), st.integers(0, WRAP32))
def test_a_rollover_is_recovered_exactly(previous: int, increase: int) -> None:
    current = (previous + increase) % MOD32
    delta, event = counter_delta(previous, current, MOD32, None)
    assert delta == increase
    assert event == (EVENT_ROLLOVER if current < previous else "")
    assert counter_delta(previous, current, MOD32, increase + 0.5)[0] == increase


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(0, MOD16 - 1), st.integers(0, MOD16 - 1))
def test_without_a_bound_only_a_small_wrap_is_a_rollover(previous: int, current: int) -> None:
    assume(current < previous)
    delta, event = counter_delta(previous, current, MOD16, None)
    wrapped = current + MOD16 - previous
    if wrapped <= WRAP16:
        assert (delta, event) == (wrapped, EVENT_ROLLOVER)
    else:
        assert (delta, event) == (None, EVENT_RESET), "a reset is never a phantom count"


def test_a_parts_counter_reset_by_the_operator_is_no_rollover() -> None:
    # uint16 parts counter cleared at 40,000: not 25,536 parts made in a second.
    assert counter_delta(40_000, 0, MOD16, None) == (None, EVENT_RESET)
    assert counter_delta(65_530, 3, MOD16, None) == (9, EVENT_ROLLOVER)
    tracker = CounterTracker(1.0, MOD16, None, max_gap_ns=10 * NS_PER_S)
    tracker.update(0, 40_000)
    step = tracker.update(NS_PER_S, 0)
    assert step is not None
    assert (step.event, step.known) == (EVENT_RESET, False)
    counted = [tracker.update(k * NS_PER_S, k - 1) for k in range(2, 6)]
    assert [s.ticks for s in counted if s is not None] == [1, 1, 1, 1], "the new segment counts"


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(1000, MOD32 - 1), st.integers(0, 999))
def test_a_reset_starts_a_new_segment_counted_from_zero_when_plausible(
    previous: int, current: int
) -> None:
    # A register cleared to zero that has counted up to `current` since.
    assert counter_delta(previous, current, None, 1000.0) == (current, EVENT_RESET)
    # Without a bound the change is unknown: not counted, never turned into a huge delta.
    assert counter_delta(previous, current, None, None) == (None, EVENT_RESET)
    assume(current + MOD32 - previous > WRAP32)  # a small wrap would be a rollover
    assert counter_delta(previous, current, MOD32, None) == (None, EVENT_RESET)


def test_a_forward_jump_beyond_the_plausible_is_rejected() -> None:
    assert counter_delta(100, 100 + 5000, None, 1000.0) == (None, EVENT_JUMP)
    assert counter_delta(100, 100 + MOD16 // 2, MOD16, None) == (None, EVENT_JUMP)
    assert counter_delta(100, 1100, None, None) == (1000, "")


@settings(deadline=None)  # timing varies on a shared CI machine
@given(
    st.integers(0, MOD16 - 1),
    st.lists(st.tuples(st.integers(1, 5), st.integers(0, WRAP16)), max_size=60),
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


def _run(tracker: CounterTracker, readings: list[tuple[int, float]]) -> list[CounterStep]:
    steps = [tracker.update(t * NS_PER_S, v) for t, v in readings]
    return [s for s in steps if s is not None]


@pytest.mark.parametrize("modulus", [MOD32, None])
def test_a_counter_that_reads_zero_once_is_a_glitch_not_a_jump(modulus: int | None) -> None:
    # The review's case: 10000.00 -> 10000.05 -> 0 -> 10000.10 -> 10000.15 kWh.
    tracker = CounterTracker(0.01, modulus, None, max_gap_ns=30 * NS_PER_S)
    readings = [(0, 10000.00), (10, 10000.05), (20, 0.0), (30, 10000.10), (40, 10000.15)]
    steps = _run(tracker, readings)
    assert [s.event for s in steps] == ["", EVENT_RESET, EVENT_GLITCH, ""]
    assert sum(s.ticks for s in steps if s.known) == 15, "0.15 kWh, not 10,000"
    assert (tracker.resets, tracker.glitches, tracker.ref_ticks) == (1, 1, None)


def test_a_glitch_upwards_is_left_out_when_a_rate_bound_tells() -> None:
    # A torn 32-bit read: 0x0001FFFF -> 0x0002FFFF (a carry seen early) -> 0x00020001.
    tracker = CounterTracker(1.0, MOD32, 100.0, max_gap_ns=30 * NS_PER_S)
    steps = _run(tracker, [(0, 0x1FFFF), (1, 0x2FFFF), (2, 0x20001)])
    assert [(s.event, s.ticks) for s in steps] == [(EVENT_JUMP, 0), (EVENT_GLITCH, 2)]


def test_a_genuine_reset_starts_a_new_segment_and_forgets_the_old_one() -> None:
    tracker = CounterTracker(0.01, MOD32, None, max_gap_ns=30 * NS_PER_S)
    readings = [(0, 10.00), (10, 10.05), (20, 0.0)] + [(20 + k, 0.01 * k) for k in range(1, 600)]
    steps = _run(tracker, readings)
    assert steps[1].event == EVENT_RESET
    assert all(s.event == "" and s.ticks == 1 for s in steps[2:])
    assert tracker.ref_ticks is None, "counted half the drop: the old segment is forgotten"
    # The new meter reaching the old reading later is just counting on.
    step = tracker.update(700 * NS_PER_S, 10.10)
    assert step is not None
    assert (step.event, step.ticks) == ("", 1010 - 599)


def test_a_suspect_reset_survives_a_restart() -> None:
    tracker = CounterTracker(0.01, MOD32, None, max_gap_ns=30 * NS_PER_S)
    _run(tracker, [(0, 10000.00), (10, 0.0)])
    other = CounterTracker(0.01, MOD32, None, max_gap_ns=30 * NS_PER_S)
    other.restore(tracker.state())
    assert other.state() == tracker.state()
    step = other.update(20 * NS_PER_S, 10000.02)
    assert step is not None
    assert (step.event, step.ticks) == (EVENT_GLITCH, 2)


rates = st.sampled_from([None, 100.0])
moduli = st.sampled_from([None, MOD32])
increments = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 50)), min_size=1, max_size=30)


@settings(deadline=None)  # timing varies on a shared CI machine
@given(
    st.integers(10_000, 2**31),
    increments,
    st.lists(st.integers(0, 9_999), min_size=1, max_size=3),
    st.booleans(),
    increments,
    moduli,
    rates,
)
# Found by hypothesis: garbage decaying 2 then 1 was counted as two resets from zero.
@example(10_000, [(1, 0)], [1, 2], False, [(1, 0)], None, 100.0)
def test_glitch_readings_below_the_counter_never_count_the_way_back(
    start: int,
    before: list[tuple[int, int]],
    glitches: list[int],
    zeros: bool,
    after: list[tuple[int, int]],
    modulus: int | None,
    rate: float | None,
) -> None:
    """A counter counts ``before``, reads garbage (lower values) a few times, counts on."""
    if zeros:
        glitches = [0] * len(glitches)
    glitches.sort(reverse=True)  # a gateway answering zeros, or a value decaying to them
    tracker = CounterTracker(1.0, modulus, rate, max_gap_ns=30 * NS_PER_S)
    t, raw = 0, start
    readings = [(t, float(raw))]
    for seconds, increase in before:
        t, raw = t + seconds, raw + increase
        readings.append((t, float(raw)))
    for glitch in glitches:  # the true counter goes on while the garbage is read
        t += 1
        readings.append((t, float(glitch)))
    for seconds, increase in after:
        t, raw = t + seconds, raw + increase
        readings.append((t, float(raw)))
    steps = _run(tracker, readings)
    counted = sum(s.ticks for s in steps if s.known)
    truth = raw - start
    assert all(s.ticks >= 0 for s in steps)
    assert max(s.ticks for s in steps) <= 50 + sum(glitches), "no jump is ever counted"
    if rate is None or zeros:
        assert counted == truth
    else:
        # A small garbage value is a plausible count from zero with a rate bound; what it
        # counted is deducted when the counter comes back, never counted twice.
        assert truth <= counted <= truth + glitches[0]
    assert tracker.glitches == 1
    assert tracker.ref_ticks is None


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(10_000, 2**31), increments, st.integers(0, 50), increments, moduli, rates)
def test_a_genuine_reset_counts_the_new_segment_exactly(
    start: int,
    before: list[tuple[int, int]],
    first: int,
    after: list[tuple[int, int]],
    modulus: int | None,
    rate: float | None,
) -> None:
    """Cleared to zero, the register counted ``first`` by the next poll, then counts on."""
    tracker = CounterTracker(1.0, modulus, rate, max_gap_ns=30 * NS_PER_S)
    t, raw = 0, start
    readings = [(t, float(raw))]
    for seconds, increase in before:
        t, raw = t + seconds, raw + increase
        readings.append((t, float(raw)))
    t, raw = t + 1, first
    readings.append((t, float(raw)))
    for seconds, increase in after:
        t, raw = t + seconds, raw + increase
        readings.append((t, float(raw)))
    steps = _run(tracker, readings)
    reset = [s for s in steps if s.event]
    assert [s.event for s in reset] == [EVENT_RESET]
    expected = sum(i for _, i in before) + sum(i for _, i in after)
    if rate is not None:
        expected += first  # plausible for a second at the rate bound: counted from zero
    assert sum(s.ticks for s in steps if s.known) == expected
    assert all(0 <= s.ticks <= 50 for s in steps)


@settings(deadline=None)  # timing varies on a shared CI machine
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 2**20)), min_size=2, max_size=40),
    moduli,
)
def test_with_a_rate_bound_no_sequence_of_readings_counts_more_than_can_flow(
    readings: list[tuple[int, int]], modulus: int | None
) -> None:
    rate = 50.0
    tracker = CounterTracker(1.0, modulus, rate, max_gap_ns=30 * NS_PER_S)
    t, timed = 0, []
    for seconds, value in readings:
        t += seconds
        timed.append((t, float(value)))
    steps = _run(tracker, timed)
    counted = sum(s.ticks for s in steps if s.known)
    assert all(s.ticks >= 0 for s in steps)
    assert counted <= rate * (t - timed[0][0]) + len(steps)


@settings(deadline=None)  # timing varies on a shared CI machine
@given(st.integers(0, 2**40), st.sampled_from([0.01, 0.001, 0.1, 1.0]))
def test_scaled_register_values_round_trip_to_exact_ticks(raw: int, scale: float) -> None:
    tracker = CounterTracker(scale, None, None, NS_PER_S)
    tracker.update(0, raw * scale)
    assert tracker.last_ticks == raw


@pytest.mark.parametrize(
    ("resolution", "modulus", "absurd"),
    [
        (1e-6, None, 1e303),  # a float64 register holding garbage: 1e309 ticks overflow
        (1e-6, None, float("inf")),
        (1e-6, None, float("nan")),
        (0.01, None, -1e300),
        (0.01, MOD32, 42_949_673.0),  # beyond what a uint32 register with scale 0.01 holds
    ],
)
def test_a_reading_that_cannot_be_a_counter_value_is_left_out_and_reported_once(
    resolution: float, modulus: int | None, absurd: float
) -> None:
    tracker = CounterTracker(resolution, modulus, None, max_gap_ns=10 * NS_PER_S)
    assert tracker.update(0, 100.0) is None
    first = tracker.update(NS_PER_S, absurd)
    assert first is not None
    assert (first.event, first.known, first.covered, first.ticks) == (
        EVENT_OUT_OF_RANGE,
        False,
        False,
        0,
    )
    assert tracker.update(2 * NS_PER_S, absurd) is None, "reported once per run"
    step = tracker.update(3 * NS_PER_S, 100.5)
    assert step is not None, "the counter goes on from its last good reading"
    assert (step.t1_ns, step.ticks * resolution, step.event) == (0, pytest.approx(0.5), "")
    assert tracker.rejected == 2
    again = tracker.update(4 * NS_PER_S, absurd)
    assert again is not None, "a new run is news"
    assert again.event == EVENT_OUT_OF_RANGE


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
