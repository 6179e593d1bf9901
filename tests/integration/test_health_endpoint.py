"""/healthz, /metrics and the MQTT status document while a device and the broker fail and recover.

Real simulators, a real mosquitto, the endpoint scraped over loopback; the expected
figures come from what the test did (which unit it broke, whether the broker runs),
not from the agent's own notion of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.modbus_server import UnitFault
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import demo_config, demo_profile
from tests.servers import Mosquitto
from tests.service_support import HttpResponse, http_get, parse_metrics, value, wait_for

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]

DEVICES = ("line-meter", "press-1", "compressor-1")
BROKEN = "press-1"


def _extra(broker: Mosquitto) -> str:
    return (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, keepalive: 5}}\n"
        "service:\n"
        "  health: {listen: 127.0.0.1, port: 0, device_offline_after: 1s, sink_down_after: 1s}\n"
        "  status_interval: 1s\n"
    )


async def _healthz(port: int) -> tuple[int, dict[str, object]]:
    response = await http_get(port, "/healthz")
    assert response.headers["content-type"] == "application/json"
    return response.status, json.loads(response.body)


async def _until_health(
    port: int, status: int, within: float, what: str, reasons: tuple[str, ...] = ()
) -> dict[str, object]:
    """Poll /healthz until it answers ``status`` with every one of ``reasons`` among its reasons."""
    last: list[object] = []
    deadline = asyncio.get_running_loop().time() + within
    while True:
        code, body = await _healthz(port)
        text = " | ".join(str(r) for r in body["reasons"])  # type: ignore[attr-defined]
        if code == status and all(needle in text for needle in reasons):
            return body
        last[:] = [code, body]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last /healthz: {last}")
        await asyncio.sleep(0.2)


async def test_health_and_metrics_follow_a_failing_device_and_sink(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(ports, tmp_path, extra_yaml=_extra(mosquitto))
        config = config.model_copy(
            update={"devices": [d for d in config.devices if d.name in DEVICES]}
        )
        status_topic = f"edge/{config.plant.name}/status"
        agent = Agent(config)
        supervisor = Supervisor(agent)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: supervisor.health is not None, 10, "the health endpoint")
            assert supervisor.health is not None
            port = supervisor.health.bound_port

            # 1. Everything up: 200, and the figures move.
            body = await _until_health(port, 200, 15, "a healthy agent")
            assert body["reasons"] == []
            await wait_for(
                lambda: (
                    all(r.counters.batches_sent >= 2 for r in agent.sinks)
                    and all(s.counters.good_polls >= 2 for s in agent.sources)
                ),
                15,
                "deliveries",
            )
            metrics = await http_get(port, "/metrics")
            assert metrics.status == 200
            assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
            up = parse_metrics(metrics.body.decode())
            for device in DEVICES:
                assert value(up, "edge_agent_device_polls_total", device=device) >= 2
                assert value(up, "edge_agent_device_state", device=device, state="online") == 1
                assert value(up, "edge_agent_device_state", device=device, state="offline") == 0
                reads = value(up, "edge_agent_device_read_duration_seconds_count", device=device)
                assert reads >= 2
                assert (
                    value(
                        up,
                        "edge_agent_device_read_duration_seconds_bucket",
                        device=device,
                        le="+Inf",
                    )
                    == reads
                )
            assert value(up, "edge_agent_sink_batches_sent_total", sink="broker") >= 2
            assert value(up, "edge_agent_sink_connected", sink="broker") == 1
            assert value(up, "edge_agent_healthy") == 1
            assert value(up, "edge_agent_pipeline_processor_errors_total") == 0
            assert value(up, "process_resident_memory_bytes") > 0
            assert value(up, "edge_agent_build_info", plant="demo-plant", version="0.1.0") == 1
            # The outbox: every batch appended once, nothing lost, writing.
            assert value(up, "edge_agent_outbox_appended_batches_total") >= value(
                up, "edge_agent_sink_batches_sent_total", sink="broker"
            )
            assert value(up, "edge_agent_outbox_appended_samples_total") > 0
            assert value(up, "edge_agent_outbox_max_bytes") == config.outbox.max_bytes
            assert value(up, "edge_agent_outbox_write_failing") == 0
            assert value(up, "edge_agent_outbox_dropped_batches_total") == 0
            assert value(up, "edge_agent_outbox_dead_letters") == 0

            # The retained status document on MQTT, beside the will.
            sub = await subscriber_factory(mosquitto.port, status_topic)
            await sub.wait_until(
                lambda: any(m.payload.startswith(b"{") for m in sub.messages),
                "a status document",
                within=10,
            )
            document = json.loads(
                next(m for m in sub.messages if m.payload.startswith(b"{")).payload
            )
            assert document["state"] == "online"
            assert document["devices"]["online"] == len(DEVICES)
            assert document["devices_total"] == len(DEVICES)
            assert document["sinks"]["broker"]["connected"] is True
            assert document["sinks"]["broker"]["replayed_batches"] == 0
            assert document["outbox"]["max_bytes"] == config.outbox.max_bytes
            assert document["outbox"]["dropped_batches"] == 0
            assert document["outbox"]["writing"] is True
            assert isinstance(document["uptime_s"], float)

            # 2. A unit stops answering (its gateway says so) and the broker goes away.
            plant.set_unit_fault(BROKEN, UnitFault.GATEWAY_NO_RESPONSE)
            mosquitto.stop()
            body = await _until_health(
                port,
                503,
                20,
                "503 for the device and the sink",
                (f"device {BROKEN}: offline for", "sink broker: not delivering"),
            )
            reasons = " | ".join(str(r) for r in body["reasons"])  # type: ignore[attr-defined]
            assert "(exception code 11)" in reasons, reasons
            assert "line-meter" not in reasons, reasons
            down = parse_metrics((await http_get(port, "/metrics")).body.decode())
            assert value(down, "edge_agent_device_state", device=BROKEN, state="offline") == 1
            assert (
                value(
                    down,
                    "edge_agent_device_failures_total",
                    device=BROKEN,
                    reason="exception code 11",
                )
                >= 3
            )
            assert value(down, "edge_agent_device_failed_polls_total", device=BROKEN) >= 3
            assert value(down, "edge_agent_device_state", device="line-meter", state="online") == 1
            assert value(down, "edge_agent_sink_connected", sink="broker") == 0
            assert value(down, "edge_agent_sink_send_failures_total", sink="broker") >= 1
            backlog = value(down, "edge_agent_buffer_batches", sink="broker")
            assert backlog > 0
            # A short outage waits in the live lane (memory), and on disk.
            assert value(down, "edge_agent_outbox_sink_live_batches", sink="broker") == backlog
            assert value(down, "edge_agent_outbox_rows") >= 1
            assert value(down, "edge_agent_outbox_bytes") > 0
            assert value(down, "edge_agent_outbox_oldest_age_seconds") > 0
            assert value(down, "edge_agent_sink_down_seconds", sink="broker") > 1
            assert value(down, "edge_agent_healthy") == 0

            # 3. Both come back: 200 again, the backlog delivered.
            plant.set_unit_fault(BROKEN, None)
            mosquitto.start()
            body = await _until_health(port, 200, 45, "recovery")
            await wait_for(lambda: len(agent.sinks[0].buffer) == 0, 20, "the backlog delivered")
            again = parse_metrics((await http_get(port, "/metrics")).body.decode())
            # Online, or degraded until its 10 s group has been read again since the fault.
            assert value(again, "edge_agent_device_state", device=BROKEN, state="offline") == 0
            assert value(again, "edge_agent_device_good_polls_total", device=BROKEN) > value(
                down, "edge_agent_device_good_polls_total", device=BROKEN
            )
            assert value(again, "edge_agent_sink_connected", sink="broker") == 1
            assert value(again, "edge_agent_buffer_dropped_batches_total", sink="broker") == 0
            assert value(again, "edge_agent_outbox_sink_dropped_samples_total", sink="broker") == 0
            # Delivered from memory, in order: nothing had to be read back from disk.
            assert value(again, "edge_agent_outbox_sink_replayed_batches_total", sink="broker") == 0
            assert value(again, "edge_agent_outbox_dropped_batches_total") == 0
            assert value(again, "edge_agent_sink_batches_sent_total", sink="broker") > value(
                down, "edge_agent_sink_batches_sent_total", sink="broker"
            )
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 20)


async def test_only_get_and_head_on_known_paths(tmp_path: Path) -> None:
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(
            ports, tmp_path, extra_yaml="service: {health: {listen: 127.0.0.1, port: 0}}\n"
        )
        config = config.model_copy(update={"devices": config.devices[:1]})
        supervisor = Supervisor(Agent(config))
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: supervisor.health is not None, 10, "the health endpoint")
            assert supervisor.health is not None
            port = supervisor.health.bound_port
            missing: HttpResponse = await http_get(port, "/nope")
            assert missing.status == 404
            assert b"/healthz" in missing.body
            assert (await http_get(port, "/metrics", method="POST")).status == 405
            head = await http_get(port, "/status", method="HEAD")
            assert head.status == 200
            assert head.body == b""
            status = await http_get(port, "/status")
            assert json.loads(status.body)["devices_total"] == 1
            # No HTTP version to answer in: aiohttp answers 1.0, as it may (RFC 9110 6.2).
            assert await _raw(port, b"NONSENSE\r\n\r\n") in (
                b"HTTP/1.0 400 Bad Request",
                b"HTTP/1.1 400 Bad Request",
            )
            oversized = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"x" * 10_000 + b"\r\n\r\n"
            assert await _raw(port, oversized) == b""  # hung up on, no answer
            openmetrics = await http_get(
                port, "/metrics", accept="application/openmetrics-text; version=1.0.0"
            )
            assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
            assert openmetrics.body.endswith(b"# EOF\n")
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 20)


async def _raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as is; return the status line of the answer (b"" if none)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        answer = b""
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return answer.split(b"\r\n", 1)[0]
