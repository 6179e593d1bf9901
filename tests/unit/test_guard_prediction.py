"""The demand guard's prediction against the simulator's exact ground truth, and its bound.

The demo plant's line meter (6 kW base load plus a CNC and a press that run, idle and
fault at random) is polled every second in simulated time for two hours. For every
prediction at time ``t`` of a block ``[b, b + T)`` the block's true demand ``D`` is
known from the model's energy in microjoules, and so is how far the true power
strays from the power the agent read at ``t`` over the rest of the block (``dP``).
docs/METRICS.md states the bound checked here:

    |D - predicted| <= dP x (b + T - t) / T + r / T

(``r`` = 0.01 kWh, the counter's resolution; plus the published rounding). At the
last poll of a block, and wherever power stays constant, that is an exact prediction.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config.loader import parse_config
from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import Quality, SampleBatch
from simulators.profile import parse_profile
from simulators.stepping import UJ_PER_KWH
from tests.metrics_sim import SimulatedPolling, metric_tags
from tests.plant import CONFIG_FILE, PROFILE_FILE

ZONE = ZoneInfo("Asia/Shanghai")
S = 1_000_000_000
BLOCK = 900
START = int(dt.datetime(2024, 5, 6, 9, 0, tzinfo=ZONE).timestamp())  # a block's start
HOURS = 2
COUNTER_KWH = 0.01
#: The counter's resolution as demand over a block, and the published rounding (0.001 kW).
SLACK_KW = COUNTER_KWH * 3600 / BLOCK + 0.0011

METRICS = """
metrics:
  windows: [15m]
  meters:
    - device: line-meter
      counter: {tag: energy_import}
      power: {tag: power_active}
      max_power: 150
      demand_guard: {limit_kw: 30, quiet_start: 0s}
"""


def float32(value: float) -> float:
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result


def test_the_prediction_is_within_its_stated_bound_of_the_true_block_demand() -> None:
    text = CONFIG_FILE.read_text()
    text = text[
        : text.index(
            "\n# ------------------------------------------------------------------ metrics"
        )
    ]
    config = parse_config(text + METRICS, "guard.yaml", env={})
    profile = parse_profile(PROFILE_FILE.read_text())
    polling = SimulatedPolling(profile, config, START, only_tags=metric_tags(config))
    now = [float(START)]
    processor = MetricsProcessor(config, clock=lambda: now[0])
    meter = polling.simulation.meter("line-meter")
    energy_uj: dict[int, int] = {}
    power: dict[int, float] = {}
    predictions: list[tuple[int, int, float]] = []
    end = START + HOURS * 3600
    for t, batches in polling.run(end):
        second = round(t)
        now[0] = t
        energy_uj[second] = meter.energy_uj()
        power[second] = meter.power_kw  # constant over [t, t + 1): the model's step
        for incoming in batches:
            for out in processor(incoming):
                info = metric_info(out)
                if info is None or info.family != "demand_guard":
                    continue
                assert info.bounds is not None
                values = dict(zip(out.names, out.values, strict=True))
                assert all(q is Quality.GOOD for q in out.qualities)
                assert isinstance(values["predicted_kw"], float)
                block = info.bounds[0] // S
                predictions.append((out.timestamp_ns // S, block, values["predicted_kw"]))
    assert len(predictions) == HOURS * 3600 + 1, "one prediction per poll (both ends)"
    worst_share = 0.0
    exact_checked = 0
    for t, block, predicted in predictions:
        if block + BLOCK > end:
            continue
        true_kw = (energy_uj[block + BLOCK] - energy_uj[block]) / UJ_PER_KWH * 3600 / BLOCK
        seen = float32(power[t])
        d_p = max(abs(power[s] - seen) for s in range(t, block + BLOCK))
        bound = d_p * (block + BLOCK - t) / BLOCK + SLACK_KW
        error = abs(predicted - true_kw)
        assert error <= bound, (t - block, predicted, true_kw, d_p, bound)
        if d_p < 1e-5:
            exact_checked += 1  # power constant to the end: exact to the counter's count
        worst_share = max(worst_share, error / bound)
    assert exact_checked >= 8, "the last poll of every block at least"
    assert worst_share > 0.3, "the bound is not vacuous: some predictions come near it"


def test_constant_power_is_predicted_exactly_from_the_first_poll() -> None:
    """A power-only meter at a constant 42 kW: every prediction is 42 kW (trapezoids of
    a constant are exact), with the agent started mid-block (the unknown part of the
    block is taken at the current power)."""
    yaml = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags: [{name: power, address: 0, type: float32, unit: kW}]
metrics:
  windows: [15m]
  meters: [{device: m, power: {tag: power}, demand_guard: {limit_kw: 50}}]
"""
    config = parse_config(yaml, env={})
    t0 = 1_800_000_000 + 400  # 400 s into a block
    now = [float(t0)]
    processor = MetricsProcessor(config, clock=lambda: now[0])
    seen = []
    for k in range(1200):
        now[0] = t0 + k
        batch = SampleBatch("m", "fast", (t0 + k) * S, ("power",), [42.0], [Quality.GOOD], [""])
        for out in processor(batch):
            info = metric_info(out)
            if info is not None and info.family == "demand_guard":
                seen.append(dict(zip(out.names, out.values, strict=True)))
    assert len(seen) == 1200
    assert {v["predicted_kw"] for v in seen} == {42.0}
    assert {v["shed_kw"] for v in seen} == {0.0}
    assert {v["limit_kw"] for v in seen} == {50.0}
    # 600 s into the next block (second 1100 after the start): 7 kWh so far, 5 minutes left.
    assert seen[1100]["block_kwh"] == 7.0
    assert seen[1100]["minutes_left"] == 5.0


COUNTER_GUARD = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
          - {name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}
metrics:
  windows: [15m]
  meters:
    - device: m
      counter: {tag: energy}
      power: {tag: power}
      demand_guard: {limit_kw: 40}
"""
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC: a block's start


def _run_at_32_kw(processor: MetricsProcessor, now: list[float], seconds: Iterable[int]) -> Any:
    """Polls a counter meter at a constant 32 kW at ``T0 + k``; its guard and event batches."""
    guard, events = [], []
    for k in seconds:
        now[0] = float(T0 + k)
        counter = round(1000 + 32.0 * k / 3600, 2)
        batch = SampleBatch(
            "m",
            "fast",
            (T0 + k) * S,
            ("power", "energy"),
            [32.0, counter],
            [Quality.GOOD] * 2,
            [""] * 2,
        )
        out = list(processor(batch))[1:]
        if now[0] >= processor.next_deadline():
            out += processor.close_due(now[0])
        for b in out:
            info = metric_info(b)
            if info is not None and info.family == "demand_guard":
                guard.append(dict(zip(b.names, b.values, strict=True))["predicted_kw"])
            if event_info(b) is not None:
                events.append(b)
    return guard, events


def test_a_gap_the_counter_bridges_is_known_energy_not_unknown_time() -> None:
    """A counter meter at a constant 32 kW (80 % of its 40 kW limit) misses five minutes
    of polls in a block. The first reading after the gap bridges it: the counter's
    energy of those five minutes is in the block's energy ``E`` although the gap is not
    *covered* (longer than ``max_gap``). Taking the same five minutes as unknown time at
    the current power counted them twice (a prediction of 42.7 kW and a false critical
    alarm to shed 2.9 kW); time whose energy the counter bridged is known time."""
    now = [float(T0)]
    processor = MetricsProcessor(parse_config(COUNTER_GUARD, env={}), clock=lambda: now[0])
    predicted, events = _run_at_32_kw(processor, now, [*range(61), *range(361, 900)])
    assert len(predicted) == 600
    assert max(predicted) < 32.05, f"true block demand 32 kW, predicted up to {max(predicted)}"
    assert events == []


def test_a_restart_mid_block_is_bridged_by_the_counter_not_counted_twice(
    tmp_path: Path,
) -> None:
    """The agent stops for five minutes in a block and restarts with its saved state:
    the first counter reading after the restart counts the downtime's energy into the
    block, so the downtime is not unknown time either (same double count as a gap)."""
    store = StateStore(tmp_path / STATE_FILE)
    now = [float(T0)]
    config = parse_config(COUNTER_GUARD, env={})
    first = MetricsProcessor(config, clock=lambda: now[0], store=store)
    _run_at_32_kw(first, now, range(61))
    first.save()
    now[0] = float(T0 + 360)
    second = MetricsProcessor(config, clock=lambda: now[0], store=store)
    predicted, events = _run_at_32_kw(second, now, range(361, 900))
    assert max(predicted) < 32.05, f"true block demand 32 kW, predicted up to {max(predicted)}"
    assert events == []


def test_a_window_saved_before_known_time_was_kept_takes_its_covered_time() -> None:
    """States saved by an older agent have no ``known_ns``: its covered time is the time
    whose energy was known then (the guard then counts a bridged gap as unknown, as it
    did, never less)."""
    acc = EnergyAcc()
    acc.kwh, acc.covered_ns = 2.0, 240 * S
    old = {k: v for k, v in acc.state().items() if k != "known_ns"}
    assert EnergyAcc.load(old).known_ns == 240 * S
    acc.known_ns = 300 * S
    assert EnergyAcc.load(acc.state()).known_ns == 300 * S
