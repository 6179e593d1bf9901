"""MQTT test support shared by the sink, TLS and end-to-end tests.

A paho subscriber pumped from the test (``loop(0)`` between awaits, so no thread), and
small builders for sinks and batches.
"""

from __future__ import annotations

import asyncio
import select
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.backoff import Backoff
from edge_agent.config import MqttSinkConfig, PlantIdentity
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.mqtt import MqttSink
from tests.servers import LOOPBACK, Mosquitto

T0_NS = 1_795_000_000_000_000_000
TAGS = ("seq", "power_kw", "state")


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho client without a network thread: the test pumps it while it waits."""

    def __init__(
        self,
        port: int,
        topic_filter: str,
        *,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.topic_filter = topic_filter
        self.messages: list[Received] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:10]}",
            clean_session=not persistent,
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_message = self._on_message
        self._suback = False
        self._client.on_subscribe = self._on_subscribe

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append(Received(message.topic, bytes(message.payload), message.retain))

    def _on_subscribe(self, *args: Any) -> None:
        self._suback = True

    async def connect(self) -> None:
        self._suback = False
        self._client.connect(LOOPBACK, self.port, keepalive=60)  # loopback: instant
        self._client.subscribe(self.topic_filter, qos=1)
        await self.wait_until(lambda: self._suback, "SUBACK")

    async def reconnect(self, within: float = 5.0) -> None:
        """Reconnect after a broker restart (a persistent session keeps what was queued)."""
        deadline = time.monotonic() + within
        while True:
            try:
                self._client.reconnect()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        await self.wait_until(self._client.is_connected, "CONNACK")

    def pump(self) -> None:
        """Process everything that has arrived (paho's loop() reads one packet per call)."""
        for _ in range(1000):
            sock = self._client.socket()
            if sock is None:  # lost (broker stopped): reconnect() is the test's call
                return
            readable, _, _ = select.select([sock], [], [], 0.0)
            if not readable and not self._client.want_write():
                self._client.loop_misc()
                return
            self._client.loop(0.0)

    async def wait_until(
        self, condition: Callable[[], bool], what: str, within: float = 5.0
    ) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {self.messages!r:.2000}")
            self.pump()
            await asyncio.sleep(0.005)

    async def wait_count(self, count: int, within: float = 5.0) -> list[Received]:
        await self.wait_until(lambda: len(self.messages) >= count, f"{count} messages", within)
        return self.messages

    def close(self) -> None:
        self._client.disconnect()  # no thread and no write callback: written right away
        self._client.loop(0.0)
        close_paho_sockets(self._client)


def close_paho_sockets(client: mqtt.Client) -> None:
    """Close the socket pair paho's ``loop()`` makes (a TCP pair on loopback) and the
    connection. paho closes them only in ``__del__``: a client freed by the cycle
    collector after its sockets were finalised is a ResourceWarning (an error here)."""
    client._reset_sockets()  # paho has no public call that closes the pair


def sink_config(broker: Mosquitto, **overrides: Any) -> MqttSinkConfig:
    values: dict[str, Any] = {
        "name": "mqtt",
        "type": "mqtt",
        "host": LOOPBACK,
        "port": broker.port,
        "keepalive": 5,
    }
    values.update(overrides)
    return MqttSinkConfig(**values)


def fast_backoff() -> Backoff:
    return Backoff(initial=0.05, cap=0.2, minimum=0.02)


def make_sink(
    broker: Mosquitto, plant: PlantIdentity, *, ack_timeout: float = 5.0, **overrides: Any
) -> MqttSink:
    return MqttSink(
        sink_config(broker, **overrides),
        plant,
        ack_timeout=ack_timeout,
        connect_timeout=2.0,
        backoff=fast_backoff(),
    )


def batch(device: str, seq: int, group: str = "fast") -> SampleBatch:
    return SampleBatch(
        device=device,
        group=group,
        timestamp_ns=T0_NS + seq * 1_000_000_000,
        names=TAGS,
        values=[seq, 12.5 + seq, None],
        qualities=[Quality.GOOD, Quality.GOOD, Quality.BAD],
        reasons=["", "", "timeout"],
    )


async def wait_connected(sink: MqttSink, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not sink.connected:
        assert time.monotonic() < deadline, "sink did not connect"
        await asyncio.sleep(0.01)
