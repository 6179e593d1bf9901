"""Review of issue 18's command channels (MQTT, Sparkplug, the local socket) and the
agent's wiring around them: each test is a problem found in review, seen failing.

"Every command, accepted or refused, is audited; nothing secret in the log or on the
audit topic; a restart (or a reload) does not open a replay window."
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import PlantIdentity
from edge_agent.config.loader import parse_config
from edge_agent.model import iso_utc_ms
from edge_agent.service.agent import Agent
from edge_agent.sinks.base import TakesCommands
from edge_agent.writes.audit import AuditLog
from edge_agent.writes.local_socket import LocalCommandSocket
from edge_agent.writes.model import Outcome, WriteRequest
from edge_agent.writes.policy import PlantWrites
from edge_agent.writes.service import WriteService
from tests.gate_support import Devices, make_gate, plant
from tests.integration.test_mqtt_commands import Sender
from tests.mqtt_support import make_sink, wait_connected
from tests.servers import Mosquitto

NS = 1_000_000_000


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def short_dir() -> Any:
    """A short directory for a Unix socket (sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="rv", dir="/tmp") as name:
        yield Path(name)


# --------------------------------------------------------------------------- MQTT audit topic


@pytest.mark.integration
async def test_the_audit_topic_holds_no_password_the_audit_file_drops(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any, tmp_path: Path
) -> None:
    """docs/writes-cli.md: keys named like secrets are dropped from a record at any depth
    and registered secrets redacted, "whatever a channel put in it"; "the same records
    are published on edge/{plant}/audit". The gate cleans the record only for the file:
    its listeners (the MQTT sinks) get the raw record, so a method argument named
    ``password`` goes to every subscriber of the audit topic in clear."""
    audit = AuditLog(tmp_path / "audit", 10**6, 3)
    service = WriteService(PlantWrites.of(plant_config()), Devices(), audit)
    service.start()
    audit_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/audit")
    sink = make_sink(mosquitto, plant, commands=True)
    assert isinstance(sink, TakesCommands)
    sink.take_commands(service)
    service.add_listener(sink.publish_audit)
    await sink.start()
    sender = Sender(mosquitto.port)
    try:
        await wait_connected(sink)
        assert sink.commands is not None
        async with asyncio.timeout(5):
            while sink.commands.subscriptions == 0:
                await asyncio.sleep(0.01)
        command = {
            "id": "unlock-1",
            "method": "ack",
            "args": {"code": 3, "who": "operator", "password": "hunter2-plant-pin"},
            "issued_at": _now_rfc3339(),
        }
        await sender.send(f"edge/{plant.name}/press-2/cmd", json.dumps(command).encode())
        [published] = await audit_sub.wait_count(1)
    finally:
        sender.close()
        await sink.stop()
    [stored] = list(audit.read())
    assert stored["id"] == "unlock-1"
    assert "hunter2-plant-pin" not in json.dumps(stored), "the file is clean"
    assert b"hunter2-plant-pin" not in published.payload, published.payload.decode()


def plant_config() -> Any:
    return plant()


# --------------------------------------------------------------------------- local socket


async def test_commands_cut_short_by_the_stop_are_all_audited(short_dir: Path) -> None:
    """Two commands to one device over the local socket: the first is writing (the device
    is slow to answer), the second waits for the device's lock. The agent stops; the
    socket's grace runs out and both are cancelled. The first is audited (unknown); the
    second, received and never answered, leaves no trace: the gate audits a cancelled
    command only once its write began."""
    gate = make_gate()
    gate.device.write_mode = "hangs"
    server = LocalCommandSocket(short_dir / "commands.sock", gate.service)
    await server.start()
    writers = []
    try:
        for ident, value in (("cli-a", 6.5), ("cli-b", 6.6)):
            _reader, writer = await asyncio.open_unix_connection(str(server.path))
            line = {
                "id": ident,
                "device": "compressor-1",
                "tag": "pressure_setpoint",
                "value": value,
            }
            writer.write(json.dumps(line).encode() + b"\n")
            await writer.drain()
            writers.append(writer)
        async with asyncio.timeout(5):
            await gate.device.hanging.wait()
            while sum(1 for r in gate.device.requests if r[0] == "prepare") < 2:
                await asyncio.sleep(0.01)
    finally:
        await server.close(grace=0.1)
        for writer in writers:
            writer.close()
            await writer.wait_closed()
    audited = {str(r["id"]): r["outcome"] for r in gate.audit.records}
    assert audited.get("cli-a") == "unknown"
    assert "cli-b" in audited, f"cli-b was received and never audited: {audited}"


# --------------------------------------------------------------------------- reload


RELOAD_PLANT = """
plant: {name: hall-1}
state_dir: %(state)s
commands: {max_age: 10m, socket: false}
devices:
  - name: compressor-1
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1}
    poll_groups:
      - interval: 1s
        tags:
          - name: setpoint
            address: 10
%(write)s"""
WRITE = "            write: {channels: [cli], min: 0, max: 100}\n"


async def test_a_reload_that_makes_the_gate_remembers_the_ids_of_the_audit_log(
    tmp_path: Path,
) -> None:
    """The audit log holds command ``night-1``, applied a minute ago (the agent ran with
    writes, and was restarted with them taken out). Writes come back with a reload
    (SIGHUP). The gate made by that reload never read the audit log's ids
    (``service.start()`` runs only in ``Agent.run``, when there was no gate yet), so a
    copy of ``night-1`` replayed now passes the id check: the replay window a restart
    must not open is open. With the writes there at start it is refused "duplicate"."""
    AuditLog(tmp_path / "audit", 10**7, 10).append(
        {
            "time": iso_utc_ms(time.time_ns() - 60 * NS),
            "id": "night-1",
            "channel": "mqtt",
            "device": "compressor-1",
            "tag": "setpoint",
            "outcome": "applied",
        }
    )
    without = parse_config(RELOAD_PLANT % {"state": tmp_path, "write": ""}, env={})
    with_writes = parse_config(RELOAD_PLANT % {"state": tmp_path, "write": WRITE}, env={})
    agent = Agent(without)
    no_gate = agent.writes
    assert no_gate is None
    running = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(5):
            await agent.started.wait()
        assert (await agent.reconfigure(with_writes)).applied
        assert agent.writes is not None
        result = await agent.writes.submit(
            WriteRequest(
                id="night-1",
                channel="cli",
                identity="op",
                device="compressor-1",
                tag="setpoint",
                value=5,
            )
        )
    finally:
        agent.request_stop()
        await running
    assert result.outcome is Outcome.REFUSED
    assert result.reason.startswith("duplicate id"), result.reason
