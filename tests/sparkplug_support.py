"""Sparkplug B test support: what a host application sees, and a host application.

- :class:`Recorder`: a raw paho subscriber to ``spBv1.0/#`` (STATE included) that keeps
  every message as delivered: topic, payload bytes, QoS, retain flag, arrival order and
  time. A persistent session (clean session off) on a broker that queues QoS 0 messages
  for it, so a broker restart loses nothing between the broker and the recorder.
- :class:`FakeHost`: a primary host application as Sparkplug 3.0 describes it: its Will
  and its birth on ``spBv1.0/STATE/{id}`` (JSON ``online`` / ``timestamp``, QoS 1,
  retained), a clean death before it disconnects, and the commands a host sends (NCMD
  ``Node Control/Rebirth``).
- :func:`decode`: the payload through our generated module (the independent decoder,
  Eclipse Tahu's, is in tests/sparkplug_tahu.py).

Both clients run paho's own network thread (started and joined here): the agent under
test is another process, so nothing here has to share the test's event loop, and arrival
times are taken when paho reads the message, not when a test gets round to pumping.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.servers import LOOPBACK

NAMESPACE = "spBv1.0"
#: Sparkplug DataType numbers used by the support code (the full table: the .proto).
BOOLEAN = 11


def decode(payload: bytes) -> pb.Payload:
    """A Sparkplug payload through our generated module (raises on bytes that are not one)."""
    message = pb.Payload()
    message.ParseFromString(payload)
    return message


@dataclass(frozen=True, slots=True)
class Captured:
    """One message as the broker delivered it to the recorder."""

    order: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    #: Wall clock (ns since the epoch) when paho read it: comparable with Sparkplug
    #: timestamps, which are UTC milliseconds.
    at_ns: int

    @property
    def levels(self) -> list[str]:
        return self.topic.split("/")

    @property
    def message_type(self) -> str:
        """NBIRTH, DDATA ... or STATE."""
        levels = self.levels
        return levels[1] if levels[1] == "STATE" else levels[2]

    def decoded(self) -> pb.Payload:
        return decode(self.payload)


@dataclass
class _Paho:
    """A paho client on its own network thread, with waits for its acknowledgements."""

    port: int
    client_id: str
    clean_session: bool = True
    client: mqtt.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean_session,
        )
        self.client.reconnect_delay_set(min_delay=0.05, max_delay=0.2)

    def start(self, within: float = 5.0) -> None:
        connected = threading.Event()
        self.client.on_connect = lambda *args: connected.set()
        deadline = time.monotonic() + within
        while True:
            try:
                self.client.connect(LOOPBACK, self.port, keepalive=10)
                break
            except OSError:  # the broker is (re)starting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.client.loop_start()
        if not connected.wait(max(0.1, deadline - time.monotonic())):
            self.stop()
            raise AssertionError(f"{self.client_id}: no CONNACK from 127.0.0.1:{self.port}")

    def subscribe(self, topic_filter: str, qos: int, within: float = 5.0) -> None:
        acked = threading.Event()
        self.client.on_subscribe = lambda *args: acked.set()
        result, _ = self.client.subscribe(topic_filter, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: SUBSCRIBE {result}"
        assert acked.wait(within), f"{self.client_id}: no SUBACK for {topic_filter}"

    def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(5.0)
            assert info.is_published(), f"{self.client_id}: no PUBACK for {topic}"

    def stop(self) -> None:
        """Stop the network thread without a DISCONNECT (the broker sends the Will)."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def disconnect(self) -> None:
        """A clean end: DISCONNECT (no Will), then the thread stops."""
        self.client.disconnect()
        self.client.loop_stop()


class Recorder:
    """Every message on ``spBv1.0/#`` in arrival order (see the module docstring)."""

    def __init__(self, port: int) -> None:
        self._paho = _Paho(port, f"recorder-{uuid.uuid4().hex[:8]}", clean_session=False)
        self._paho.client.on_message = self._on_message
        self._lock = threading.Lock()
        self.messages: list[Captured] = []

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        at_ns = time.time_ns()
        with self._lock:
            self.messages.append(
                Captured(
                    order=len(self.messages),
                    topic=message.topic,
                    payload=bytes(message.payload),
                    qos=message.qos,
                    retain=bool(message.retain),
                    at_ns=at_ns,
                )
            )

    def start(self) -> None:
        self._paho.start()
        # QoS 1: the broker delivers each message at the QoS it was published with
        # (QoS 0 data stays QoS 0; the NDEATH Will and STATE arrive at QoS 1).
        self._paho.subscribe(f"{NAMESPACE}/#", qos=1)

    def snapshot(self) -> list[Captured]:
        with self._lock:
            return list(self.messages)

    def of_type(self, message_type: str) -> list[Captured]:
        return [m for m in self.snapshot() if m.message_type == message_type]

    async def wait_for(
        self, condition: Callable[[list[Captured]], bool], what: str, within: float = 15.0
    ) -> list[Captured]:
        deadline = time.monotonic() + within
        while not condition(seen := self.snapshot()):
            if time.monotonic() > deadline:
                tail = ", ".join(m.topic for m in seen[-15:])
                raise AssertionError(f"timed out after {within} s waiting for {what}; last: {tail}")
            await asyncio.sleep(0.02)
        return seen

    def stop(self) -> None:
        self._paho.disconnect()


def state_payload(online: bool, timestamp_ms: int) -> bytes:
    """A Sparkplug 3.0 STATE payload (tck-id-host-topic-phid-birth-payload)."""
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


class FakeHost:
    """A primary host application, as much of one as an edge node can see.

    Each :meth:`online` is a new MQTT session whose Will is the death certificate
    (``online: false``, the CONNECT time; QoS 1, retained) and whose first publish is the
    birth with the same timestamp (tck-id-operational-behavior-host-application-connect-*).
    :meth:`offline` publishes a death with the current time, then disconnects
    (tck-id-host-topic-phid-death-payload-timestamp-disconnect-clean).
    """

    def __init__(self, port: int, host_id: str) -> None:
        self.port = port
        self.host_id = host_id
        self.topic = f"{NAMESPACE}/STATE/{host_id}"
        self._paho: _Paho | None = None
        #: (wall clock ns when it was about to be published, online, timestamp ms) of every
        #: STATE this host published, in order.
        self.published: list[tuple[int, bool, int]] = []
        #: Wall clock (ns) of every rebirth request sent.
        self.rebirth_requests: list[int] = []

    def online(self) -> int:
        """Connect, subscribe to its own STATE topic, publish the birth; its timestamp."""
        assert self._paho is None, "already online"
        timestamp = _now_ms()
        paho = _Paho(self.port, f"host-{self.host_id}-{uuid.uuid4().hex[:6]}")
        paho.client.will_set(self.topic, state_payload(False, timestamp), qos=1, retain=True)
        paho.start()
        paho.subscribe(self.topic, qos=1)
        self.published.append((time.time_ns(), True, timestamp))
        paho.publish(self.topic, state_payload(True, timestamp), qos=1, retain=True)
        self._paho = paho
        return timestamp

    def offline(self) -> int:
        """Publish the death (current time), then DISCONNECT; its timestamp."""
        paho = self._require()
        timestamp = _now_ms()
        self.published.append((time.time_ns(), False, timestamp))
        paho.publish(self.topic, state_payload(False, timestamp), qos=1, retain=True)
        paho.disconnect()
        self._paho = None
        return timestamp

    def lost(self) -> None:
        """The connection is gone without a word (the broker was stopped under it)."""
        if self._paho is not None:
            self._paho.stop()
            self._paho = None

    def publish_state(self, online: bool, timestamp_ms: int) -> None:
        """A STATE message with a chosen timestamp (a stale one, for the ordering rules),
        from a short-lived client: what a late copy or a confused second instance sends."""
        paho = _Paho(self.port, f"state-{uuid.uuid4().hex[:8]}")
        paho.start()
        self.published.append((time.time_ns(), online, timestamp_ms))
        try:
            paho.publish(self.topic, state_payload(online, timestamp_ms), qos=1, retain=True)
        finally:
            paho.disconnect()

    def request_rebirth(self, group_id: str, edge_node_id: str) -> None:
        """NCMD ``Node Control/Rebirth`` = true, as a host sends it (QoS 0, not retained;
        a payload timestamp, no seq: tck-id-payloads-ncmd-*)."""
        payload = pb.Payload()
        payload.timestamp = _now_ms()
        metric = payload.metrics.add()
        metric.name = "Node Control/Rebirth"
        metric.datatype = BOOLEAN
        metric.boolean_value = True
        self.rebirth_requests.append(time.time_ns())
        self._require().publish(
            f"{NAMESPACE}/{group_id}/NCMD/{edge_node_id}",
            payload.SerializeToString(),
            qos=0,
            retain=False,
        )

    def _require(self) -> _Paho:
        assert self._paho is not None, "the host is offline"
        return self._paho

    def close(self) -> None:
        if self._paho is not None:
            self._paho.disconnect()
            self._paho = None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def pairs(items: list[Captured]) -> Iterator[tuple[Captured, Captured]]:
    """Consecutive pairs (a, b) of ``items``."""
    return itertools.pairwise(items)
