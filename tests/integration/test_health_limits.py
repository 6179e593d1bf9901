"""The health endpoint holds a bounded number of clients and stops without noise."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.service import health
from edge_agent.service.agent import Agent
from edge_agent.service.health import HealthServer
from edge_agent.service.liveness import LoopMonitor
from edge_agent.service.status import ServiceStats
from tests.service_support import http_get, parse_metrics, value

pytestmark = pytest.mark.integration

PLANT = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[HealthServer]:
    agent = Agent(parse_config(PLANT + f"state_dir: {tmp_path}\n", env={}))
    endpoint = HealthServer(agent, ServiceStats(monitor=LoopMonitor()), "127.0.0.1", 0)
    await endpoint.start()
    try:
        yield endpoint
    finally:
        await endpoint.stop()


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _idle(port: int, count: int) -> list[Connection]:
    """``count`` clients that connect and send nothing (as a port scanner or a bug does)."""
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]


async def _closed_by_server(connection: Connection) -> bool:
    reader, _ = connection
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


async def _close(connections: list[Connection]) -> None:
    for _, writer in connections:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_idle_clients_beyond_the_limit_are_closed_at_once_and_counted(
    server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "MAX_CLIENTS", 8)
    # Far beyond the wait below: a client closed in time was refused, not timed out.
    monkeypatch.setattr(health, "REQUEST_TIMEOUT_S", 60.0)
    port = server.bound_port
    held = await _idle(port, 8)
    try:
        extra = await _idle(port, 5)
        # Closed without waiting for the request time bound: nothing is held for them.
        assert all(await asyncio.gather(*(_closed_by_server(c) for c in extra)))
        await _close(extra)
        assert server.refused_connections == 5
        assert len(server._clients) == 8
    finally:
        await _close(held)
    # Room again: monitoring gets its answer, and /metrics shows what was refused.
    for _ in range(100):
        if not server._clients:
            break
        await asyncio.sleep(0.02)
    response = await http_get(port, "/metrics")
    assert response.status == 200
    metrics = parse_metrics(response.body.decode())
    assert value(metrics, "edge_agent_health_connections_refused_total") == 5
    assert value(metrics, "edge_agent_health_connections_max") == 8


async def test_stop_with_open_clients_is_quiet_and_leaves_no_task(tmp_path: Path) -> None:
    agent = Agent(parse_config(PLANT + f"state_dir: {tmp_path}\n", env={}))
    endpoint = HealthServer(agent, ServiceStats(monitor=LoopMonitor()), "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        await endpoint.start()
        clients = await _idle(endpoint.bound_port, 5)
        for _ in range(100):
            if len(endpoint._clients) == 5:
                break
            await asyncio.sleep(0.02)
        assert len(endpoint._clients) == 5
        await endpoint.stop()
        assert all(await asyncio.gather(*(_closed_by_server(c) for c in clients)))
        await _close(clients)
        await asyncio.sleep(0.1)  # let done callbacks run
    finally:
        loop.set_exception_handler(previous)
    assert reported == [], [c.get("message") for c in reported]
    assert not endpoint._clients


async def _answer(port: int, *parts: bytes) -> bytes:
    """Send ``parts`` as separate writes; the whole answer, b"" when hung up on."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)  # apart, so that the server reads them apart
        return await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return b""
    finally:
        await _close([(reader, writer)])


async def test_a_slow_client_is_cut_off_without_an_answer(
    server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp by itself would wait for the rest of the head for an hour (its keep-alive).
    monkeypatch.setattr(health, "REQUEST_TIMEOUT_S", 0.5)
    connection = await asyncio.open_connection("127.0.0.1", server.bound_port)
    try:
        connection[1].write(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the end
        await connection[1].drain()
        assert await _closed_by_server(connection)
    finally:
        await _close([connection])
    for _ in range(100):
        if not server._clients:
            break
        await asyncio.sleep(0.02)
    assert not server._clients
    response = await http_get(server.bound_port, "/status")  # and others are served
    assert response.status == 200


async def test_the_whole_request_head_is_bounded_not_only_each_line(server: HealthServer) -> None:
    port = server.bound_port
    # Each header well within aiohttp's per-line bound; together past MAX_REQUEST_BYTES.
    pads = [f"X-Pad-{i}: {'x' * 1000}\r\n".encode() for i in range(10)]
    assert await _answer(port, b"GET /status HTTP/1.1\r\nHost: x\r\n", *pads, b"\r\n") == b""
    # A head that arrives in pieces within the bound is answered.
    answer = await _answer(port, b"GET /sta", b"tus HTTP/1.1\r\nHost: x\r", b"\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    # A body is not the head: an oversized one is not read, the method is refused.
    post = b"POST /status HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
    assert (await _answer(port, post)).startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")


async def test_malformed_requests_are_answered_without_an_error_in_the_log(
    server: HealthServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A port scanner sends such things all day; the agent's log is for the plant.
    with caplog.at_level(logging.DEBUG):
        for request in (b"NONSENSE\r\n\r\n", b"GET /status HTTP/1.1\r\n\r\n"):  # no Host
            assert (await _answer(server.bound_port, request)).split(b" ")[1] == b"400"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_answers_name_the_product_not_the_python_and_aiohttp_versions(
    server: HealthServer,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = (await asyncio.wait_for(reader.read(), 10)).split(b"\r\n\r\n")[0]
    finally:
        writer.close()
        await writer.wait_closed()
    assert b"\r\nServer: edge-agent\r\n" in head
    assert b"aiohttp" not in head.lower()
    assert b"python" not in head.lower()
