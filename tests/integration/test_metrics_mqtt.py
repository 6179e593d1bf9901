"""Over the wire, in real time: simulators -> agent (Modbus) -> metrics -> real mosquitto.

Two-second windows (any duration that divides an hour is a valid window) make the
test quick. The agent is stopped in the middle of a window and a new one started
on the same state directory: the line meter's energy, summed over every published
window, must equal what its register counted over the same time (as the raw data
messages on the broker show it), to the float rounding: nothing lost in the stop,
nothing counted twice, and no window published twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.service.agent import Agent
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import CONFIG_FILE, DEMO_PORTS, demo_profile
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]
NS = 1_000_000_000
WINDOW_NS = 2 * NS

METRICS = """
metrics:
  windows: [2s]
  grace: 600ms
  save_interval: 1s
  meters:
    - {device: line-meter, counter: {tag: energy_import}, power: {tag: power_active},
       max_power: 150}
  machines:
    - device: cnc-1
      state: {tag: state}
      ideal_cycle_time: 95s
      parts: {total: parts_total, good: parts_good, scrap: parts_scrap}
      energy: {counter: {tag: energy}, power: {tag: power}}
  plant_total: [line-meter]
  tariffs:                     # one period all day: the cost is the energy times the price
    - name: flat-rate
      prices: {flat: 0.5}
      seasons:
        - {name: all, months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
           workday: [{start: "00:00", end: "24:00", period: flat}]}
"""


def plant_config(ports: dict[str, int], state_dir: Path, broker: Mosquitto) -> PlantConfig:
    text = CONFIG_FILE.read_text()
    text = text[: text.index("\nmetrics:")] + "\n"
    for server, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}}}", f"port: {ports[server]}}}")
    sink = (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, keepalive: 5}}\n"
    )
    config = parse_config(
        text + sink + METRICS, str(CONFIG_FILE), env={"EDGE_AGENT_STATE": str(state_dir)}
    )
    devices = [d for d in config.devices if d.name in ("line-meter", "cnc-1")]
    return config.model_copy(update={"devices": devices})


async def run_agent(config: PlantConfig, seconds: float) -> None:
    agent = Agent(config)
    task = asyncio.create_task(agent.run(), name="agent")
    try:
        await asyncio.sleep(seconds)
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 15)


def docs(sub: Subscriber, kind: str) -> list[dict[str, Any]]:
    return [
        {**json.loads(m.payload), "_topic": m.topic}
        for m in sub.messages
        if m.topic.endswith(f"/{kind}")
    ]


async def test_metric_windows_arrive_over_mqtt_and_survive_an_agent_restart(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "edge/demo-plant/+/+")
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = plant_config(ports, tmp_path / "state", mosquitto)
        await run_agent(config, 4.3)  # stops in the middle of a 2 s window (or near it)
        assert (tmp_path / "state" / "metrics-state.json").exists()
        # The plant runs on while no agent reads it: longer than the meter's max_gap
        # (2.5 x its 1 s interval), so the gap is never bridged as covered, whatever the
        # phase of the poll ticks and however long the stop and the start take.
        await asyncio.sleep(2.6)
        await run_agent(config, 4.0)

        def complete() -> bool:
            metrics = docs(sub, "metrics")
            return {d["device"] for d in metrics} >= {"line-meter", "cnc-1", "demo-plant"}

        await sub.wait_until(complete, "metric messages of every unit", within=10)
        await asyncio.sleep(0.3)
        sub.pump()

    metrics = docs(sub, "metrics")
    keys = [(d["device"], d["group"], d["attributes"]["family"], d["ts_ns"]) for d in metrics]
    assert len(keys) == len(set(keys)), "no window is published twice"
    for doc in metrics:
        window = doc["window"]
        assert doc["_topic"] == f"edge/demo-plant/{doc['device']}/metrics"
        assert doc["group"] == "metrics:2s"
        assert window["name"] == "2s"
        assert window["start_ns"] == doc["ts_ns"] == int(doc["attributes"]["window_start"])
        assert window["end_ns"] - window["start_ns"] == WINDOW_NS
        assert window["start_ns"] % WINDOW_NS == 0, "aligned to the clock"
    families = {(d["device"], d["attributes"]["family"]) for d in metrics}
    assert families >= {
        ("line-meter", "energy"),
        ("cnc-1", "utilization"),
        ("cnc-1", "energy"),
        ("demo-plant", "energy"),
        ("line-meter", "tariff"),
        ("demo-plant", "tariff"),
    }
    energy_by_start = {
        d["ts_ns"]: d["values"]["energy_kwh"]["v"]
        for d in metrics
        if (d["device"], d["attributes"]["family"]) == ("line-meter", "energy")
    }
    for doc in metrics:
        if (doc["device"], doc["attributes"]["family"]) != ("line-meter", "tariff"):
            continue
        assert doc["attributes"]["currency"] == "CNY"
        kwh = energy_by_start[doc["ts_ns"]]
        if kwh is not None:
            assert doc["values"]["kwh_flat"]["v"] == pytest.approx(kwh, abs=1e-3)
            assert doc["values"]["cost"]["v"] == pytest.approx(kwh * 0.5, abs=1e-3)

    # The line meter: windows summed vs. the register readings the agent published.
    energy = sorted(
        (
            d
            for d in metrics
            if (d["device"], d["attributes"]["family"]) == ("line-meter", "energy")
        ),
        key=lambda d: d["ts_ns"],
    )
    starts = [d["ts_ns"] for d in energy]
    assert starts == list(range(starts[0], starts[-1] + 1, WINDOW_NS)), "no window missing"
    readings = sorted(
        (d["ts_ns"], round(d["values"]["energy_import"]["v"] / 0.01))
        for d in docs(sub, "data")
        if d["device"] == "line-meter" and d["values"]["energy_import"]["q"] == "good"
    )
    end = energy[-1]["window"]["end_ns"]
    expected_ticks = _ticks_at(readings, end) - readings[0][1]
    # A window in which the agent read the meter no time at all (the one open when it
    # stopped, if the stop fell just after its start) has no energy of its own: null,
    # uncertain, "no data"; its energy is in the next window with readings.
    empty = [d["values"]["energy_kwh"] for d in energy if d["values"]["energy_kwh"]["v"] is None]
    assert all(e["q"] == "uncertain" and e["r"] == "no data" for e in empty), empty
    total = sum(d["values"]["energy_kwh"]["v"] or 0.0 for d in energy)
    # Each window is published to the Wh (docs/METRICS.md, "Precision"): half a Wh each.
    assert total == pytest.approx(expected_ticks * 0.01, abs=0.0005 * len(energy) + 1e-9)
    assert total > 0
    restart = [d for d in energy if d["values"]["coverage"]["v"] < 0.9]
    assert restart, "the windows of the stop are flagged by their coverage"
    assert all(d["values"]["coverage"]["q"] == "uncertain" for d in restart)


def _ticks_at(readings: list[tuple[int, int]], t_ns: int) -> float:
    """The register at ``t_ns``, interpolated between the readings around it (as the agent does)."""
    for (t1, c1), (t2, c2) in itertools.pairwise(readings):
        if t1 <= t_ns <= t2:
            return c1 + (c2 - c1) * (t_ns - t1) / (t2 - t1)
    raise AssertionError(f"no readings around {t_ns}")
