"""A frozen OPC UA server (SIGSTOP: socket open, nobody answering) is never silence.

The simulator runs as a child process so that it can be frozen for real. For a
subscription silence means "unchanged", so a frozen server must turn the group's tags
bad, with a reason, and the device offline within the bound docs/OPCUA.md states:
``min(max(2 s, watchdog_intervals x interval), 2 x keepalive_interval) + interval``;
and data must resume by itself after SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.model import SampleBatch
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.agent import Agent
from simulators.opcua_server import NAMESPACE_URI, bulk_name
from tests.opcua_support import plant_config
from tests.servers import free_port, wait_for_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
#: Scheduling slack on a loaded two-core machine, on top of the documented bound.
SLACK = 1.5


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m simulators`` serving three changing Doubles, as a child process."""
    port = free_port()
    profile = tmp_path / "frozen.yaml"
    profile.write_text(
        "name: frozen\nservers:\n"
        f"  - {{name: plc, transport: opcua, port: {port}, endpoints: ['None'],\n"
        "     bulk_nodes: 3, update_interval: 0.1}\n"
    )
    with (tmp_path / "simulator.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators", "-c", str(profile)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    try:
        wait_for_port(port, timeout=30)
        yield port, process
    finally:
        process.send_signal(signal.SIGCONT)  # a stopped process does not act on SIGTERM
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Seen:
    at: float
    batch: SampleBatch
    state: DeviceState


def _tags(prefix: str) -> str:
    return "\n".join(
        f"          - {{name: {prefix}{i}, node: 'nsu={NAMESPACE_URI};s={bulk_name(i)}'}}"
        for i in range(3)
    )


def _device(name: str, port: int, settings: str, groups: str) -> str:
    return (
        f"  - name: {name}\n    driver: opcua\n    endpoint: opc.tcp://127.0.0.1:{port}\n"
        f"{settings}    poll_groups:\n{groups}"
    )


def _bound(watchdog_intervals: int, interval: float, keepalive: float) -> float:
    """docs/OPCUA.md: when a subscribe group's tags are bad at the latest."""
    return min(max(2.0, watchdog_intervals * interval), 2 * keepalive) + interval


async def test_a_frozen_server_turns_subscriptions_bad_within_the_bound(
    server: tuple[int, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port, process = server
    # "watcher": a subscription alone whose own watchdog is slow (10 intervals), so the
    # session keepalive must tell; its connect timeout outlasts the freeze, so a
    # reconnect attempt in the poll path would hide the outage.
    # "cell": a fast read group next to the subscription, whose reconnects must not keep
    # the subscription's polls waiting.
    devices = _device(
        "watcher",
        port,
        "    timeout: 10s\n    keepalive_interval: 1s\n    watchdog_intervals: 10\n",
        f"      - name: live\n        mode: subscribe\n        interval: 500ms\n"
        f"        tags:\n{_tags('w')}\n",
    ) + _device(
        "cell",
        port,
        "    timeout: 3s\n    keepalive_interval: 1s\n",
        f"      - name: polled\n        interval: 200ms\n        tags:\n{_tags('r')}\n"
        f"      - name: watched\n        mode: subscribe\n        interval: 1s\n"
        f"        tags:\n{_tags('s')}\n",
    )
    bounds = {("watcher", "live"): _bound(10, 0.5, 1.0), ("cell", "watched"): _bound(3, 1.0, 1.0)}
    agent = Agent(plant_config(tmp_path / "state", devices))
    seen: list[Seen] = []
    agent.pipeline.add_consumer(
        lambda b: seen.append(Seen(time.time(), b, agent.device_states()[b.device]))
    )
    groups = [("watcher", "live"), ("cell", "polled"), ("cell", "watched")]

    async def first(device: str, group: str, *, good: bool, after: float, within: float) -> Seen:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for item in seen:
                b = item.batch
                if item.at >= after and (b.device, b.group) == (device, group) and len(b):
                    if good and b.good_count == len(b):
                        return item
                    if not good and b.good_count == 0:
                        return item
            await asyncio.sleep(0.02)
        recent = [(s.batch.device, s.batch.group, s.batch.good_count) for s in seen[-10:]]
        raise AssertionError(f"{device}/{group}: no {'good' if good else 'bad'} batch; {recent}")

    task = asyncio.create_task(agent.run(), name="agent")
    try:
        for device, group in groups:
            await first(device, group, good=True, after=0, within=20)
        stopped = time.time()
        process.send_signal(signal.SIGSTOP)
        freeze = max(bounds.values()) + SLACK + 1
        lost: dict[tuple[str, str], Seen] = {}
        for key in bounds:
            lost[key] = await first(*key, good=False, after=stopped, within=freeze)
        await asyncio.sleep(max(0.0, stopped + freeze - time.time()))
        process.send_signal(signal.SIGCONT)
        resumed_at = time.time()
        resumed = [await first(*key, good=True, after=resumed_at, within=20) for key in groups]
        states = agent.device_states()
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 15)

    for key, bound in bounds.items():
        item = lost[key]
        delay = item.at - stopped
        assert delay <= bound + SLACK, f"{key}: bad after {delay:.1f}s (bound {bound:.1f}s)"
        assert all(item.batch.reasons), f"{key}: bad without a reason"
        assert item.state is DeviceState.OFFLINE, f"{key}: device {item.state.value}"
    # Fresh values from the thawed server, never a stale one re-sent as good.
    for item in resumed:
        assert item.batch.timestamps_ns is not None
        assert min(item.batch.timestamps_ns) >= int(resumed_at * 1e9) - 500_000_000
    assert states == {"watcher": DeviceState.ONLINE, "cell": DeviceState.ONLINE}
