"""The console's commissioning APIs over HTTP against our simulators: the same values and
lines as the command line, one request at a time, a polled serial port left alone.

A tiny aiohttp app mounts the handlers as the console does (after its own session, CSRF
and permission checks, which are not this module's); the devices are the demo plant's
simulators on free loopback ports, with the simulator clock frozen so that the console
and the command line read the same values.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from drivers.modbus.target import parse_target
from drivers.modbus.tools import Device, run_probe, run_read
from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.console.commissioning import (
    AUDIT_EVENT,
    CommissioningGate,
    commission_once,
    commission_probe,
    commission_read,
)
from edge_agent.oneshot import json_document, read_once
from simulators.serve import Plant, serve_profile
from tests.plant import demo_config, demo_profile

pytestmark = pytest.mark.integration

USER = "alice"


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1_699_956_000.0  # Tuesday 2023-11-14 10:00 UTC: inside the shifts

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    clock = FrozenClock()
    async with serve_profile(demo_profile(), clock=clock, start=clock.now - 600) as served:
        yield served


def _port(plant: Plant, server: str) -> int:
    return int(plant.address(server).rpartition(":")[2])


@pytest.fixture
def config(plant: Plant, tmp_path: Path) -> PlantConfig:
    ports = {name: _port(plant, name) for name in ("line-gateway", "utility")}
    return demo_config(ports, tmp_path / "state")


class Console:
    """The handlers mounted as the console mounts them, one gate for the agent."""

    def __init__(self, config: PlantConfig) -> None:
        self.config = config
        self.gate = CommissioningGate()
        self.app = web.Application()
        for action, handler in (
            ("read", commission_read),
            ("probe", commission_probe),
            ("once", commission_once),
        ):
            self.app.router.add_post(f"/console/api/commission/{action}", self._mount(handler))

    def _mount(self, handler: Any) -> Any:
        async def route(request: web.Request) -> web.StreamResponse:
            response: web.StreamResponse = await handler(
                request, user=USER, gate=self.gate, config=self.config
            )
            return response

        return route


@pytest.fixture
def console(config: PlantConfig) -> Console:
    return Console(config)


@pytest.fixture
async def client(console: Console) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(console.app, host="127.0.0.1")) as test_client:
        yield test_client


async def _post(
    client: TestClient[web.Request, web.Application], action: str, body: object
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(
        f"/console/api/commission/{action}",
        data=data,
        headers={"Content-Type": "application/json"},
    )
    return response.status, await response.json()


def _cli_lines(out: io.StringIO) -> list[str]:
    """The tool's output without its first line (which says how many ms it took)."""
    return out.getvalue().splitlines()[1:]


async def test_read_shows_what_the_command_line_shows(
    plant: Plant, client: TestClient[web.Request, web.Application]
) -> None:
    target = f"tcp://{plant.address('line-gateway')}"
    out = io.StringIO()
    code = await run_read(
        Device(parse_target(target), 1, 1.0), table="input", address=0, count=4, out=out
    )
    assert code == 0
    body = {"target": target, "unit": 1, "table": "input", "address": 0, "count": 4}
    status, document = await _post(client, "read", body)
    assert status == 200, document
    assert document["ok"] is True
    assert document["lines"][1:] == _cli_lines(out)
    (row,) = [line.split() for line in _cli_lines(out) if line.strip().startswith("float32")]
    by_key = {(d["type"], d["byte_order"]): d for d in document["decodings"]}
    assert by_key["float32", "ABCD"]["text"] == row[1]
    assert by_key["float32", "CDAB"]["text"] == row[2]
    registers = [line.split()[1] for line in _cli_lines(out)[1:5]]
    assert document["registers"] == registers


async def test_read_of_one_type_as_the_command_line(
    plant: Plant, client: TestClient[web.Request, web.Application]
) -> None:
    target = f"tcp://{plant.address('line-gateway')}"
    out = io.StringIO()
    await run_read(
        Device(parse_target(target), 2, 1.0),
        table="holding",
        address=4,
        type_="float32",
        byte_order="CDAB",
        out=out,
    )
    body = {"target": target, "unit": 2, "address": 4, "type": "float32", "byte_order": "CDAB"}
    status, document = await _post(client, "read", body)
    assert status == 200
    assert document["lines"][1:] == _cli_lines(out)
    (decoding,) = document["decodings"]
    assert f"float32 CDAB at holding 4: {decoding['text']}" in out.getvalue()


async def test_an_exception_comes_back_as_error_and_hint(
    plant: Plant, client: TestClient[web.Request, web.Application]
) -> None:
    target = f"tcp://{plant.address('line-gateway')}"
    body = {"target": target, "unit": 1, "table": "input", "address": 12}  # a hole
    status, document = await _post(client, "read", body)
    assert status == 200
    assert document["ok"] is False
    assert document["code"] == 2
    assert "exception 2 (illegal data address)" in document["error"]
    assert document["hint"]


async def test_probe_ranks_as_the_command_line(
    plant: Plant, client: TestClient[web.Request, web.Application]
) -> None:
    truth = plant.read("cnc-1")["power_kw"]
    assert isinstance(truth, float)
    target = f"tcp://{plant.address('line-gateway')}"
    low, high = truth * 0.95, truth * 1.05
    out = io.StringIO()
    code = await run_probe(
        Device(parse_target(target), 2, 1.0),
        table="holding",
        address=4,
        low=low,
        high=high,
        out=out,
    )
    assert code == 0
    body = {"target": target, "unit": 2, "address": 4, "expect": [low, high]}
    status, document = await _post(client, "probe", body)
    assert status == 200, document
    assert document["lines"][1:] == _cli_lines(out)
    best = document["candidates"][0]
    assert (best["label"], best["address"]) == ("float32 CDAB", 4)
    assert f"likeliest: float32 CDAB at address 4 = {best['text']}" in out.getvalue()
    assert document["verdict"] in out.getvalue()


async def test_once_is_run_once_for_that_device(
    config: PlantConfig, client: TestClient[web.Request, web.Application]
) -> None:
    everything = json_document(await read_once(config))
    (expected,) = [d for d in everything["devices"] if d["device"] == "line-meter"]
    status, document = await _post(client, "once", {"device": "line-meter"})
    assert status == 200, document
    assert document["ok"] is True
    assert document["devices"] == [expected]
    assert document["good"] is expected["good"] is True
    assert document["text"][0] == "line-meter: all good"


async def test_bad_requests_name_their_field_and_send_nothing(
    plant: Plant, client: TestClient[web.Request, web.Application]
) -> None:
    served = plant.reads_served("line-meter")
    target = f"tcp://{plant.address('line-gateway')}"
    cases: list[tuple[str, object, str, str]] = [
        ("read", {"target": target, "table": "holdnig", "address": 0}, "table", "use holding"),
        ("read", {"target": target, "address": 70000}, "address", "addresses are 0..65535"),
        ("read", {"target": target, "address": 300101}, "address", "table input address 100"),
        ("read", {"target": target, "address": 0, "count": 126}, "count", "1..125"),
        ("read", {"target": target, "table": "coil", "address": 0, "count": 2001}, "count", ""),
        ("read", {"target": "http://x", "address": 0}, "target", "unknown scheme"),
        ("read", {"target": "tcp://h:99999", "address": 0}, "target", "port must be"),
        ("read", {"target": target, "address": 0, "unit": 0}, "unit", "broadcast"),
        ("read", {"target": target, "address": 0, "byte_order": "CDAB"}, "byte_order", "type"),
        ("probe", {"target": target, "table": "coil", "address": 0, "expect": [1, 2]}, "table", ""),
        ("probe", {"target": target, "address": 0, "expect": [1, 2], "count": 200}, "count", ""),
        ("once", {"device": "nobody"}, "device", "line-meter, cnc-1"),
    ]
    with capture_logs() as logs:
        for action, body, field, words in cases:
            status, document = await _post(client, action, body)
            assert status == 400, (body, document)
            assert document["field"] == field, (body, document)
            assert words in document["error"], (body, document)
            assert "--" not in document["error"]
        status, document = await _post(client, "read", b"{not json")
        assert (status, document["field"]) == (400, None)
    assert plant.reads_served("line-meter") == served
    audits = [e for e in logs if e["event"] == AUDIT_EVENT]
    assert len(audits) == len(cases) + 1
    assert all(e["user"] == USER and e["outcome"].startswith("bad request") for e in audits)
    assert audits[-2] == {
        "event": AUDIT_EVENT,
        "log_level": "info",
        "user": USER,
        "action": "once",
        "target": "nobody",
        "outcome": "bad request (device)",
    }


@pytest.fixture
async def silent_device() -> AsyncIterator[str]:
    """A TCP peer that takes requests and never answers: a read waits its whole timeout."""
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in connections:
            writer.close()
        await server.wait_closed()


async def test_one_request_at_a_time_a_second_is_busy(
    silent_device: str, console: Console, client: TestClient[web.Request, web.Application]
) -> None:
    body = {"target": silent_device, "unit": 1, "address": 0, "timeout": 0.5}
    with capture_logs() as logs:
        first = asyncio.create_task(_post(client, "read", body))
        while not console.gate.busy:
            await asyncio.sleep(0.01)
        status, document = await _post(client, "probe", body | {"expect": [1, 2]})
        assert status == 409
        assert document["error"] == "busy"
        assert f"read {silent_device} unit 1 holding 0 by {USER}" in document["detail"]
        first_status, answered = await first
    assert first_status == 200
    assert (answered["ok"], answered["outcome"]) == (False, "timeout")
    assert "no answer from unit 1 within 0.5 s" in answered["error"]
    assert console.gate.enter("the next") == "", "the slot is free again"
    console.gate.leave()
    outcomes = [(e["action"], e["outcome"]) for e in logs if e["event"] == AUDIT_EVENT]
    assert outcomes == [("probe", "busy"), ("read", "timeout")]


RTU_PLANT = """
plant: {{name: rtu-plant, site: test}}
state_dir: {state}
devices:
  - name: pump-drive
    driver: modbus
    connection: {{transport: rtu, serial_port: {port}, parity: N}}
    unit_id: 4
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {{name: speed, address: 0, type: uint16}}
"""


@pytest.fixture
def rtu_console(tmp_path: Path) -> Console:
    """A running config with a device on a serial port (a symlink, as /dev/serial/by-id
    names are): the port must never be opened by the console."""
    real = tmp_path / "ttyREAL"
    real.write_text("")
    link = tmp_path / "by-id-pump"
    link.symlink_to(real)
    return Console(parse_config(RTU_PLANT.format(state=tmp_path / "state", port=link)))


async def test_a_polled_serial_port_is_not_opened_a_second_time(
    rtu_console: Console, tmp_path: Path
) -> None:
    async with TestClient(TestServer(rtu_console.app, host="127.0.0.1")) as client:
        with capture_logs() as logs:
            status, document = await _post(client, "once", {"device": "pump-drive"})
            assert status == 200
            assert document["ok"] is False
            assert document["refused"] is True
            assert f"polling the serial port {tmp_path / 'by-id-pump'}" in document["error"]
            assert "device page shows pump-drive live" in document["hint"]
            # The same port by its other name, from read and probe.
            target = f"rtu://{tmp_path / 'ttyREAL'}?baud=9600&parity=N"
            for action, extra in (("read", {}), ("probe", {"expect": [1, 2]})):
                body = {"target": target, "unit": 4, "address": 0} | extra
                status, document = await _post(client, action, body)
                assert status == 200
                assert document["refused"] is True, document
                assert "(pump-drive)" in document["error"]
    outcomes = [(e["action"], e["outcome"]) for e in logs if e["event"] == AUDIT_EVENT]
    assert outcomes == [
        ("once", "refused: serial port in use"),
        ("read", "refused: serial port in use"),
        ("probe", "refused: serial port in use"),
    ]
    assert not rtu_console.gate.busy
