"""A steady value of an OPC UA subscription yields energy, end to end, in real time.

The simulator's clock is frozen: the machine draws the same power all along, so the
subscription sends its value once and then only keepalives. The metrics must hold
that value while the subscription lives (a regression: every window had no energy
and no coverage, because the silence looked like a communication gap).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.opcua import build_opcua_drivers
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.timer import run_metrics_timer
from edge_agent.model import SampleBatch
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.source_runner import SourceRunner
from simulators.opcua_server import OpcUaSimulator
from tests.opcua_support import FrozenClock, device_yaml, expected, plant_config, simulator

pytestmark = pytest.mark.integration

METRICS = """metrics:
  windows: [2s]
  grace: 600ms
  meters:
    - {name: cnc-power, device: cell, power: {tag: power}}
"""


@pytest.fixture
async def frozen() -> AsyncIterator[OpcUaSimulator]:
    sim = simulator(FrozenClock())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_steady_subscribed_power_is_integrated(
    frozen: OpcUaSimulator, tmp_path: Path
) -> None:
    sim = frozen
    groups = (
        "- name: live\n  mode: subscribe\n  interval: 200ms\n  tags:\n"
        f"  - {{name: power, node: '{sim.node_id('cnc-1', 'power_kw')}', unit: kW}}"
    )
    plant = plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups) + METRICS)
    kw = expected(sim, "cnc-1", "power_kw")
    assert isinstance(kw, float)
    assert kw > 0
    (driver,) = build_opcua_drivers(plant)
    pipeline = Pipeline()
    metrics = MetricsProcessor(plant)
    pipeline.add_processor(metrics)
    received: list[SampleBatch] = []
    pipeline.add_consumer(received.append)
    runner = SourceRunner(driver, pipeline.emit)
    # As in the agent: windows also close on time when no batch comes.
    timer = asyncio.create_task(
        run_metrics_timer(metrics, pipeline.emit, save_interval=3600), name="metrics"
    )
    task = asyncio.create_task(runner.run(), name="runner")
    try:
        windows: list[dict[str, object]] = []
        for _ in range(150):  # up to 15 s; two closed windows are enough
            await asyncio.sleep(0.1)
            windows = [
                dict(zip(b.names, b.values, strict=True))
                for b in received
                if b.attributes.get("family") == "energy"
            ]
            if len(windows) >= 2:
                break
    finally:
        task.cancel()
        timer.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
    raw = [b for b in received if b.group == "live"]
    assert all(len(b) for b in raw), "no batch without samples reaches the sinks"
    assert sum(len(b) for b in raw) <= 2, "the steady value went out once, not repeated"
    assert len(windows) >= 2
    # The first window may start before the subscription; later ones are held whole
    # (up to a scheduling hiccup on a busy machine: at least half).
    for window in windows[1:]:
        coverage = window["coverage"]
        assert isinstance(coverage, float)
        assert coverage > 0.5, windows
        # Published to the Wh (docs/METRICS.md, "Precision"), coverage to 0.0001.
        want = kw * coverage * 2 / 3600
        assert window["energy_kwh"] == pytest.approx(want, abs=5e-4 + kw * 2 / 3600 * 5e-5), windows
