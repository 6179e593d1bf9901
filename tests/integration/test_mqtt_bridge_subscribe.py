"""The bridge's subscribe, fence and incoming messages, against a real mosquitto.

The Sparkplug sink relies on them: commands and the primary host's STATE arrive as
subscriptions, and its QoS 0 data is confirmed only by a fence."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from edge_agent.sinks.mqtt_bridge import MqttConnection, MqttError, Will
from tests.mqtt_support import Subscriber
from tests.servers import LOOPBACK, Mosquitto

pytestmark = pytest.mark.integration


def _connection(broker: Mosquitto, **kwargs: object) -> MqttConnection:
    return MqttConnection(
        host=LOOPBACK,
        port=broker.port,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_subscribe_delivers_retained_and_live_messages(mosquitto: Mosquitto) -> None:
    received: list[tuple[str, bytes, bool]] = []
    publisher = _connection(mosquitto)
    listener = _connection(mosquitto, on_message=lambda *m: received.append(m))
    await publisher.connect()
    await listener.connect()
    try:
        await publisher.publish([("t/state", b"retained")], qos=1, retain=True, idle_timeout=5)
        granted = await listener.subscribe([("t/#", 1)], within=5)
        assert granted == [1]
        await publisher.publish([("t/live", b"live")], qos=1, idle_timeout=5)
        async with asyncio.timeout(5):
            while len(received) < 2:
                await asyncio.sleep(0.01)
        assert received == [("t/state", b"retained", True), ("t/live", b"live", False)]
    finally:
        await publisher.aclose()
        await listener.aclose()


async def test_fence_confirms_qos0_messages_sent_before_it(mosquitto: Mosquitto) -> None:
    connection = _connection(mosquitto)
    subscriber = Subscriber(mosquitto.port, "fence/#")
    await subscriber.connect()
    await connection.connect()
    try:
        await connection.publish(
            [(f"fence/{i}", b"x" * 1000) for i in range(500)], qos=0, idle_timeout=5
        )
        await connection.fence(within=5)
        got = await subscriber.wait_count(500)
        assert [m.topic for m in got] == [f"fence/{i}" for i in range(500)]
    finally:
        subscriber.close()
        await connection.aclose()


async def test_fence_fails_when_the_broker_stops_answering(mosquitto: Mosquitto) -> None:
    connection = _connection(mosquitto)
    await connection.connect()
    assert mosquitto.process is not None
    mosquitto.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(MqttError, match="no UNSUBACK within"):
            await connection.fence(within=0.3)
    finally:
        mosquitto.process.send_signal(signal.SIGCONT)
        await connection.aclose()


async def test_a_will_set_between_sessions_is_the_one_the_broker_sends(
    mosquitto: Mosquitto,
) -> None:
    connection = _connection(mosquitto)
    subscriber = Subscriber(mosquitto.port, "will/#")
    await subscriber.connect()
    try:
        connection.set_will(Will("will/a", b"first", qos=1, retain=False))
        await connection.connect()
        connection.set_will(Will("will/b", b"second", qos=1, retain=False))
        connection.abort()  # the broker sends the will of *this* session: the first
        await connection.connect()
        connection.abort()
        got = await subscriber.wait_count(2)
        assert [(m.topic, m.payload) for m in got] == [("will/a", b"first"), ("will/b", b"second")]
    finally:
        subscriber.close()
        await connection.aclose()
