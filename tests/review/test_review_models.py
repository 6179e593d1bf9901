"""Review of issue 20's memory-per-tag branch (p20-models): findings as failing tests.

Each test states what should hold and fails on the merged code (42e8fed).
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.loader import load_config
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.serve import serve_profile
from tests.plant import DEMO_PORTS, demo_devices_text, demo_profile

DEVICES = ("line-meter", "cnc-1", "compressor-1")  # compressor-1 comes last
#: The start of compressor-1's fast group in configs/demo-plant.yaml.
COMPRESSOR_FAST = (
    "        interval: {interval}\n        tags:\n          - {{name: state, table: input"
)


def _plant_text(ports: dict[str, int], interval: str) -> str:
    """The demo plant's three devices, compressor-1's fast group read every ``interval``."""
    edit = {COMPRESSOR_FAST.format(interval="1s"): COMPRESSOR_FAST.format(interval=interval)}
    return demo_devices_text(ports, DEVICES, edit)


def _descriptions_of(device: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is DeviceInfo and o.name == device)


async def test_a_reload_keeps_one_description_of_a_device_it_leaves_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding (regression of ed97426, described_once): after a reload, a device the
    reload leaves alone keeps running with its old model (its driver holds it) while the
    config holds the new, equal model; described_once caches a description for each, so
    every unchanged device's catalog (about 210 B a tag) is held twice from the first
    reload on. Before the branch there was one (the sinks drop the old catalog on reload).
    At 100,000 tags that is ~20 MB more after any reload that changes one device."""
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    path = tmp_path / "plant.yaml"
    path.write_text(_plant_text(DEMO_PORTS, "1s"))
    agent = Agent(load_config(path))  # built, not started: nothing is contacted
    assert _descriptions_of("cnc-1") <= 1
    path.write_text(_plant_text(DEMO_PORTS, "2s"))
    result = await agent.reconfigure(load_config(path))
    assert result.applied, result.problems
    assert result.plan is not None
    assert result.plan.devices_changed == ("compressor-1",)
    assert _descriptions_of("cnc-1") <= 1  # fails: 2 (the old model's and the new one's)


@pytest.mark.integration
async def test_the_runner_a_reload_replaces_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding (pre-existing, not from p20-models; found checking "is the old config
    released after a reload"): Agent._run_tasks keeps its loop variables ``source`` and
    ``sink`` bound to the last runners it spawned at start. When a reload replaces the
    last device (or the last sink), the old runner, its driver, read plans, channel and
    device model stay referenced by that frame until the agent stops, through every later
    reload and whatever gc.freeze/resettle does."""
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = tmp_path / "plant.yaml"
        path.write_text(_plant_text(ports, "1s"))
        agent = Agent(load_config(path))
        supervisor = Supervisor(agent, config_path=path)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await asyncio.wait_for(agent.started.wait(), 15)
            old = weakref.ref(next(s for s in agent.sources if s.device == "compressor-1"))
            path.write_text(_plant_text(ports, "2s"))
            result = await supervisor.reload()
            assert result is not None
            assert result.applied, result.problems
            assert old() not in agent.sources
            gc.collect()
            assert old() is None  # fails: Agent._run_tasks's ``source`` still holds it
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)
