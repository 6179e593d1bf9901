"""``edge-agent read opc.tcp://... --node ID`` against our OPC UA simulator."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.opcua_support import FrozenClock, expected, simulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _edge_agent(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_read_a_node_as_the_agent_would() -> None:
    sim = simulator(FrozenClock())
    await sim.start()
    try:
        ns = sim.namespace_index
        power, state, unknown, locked, no_node = await asyncio.gather(
            _edge_agent("read", sim.endpoint, "--node", sim.nsu_node_id("cnc-1", "power_kw")),
            _edge_agent("read", sim.endpoint, "--node", f"/Objects/{ns}:cnc-1/{ns}:state"),
            _edge_agent("read", sim.endpoint, "--node", f"ns={ns};s=cnc-1.no_such_thing"),
            _edge_agent("read", sim.endpoint, "--node", f"ns={ns};s=TypeCheck.NotReadable"),
            _edge_agent("read", sim.endpoint),
        )
        want_power = expected(sim, "cnc-1", "power_kw")
        want_state = expected(sim, "cnc-1", "state")
    finally:
        await sim.stop()
    code, out, err = power
    assert code == 0, err
    assert f"  value      {want_power}\n" in out
    assert "  type       Double" in out
    assert "  quality    good" in out
    code, out, err = state
    assert code == 0, err
    assert f"  value      '{want_state}'" in out  # the enumeration's label
    assert f"(NodeId ns={ns};s=cnc-1.state)" in out
    code, out, err = unknown
    assert code == 1
    assert "  value      -\n" in out
    assert "quality    bad (BadNodeIdUnknown)" in out
    assert "`edge-agent browse URL` lists them" in out
    code, out, err = locked
    assert code == 1
    assert "quality    bad (BadNotReadable)" in out
    code, out, err = no_node
    assert code == 2
    assert "needs --node" in err


async def test_no_server_exits_3() -> None:
    from tests.servers import free_port

    code, _, err = await _edge_agent(
        "read", f"opc.tcp://127.0.0.1:{free_port()}", "--node", "i=2259"
    )
    assert code == 3, err
    assert "cannot connect" in err
