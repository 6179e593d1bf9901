"""``edge-agent run --once`` against the simulators, and ``edge-agent status`` against a
running agent: the commands as a user runs them (subprocesses), the plant served on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import load_config
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.serve import serve_profile
from tests.plant import CONFIG_FILE, DEMO_PORTS, demo_profile
from tests.servers import Mosquitto, free_port
from tests.service_support import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEVICES = (
    "line-meter",
    "cnc-1",
    "press-1",
    "compressor-1",
    "compressor-meter",
    "oven-1",
    "oven-meter",
    "dryer-gas",
)
#: A tag where the line meter has a hole (registers 12-15 answer exception 2).
GHOST = "          - {name: ghost, table: input, address: 12, type: float32, unit: V}\n"
FREQUENCY = "          - {name: frequency, table: input, address: 24, type: float32, unit: Hz}\n"


def plant_file(
    tmp_path: Path, ports: Mapping[str, int], extra: str = "", name: str = "plant.yaml"
) -> Path:
    """configs/demo-plant.yaml pointed at ``ports``, with a ghost tag in a hole."""
    text = CONFIG_FILE.read_text()
    for server, port in DEMO_PORTS.items():
        text = text.replace(f"port: {port}}}", f"port: {ports[server]}}}")
    assert FREQUENCY in text
    text = text.replace(FREQUENCY, FREQUENCY + GHOST)
    path = tmp_path / name
    path.write_text(text + extra)
    return path


async def edge_agent(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run ``edge-agent ARGS`` without blocking the simulators on this loop."""
    env = {k: v for k, v in os.environ.items() if k not in ("MQTT_HOST", "COLUMNS")}
    env["EDGE_AGENT_STATE"] = str(tmp_path / "state")
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent",
        *args,
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 90)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _tags(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (d["device"], t["name"]): t
        for d in document["devices"]
        for g in d["groups"]
        for t in g["tags"]
    }


async def test_run_once_reads_every_tag_once_and_shows_its_registers(tmp_path: Path) -> None:
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = plant_file(tmp_path, ports)
        code, out, err = await edge_agent(tmp_path, "run", "--once", "--json", "-c", str(path))
        text_code, text, _ = await edge_agent(tmp_path, "run", "--once", "-c", str(path))

    assert code == 1, out + err  # the ghost tag is bad
    document = json.loads(out)
    tags = _tags(document)
    ghost = tags[("line-meter", "ghost")]
    assert ghost["quality"] == "bad"
    assert ghost["reason"] == "exception code 2"
    assert ghost["value"] is None
    assert [k for k, t in tags.items() if t["quality"] != "good"] == [("line-meter", "ghost")]
    assert {d["device"] for d in document["devices"]} == set(DEVICES)

    # The raw registers are what the values were decoded from (decoded again here).
    voltage = tags[("line-meter", "voltage_l1")]
    assert voltage["unit"] == "V"
    words = bytes.fromhex(voltage["raw"].replace(" ", ""))
    assert struct.pack(">f", voltage["value"]) == words  # the shortest decimal of those bits
    program = tags[("cnc-1", "program")]
    assert bytes.fromhex(program["raw"].replace(" ", "")).rstrip(b"\0").decode() == "O1002 SHAFT"
    assert program["value"] == "O1002 SHAFT"
    energy = tags[("compressor-meter", "energy_import")]  # uint32 CDAB x 0.01
    low, high = (int(word, 16) for word in energy["raw"].split())
    assert round(((high << 16) | low) * 0.01, 2) == round(energy["value"], 2)
    assert tags[("cnc-1", "lamp_green")]["raw"] in ("0", "1")  # a coil: its bit
    state, code = tags[("cnc-1", "state")], tags[("cnc-1", "state_code")]
    assert code["raw"] == state["raw"]  # an enum's code: decoded from its label's register
    assert int(code["raw"], 16) == code["value"]

    # The text form says the same, and publishes nothing, opens no outbox.
    assert text_code == 1
    assert "line-meter: NOT all good" in text
    ghost_line = next(line for line in text.splitlines() if line.strip().startswith("ghost "))
    assert "bad" in ghost_line
    assert "exception code 2" in ghost_line
    hint = text.split(ghost_line, 1)[1]
    assert " ".join(hint.split()).startswith(
        "illegal data address. hint: the device has no such register: check the address, "
        "the table, and the manual's numbering (register 40001 is address 0)"
    )
    assert f"{len(tags) - 1} of {len(tags)} tags good" in text
    assert not (tmp_path / "state").exists()


async def test_run_once_says_why_a_device_cannot_be_read(tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there
    async with serve_profile(demo_profile()) as plant:
        ports = {"line-gateway": plant.port("line-gateway"), "utility": dead}
        path = plant_file(tmp_path, ports)
        code, out, err = await edge_agent(tmp_path, "run", "--once", "--json", "-c", str(path))
    assert code == 1, out + err
    tags = _tags(json.loads(out))
    reasons = set()
    for device in ("compressor-1", "compressor-meter"):
        for (name, _), tag in tags.items():
            if name == device:
                assert tag["quality"] == "bad"
                assert tag["value"] is None
                reasons.add(tag["reason"])
    # One connection: its failure, tried once, is every device's reason on it.
    (reason,) = reasons
    assert reason.endswith("connection refused)"), reason
    assert tags[("cnc-1", "state")]["quality"] == "good"


async def test_run_once_says_a_wrong_unit_id_once_not_per_tag(tmp_path: Path) -> None:
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = plant_file(tmp_path, ports)
        text = path.read_text()
        meter = "    connection: {transport: tcp, host: 127.0.0.1, port: %d}\n    unit_id: 1\n"
        meter %= ports["line-gateway"]
        assert text.count(meter) == 1
        path.write_text(text.replace(meter, meter.replace("unit_id: 1", "unit_id: 9")))
        code, out, err = await edge_agent(tmp_path, "run", "--once", "-c", str(path))
        json_code, document, _ = await edge_agent(
            tmp_path, "run", "--once", "--json", "-c", str(path)
        )

    assert code == json_code == 1, out + err
    block = out.split("line-meter: NOT all good\n", 1)[1].split("\ncnc-1:", 1)[0]
    lines = block.splitlines()
    assert all(len(line) <= 80 for line in lines), block
    assert block.count("exception code 11") == 1, block
    flat = " ".join(block.split())
    assert "no device answered at this unit id: check unit_id and wiring" in flat
    tags = [t for (d, _), t in _tags(json.loads(document)).items() if d == "line-meter"]
    assert len(tags) == 13
    assert len(lines) <= len(tags) + 6, block  # a line per tag and the reason said once
    assert sum(line.endswith("(as above)") for line in lines) == len(tags)
    # --json has every tag with its whole reason, the registers read included.
    for tag in tags:
        assert tag["quality"] == "bad"
        assert tag["reason"].startswith("exception code 11 (")
        assert "(voltage_l1)" in tag["reason"]


async def test_run_once_with_a_bad_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "plant.yaml"
    path.write_text("plant: {name: x}\ndevices: []\nstate_dir: .\nbogus: 1\n")
    code, out, err = await edge_agent(tmp_path, "run", "--once", "-c", str(path))
    assert code == 2
    assert "bogus" in err
    assert out == ""


async def test_status_renders_the_running_agent(tmp_path: Path, mosquitto: Mosquitto) -> None:
    port = free_port()
    extra = (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {mosquitto.port}}}\n"
        f"service:\n  health: {{listen: 127.0.0.1, port: {port}}}\n"
    )
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = plant_file(tmp_path, ports, extra)
        code, out, err = await edge_agent(tmp_path, "status", "-c", str(path))
        assert code == 1
        assert f"no agent answers at http://127.0.0.1:{port}/status" in err
        assert "is edge-agent running with this plant file?" in err

        config = load_config(path, env={"EDGE_AGENT_STATE": str(tmp_path / "state")})
        agent = Agent(config)
        supervisor = Supervisor(agent)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(
                lambda: all(s.counters.polls >= 2 for s in agent.sources), 20, "two polls each"
            )
            code, out, err = await edge_agent(tmp_path, "status", "-c", str(path))
            json_code, raw, _ = await edge_agent(tmp_path, "status", "--json", "-c", str(path))
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)

    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].startswith("plant demo-plant: agent online")
    for device in DEVICES:
        (row,) = (line for line in lines if line.split()[:1] == [device])
        # The ghost tag keeps the line meter degraded, with the reason; the rest online.
        state = "degraded" if device == "line-meter" else "online"
        assert row.split()[1] == state, out
        assert "last good read" in row, out
    meter = next(line for line in lines if line.split()[:1] == ["line-meter"])
    assert "exception code 2" in meter
    assert "last good read never" in meter  # its one group always has the bad ghost
    cnc = next(line for line in lines if line.split()[:1] == ["cnc-1"])
    assert "s ago" in cnc
    broker = next(line for line in lines if line.split()[:1] == ["broker"])
    assert "connected" in broker
    assert "backlog" in broker
    assert "undelivered in the outbox" in broker  # the file, read while the agent writes
    assert any(line.startswith("outbox: writing") for line in lines), out

    assert json_code == 0
    document = json.loads(raw)
    assert document["plant"] == "demo-plant"
    assert set(document["device_states"]) == set(DEVICES)
    assert document["device_states"]["line-meter"]["reason"] == "exception code 2"
    assert "last_good" in document["device_states"]["cnc-1"]


async def test_status_without_a_health_endpoint_says_so(tmp_path: Path) -> None:
    path = plant_file(tmp_path, {"line-gateway": 1, "utility": 2})
    code, out, err = await edge_agent(tmp_path, "status", "-c", str(path))
    assert code == 1
    assert out == ""
    assert "health endpoint is disabled in this plant file" in err


async def test_run_once_reads_opc_ua_read_and_subscribe_groups(tmp_path: Path) -> None:
    from tests.opcua_support import PLANT, FrozenClock, device_yaml, expected, simulator, tags_yaml

    clock = FrozenClock()
    sim = simulator(clock)
    await sim.start()
    try:
        ns = sim.namespace_index
        read = tags_yaml(sim, "cnc-1", ["parts_good", "program"]) + "\n"
        read += tags_yaml(sim, "cnc-1", ["energy_kwh"], style="path") + "\n"
        read += f"  - {{name: missing, node: 'ns={ns};s=no.such.node'}}\n"
        read += tags_yaml(sim, "line-meter", ["voltages_v"])
        watched = tags_yaml(sim, "press-1", ["parts_total", "state"])
        groups = (
            f"- name: polled\n  interval: 1s\n  tags:\n{read}\n"
            f"- name: watched\n  mode: subscribe\n  interval: 200ms\n  tags:\n{watched}\n"
        )
        path = tmp_path / "opcua.yaml"
        path.write_text(
            f"plant: {{name: {PLANT}}}\nstate_dir: {tmp_path / 'state'}\ndevices:\n"
            + device_yaml("cell", sim.endpoint, groups)
        )
        code, out, err = await edge_agent(tmp_path, "run", "--once", "--json", "-c", str(path))
    finally:
        await sim.stop()
    assert code == 1, out + err  # the missing node
    tags = {name: tag for (_, name), tag in _tags(json.loads(out)).items()}
    missing = tags.pop("missing")
    # An array: one row per element, each with the array's node.
    voltages = [tags.pop(f"line-meter.voltages_v[{k}]") for k in range(3)]
    for voltage, phase in zip(
        voltages, ("voltage_l1_n", "voltage_l2_n", "voltage_l3_n"), strict=True
    ):
        assert voltage["quality"] == "good"
        assert voltage["value"] == sim.values("line-meter")[phase]
        assert voltage["raw"] == sim.node_id("line-meter", "voltages_v")
    assert missing["quality"] == "bad"
    assert "BadNodeIdUnknown" in missing["reason"]
    assert missing["raw"] == f"ns={ns};s=no.such.node"
    for name, tag in tags.items():
        unit, quantity = name.split(".", 1)
        assert tag["quality"] == "good", tag
        assert tag["value"] == expected(sim, unit, quantity), tag
    assert tags["cnc-1.parts_good"]["raw"] == sim.node_id("cnc-1", "parts_good")
    # A browse path shows the node it resolved to.
    path_raw = tags["cnc-1.energy_kwh"]["raw"]
    assert path_raw.startswith(f"/Objects/{ns}:cnc-1/")
    assert path_raw.endswith(f" -> {sim.node_id('cnc-1', 'energy_kwh')}")
    assert set(tags) == {
        "cnc-1.parts_good",
        "cnc-1.program",
        "cnc-1.energy_kwh",
        "press-1.parts_total",
        "press-1.state",
    }
    assert not (tmp_path / "state").exists()


async def test_run_once_tries_a_lost_shared_connection_once(tmp_path: Path) -> None:
    """A gateway that hangs up on every connection: its devices are all bad with the reason
    the first of them met, and it is not asked again for each further group or device."""
    accepted = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    try:
        async with serve_profile(demo_profile()) as plant:
            ports = {
                "line-gateway": plant.port("line-gateway"),
                "utility": server.sockets[0].getsockname()[1],
            }
            path = plant_file(tmp_path, ports)
            code, out, err = await edge_agent(tmp_path, "run", "--once", "--json", "-c", str(path))
    finally:
        server.close()
        await server.wait_closed()
    assert code == 1, out + err
    tags = _tags(json.loads(out))
    reasons = {
        t["reason"] for (d, _), t in tags.items() if d in ("compressor-1", "compressor-meter")
    }
    assert len(reasons) == 1, reasons
    assert accepted == 1


async def test_run_once_still_reads_the_neighbours_of_a_unit_that_garbles_its_reply(
    tmp_path: Path,
) -> None:
    """One unit behind a gateway answers out of step: the channel drops the connection and
    reopens it for the next reader. Its neighbours are read, not reported with its reason."""

    async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readexactly(12)  # MBAP + read holding registers
                tid, unit = struct.unpack(">H", request[:2])[0], request[6]
                if unit == 1:  # garbled: a protocol id that is not Modbus
                    writer.write(struct.pack(">HHHBBBH", tid, 7, 5, unit, 3, 2, 1))
                else:
                    writer.write(struct.pack(">HHHBBBH", tid, 0, 5, unit, 3, 2, 0x1234))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(gateway, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    devices = "".join(
        f"""  - name: {name}
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1, port: {port}}}
    unit_id: {unit}
    poll_groups:
      - {{name: g, interval: 1s, tags: [{{name: v, address: 0, type: uint16}}]}}
"""
        for name, unit in (("garbled", 1), ("meter", 2))
    )
    path = tmp_path / "plant.yaml"
    path.write_text(f"plant: {{name: p}}\nstate_dir: {tmp_path / 'state'}\ndevices:\n{devices}")
    try:
        code, out, err = await edge_agent(tmp_path, "run", "--once", "--json", "-c", str(path))
    finally:
        server.close()
        await server.wait_closed()
    assert code == 1, out + err
    tags = _tags(json.loads(out))
    assert tags[("garbled", "v")]["reason"].startswith("invalid response"), tags
    assert tags[("meter", "v")]["quality"] == "good", tags
    assert tags[("meter", "v")]["value"] == 0x1234
