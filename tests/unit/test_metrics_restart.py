"""Agent restarts in the middle of windows: energy is neither lost nor counted twice.

The demo plant runs in simulated time; the metrics processor is stopped (its state
saved as the timer does at stop), the plant runs on while the agent is down, and a
new processor restores the state from the same state directory. Every published
window is compared with the simulator's true energy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import SampleBatch
from simulators.stepping import UJ_PER_KWH
from tests.metrics_sim import SimulatedPolling, metric_tags
from tests.plant import DEMO_PORTS, demo_config, demo_profile

S = int(dt.datetime(2024, 5, 6, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp())
RES = 0.01  # the line meter's counter resolution, kWh


class Clock:
    now = float(S)

    def __call__(self) -> float:
        return self.now


class CrashingStore(StateStore):
    """Stops writing at some point: the agent then dies without saving (power cut)."""

    frozen = False

    def save(self, data: dict[str, Any]) -> bool:
        return False if self.frozen else super().save(data)


class Plant:
    def __init__(self, tmp_path: Path) -> None:
        self.config = demo_config(DEMO_PORTS, tmp_path)
        self.polling = SimulatedPolling(
            demo_profile(), self.config, S, only_tags=metric_tags(self.config)
        )
        self.clock = Clock()
        self.truth_uj: dict[int, int] = {}
        self.published: list[SampleBatch] = []

    def agent(self, store: StateStore) -> MetricsProcessor:
        return MetricsProcessor(self.config, clock=self.clock, store=store)

    def run(self, processor: MetricsProcessor | None, seconds: range) -> None:
        """Poll every second; ``None``: the agent is down (the plant runs on)."""
        for t in seconds:
            self.clock.now = t
            batches = self.polling.poll(t)
            self.truth_uj[t] = self.polling.simulation.meter("line-meter").energy_uj()
            if processor is None:
                continue
            for batch in batches:
                self.published += [b for b in processor(batch) if b is not batch]
            if t >= processor.next_deadline():
                self.published += processor.close_due(t)

    def energy(self, window: str) -> dict[int, dict[str, Any]]:
        """The line meter's energy windows by start, the last publication of each kept."""
        found: dict[int, dict[str, Any]] = {}
        for b in self.published:
            if (b.device, b.group, b.attributes.get("family")) == (
                "line-meter",
                f"metrics:{window}",
                "energy",
            ):
                found[b.timestamp_ns // 10**9] = dict(zip(b.names, b.values, strict=True))
        return found

    def true_kwh(self, start: int, end: int) -> float:
        return (self.truth_uj[end] - self.truth_uj[start]) / UJ_PER_KWH


def keys(batches: list[SampleBatch]) -> list[tuple[str, str, str, int]]:
    """A metric batch by window and family; an event (demo config) by its state and time:
    neither is published twice."""
    return [
        (b.device, b.group, b.attributes.get("family") or b.attributes["state"], b.timestamp_ns)
        for b in batches
    ]


def test_a_stop_in_the_middle_of_a_window_loses_and_doubles_nothing(tmp_path: Path) -> None:
    plant = Plant(tmp_path)
    store = StateStore(tmp_path / STATE_FILE)
    first = plant.agent(store)
    plant.run(first, range(S, S + 1211))
    first.save()  # the timer's last act when the agent stops
    plant.run(None, range(S + 1211, S + 1250))  # down for 40 s
    second = plant.agent(StateStore(tmp_path / STATE_FILE))
    plant.run(second, range(S + 1250, S + 2711))
    assert len(set(keys(plant.published))) == len(plant.published), "no window published twice"
    blocks = plant.energy("15m")
    assert sorted(blocks) == [S, S + 900, S + 1800]
    for start, values in blocks.items():
        assert abs(values["energy_kwh"] - plant.true_kwh(start, start + 900)) < RES
    assert blocks[S + 900]["coverage"] == pytest.approx((900 - 40) / 900, abs=5e-5)
    minute = plant.energy("1m")[S + 1200]
    assert abs(minute["energy_kwh"] - plant.true_kwh(S + 1200, S + 1260)) < RES


def test_a_stop_across_a_window_boundary_keeps_the_sum(tmp_path: Path) -> None:
    plant = Plant(tmp_path)
    first = plant.agent(StateStore(tmp_path / STATE_FILE))
    plant.run(first, range(S, S + 1796))
    first.save()
    plant.run(None, range(S + 1796, S + 1830))
    second = plant.agent(StateStore(tmp_path / STATE_FILE))
    plant.run(second, range(S + 1830, S + 2711))
    assert len(set(keys(plant.published))) == len(plant.published)
    blocks = plant.energy("15m")
    # The 35 s of the stop are spread over both blocks by time; their sum is exact.
    both = blocks[S + 900]["energy_kwh"] + blocks[S + 1800]["energy_kwh"]
    assert abs(both - plant.true_kwh(S + 900, S + 2700)) < RES
    assert blocks[S + 900]["coverage"] < 1.0
    assert blocks[S + 1800]["coverage"] < 1.0


def test_a_crash_after_an_older_save_recounts_nothing_twice(tmp_path: Path) -> None:
    plant = Plant(tmp_path)
    store = CrashingStore(tmp_path / STATE_FILE)
    first = plant.agent(store)
    plant.run(first, range(S, S + 1201))
    store.frozen = True  # from here on nothing reaches the disk; then the power goes
    plant.run(first, range(S + 1201, S + 1500))
    republished_from = len(plant.published)
    plant.run(None, range(S + 1500, S + 1530))
    second = plant.agent(StateStore(tmp_path / STATE_FILE))
    plant.run(second, range(S + 1530, S + 2711))
    # Windows closed after the last save come again, under the same keys (consumers
    # overwrite or de-duplicate); the last publication of each key adds up exactly.
    again = set(keys(plant.published[republished_from:]))
    assert again & set(keys(plant.published[:republished_from]))
    minutes = plant.energy("1m")
    total = sum(v["energy_kwh"] for start, v in minutes.items() if S <= start < S + 2700)
    assert abs(total - plant.true_kwh(S, S + 2700)) < RES
    blocks = plant.energy("15m")
    for start, values in blocks.items():
        assert abs(values["energy_kwh"] - plant.true_kwh(start, start + 900)) < RES
