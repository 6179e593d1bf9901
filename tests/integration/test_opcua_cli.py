"""``edge-agent browse`` as an engineer runs it: the tree, and a tag list that works as is."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from drivers.opcua import build_opcua_drivers
from edge_agent.cli import main
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import DeviceState, SourceRunner
from tests.opcua_support import FrozenClock, device_yaml, expected, plant_config, simulator

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent


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


def test_secured_browsing_needs_the_plant_file(capsys: pytest.CaptureFixture[str]) -> None:
    url = "opc.tcp://127.0.0.1:4840"
    assert main(["browse", url, "--security", "Basic256Sha256/SignAndEncrypt"]) == 2
    assert "-c PLANT.yaml" in capsys.readouterr().err
    assert main(["browse", url, "--security", "Basic128/Sign"]) == 2
    assert "use None or POLICY/MODE" in capsys.readouterr().err


async def test_browse_prints_the_tree_and_a_tag_list_that_reads_good(tmp_path: Path) -> None:
    sim = simulator(FrozenClock())
    await sim.start()
    try:
        (tree_code, tree, tree_err), (yaml_code, listing, yaml_err) = await asyncio.gather(
            _edge_agent("browse", sim.endpoint, "--depth", "2"),
            _edge_agent("browse", sim.endpoint, "--yaml", "--match", "cnc-1.*"),
        )
        assert tree_code == 0, tree_err
        assert yaml_code == 0, yaml_err
        ns = sim.namespace_index
        assert f"{ns}:cnc-1  ns={ns};s=cnc-1" in tree
        assert f"{ns}:power_kw  ns={ns};s=cnc-1.power_kw  Double  read" in tree
        assert f"{ns}:state  ns={ns};s=cnc-1.state  MachineState  read" in tree
        assert f"{ns}:speed_rpm  ns={ns};s=cnc-1.speed_rpm  Float  read" in tree
        assert "ServerCapabilities" not in tree  # the Server object only with --all
        assert "line-meter" in tree
        assert "line-meter" not in listing  # --match kept cnc-1's variables only

        tags = listing.split("tags:\n", 1)[1]
        assert "nsu=urn:edge-agent:simulator:equipment;s=cnc-1.power_kw" in tags
        groups = "- interval: 1s\n  tags:\n" + "\n".join(
            "  " + line for line in tags.splitlines() if line.strip()
        )
        (driver,) = build_opcua_drivers(
            plant_config(tmp_path, device_yaml("cnc", sim.endpoint, groups))
        )
        await driver.connect()
        try:
            (batch,) = await driver.read("default")
        finally:
            await driver.close()
    finally:
        await sim.stop()
    assert isinstance(batch, SampleBatch)
    assert batch.good_count == len(batch)
    values = dict(zip(batch.names, batch.values, strict=True))
    assert values["cnc-1.power_kw"] == expected(sim, "cnc-1", "power_kw")
    assert values["cnc-1.state"] == expected(sim, "cnc-1", "state")


async def test_browse_shows_array_sizes_and_a_whole_server_tag_list_reads_all_good(
    tmp_path: Path,
) -> None:
    """Everything ``--yaml`` lists reads good as pasted: what would not (not readable, a
    2-D array, an array above max_array_length, a bad or uncertain value) is commented
    out with the reason."""
    sim = simulator(FrozenClock())
    await sim.start()
    try:
        (tree_code, tree, tree_err), (yaml_code, listing, yaml_err) = await asyncio.gather(
            _edge_agent("browse", sim.endpoint, "--match", "TypeCheck.*"),
            _edge_agent("browse", sim.endpoint, "--yaml"),
        )
        assert tree_code == 0, tree_err
        assert yaml_code == 0, yaml_err
        ns = sim.namespace_index
        assert f"{ns}:LongArray  ns={ns};s=TypeCheck.LongArray  Double[1500]  read" in tree
        assert f"{ns}:Matrix  ns={ns};s=TypeCheck.Matrix  Double[2x2]  read" in tree
        assert f"{ns}:Int32Array  ns={ns};s=TypeCheck.Int32Array  Int32[3]  read" in tree
        assert f"{ns}:NotReadable  ns={ns};s=TypeCheck.NotReadable  Double  none" in tree

        left_out = {
            line.split("left out: ", 1)[1]
            for line in listing.splitlines()
            if "# left out: " in line
        }
        assert "not readable (access: none)" in left_out
        assert "Double[2x2]: unsupported type 2x2 array (only 1-D arrays)" in left_out
        assert (
            "Double[1500], array of 1500 elements, above max_array_length 1000: "
            "add max_array_length: 1500 to collect it"
        ) in left_out
        assert "bad at browse time: BadSensorFailure" in left_out
        assert "uncertain at browse time: unknown enum value 7" in left_out
        assert "    # Double[3], read" in listing  # a meter's phases

        tags = [
            line for line in listing.split("tags:\n", 1)[1].splitlines() if line.startswith("  ")
        ]
        groups = "- interval: 1s\n  tags:\n" + "\n".join("  " + line for line in tags)
        (driver,) = build_opcua_drivers(
            plant_config(tmp_path, device_yaml("all", sim.endpoint, groups))
        )
        runner = SourceRunner(driver, lambda batch: None)
        try:
            batch = await runner.poll_once(driver.groups[0])
        finally:
            await driver.close()
    finally:
        await sim.stop()
    assert batch.good_count == len(batch), [(n, r) for n, _, q, r in batch if q is not Quality.GOOD]
    assert runner.state is DeviceState.ONLINE
    assert len(batch) > 50


async def test_browse_into_a_closed_pipe_ends_quietly() -> None:
    """``edge-agent browse URL | head``: the reader is gone before the tree is printed."""
    sim = simulator(FrozenClock())
    await sim.start()
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_agent",
            "browse",
            sim.endpoint,
            stdout=write_end,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        )
        os.close(write_end)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await sim.stop()
    assert err.decode() == ""
    assert process.returncode == 0
