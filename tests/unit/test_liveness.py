"""Liveness evidence: event-loop lag, stalled pollers, and the read-latency histogram."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from edge_agent.driver import GroupSpec
from edge_agent.histogram import Histogram
from edge_agent.model import SampleBatch
from edge_agent.runtime.source_runner import SourceRunner
from edge_agent.service.liveness import (
    STALL_SLACK_S,
    LoopMonitor,
    liveness_problems,
    stall_allowance,
    stalled_pollers,
)


@dataclass
class IdleDriver:
    """Never read in these tests; only its groups and budgets matter."""

    device: str = "press-1"
    groups: Sequence[GroupSpec] = (GroupSpec("fast", 1.0, ("a",)), GroupSpec("slow", 60.0, ("b",)))
    connected: bool = True

    async def connect(self) -> None:
        raise AssertionError("not used")

    async def read(self, group: str) -> SampleBatch:
        raise AssertionError("not used")

    def read_budget(self, group: str) -> float:
        return {"fast": 3.0, "slow": 10.0}[group]

    async def close(self) -> None:
        pass


def _runner(**driver: object) -> SourceRunner:
    return SourceRunner(IdleDriver(**driver), lambda batch: None)  # type: ignore[arg-type]


def test_monitor_keeps_lag_above_noise_per_time() -> None:
    monitor = LoopMonitor()
    monitor.record(0.001, now=100.0)  # noise: not kept
    monitor.record(2.5, now=101.0)
    monitor.record(0.3, now=105.0)
    assert monitor.worst_since(100.0) == 2.5
    assert monitor.worst_since(102.0) == 0.3
    assert monitor.worst_since(106.0) == 0.0
    assert monitor.max_lag == 2.5
    assert monitor.last_lag == 0.3


async def test_monitor_measures_a_blocked_loop() -> None:
    monitor = LoopMonitor(period=0.02)
    task = asyncio.create_task(monitor.run())
    try:
        await asyncio.sleep(0.1)
        since = time.monotonic()
        time.sleep(0.4)  # noqa: ASYNC251 - blocking the loop is the point
        await asyncio.sleep(0.1)
        assert monitor.worst_since(since) >= 0.3
    finally:
        task.cancel()
        await asyncio.wait([task])


def test_allowance_follows_the_fastest_group_and_its_budget() -> None:
    runner = _runner()
    assert stall_allowance(runner) == 2 * (1.0 + 3.0) + STALL_SLACK_S


def test_a_poller_is_stalled_only_past_its_allowance_and_once_started() -> None:
    runner = _runner()
    assert stalled_pollers([runner], now=1000.0) == []  # never started: not judged
    runner.counters.last_progress_monotonic = 1000.0
    allowance = stall_allowance(runner)
    assert stalled_pollers([runner], now=1000.0 + allowance - 0.1) == []
    [problem] = stalled_pollers([runner], now=1000.0 + allowance + 1)
    assert problem.startswith("device press-1: no poll finished for")


def test_liveness_combines_loop_lag_own_lateness_and_pollers() -> None:
    monitor = LoopMonitor()
    runner = _runner()
    runner.counters.last_progress_monotonic = 50.0
    assert liveness_problems(monitor, [runner], max_lag=1.0, since=0.0, now=51.0) == []
    # The caller woke late, before the monitor could record it.
    [late] = liveness_problems(monitor, [runner], max_lag=1.0, since=0.0, own_lag=3.0, now=51.0)
    assert "event loop blocked for 3.0 s" in late
    monitor.record(2.0, now=52.0)
    assert liveness_problems(monitor, [runner], max_lag=1.0, since=52.0, now=52.5)
    assert liveness_problems(monitor, [runner], max_lag=1.0, since=53.0, now=53.5) == []
    stalled = liveness_problems(monitor, [runner], max_lag=1.0, since=53.0, now=500.0)
    assert len(stalled) == 1
    assert "press-1" in stalled[0]


def test_histogram_buckets_are_inclusive_upper_bounds() -> None:
    histogram = Histogram((0.01, 0.1, 1.0))
    for value in (0.005, 0.01, 0.05, 0.1, 0.5, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.01, 2), (0.1, 4), (1.0, 5), (float("inf"), 6)]
    assert histogram.count == 6
    assert histogram.sum == pytest.approx(7.665)


def test_histogram_refuses_unsorted_bounds() -> None:
    with pytest.raises(ValueError, match="increasing"):
        Histogram((1.0, 0.1))
