"""The agent with OPC UA devices: a server restart and a stalled subscription, without help."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.agent import Agent
from simulators.opcua_server import OpcUaSimulator, bulk_name
from simulators.profile import PROFILES_DIR, parse_profile
from simulators.serve import serve_profile
from tests.opcua_support import (
    Keys,
    device_yaml,
    install_own_certificate,
    plant_config,
    session_keys,
    simulator,
    trust_server,
)

pytestmark = pytest.mark.integration

PASSWORD = "line-3-reader"
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="session")
def opcua_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return session_keys(tmp_path_factory)


def _groups(sim: OpcUaSimulator) -> str:
    ns = sim.namespace_index
    polled = "\n".join(f"  - {{name: r{i}, node: 'ns={ns};s={bulk_name(i)}'}}" for i in range(3))
    watched = "\n".join(
        f"  - {{name: s{i}, node: 'nsu=urn:edge-agent:simulator:equipment;s={bulk_name(i)}'}}"
        for i in range(3)
    )
    return (
        f"- name: polled\n  interval: 200ms\n  tags:\n{polled}\n"
        f"- name: watched\n  mode: subscribe\n  interval: 100ms\n  tags:\n{watched}\n"
    )


class Recorder:
    """Every batch the agent emits, with the wall time it was seen."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, SampleBatch]] = []

    def __call__(self, batch: SampleBatch) -> None:
        self.batches.append((time.time(), batch))

    async def wait_for(
        self,
        what: str,
        test: Callable[[SampleBatch], bool],
        *,
        after: float = 0.0,
        within: float = 20.0,
    ) -> SampleBatch:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for seen, batch in self.batches:
                if seen >= after and test(batch):
                    return batch
            await asyncio.sleep(0.05)
        groups = {(b.group, b.reasons[0] if b.reasons else "") for _, b in self.batches[-20:]}
        raise AssertionError(f"no batch {what} within {within}s; recent: {sorted(groups)}")


def _good(group: str) -> Callable[[SampleBatch], bool]:
    return lambda b: b.group == group and len(b) > 0 and b.good_count == len(b)


def _bad(group: str, reason: str = "") -> Callable[[SampleBatch], bool]:
    return lambda b: (
        b.group == group
        and len(b) > 0
        and b.good_count == 0
        and (not reason or reason in b.reasons[0])
    )


async def _run(config: PlantConfig) -> tuple[Agent, Recorder, asyncio.Task[None]]:
    agent = Agent(config)
    recorder = Recorder()
    agent.pipeline.add_consumer(recorder)
    task = asyncio.create_task(agent.run(), name="agent")
    return agent, recorder, task


async def _stop(agent: Agent, task: asyncio.Task[None]) -> None:
    agent.request_stop()
    await asyncio.wait_for(task, 15)


async def test_data_resumes_by_itself_after_a_server_restart_over_sign_and_encrypt(
    opcua_keys: Keys, tmp_path: Path
) -> None:
    """Read and subscribe groups, Basic256Sha256/SignAndEncrypt, user and password."""
    sim = simulator(
        time.time,
        opcua_keys,
        bulk_nodes=3,
        update_interval=0.1,
        users={"reader": PASSWORD},
        allow_anonymous=False,
    )
    await sim.start()
    state = tmp_path / "state"
    install_own_certificate(opcua_keys, state)
    trust_server(opcua_keys, state)
    config = plant_config(
        state,
        device_yaml(
            "press-7",
            sim.endpoint,
            _groups(sim),
            "security: {policy: Basic256Sha256, mode: SignAndEncrypt}\n"
            "identity: {type: username, username: reader, password: '${PW}'}",
        ),
        env={"PW": PASSWORD},
    )
    agent, recorder, task = await _run(config)
    try:
        await recorder.wait_for("polled and good", _good("polled"))
        await recorder.wait_for("watched and good", _good("watched"))
        await sim.stop()
        stopped = time.time()
        await recorder.wait_for("polled and bad", _bad("polled"), after=stopped)
        await recorder.wait_for("watched and bad", _bad("watched"), after=stopped)
        await sim.start()
        restarted = time.time()
        polled = await recorder.wait_for("polled again", _good("polled"), after=restarted)
        watched = await recorder.wait_for("watched again", _good("watched"), after=restarted)
        assert agent.device_states()["press-7"] is DeviceState.ONLINE
    finally:
        await _stop(agent, task)
        await sim.stop()
    # Fresh values, stamped by the restarted server, not stale ones re-sent as good.
    for batch in (polled, watched):
        assert batch.timestamps_ns is not None
        assert min(batch.timestamps_ns) >= int(restarted * 1e9) - 200_000_000


async def test_the_example_plant_reads_the_example_cell(opcua_keys: Keys, tmp_path: Path) -> None:
    """configs/opcua-example.yaml against simulators/profiles/opcua-cell.yaml, as shipped
    but for the port (a free one) and the certificates (the test session's)."""
    profile_text = (PROFILES_DIR / "opcua-cell.yaml").read_text()
    assert "port: 4841" in profile_text
    profile = parse_profile(
        profile_text.replace("port: 4841", "port: 0").replace(
            "    update_interval: 0.5",
            f"    update_interval: 0.5\n    certificate_dir: {opcua_keys.server_cert.parent}",
        )
    )
    async with serve_profile(profile) as cell:
        port = cell.port("cell-server")
        state = tmp_path / "state"
        install_own_certificate(opcua_keys, state)
        trust_server(opcua_keys, state)
        config = parse_config(
            (ROOT / "configs" / "opcua-example.yaml").read_text().replace("4841", str(port)),
            "opcua-example.yaml",
            env={"EDGE_AGENT_STATE": str(state), "OPCUA_PASSWORD": "demo-password"},
        )
        agent, recorder, task = await _run(config)
        try:
            for group in ("production", "live", "electrical"):
                batch = await recorder.wait_for(f"{group} and good", _good(group))
                if group == "electrical":
                    assert list(batch.names) == [
                        "power",
                        "energy",
                        "voltages[0]",
                        "voltages[1]",
                        "voltages[2]",
                    ]
                if group == "live":
                    assert "state" in batch.names
        finally:
            await _stop(agent, task)


async def test_a_silently_stalled_subscription_is_detected_and_recovered(tmp_path: Path) -> None:
    sim = simulator(time.time, bulk_nodes=3, update_interval=0.1)
    await sim.start()
    config = plant_config(tmp_path, device_yaml("cnc-9", sim.endpoint, _groups(sim)))
    agent, recorder, task = await _run(config)
    try:
        await recorder.wait_for("watched and good", _good("watched"))
        # The session and reads stay fine; only the subscription goes quiet.
        await sim.stall_subscriptions()
        stalled = time.time()
        lost = await recorder.wait_for(
            "reported by the watchdog", _bad("watched", "subscription watchdog"), after=stalled
        )
        detected = time.time()
        resumed = await recorder.wait_for("watched again", _good("watched"), after=detected)
    finally:
        await _stop(agent, task)
        await sim.stop()
    assert lost.qualities == [Quality.BAD] * 3
    assert set(resumed.names) <= {"s0", "s1", "s2"}
