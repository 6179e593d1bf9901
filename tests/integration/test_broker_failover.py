"""Broker failover against a real three-node NATS cluster (tests/nats_cluster.py).

The agent (simulated Modbus devices, the real pipeline and outbox) publishes through a
``brokers:`` list of the three nodes; a QoS 1 subscriber sits on another node. The node
the agent is connected to is killed (SIGKILL, a crash) mid-run: the agent must be on
another node within a bound, the subscriber must see every batch the agent collected
(duplicates only as many as the sink counted in ``batches_resent``), the ``failovers``
counter must have moved, and the killed node must restart and rejoin the cluster.

What NATS (2.15) does that matters here, seen while writing these tests:

- MQTT sessions, QoS 1 messages and retained messages live in JetStream streams
  replicated over the three nodes: the subscriber's queue survives the death of the node
  the publisher used, and a QoS 1 PUBACK means the message is stored in the cluster.
- A client id is one session across the whole cluster: the agent's reconnection to a
  second node takes its session over from the dead one (no "client id in use").
- A CONNECT to a surviving node is answered once the session stream has a leader; when
  the killed node led it, that waits for a new election (a few seconds at most here).
  That, not the agent's own reaction (the socket closes at once, the next node is tried
  without a pause), is most of the failover time.
- Sparkplug publishes its data at QoS 0, confirmed by a fence (the UNSUBACK of an
  UNSUBSCRIBE sent after the data): NATS forwards QoS 0 messages to the subscriber's node
  over its routes before it answers the fence, so a fenced batch is on its way to the
  other node before the agent acknowledges it.

The measured times are printed (``-s`` shows them) and bounded generously: the bound is
a safety net against a hang, not a benchmark (bench/ measures speed).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from edge_agent.backoff import Backoff
from edge_agent.config import (
    BrokerEndpoint,
    MqttSinkConfig,
    PlantConfig,
    PlantIdentity,
    SparkplugSinkConfig,
)
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.model import SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.service.agent import Agent
from edge_agent.service.status import sink_status
from edge_agent.sinks.base import Subscription
from edge_agent.sinks.mqtt import MqttSink
from edge_agent.sinks.sparkplug.metric_table import known_time_ns
from edge_agent.sinks.sparkplug.sink import SparkplugSink
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber, wait_connected
from tests.nats_cluster import NatsCluster, NatsNode, nats_cluster
from tests.plant import demo_config, demo_profile
from tests.servers import LOOPBACK, Mosquitto, free_port
from tests.sparkplug_support import Recorder, _Paho, decode

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: Bound on the failover (kill -> first confirmed publish on another node): generous.
FAILOVER_BOUND_S = 45.0
DEVICES = ("line-meter", "cnc-1")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Per test: the test kills and restarts a node, and every process must be gone at
    its end (the leak check)."""
    with nats_cluster(tmp_path / "nats") as nats:
        yield nats


def _brokers(cluster: NatsCluster) -> str:
    return "".join(f"      - {{host: {host}, port: {port}}}\n" for host, port in cluster.addresses)


def _agent_config(tmp_path: Path, ports: dict[str, int], sink_yaml: str) -> PlantConfig:
    config = demo_config(ports, tmp_path, extra_yaml=sink_yaml)
    devices = [d for d in config.devices if d.name in DEVICES]
    return config.model_copy(update={"devices": devices})


async def _until(
    condition: Callable[[], bool],
    within: float,
    what: str,
    pump: Any = None,
    detail: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}{detail()}")
        if pump is not None:
            pump()
        await asyncio.sleep(0.02)


async def _off_loop(call: Callable[..., T], *args: Any) -> T:
    """``call`` in a thread of its own, joined before returning (the leak check counts
    threads: the loop's default executor would keep one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, call, *args)


async def _node_of(cluster: NatsCluster, client_id: str) -> NatsNode | None:
    return await _off_loop(cluster.node_of_client, client_id)


async def _kill_and_measure(
    cluster: NatsCluster, runner: SinkRunner, client_id: str, pump: Any = None
) -> tuple[NatsNode, float]:
    """Kill the node holding ``client_id``'s connection; return it and the seconds from
    the kill to the first send confirmed on another node."""
    node = await _node_of(cluster, client_id)
    assert node is not None, f"{client_id} is connected to no node"
    sink = runner.sink
    assert isinstance(sink, MqttSink | SparkplugSink)
    killed_address = f"{LOOPBACK}:{node.mqtt_port}"
    assert sink.broker == killed_address
    await _off_loop(cluster.kill_node, node)
    killed_at = time.monotonic()
    await _until(
        lambda: sink.connected and sink.broker != killed_address,
        FAILOVER_BOUND_S,
        "a connection to another node",
        pump,
    )
    # Counted from here: a send confirmed by the dead node just before it died may have
    # been counted a moment after the kill.
    base = runner.counters.batches_sent
    await _until(
        lambda: runner.counters.batches_sent > base,
        FAILOVER_BOUND_S,
        "the first confirmed send on the new node",
        pump,
    )
    return node, time.monotonic() - killed_at


async def _restart_and_rejoin(cluster: NatsCluster, node: NatsNode) -> None:
    await _off_loop(cluster.start_node, node)
    routes = len(cluster.nodes) - 1
    deadline = time.monotonic() + 30
    while await _off_loop(cluster.routes_of, node) < routes:
        assert time.monotonic() < deadline, f"{node.name} did not rejoin the cluster"
        await asyncio.sleep(0.1)


def _data_keys(collected: list[SampleBatch]) -> list[tuple[str, str, int]]:
    """The tag data the agent collected (metric windows and events go elsewhere)."""
    return [
        (b.device, b.group, b.timestamp_ns)
        for b in collected
        if metric_info(b) is None and event_info(b) is None and b.device in DEVICES
    ]


async def test_mqtt_agent_fails_over_to_another_node_and_loses_nothing(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    client_id = "failover-agent"
    sink_yaml = (
        "sinks:\n"
        f"  - name: cloud\n    type: mqtt\n    client_id: {client_id}\n    keepalive: 5\n"
        f"    brokers:\n{_brokers(cluster)}"
    )
    # The subscriber on the third node: neither the agent's first node nor its next.
    sub = Subscriber(cluster.nodes[2].mqtt_port, "edge/demo-plant/+/data", persistent=True)
    await sub.connect()
    try:
        async with serve_profile(demo_profile()) as plant:
            ports = {name: plant.port(name) for name in plant.servers}
            agent = Agent(_agent_config(tmp_path, ports, sink_yaml), drain_seconds=15.0)
            collected: list[SampleBatch] = []
            agent.pipeline.add_consumer(collected.append)
            task = asyncio.create_task(agent.run(), name="agent")
            try:
                await sub.wait_until(lambda: len(sub.messages) >= 6, "first messages", 20)
                runner = agent.sinks[0]
                assert sink_status(runner)["broker"] == f"{LOOPBACK}:{cluster.nodes[0].mqtt_port}"
                killed, took = await _kill_and_measure(cluster, runner, client_id, sub.pump)
                print(f"\nMQTT failover: {took:.2f} s from the kill to a confirmed send")
                assert killed is cluster.nodes[0]  # ordered: the first node was in use
                now_on = await _node_of(cluster, client_id)
                assert now_on is not None
                assert now_on is not killed
                assert sink_status(runner)["broker"] == f"{LOOPBACK}:{now_on.mqtt_port}"
                await _restart_and_rejoin(cluster, killed)
                # The node is back; the agent stays where it is (no flapping back).
                settled = len(collected)
                await sub.wait_until(lambda: len(collected) >= settled + 6, "more polls", 20)
                assert await _node_of(cluster, client_id) is now_on
            finally:
                agent.request_stop()
                await asyncio.wait_for(task, 30)
        counts = runner.sink.event_counts()  # type: ignore[attr-defined]
        emitted = _data_keys(collected)
        await sub.wait_until(
            lambda: {_key(m.payload) for m in sub.messages} >= set(emitted),
            "every collected batch at the subscriber",
            within=20,
        )
    finally:
        sub.close()
    received = [_key(m.payload) for m in sub.messages]
    assert runner.buffer.dropped_batches == 0
    # One, or more when the first node tried after the kill was not ready yet (JetStream
    # electing its leaders) and dropped the connection once it had been made.
    assert counts["failovers"] >= 1
    duplicates = sum(n - 1 for n in Counter(received).values())
    print(f"MQTT: {len(emitted)} batches, {duplicates} duplicates, counts {counts}")
    assert duplicates <= counts["batches_resent"]
    for device, group in {(d, g) for d, g, _ in emitted}:
        sent = [ts for d, g, ts in emitted if (d, g) == (device, group)]
        got = list(dict.fromkeys(ts for d, g, ts in received if (d, g) == (device, group)))
        assert got == sent, (device, group)


def _key(payload: bytes) -> tuple[str, str, int]:
    doc: dict[str, Any] = json.loads(payload)
    return (doc["device"], doc["group"], doc["ts_ns"])


async def test_sparkplug_agent_fails_over_with_a_new_session_and_loses_nothing(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    client_id = "failover-node"
    sink_yaml = (
        "sinks:\n"
        f"  - name: spb\n    type: sparkplug\n    client_id: {client_id}\n    keepalive: 5\n"
        "    group_id: plant\n    edge_node_id: line-1\n"
        f"    brokers:\n{_brokers(cluster)}"
    )
    recorder = Recorder(cluster.nodes[2].mqtt_port)
    recorder.start()
    try:
        async with serve_profile(demo_profile()) as plant:
            ports = {name: plant.port(name) for name in plant.servers}
            agent = Agent(_agent_config(tmp_path, ports, sink_yaml), drain_seconds=15.0)
            collected: list[SampleBatch] = []
            agent.pipeline.add_consumer(collected.append)
            task = asyncio.create_task(agent.run(), name="agent")
            try:
                await recorder.wait_for(
                    lambda seen: sum(m.message_type == "DDATA" for m in seen) >= 6, "first DDATA"
                )
                runner = agent.sinks[0]
                sink = runner.sink
                assert isinstance(sink, SparkplugSink)
                first_bdseq = sink.bd_seq
                killed, took = await _kill_and_measure(cluster, runner, client_id)
                print(f"\nSparkplug failover: {took:.2f} s from the kill to a confirmed send")
                assert killed is cluster.nodes[0]
                assert sink.bd_seq != first_bdseq, "a failover is a new session: a new bdSeq"
                await _restart_and_rejoin(cluster, killed)
                settled = len(collected)
                await _until(lambda: len(collected) >= settled + 6, 20, "more polls")
            finally:
                agent.request_stop()
                await asyncio.wait_for(task, 30)
        counts = sink.event_counts()
        # Every batch of the two devices goes out as a DDATA of its device: the tag data
        # and the meter's metric batches (a unit named like its device), stamped alike.
        emitted = Counter(
            (b.device, known_time_ns(b) // 1_000_000) for b in collected if b.device in DEVICES
        )

        def delivered(seen: list[Any]) -> Counter[tuple[str, int]]:
            keys: Counter[tuple[str, int]] = Counter()
            for message in seen:
                if message.message_type == "DDATA" and message.levels[-1] in DEVICES:
                    stamps = {m.timestamp for m in decode(message.payload).metrics}
                    keys.update((message.levels[-1], stamp) for stamp in stamps)
            return keys

        await recorder.wait_for(
            lambda seen: not (emitted - delivered(seen)), "every collected batch as DDATA"
        )
        seen = recorder.snapshot()
    finally:
        recorder.stop()
    births = [m for m in seen if m.message_type == "NBIRTH"]
    assert len(births) >= 2, "an NBIRTH on the first node and one on the new node"
    bdseqs = [
        next(m.long_value for m in decode(b.payload).metrics if m.name == "bdSeq") for b in births
    ]
    assert len(set(bdseqs)) == len(bdseqs), f"each session its own bdSeq: {bdseqs}"
    # A node whose JetStream is not ready yet may refuse the subscription: one more hop.
    assert counts["failovers"] >= 1
    assert counts["sessions"] >= 2
    # Every batch arrived (a batch of two groups at one time shares its key, counted).
    got = delivered(seen)
    assert not (emitted - got), emitted - got
    duplicates = sum((got - emitted).values())
    print(f"Sparkplug: {sum(emitted.values())} batches, {duplicates} duplicates, counts {counts}")
    assert duplicates <= counts["batches_resent"]


@pytest.mark.parametrize("kind", ["mqtt", "sparkplug"])
async def test_a_broker_that_refuses_is_skipped_without_a_backoff_pause(
    mosquitto: Mosquitto, tmp_path: Path, kind: str
) -> None:
    """The first broker has no listener: the sink goes to the second at once. The backoff
    is a minute: a pause after the refusal would outlast the bound."""
    brokers = [{"host": LOOPBACK, "port": free_port()}, {"host": LOOPBACK, "port": mosquitto.port}]
    slow = Backoff(initial=60.0, cap=60.0, minimum=60.0)
    sink: MqttSink | SparkplugSink
    if kind == "mqtt":
        config = MqttSinkConfig(name="cloud", type="mqtt", brokers=brokers)  # type: ignore[arg-type]
        sink = MqttSink(config, PlantIdentity(name="p"), backoff=slow)
    else:
        spb = SparkplugSinkConfig(
            name="spb",
            type="sparkplug",
            group_id="g",
            edge_node_id="n",
            brokers=brokers,  # type: ignore[arg-type]
        )
        sink = SparkplugSink(spb, PlantIdentity(name="p"), tmp_path, backoff=slow)
    await sink.start()
    try:
        await _until(lambda: sink.connected, 20, "a connection to the second broker")
        assert sink.broker == f"{LOOPBACK}:{mosquitto.port}"
        assert sink.event_counts()["failovers"] == 0, "the first connection is no failover"
    finally:
        await sink.stop()


async def test_sparkplug_moves_to_the_broker_where_the_primary_host_is_online(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Two isolated brokers; on the first the primary host's retained STATE says offline,
    on the second online: the edge node leaves the first and is born on the second
    (Sparkplug 3.0, "Multiple Isolated MQTT Servers")."""
    second = Mosquitto(port=free_port(), workdir=tmp_path / "second")
    second.start()
    try:
        now_ms = int(time.time() * 1000)
        for broker, online in ((mosquitto, False), (second, True)):
            host = _Paho(broker.port, f"scada-{broker.port}")
            host.start()
            payload = json.dumps({"online": online, "timestamp": now_ms}).encode()
            host.publish("spBv1.0/STATE/scada", payload, qos=1, retain=True)
            host.disconnect()
        config = SparkplugSinkConfig(
            name="spb",
            type="sparkplug",
            group_id="g",
            edge_node_id="n",
            primary_host="scada",
            brokers=[  # type: ignore[list-item]
                {"host": LOOPBACK, "port": mosquitto.port},
                {"host": LOOPBACK, "port": second.port},
            ],
        )
        slow = Backoff(initial=60.0, cap=60.0, minimum=60.0)
        sink = SparkplugSink(config, PlantIdentity(name="p"), tmp_path, backoff=slow)
        await sink.start()
        try:
            await _until(lambda: sink.born, 20, "a session born on the second broker")
            assert sink.broker == f"{LOOPBACK}:{second.port}"
            assert sink.event_counts()["failovers"] == 1
        finally:
            await sink.stop()
    finally:
        second.stop()


def _retain_state(port: int, online: bool, timestamp_ms: int) -> None:
    """The primary host's retained STATE on one broker, as its birth or death left it."""
    host = _Paho(port, f"scada-{port}-{timestamp_ms}-{online}")
    host.start()
    try:
        payload = json.dumps({"online": online, "timestamp": timestamp_ms}).encode()
        host.publish("spBv1.0/STATE/scada", payload, qos=1, retain=True)
    finally:
        host.disconnect()


def _two_broker_node(first: Mosquitto, second: Mosquitto, tmp_path: Path) -> SparkplugSink:
    """An edge node on two isolated brokers (in that order) with primary host ``scada``;
    a backoff of a minute, so that any pause between rounds outlasts the tests' bounds."""
    config = SparkplugSinkConfig(
        name="spb",
        type="sparkplug",
        group_id="g",
        edge_node_id="n",
        primary_host="scada",
        brokers=[
            BrokerEndpoint(host=LOOPBACK, port=first.port),
            BrokerEndpoint(host=LOOPBACK, port=second.port),
        ],
    )
    slow = Backoff(initial=60.0, cap=60.0, minimum=60.0)
    return SparkplugSink(config, PlantIdentity(name="p"), tmp_path, backoff=slow)


async def test_sparkplug_reads_the_state_of_each_broker_on_its_own(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Sparkplug 3.0, "Primary Host Application STATE in Multiple MQTT Server Topologies"
    (Figure 7): the host connects to every server; each server's STATE carries the time of
    the host's connection to *that* server. The host connected to B a minute before A.
    The edge node is born on A; the host loses A (its death on A, stamped with A's birth
    time); the node must walk to B, where the host is online, and be born there
    [tck-id-operational-behavior-edge-node-termination-host-offline-reconnect,
    tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk].

    Compared across brokers (one newest timestamp for all), B's online STATE, older than
    A's, was "stale", ignored, and the node waited on B for good, the data in the outbox,
    while the host was online there."""
    second = Mosquitto(port=free_port(), workdir=tmp_path / "second")
    second.start()
    sink: SparkplugSink | None = None
    try:
        now_ms = int(time.time() * 1000)
        on_a, on_b = now_ms, now_ms - 60_000
        _retain_state(mosquitto.port, True, on_a)
        _retain_state(second.port, True, on_b)
        sink = _two_broker_node(mosquitto, second, tmp_path)
        await sink.start()
        await _until(lambda: sink is not None and sink.born, 20, "a session born on A")
        assert sink.broker == f"{LOOPBACK}:{mosquitto.port}"
        # The host loses its session on A: A delivers its Will (offline, A's birth time).
        await _off_loop(_retain_state, mosquitto.port, False, on_a)
        await _until(
            lambda: sink is not None and sink.broker == f"{LOOPBACK}:{second.port}",
            20,
            "the walk to B",
        )
        spb = sink
        await _until(
            lambda: spb.born,
            20,
            "a session born on B, where the host is online",
            detail=lambda: (
                f" (holding: {spb.holding_reason!r}; STATE messages ignored as stale "
                f"or invalid: {spb.state_messages_ignored})"
            ),
        )
    finally:
        if sink is not None:
            await sink.stop()
        second.stop()


async def test_sparkplug_stays_where_it_is_once_every_broker_said_the_host_is_offline(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The host is offline on both brokers. The node walks from A to B once (one
    failover), and then, every broker having said offline, stays on B instead of walking
    round after round (each walk a failover, and a backoff of up to 30 s between rounds
    that delays the births after the host's return: a minute here). When B's STATE says
    online, the node is born there at once."""
    second = Mosquitto(port=free_port(), workdir=tmp_path / "second")
    second.start()
    sink: SparkplugSink | None = None
    try:
        now_ms = int(time.time() * 1000)
        _retain_state(mosquitto.port, False, now_ms)
        _retain_state(second.port, False, now_ms)
        sink = _two_broker_node(mosquitto, second, tmp_path)
        await sink.start()
        spb = sink
        await _until(
            lambda: spb.broker == f"{LOOPBACK}:{second.port}" and spb.connected,
            20,
            "the walk to B",
        )
        await _until(lambda: "waiting for" in spb.holding_reason, 20, "waiting on B")
        # The host comes back on B (a newer session): the node is on B and born at once.
        await _off_loop(_retain_state, second.port, True, now_ms + 1000)
        await _until(
            lambda: spb.born,
            20,
            "a session born on B",
            detail=lambda: f" (holding: {spb.holding_reason!r}; broker {spb.broker})",
        )
        assert spb.broker == f"{LOOPBACK}:{second.port}"
        assert spb.event_counts()["failovers"] == 1
    finally:
        if sink is not None:
            await sink.stop()
        second.stop()


async def test_a_subscription_added_while_connected_stays_on_the_same_broker(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Turning remote configuration on by a reload adds a subscription to a connected
    sink, which makes its connection anew: to the same broker, at once; not a failover
    to the next one (both brokers here work)."""
    second = Mosquitto(port=free_port(), workdir=tmp_path / "second")
    second.start()
    sink = MqttSink(
        MqttSinkConfig(
            name="cloud",
            type="mqtt",
            keepalive=5,
            brokers=[
                {"host": LOOPBACK, "port": mosquitto.port},
                {"host": LOOPBACK, "port": second.port},
            ],  # type: ignore[list-item]
        ),
        PlantIdentity(name="p"),
        connect_timeout=2.0,
        backoff=Backoff(initial=30.0, cap=30.0, minimum=30.0),  # a backoff would show
    )
    try:
        await sink.start()
        await wait_connected(sink)
        subscribed = asyncio.Event()
        sink.topics.add(Subscription("edge/p/config/set", lambda *_: None, subscribed.set))
        async with asyncio.timeout(5):
            await subscribed.wait()
        assert sink.broker == f"{LOOPBACK}:{mosquitto.port}"
        assert sink.event_counts()["failovers"] == 0
    finally:
        await sink.stop()
        second.stop()
