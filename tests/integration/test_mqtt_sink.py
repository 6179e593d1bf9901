"""MqttSink over the wire: a real mosquitto on a free loopback port, no mocks.

What arrived is checked with a plain paho client pumped from the test (``loop(0)``
between awaits), so the tests start no thread. Every test uses its own plant name,
hence its own topics.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from structlog.testing import capture_logs

from edge_agent.backoff import Backoff
from edge_agent.buffer import MemoryBuffer
from edge_agent.config import MqttSinkConfig, MqttTls, PlantIdentity
from edge_agent.errors import ConfigError, SinkError
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.mqtt import MqttSink
from edge_agent.sinks.mqtt_bridge import MqttConnection
from edge_agent.sinks.runner import SinkRunner
from tests.servers import LOOPBACK, Mosquitto, free_port

pytestmark = pytest.mark.integration

T0_NS = 1_795_000_000_000_000_000
TAGS = ("seq", "power_kw", "state")


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho client without a network thread: the test pumps it while it waits."""

    def __init__(self, port: int, topic_filter: str, *, persistent: bool = False) -> None:
        self.port = port
        self.topic_filter = topic_filter
        self.messages: list[Received] = []
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-sub-{uuid.uuid4().hex[:10]}",
            clean_session=not persistent,
        )
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


@pytest.fixture
def plant() -> PlantIdentity:
    return PlantIdentity(name=f"p{uuid.uuid4().hex[:10]}", site="Hall 3")


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


@pytest.fixture
async def subscriber_factory() -> Any:
    made: list[Subscriber] = []

    async def factory(port: int, topic_filter: str, *, persistent: bool = False) -> Subscriber:
        sub = Subscriber(port, topic_filter, persistent=persistent)
        await sub.connect()
        made.append(sub)
        return sub

    yield factory
    for sub in made:
        sub.close()


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that keeps sessions across a restart, so a subscriber misses nothing."""
    workdir = tmp_path / "mosquitto"
    broker = Mosquitto(
        port=free_port(),
        workdir=workdir,
        # user root: as root, mosquitto would switch to the "mosquitto" user, which
        # cannot write to pytest's private tmp dir (no effect when not run as root).
        extra_config=f"persistence true\npersistence_location {workdir}/\nuser root\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


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
                runner.submit(batch(device, seq))
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


async def test_username_and_password(auth_mosquitto: Mosquitto, plant: PlantIdentity) -> None:
    sink = make_sink(auth_mosquitto, plant, username="agent", password="s3cret")
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", 0)])
    finally:
        await sink.stop()


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


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


def _new_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", cert, "-subj", f"/CN={name}", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def _issue(directory: Path, ca: tuple[Path, Path], name: str, extensions: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext,
        cwd=directory,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = _new_ca(directory, "test-ca")
    server = _issue(
        directory, ca, "broker", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
    )
    client = _issue(directory, ca, "agent", "extendedKeyUsage=clientAuth\n")
    other = _new_ca(directory, "other-ca")
    return Pki(ca[0], server[0], server[1], client[0], client[1], other[0])


@pytest.fixture
def tls_mosquitto(tmp_path: Path, pki: Pki) -> Iterator[tuple[Mosquitto, int]]:
    """A broker with a TLS listener requiring a client certificate, plus a plain one."""
    plain_port = free_port()
    broker = Mosquitto(
        port=free_port(),
        workdir=tmp_path / "mosquitto",
        extra_config=(
            # listener options apply to the last "listener" line above: the TLS one.
            f"cafile {pki.ca}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate true\n"
            # As root, mosquitto reads the files after switching to the "mosquitto"
            # user, who cannot enter pytest's private tmp dir; stay root.
            "user root\n"
            f"listener {plain_port} {LOOPBACK}\n"
        ),
    )
    broker.start()
    try:
        yield broker, plain_port
    finally:
        broker.stop()


async def test_tls_with_verification_and_client_certificate(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    broker, plain_port = tls_mosquitto
    sub = await subscriber_factory(plain_port, f"edge/{plant.name}/+/data")
    tls = MqttTls(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    sink = make_sink(broker, plant, tls=tls)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", seq) for seq in range(20)])
        got = await sub.wait_count(20)
    finally:
        await sink.stop()
    assert json.loads(got[-1].payload)["values"]["seq"]["v"] == 19


async def test_tls_rejects_a_broker_signed_by_an_unknown_ca(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity
) -> None:
    broker, _ = tls_mosquitto
    tls = MqttTls(ca_file=pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key)
    sink = make_sink(broker, plant, tls=tls)
    with capture_logs() as logs:
        await sink.start()
        await asyncio.sleep(0.5)
        connected = sink.connected
        await sink.stop()
    assert not connected
    failures = [e for e in logs if e["event"].startswith("mqtt broker unreachable")]
    assert "certificate verify failed" in failures[0]["error"]


async def test_tls_without_verification_connects_and_warns(
    tls_mosquitto: tuple[Mosquitto, int], pki: Pki, plant: PlantIdentity
) -> None:
    broker, _ = tls_mosquitto
    tls = MqttTls(
        ca_file=pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key, verify=False
    )
    with capture_logs() as logs:
        sink = make_sink(broker, plant, tls=tls)
    assert any("verification is off" in e["event"] for e in logs)
    await sink.start()
    try:
        await wait_connected(sink)
        await sink.send([batch("press-1", 0)])
    finally:
        await sink.stop()
