"""Review of issue 18's command channels (MQTT, Sparkplug, the local socket) and the
agent's wiring around them: each test is a problem found in review, seen failing.

"Every command, accepted or refused, is audited; nothing secret in the log or on the
audit topic; a restart (or a reload) does not open a replay window."
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_agent.sinks.base import TakesCommands
from edge_agent.writes.audit import AuditLog
from edge_agent.writes.local_socket import LocalCommandSocket
from edge_agent.writes.policy import PlantWrites
from edge_agent.writes.service import WriteService
from tests.gate_support import Devices, plant
from tests.integration.test_sparkplug_sink import (
    GROUP,
    NODE,
    _born,
    _command,
    _publish,
    _running,
    _sink,
)
from tests.servers import Mosquitto
from tests.writes_support import RecordingGate

NS = 1_000_000_000


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def short_dir() -> Any:
    """A short directory for a Unix socket (sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="rv", dir="/tmp") as name:
        yield Path(name)


# --------------------------------------------------------------------------- Sparkplug


@pytest.mark.integration
async def test_every_metric_of_one_dcmd_reaches_the_gate_and_its_audit(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A Sparkplug host writes a recipe: ten setpoints in one DCMD (one message, as
    hosts do). Each metric is a command, and "the gate audits every command"; Sparkplug
    has no result topic, so the audit log is the only trace. The handler spawns one task
    per metric and refuses the ninth and later "busy" at once (the first eight have not
    run yet): those are neither written nor audited, only counted and logged once."""
    gate = RecordingGate()  # the stand-in gate: each request it sees is one audit record
    sink = _sink(mosquitto, tmp_path)
    assert isinstance(sink, TakesCommands)
    sink.take_commands(gate)
    names = [f"setpoint_{n}" for n in range(10)]
    async with _running(sink):
        await _born(sink)
        _publish(
            mosquitto.port,
            f"spBv1.0/{GROUP}/DCMD/{NODE}/Meter 1",
            _command(dict.fromkeys(names, 1.0)),
        )
        # Each metric ends accepted or refused (counted): then all ten were handled.
        async with asyncio.timeout(5):
            while (
                sum(sink.event_counts()[k] for k in ("commands_accepted", "commands_refused")) < 10
            ):
                await asyncio.sleep(0.01)
    seen = sorted(r.tag or "" for r in gate.requests)
    assert seen == names, (
        f"{10 - len(seen)} metric(s) of the DCMD never reached the gate (not audited); "
        f"counters: {sink.event_counts()}"
    )


# --------------------------------------------------------------------------- MQTT audit topic


@pytest.mark.integration
def plant_config() -> Any:
    return plant()


# --------------------------------------------------------------------------- local socket


@pytest.fixture
async def socket_gate(short_dir: Path) -> AsyncIterator[tuple[LocalCommandSocket, AuditLog]]:
    audit = AuditLog(short_dir / "audit", 10**6, 3)
    service = WriteService(PlantWrites.of(plant()), Devices(), audit)
    service.start()
    server = LocalCommandSocket(short_dir / "commands.sock", service)
    await server.start()
    try:
        yield server, audit
    finally:
        await server.close()


async def _ask(path: Path, line: bytes) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(line)
        await writer.drain()
        answer = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    document = json.loads(answer)
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize(
    "body",
    [
        # a null value (a script's variable that was empty)
        {"id": "cli-7", "device": "compressor-1", "tag": "pressure_setpoint", "value": None},
        # a typo'd field: "dryrun" (the person meant a dry run)
        {
            "id": "cli-8",
            "device": "compressor-1",
            "tag": "pressure_setpoint",
            "value": 6.5,
            "dryrun": True,
        },
    ],
)
async def test_a_refused_local_request_is_audited(
    socket_gate: tuple[LocalCommandSocket, AuditLog], body: dict[str, Any]
) -> None:
    """ "Every command, accepted or refused, is appended to an audit log": MQTT hands a
    payload it cannot read to the gate as a refusal so it is audited (with its id);
    the local socket answers such a request itself and the audit log never hears of it,
    although the sender (SO_PEERCRED) and the id are known."""
    server, audit = socket_gate
    answer = await _ask(server.path, json.dumps(body).encode() + b"\n")
    assert answer["outcome"] == "refused"
    assert [r["id"] for r in audit.read()] == [body["id"]]


# --------------------------------------------------------------------------- reload
