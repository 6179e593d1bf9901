"""MqttSink over the wire: a real mosquitto on a free loopback port, no mocks.

What arrived is checked with a plain paho client pumped from the test (``loop(0)``
between awaits), so the tests start no thread. Every test uses its own plant name,
hence its own topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.config import MqttSinkConfig, MqttTls, PlantIdentity
from edge_agent.errors import ConfigError, SinkError
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.sinks.mqtt import MqttSink
from edge_agent.sinks.mqtt_bridge import MqttConnection
from tests.memory_buffer import MemoryBuffer
from tests.mqtt_support import (
    T0_NS,
    Received,
    batch,
    fast_backoff,
    make_sink,
    wait_connected,
)
from tests.servers import LOOPBACK, Mosquitto, free_port

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- helpers


def signal_broker(broker: Mosquitto, sig: signal.Signals) -> None:
    assert broker.process is not None
    os.kill(broker.process.pid, sig)


# --------------------------------------------------------------------------- publishing


@pytest.mark.parametrize("qos", [1, 0])
async def test_one_message_per_batch_with_topic_and_payload(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any, qos: int
) -> None:
    sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/data")
    sink = make_sink(mosquitto, plant, qos=qos)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", 0), batch("press-2", 0), batch("press-1", 1)])
        got = await sub.wait_count(3)
    finally:
        await sink.stop()
    assert [m.topic for m in got] == [
        f"edge/{plant.name}/press-1/data",
        f"edge/{plant.name}/press-2/data",
        f"edge/{plant.name}/press-1/data",
    ]
    first = json.loads(got[0].payload)
    assert first == {
        "schema": 1,
        "plant": plant.name,
        "site": "Hall 3",
        "device": "press-1",
        "group": "fast",
        "ts": "2026-11-18T11:06:40.000Z",
        "ts_ns": T0_NS,
        "values": {
            "seq": {"v": 0, "q": "good"},
            "power_kw": {"v": 12.5, "q": "good"},
            "state": {"v": None, "q": "bad", "r": "timeout"},
        },
    }
    assert json.loads(got[2].payload)["values"]["seq"]["v"] == 1
    assert not any(m.retain for m in got)


async def test_topic_template_placeholders(mosquitto: Mosquitto, subscriber_factory: Any) -> None:
    plant = PlantIdentity(name=f"p{uuid.uuid4().hex[:10]}", site="north")
    sub = await subscriber_factory(mosquitto.port, f"{plant.name}/#")
    sink = make_sink(mosquitto, plant, topic="{plant}/{site}/{device}/{group}")
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("oven", 0, group="slow")])
        got = await sub.wait_count(1)
    finally:
        await sink.stop()
    assert got[0].topic == f"{plant.name}/north/oven/slow"


async def test_send_raises_sink_error_when_not_connected(
    mosquitto: Mosquitto, plant: PlantIdentity
) -> None:
    mosquitto.stop()
    sink = make_sink(mosquitto, plant)
    await sink.start()  # must not raise although the broker is down
    try:
        await asyncio.sleep(0.2)
        assert not sink.connected
        with pytest.raises(SinkError, match="not connected"):
            await sink.send([batch("press-1", 0)])
    finally:
        await sink.stop()


async def test_sink_started_while_broker_down_connects_when_it_comes_up(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    mosquitto.stop()
    sink = make_sink(mosquitto, plant)
    with capture_logs() as logs:
        await sink.start()
        try:
            await asyncio.sleep(0.5)  # several failed attempts
            assert not sink.connected
            mosquitto.start()
            sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/data")
            await wait_connected(sink)
            await sink.send([batch("press-1", 7)])
            got = await sub.wait_count(1)
        finally:
            await sink.stop()
    assert json.loads(got[0].payload)["values"]["seq"]["v"] == 7
    events = [e["event"] for e in logs]
    # Logged once per change of state, not once per attempt.
    assert events.count("mqtt broker unreachable; retrying in the background") == 1
    assert events.count("mqtt connected") == 1


# --------------------------------------------------------------------------- status


async def test_retained_online_after_connect_and_offline_after_stop(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    status_topic = f"edge/{plant.name}/status"
    sink = make_sink(mosquitto, plant)
    await sink.start()
    try:
        await wait_connected(sink)
        # Subscribed after the fact: what arrives is the retained message.
        early = await subscriber_factory(mosquitto.port, status_topic)
        await early.wait_until(lambda: bool(early.messages), "retained online")
        assert early.messages[0] == Received(status_topic, b"online", True)
    finally:
        await sink.stop()
    await early.wait_until(lambda: len(early.messages) >= 2, "offline")
    assert early.messages[1].payload == b"offline"
    late = await subscriber_factory(mosquitto.port, status_topic)
    await late.wait_until(lambda: bool(late.messages), "retained offline")
    assert late.messages == [Received(status_topic, b"offline", True)]
    await sink.stop()  # idempotent


async def test_last_will_offline_when_connection_dies_uncleanly(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    status_topic = f"edge/{plant.name}/status"
    sink = make_sink(mosquitto, plant)
    await sink.start()
    try:
        await wait_connected(sink)
        sub = await subscriber_factory(mosquitto.port, status_topic)
        await sub.wait_until(lambda: bool(sub.messages), "online")
        # No DISCONNECT packet, just a closed TCP connection: the broker publishes the will.
        sink._connection.abort()
        assert not sink.connected
        await sub.wait_until(lambda: len(sub.messages) >= 3, "will, then online again")
        assert [m.payload for m in sub.messages] == [b"online", b"offline", b"online"]
        await wait_connected(sink)
    finally:
        await sink.stop()


# --------------------------------------------------------------------------- loss and recovery


async def test_broker_restart_loses_nothing_and_keeps_order(
    persistent_mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    broker = persistent_mosquitto
    sub = await subscriber_factory(broker.port, f"edge/{plant.name}/+/data", persistent=True)
    sink = make_sink(broker, plant)
    buffer = MemoryBuffer(capacity=1000)
    runner = SinkRunner(sink, buffer, max_batches_per_send=8, backoff=fast_backoff())
    devices = ("press-1", "press-2")
    polls = 60
    task = asyncio.create_task(runner.run(), name="test-runner")
    try:
        await wait_connected(sink)
        for seq in range(polls):
            for device in devices:
                buffer.append(batch(device, seq))
            if seq == 20:
                broker.stop()
            if seq == 40:
                broker.start()
            sub.pump()
            await asyncio.sleep(0.01)
        await sub.reconnect()
        assert await runner.drain(10.0), f"{len(buffer)} batches still buffered"
        await sub.wait_until(
            lambda: (
                {json.loads(m.payload)["values"]["seq"]["v"] for m in sub.messages}
                >= set(range(polls))
            ),
            "every poll",
        )
        await sub.wait_count(polls * len(devices))
    finally:
        task.cancel()
        await asyncio.wait({task})
        await sink.stop()
    assert buffer.dropped_batches == 0
    assert runner.counters.send_failures > 0  # the outage was seen
    for device in devices:
        seqs = [
            json.loads(m.payload)["values"]["seq"]["v"]
            for m in sub.messages
            if m.topic == f"edge/{plant.name}/{device}/data"
        ]
        first_seen = list(dict.fromkeys(seqs))
        # At least once, in order: a retry may repeat a message, never skip or reorder.
        assert first_seen == list(range(polls)), seqs


async def test_send_fails_when_the_connection_drops_before_puback(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    sink = make_sink(mosquitto, plant)
    await sink.start()
    try:
        await wait_connected(sink)
        signal_broker(mosquitto, signal.SIGSTOP)  # PUBLISH accepted by TCP, never acked
        sending = asyncio.create_task(sink.send([batch("press-1", 0)]), name="test-send")
        await asyncio.sleep(0.1)
        assert not sending.done()
        signal_broker(mosquitto, signal.SIGKILL)  # the kernel closes its sockets
        mosquitto.stop()  # reap
        with pytest.raises(SinkError, match="connection lost"):
            await sending
        mosquitto.start()
        sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/data")
        await wait_connected(sink)
        await sink.send([batch("press-1", 1)])
        got = await sub.wait_count(1)
        await asyncio.sleep(0.2)
        sub.pump()
    finally:
        await sink.stop()
    # paho's copy of the unconfirmed message was dropped at reconnect: only the
    # runner re-sends, so nothing arrives here that was not sent again.
    assert [json.loads(m.payload)["values"]["seq"]["v"] for m in got] == [1]


async def test_keepalive_detects_a_silent_broker(mosquitto: Mosquitto) -> None:
    # Through the bridge directly: the config does not allow a keepalive below 5 s.
    connection = MqttConnection(
        host=LOOPBACK, port=mosquitto.port, client_id=f"test-{uuid.uuid4().hex[:8]}", keepalive=1
    )
    await connection.connect()
    signal_broker(mosquitto, signal.SIGSTOP)  # socket open, nobody answering
    try:
        started = time.monotonic()
        async with asyncio.timeout(5):
            reason = await connection.wait_closed()
        assert not connection.connected
        assert time.monotonic() - started < 4
        assert reason
    finally:
        signal_broker(mosquitto, signal.SIGCONT)
        await connection.aclose()


async def test_send_times_out_when_broker_stops_confirming(
    mosquitto: Mosquitto, plant: PlantIdentity
) -> None:
    sink = make_sink(mosquitto, plant, ack_timeout=0.5)
    await sink.start()
    try:
        await wait_connected(sink)
        signal_broker(mosquitto, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(SinkError, match="unconfirmed"):
                await sink.send([batch("press-1", 0)])
            assert time.monotonic() - started < 2
            assert not sink.connected  # dropped, to be re-made
        finally:
            signal_broker(mosquitto, signal.SIGCONT)
        await wait_connected(sink)
        await sink.send([batch("press-1", 1)])
    finally:
        await sink.stop()


async def test_max_inflight_smaller_than_a_send(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/data")
    sink = make_sink(mosquitto, plant, max_inflight=3)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", seq) for seq in range(50)])
        got = await sub.wait_count(50)
    finally:
        await sink.stop()
    assert [json.loads(m.payload)["values"]["seq"]["v"] for m in got] == list(range(50))


@pytest.fixture
def auth_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that wants user ``agent`` with password ``s3cret``."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    passwords = workdir / "passwords"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "agent", "s3cret"],
        check=True,
        capture_output=True,
    )
    broker = Mosquitto(
        port=free_port(),
        workdir=workdir,
        extra_config=f"allow_anonymous false\npassword_file {passwords}\nuser root\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_username_and_password(
    auth_mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    sub = await subscriber_factory(
        auth_mosquitto.port, f"edge/{plant.name}/+/data", username="agent", password="s3cret"
    )
    sink = make_sink(auth_mosquitto, plant, username="agent", password="s3cret")
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", 7)])
        (got,) = await sub.wait_count(1)
    finally:
        await sink.stop()
    # The broker took the credentials and delivered the message.
    assert got.topic == f"edge/{plant.name}/press-1/data"
    assert json.loads(got.payload)["values"]["seq"]["v"] == 7


async def test_refused_credentials_keep_retrying_quietly(
    auth_mosquitto: Mosquitto, plant: PlantIdentity
) -> None:
    sink = make_sink(auth_mosquitto, plant, username="agent", password="wrong")
    with capture_logs() as logs:
        await sink.start()
        await asyncio.sleep(0.5)  # several refused attempts
        connected = sink.connected
        await sink.stop()
    assert not connected
    failures = [e for e in logs if e["event"].startswith("mqtt broker unreachable")]
    assert len(failures) == 1
    assert "refused" in failures[0]["error"]
    assert "wrong" not in repr(logs)


# --------------------------------------------------------------------------- configuration


def test_unknown_topic_placeholder_is_a_config_error(plant: PlantIdentity) -> None:
    config = MqttSinkConfig(name="m", type="mqtt", host=LOOPBACK, topic="edge/{plant}/{line}")
    with pytest.raises(ConfigError, match=r"unknown placeholder \{line\}"):
        MqttSink(config, plant)


def test_site_with_wildcard_in_topic_is_a_config_error() -> None:
    plant = PlantIdentity(name="p1", site="hall #3")
    config = MqttSinkConfig(name="m", type="mqtt", host=LOOPBACK, topic="{site}/{device}")
    with pytest.raises(ConfigError, match="not a valid MQTT topic"):
        MqttSink(config, plant)


def test_missing_tls_file_is_a_config_error(plant: PlantIdentity, tmp_path: Path) -> None:
    config = MqttSinkConfig(
        name="m", type="mqtt", host=LOOPBACK, tls=MqttTls(ca_file=tmp_path / "nope.pem")
    )
    with pytest.raises(ConfigError, match="cannot load certificates"):
        MqttSink(config, plant)


def test_password_without_username_is_a_config_error(plant: PlantIdentity) -> None:
    config = MqttSinkConfig(name="m", type="mqtt", host=LOOPBACK, password="s3cret")
    with pytest.raises(ConfigError, match="needs a username") as caught:
        MqttSink(config, plant)
    assert "s3cret" not in str(caught.value)


def test_password_not_in_repr(plant: PlantIdentity) -> None:
    config = MqttSinkConfig(name="m", type="mqtt", host=LOOPBACK, username="u", password="s3cret")
    sink = MqttSink(config, plant)
    assert "s3cret" not in repr(sink.config)
    assert sink.client_id.startswith(f"edge-agent-{plant.name}-")
