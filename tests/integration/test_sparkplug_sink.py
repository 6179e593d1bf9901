"""The Sparkplug sink's session on a real mosquitto, read back by a raw paho subscriber
and decoded with the generated protobuf module (docs/SPARKPLUG.md).

The spec-conformance module (tests/integration/test_sparkplug_conformance.py) checks the
assertions one by one on captured traffic; these tests show the behaviours the sink
owns: birth order, seq, bdSeq and the Will, rebirth, device death, the primary host.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from structlog.testing import capture_logs

from edge_agent.config import PlantIdentity, SparkplugSinkConfig
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.errors import SinkError
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.model import REASON_TIMEOUT, Quality, SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner, SinkState
from edge_agent.service.status import sink_status
from edge_agent.service.status_view import render_status
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.node import EdgeNode
from edge_agent.sinks.sparkplug.sink import SparkplugSink
from tests.memory_buffer import MemoryBuffer
from tests.mqtt_support import Received, Subscriber, fast_backoff
from tests.servers import LOOPBACK, Mosquitto

pytestmark = pytest.mark.integration

GROUP, NODE = "Plant1", "line-1"
TAGS = ("power_kw", "running")


def _devices() -> list[DeviceInfo]:
    def tag(name: str, value_type: str, unit: str = "") -> TagInfo:
        return TagInfo("meter", "fast", name, value_type, None, 1.0, unit=unit)

    return [
        DeviceInfo.of("meter", "modbus", [tag("power_kw", "float32", "kW"), tag("running", "bool")])
    ]


def _config(broker: Mosquitto, **overrides: Any) -> SparkplugSinkConfig:
    values: dict[str, Any] = {
        "name": "scada",
        "type": "sparkplug",
        "host": LOOPBACK,
        "port": broker.port,
        "keepalive": 5,
        "group_id": GROUP,
        "edge_node_id": NODE,
        "device_ids": {"meter": "Meter 1"},
    }
    return SparkplugSinkConfig(**(values | overrides))


def _sink(broker: Mosquitto, state_dir: Path, **overrides: Any) -> SparkplugSink:
    return SparkplugSink(
        _config(broker, **overrides),
        PlantIdentity(name="line-1", site="Hall 3"),
        state_dir,
        devices=_devices(),
        ack_timeout=3.0,
        connect_timeout=2.0,
        backoff=fast_backoff(),
    )


def _batch(power: float, *, ts_ns: int | None = None, running: bool = True) -> SampleBatch:
    return SampleBatch(
        "meter",
        "fast",
        time.time_ns() if ts_ns is None else ts_ns,
        TAGS,
        [power, running],
        [Quality.GOOD, Quality.GOOD],
        ["", ""],
    )


def _dead(ts_ns: int | None = None) -> SampleBatch:
    now = time.time_ns() if ts_ns is None else ts_ns
    return SampleBatch.all_bad("meter", "fast", now, TAGS, REASON_TIMEOUT)


def _kind(message: Received) -> str:
    return message.topic.split("/")[2]


def _decode(message: Received) -> Any:
    return pb.Payload.FromString(message.payload)


def _metric(payload: Any, name: str) -> Any:
    return next(m for m in payload.metrics if m.name == name)


def _spb(subscriber: Subscriber) -> list[Received]:
    return [m for m in subscriber.messages if m.topic.startswith(f"spBv1.0/{GROUP}/")]


async def _until(subscriber: Subscriber, what: str, condition: Callable[[], bool]) -> None:
    await subscriber.wait_until(condition, what, within=8.0)


async def _kinds(subscriber: Subscriber, *kinds: str) -> list[Received]:
    """Wait until the Sparkplug messages end with ``kinds`` in this order."""

    def arrived() -> bool:
        got = [_kind(m) for m in _spb(subscriber)]
        return got[-len(kinds) :] == list(kinds)

    await _until(subscriber, " ".join(kinds), arrived)
    return _spb(subscriber)


@asynccontextmanager
async def _running(sink: SparkplugSink) -> AsyncIterator[SparkplugSink]:
    await sink.start()
    try:
        yield sink
    finally:
        await sink.stop()


async def _born(sink: SparkplugSink, within: float = 8.0) -> None:
    async with asyncio.timeout(within):
        await sink.wait_ready()


def _publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """One QoS 1 message from another client, confirmed (loopback: instant)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{time.time_ns()}")
    client.connect(LOOPBACK, port, keepalive=10)
    info = client.publish(topic, payload, qos=1, retain=retain)
    deadline = time.monotonic() + 5.0
    while not info.is_published():
        assert time.monotonic() < deadline, "publish not confirmed"
        client.loop(0.01)
    client.disconnect()
    client.loop(0.01)


def _command(metrics: dict[str, bool | float]) -> bytes:
    payload = pb.Payload(timestamp=int(time.time() * 1000))
    for name, value in metrics.items():
        metric = payload.metrics.add(name=name)
        if isinstance(value, bool):
            metric.datatype, metric.boolean_value = 11, value
        else:
            metric.datatype, metric.double_value = 10, float(value)
    return payload.SerializeToString()


def _state(online: bool, timestamp_ms: int) -> bytes:
    return json.dumps({"online": online, "timestamp": timestamp_ms}).encode()


def _seqs(messages: list[Received]) -> list[int]:
    return [_decode(m).seq for m in messages if _kind(m) != "NDEATH"]


# ---------------------------------------------------------------------------- tests


async def test_nbirth_then_every_dbirth_then_data_with_aliases_only(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    sink.see_live(_batch(41.5))  # the birth carries the current value
    async with _running(sink):
        await _born(sink)
        await sink.send([_batch(42.0)])
        messages = await _kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
    nbirth, dbirth, ddata = (_decode(m) for m in messages[-3:])
    assert messages[-3].topic == f"spBv1.0/{GROUP}/NBIRTH/{NODE}"
    assert messages[-2].topic == f"spBv1.0/{GROUP}/DBIRTH/{NODE}/Meter 1"
    assert messages[-1].topic == f"spBv1.0/{GROUP}/DDATA/{NODE}/Meter 1"
    assert not any(m.retain for m in messages)
    assert [nbirth.seq, dbirth.seq, ddata.seq] == [0, 1, 2]
    bd_seq = _metric(nbirth, "bdSeq")
    assert (bd_seq.datatype, bd_seq.long_value) == (4, 0)  # Int64, the first session
    assert _metric(nbirth, "Node Control/Rebirth").boolean_value is False
    assert _metric(nbirth, "Node Control/Scan Rate").long_value == 1000
    assert _metric(nbirth, "Properties/Plant").string_value == "line-1"
    power = _metric(dbirth, "power_kw")
    assert power.float_value == 41.5
    assert all(m.HasField("alias") for m in dbirth.metrics)
    assert all(not m.HasField("name") for m in ddata.metrics)
    assert {m.alias for m in ddata.metrics} == {m.alias for m in dbirth.metrics}
    assert ddata.metrics[0].float_value == 42.0
    assert not ddata.metrics[0].is_historical


async def test_seq_runs_over_all_messages_and_wraps_after_255(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    async with _running(sink):
        await _born(sink)
        for start in range(0, 300, 50):
            await sink.send([_batch(float(i)) for i in range(start, start + 50)])
        await _until(sub, "302 messages", lambda: len(_spb(sub)) >= 302)
    seqs = _seqs(_spb(sub))
    assert seqs == [i % 256 for i in range(302)]


async def test_the_will_carries_the_bdseq_of_the_nbirth_and_the_next_session_the_next(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    async with _running(sink):
        await _born(sink)
        sink._connection.abort("test: the link breaks")  # no DISCONNECT: the broker sends the Will
        messages = await _kinds(sub, "NDEATH", "NBIRTH", "DBIRTH")
    births = [_decode(m) for m in messages if _kind(m) == "NBIRTH"]
    deaths = [m for m in messages if _kind(m) == "NDEATH"]
    will = _decode(deaths[0])
    assert _metric(will, "bdSeq").long_value == _metric(births[0], "bdSeq").long_value == 0
    assert not will.HasField("seq")
    assert _metric(births[1], "bdSeq").long_value == 1
    assert births[1].seq == 0


async def test_bdseq_is_persisted_across_a_new_sink_and_a_clean_stop_sends_ndeath(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    async with _running(_sink(mosquitto, tmp_path)) as first:
        await _born(first)
    await _kinds(sub, "NBIRTH", "DBIRTH", "NDEATH")
    async with _running(_sink(mosquitto, tmp_path)) as second:
        await _born(second)
        messages = await _kinds(sub, "NDEATH", "NBIRTH", "DBIRTH")
    births = [_decode(m) for m in messages if _kind(m) == "NBIRTH"]
    death = _decode(next(m for m in messages if _kind(m) == "NDEATH"))
    assert _metric(death, "bdSeq").long_value == 0
    assert [_metric(b, "bdSeq").long_value for b in births] == [0, 1]
    assert json.loads((tmp_path / "sparkplug-scada.json").read_text()) == {"bdSeq": 1}


async def test_ncmd_rebirth_is_answered_by_a_complete_rebirth_and_writes_are_refused(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    async with _running(sink):
        await _born(sink)
        await sink.send([_batch(1.0)])
        await _kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
        _publish(
            mosquitto.port, f"spBv1.0/{GROUP}/DCMD/{NODE}/Meter 1", _command({"power_kw": 5.0})
        )
        _publish(mosquitto.port, f"spBv1.0/{GROUP}/NCMD/{NODE}", b"\xff\xff not protobuf")
        _publish(
            mosquitto.port, f"spBv1.0/{GROUP}/NCMD/{NODE}", _command({"Node Control/Rebirth": True})
        )
        await _kinds(sub, "DDATA", "DCMD", "NCMD", "NCMD", "NBIRTH", "DBIRTH")
        await sink.send([_batch(2.0)])
        messages = await _kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
    births = [_decode(m) for m in messages if _kind(m) == "NBIRTH"]
    assert [b.seq for b in births] == [0, 0]
    assert _metric(births[0], "bdSeq").long_value == _metric(births[1], "bdSeq").long_value
    assert _decode(messages[-1]).seq == 2
    assert sink.commands.counters.rebirth_requests == 1
    assert sink.commands.counters.commands_refused == 1
    assert sink.commands.counters.commands_undecodable == 1


async def test_a_device_that_cannot_be_reached_dies_once_and_is_born_again(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    async with _running(sink):
        await _born(sink)
        await sink.send([_batch(1.0), _dead(), _dead(), _dead()])
        sink.see_live(_batch(3.0))
        await sink.send([_batch(3.0)])
        messages = await _kinds(sub, "DBIRTH", "DDATA", "DDEATH", "DBIRTH", "DDATA")
    kinds = [_kind(m) for m in messages]
    assert kinds == ["NBIRTH", "DBIRTH", "DDATA", "DDEATH", "DBIRTH", "DDATA"]
    assert _seqs(messages) == [0, 1, 2, 3, 4, 5]
    assert _metric(_decode(messages[-2]), "power_kw").float_value == 3.0
    assert sink.node.counters.dead_batches_skipped == 2


async def test_primary_host_offline_holds_the_data_and_it_arrives_historical_after(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """[tck-id-message-flow-edge-node-birth-publish-phid-wait,
    tck-id-message-flow-edge-node-birth-publish-phid-offline,
    tck-id-operational-behavior-edge-node-termination-host-offline-timestamp]"""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    buffer = MemoryBuffer(1000)
    runner = SinkRunner(sink, buffer)
    task = asyncio.create_task(runner.run())
    state = "spBv1.0/STATE/scada"
    try:
        buffer.append(_batch(1.0))
        await sub.wait_until(lambda: sink.connected, "the sink's connection")
        await sub.wait_until(
            lambda: "waiting for the primary host scada" in runner.counters.last_error,
            "the runner holding for the host",
        )
        assert runner.state is SinkState.HOLDING
        assert not any(_kind(m) == "NBIRTH" for m in _spb(sub))
        t0 = int(time.time() * 1000)
        _publish(mosquitto.port, state, _state(True, t0), retain=True)
        await _kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
        # Host offline: NDEATH, then the sink reconnects and waits; what is collected
        # meanwhile waits in the buffer.
        _publish(mosquitto.port, state, _state(False, t0 + 1), retain=True)
        await _kinds(sub, "NDEATH")
        held = [_batch(10.0 + i) for i in range(5)]
        for batch in held:
            sink.see_live(batch)  # as the pipeline hands each batch to the tap and the outbox
            buffer.append(batch)
        await sub.wait_until(
            lambda: sink.sessions == 2 and "waiting for" in sink.holding_reason,
            "the next session waiting for the host",
        )
        # An old host session's message (older timestamp): ignored, no birth.
        _publish(mosquitto.port, state, _state(True, t0 - 5), retain=False)
        await sub.wait_until(lambda: sink.state_messages_ignored >= 1, "the stale STATE")
        assert _kind(_spb(sub)[-1]) == "NDEATH"
        assert len(buffer) == 5
        _publish(mosquitto.port, state, _state(True, t0 + 2), retain=True)
        messages = await _kinds(sub, "NBIRTH", "DBIRTH", *["DDATA"] * 5)
        await sub.wait_until(lambda: len(buffer) == 0, "the buffer delivered")
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    births = [_decode(m) for m in messages if _kind(m) == "NBIRTH"]
    death = _decode(next(m for m in messages if _kind(m) == "NDEATH"))
    assert _metric(death, "bdSeq").long_value == _metric(births[0], "bdSeq").long_value
    assert _metric(births[1], "bdSeq").long_value == _metric(births[0], "bdSeq").long_value + 1
    delivered = [_decode(m) for m in messages[-5:]]
    assert [d.metrics[0].float_value for d in delivered] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert all(m.is_historical for d in delivered for m in d.metrics)
    assert runner.state is SinkState.DELIVERING


async def test_an_operator_sees_why_a_sink_waiting_for_its_host_sends_nothing(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """Found by the plant-engineer trial: with the primary host offline, ``edge-agent
    status`` said ``scada  connected  backlog 112 batches`` (healthy, no reason) and the
    log said only "holds ... not connected to the broker yet" then "sparkplug connected":
    nothing told why no data flowed. docs/SPARKPLUG.md promises the holding reason in the
    status; the log says it again whenever the reason changes."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    buffer = MemoryBuffer(1000)
    runner = SinkRunner(sink, buffer)
    with capture_logs() as logs:
        task = asyncio.create_task(runner.run())
        try:
            buffer.append(_batch(1.0))
            await sub.wait_until(
                lambda: "waiting for the primary host scada" in runner.counters.last_error,
                "the runner holding for the host",
            )
            entry = sink_status(runner)
        finally:
            task.cancel()
            await asyncio.wait([task])
            await sink.stop()
    assert entry["state"] == "holding"
    assert "waiting for the primary host scada to be online" in entry["reason"]
    document = {"healthy": True, "sinks": {"scada": entry}}
    text = render_status(document)
    [line] = [x for x in text.splitlines() if x.startswith("  scada")]
    assert "holding" in line, text
    assert "connected" not in line, text
    assert "holding: waiting for the primary host scada to be online" in text, text
    reasons = [e["reason"] for e in logs if e["event"].startswith("sink holds")]
    assert any("waiting for the primary host scada" in r for r in reasons), reasons


# ------------------------------------------------------------ primary host: STATE races

STATE = "spBv1.0/STATE/scada"


async def test_host_offline_then_online_read_together_ends_the_session_and_births_again(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """A host restart: its Will (offline), then its new birth, read from one socket read
    before the session task looks. The offline one ends the session all the same (NDEATH,
    DISCONNECT [tck-id-message-flow-edge-node-birth-publish-phid-offline]); the next
    session is born on the online STATE, the sink never holds for good."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    _publish(mosquitto.port, STATE, _state(True, t0), retain=True)
    async with _running(sink):
        await _born(sink)
        # Both confirmed before the loop runs again (the helper blocks).
        _publish(mosquitto.port, STATE, _state(False, t0 + 1), retain=True)
        _publish(mosquitto.port, STATE, _state(True, t0 + 2), retain=True)
        host = sink.host
        assert host is not None
        await _until(
            sub,
            "the sink to read both STATE messages",
            lambda: host.state is not None and host.state.timestamp_ms == t0 + 2,
        )
        await _kinds(sub, "NDEATH", "NBIRTH", "DBIRTH")
        await _born(sink)
    assert sink.sessions == 2


async def test_no_birth_in_a_new_session_before_the_host_says_online_in_it(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The broker restarts without the retained STATE: what the last session heard is not
    enough [tck-id-message-flow-edge-node-birth-publish-phid-wait,
    tck-id-operational-behavior-edge-node-birth-sequence-wait]; the online STATE of this
    session is."""
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    _publish(mosquitto.port, STATE, _state(True, int(time.time() * 1000)), retain=True)
    async with _running(sink):
        await _born(sink)
        mosquitto.stop()
        mosquitto.start()  # same port, nothing retained
        deadline = time.monotonic() + 10.0
        while not (
            sink.sessions >= 2
            and sink.connected
            and (sink.born or "waiting for the primary host" in sink.holding_reason)
        ):
            assert time.monotonic() < deadline, f"no new session: {sink.holding_reason!r}"
            await asyncio.sleep(0.01)
        assert not sink.born, "born in a new session without any STATE from the primary host"
        _publish(mosquitto.port, STATE, _state(True, int(time.time() * 1000)), retain=True)
        await _born(sink)


async def test_no_data_goes_out_when_the_host_went_offline_while_the_births_were_confirmed(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The host's offline STATE arrives while the births are in flight: the runner is not
    let go after them; NDEATH follows, no DDATA before it
    [tck-id-message-flow-edge-node-birth-publish-phid-offline]."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    _publish(mosquitto.port, STATE, _state(True, t0), retain=True)
    fence = sink._connection.fence
    fences = 0

    async def host_goes_offline_during_the_first_fence(*, within: float) -> None:
        nonlocal fences
        fences += 1
        if fences == 1:  # the births' fence: the host dies meanwhile
            _publish(mosquitto.port, STATE, _state(False, t0 + 1), retain=True)
        await fence(within=within)

    sink._connection.fence = host_goes_offline_during_the_first_fence  # type: ignore[method-assign]
    buffer = MemoryBuffer(100)
    buffer.append(_batch(1.0))
    runner = SinkRunner(sink, buffer)
    task = asyncio.create_task(runner.run())
    try:
        await _until(sub, "the NDEATH", lambda: "NDEATH" in map(_kind, _spb(sub)))
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    kinds = [_kind(m) for m in _spb(sub)]
    assert "DDATA" not in kinds[: kinds.index("NDEATH")], kinds


# ------------------------------------------------------------------------------ reload


async def test_a_reload_never_lets_ddata_use_an_alias_before_its_dbirth(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """describe_devices (a reload) and a send that takes the lock before the session
    task: the DBIRTH with the new tag goes out before the DDATA that uses it
    [tck-id-operational-behavior-data-publish-dbirth,
    tck-id-payloads-alias-data-cmd-requirement]."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    async with _running(sink):
        await _born(sink)
        await sink.send([_batch(1.0)])
        await _kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
        tags = [
            TagInfo("meter", "fast", name, value_type, None, 1.0)
            for name, value_type in (("power_kw", "float32"), ("running", "bool"))
        ]
        tags.append(TagInfo("meter", "fast", "voltage", "float32", None, 1.0))
        sink.describe_devices([DeviceInfo.of("meter", "modbus", tags)])
        batch = SampleBatch(
            "meter",
            "fast",
            time.time_ns(),
            ("power_kw", "running", "voltage"),
            [2.0, True, 230.0],
            [Quality.GOOD] * 3,
            [""] * 3,
        )
        await sink.send([batch])
        await sink.send([batch])
        messages = await _kinds(sub, "DBIRTH", "DDATA", "DDATA")
    born: set[int] = set()
    for message in messages:
        if _kind(message) == "DBIRTH":
            born = {m.alias for m in _decode(message).metrics}
        elif _kind(message) == "DDATA":
            assert {m.alias for m in _decode(message).metrics} <= born
    assert [_kind(m) for m in messages].count("DBIRTH") == 2


# ------------------------------------------------------------ failures of our own, contained


def _opcua_sink(broker: Mosquitto, state_dir: Path) -> SparkplugSink:
    return SparkplugSink(
        _config(broker),
        PlantIdentity(name="line-1", site="Hall 3"),
        state_dir,
        devices=[
            DeviceInfo.of("meter", "opcua", [TagInfo("meter", "fast", "state", None, None, 1.0)])
        ],
        ack_timeout=3.0,
        connect_timeout=2.0,
        backoff=fast_backoff(),
    )


def _text(text: str) -> SampleBatch:
    return SampleBatch("meter", "fast", time.time_ns(), ("state",), [text], [Quality.GOOD], [""])


async def test_a_live_string_with_a_lone_surrogate_does_not_end_the_session_task(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """asyncua decodes a Latin-1 PLC string ("St\\xf6rung") with surrogateescape: a GOOD
    "St\\udcf6rung" that protobuf cannot encode. Seen live, it is in the births: the node
    is born all the same (the value bad), the session task lives on."""
    sink = _opcua_sink(mosquitto, tmp_path)
    sink.see_live(_text("St\udcf6rung"))
    async with _running(sink):
        try:
            await _born(sink, within=8.0)
        except TimeoutError:
            task = sink._supervisor
            died = task is not None and task.done()
            pytest.fail(f"never born: {sink.holding_reason!r}; session task ended: {died}")


async def test_a_batch_with_a_lone_surrogate_does_not_block_every_batch_after_it(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _opcua_sink(mosquitto, tmp_path)
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, backoff=fast_backoff())
    task = asyncio.create_task(runner.run())
    try:
        for text in ("St\udcf6rung", "Betrieb"):
            buffer.append(_text(text))
        await sub.wait_until(lambda: len(buffer) == 0, "both batches delivered", within=8.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    assert sink.sessions == 1


async def test_a_failure_in_the_births_ends_the_session_not_the_session_task(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in births() (here: it raises once) is logged, the connection dropped (the
    Will), and the next session is born: the sink does not stay connected and unborn."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    births = EdgeNode.births
    calls = 0

    def fails_once(node: EdgeNode, bd_seq: int) -> list[tuple[str, bytes]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return births(node, bd_seq)

    monkeypatch.setattr(EdgeNode, "births", fails_once)
    async with _running(sink):
        await _born(sink)
        messages = await _kinds(sub, "NBIRTH", "DBIRTH")
    assert sink.sessions == 2
    assert [_kind(m) for m in messages] == ["NDEATH", "NBIRTH", "DBIRTH"]


async def test_a_batch_the_node_fails_on_costs_one_session_and_is_skipped_after(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in deliver() on one batch: the session ends (its state may be half-changed),
    and when the runner sends the batch again it is skipped, counted: never an endless
    retry, and the batches after it are delivered."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    deliver = EdgeNode.deliver

    def fragile(node: EdgeNode, batch: SampleBatch, **options: Any) -> list[tuple[str, bytes]]:
        if batch.values[0] == 13.0:
            raise RuntimeError("a bug")
        return deliver(node, batch, **options)

    monkeypatch.setattr(EdgeNode, "deliver", fragile)
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, backoff=fast_backoff())
    task = asyncio.create_task(runner.run())
    try:
        for power in (13.0, 14.0):
            buffer.append(_batch(power))
        await sub.wait_until(lambda: len(buffer) == 0, "the batches delivered", within=8.0)
        await _until(sub, "the DDATA", lambda: "DDATA" in map(_kind, _spb(sub)))
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    ddata = [_decode(m) for m in _spb(sub) if _kind(m) == "DDATA"]
    assert [d.metrics[0].float_value for d in ddata] == [14.0]
    assert sink.sessions == 2
    assert sink.event_counts()["unencodable_batches"] == 1


def _metric_batch(
    unit: str, family: str, bounds: tuple[int, int], names: tuple[str, ...], values: list[Any]
) -> SampleBatch:
    """A closed window's metric batch as edge_agent/metrics writes it (stamped at its start)."""
    return SampleBatch(
        unit,
        metric_group("15m"),
        bounds[0],
        names,
        values,
        [Quality.GOOD] * len(values),
        [""] * len(values),
        attributes=MetricInfo(family, "15m", bounds).attributes(),
    )


async def test_a_deliver_bug_skips_only_its_own_batch_not_a_sibling_metric_batch(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch skipped after a bug in deliver() was known by (device, group, time), which
    metric batches of several families of one unit and window share (group metrics:15m,
    time = window start), as do the daily and the first shift's report: a bug on the
    energy batch made the sink skip the demand batch of the same window too, acknowledged
    and never published (review of the delta since 939608a)."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    deliver = EdgeNode.deliver

    def fragile(node: EdgeNode, item: SampleBatch, **options: Any) -> list[tuple[str, bytes]]:
        if item.attributes.get("family") == "energy":
            raise RuntimeError("a bug")
        return deliver(node, item, **options)

    monkeypatch.setattr(EdgeNode, "deliver", fragile)
    start = (time.time_ns() // (15 * 60 * 10**9) - 1) * 15 * 60 * 10**9
    window = (start, start + 15 * 60 * 10**9)
    energy = _metric_batch("plant", "energy", window, ("kwh",), [12.5])
    demand = _metric_batch("plant", "demand", window, ("demand_kw",), [50.0])
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, backoff=fast_backoff())
    task = asyncio.create_task(runner.run())
    try:
        buffer.append(energy)
        buffer.append(demand)
        await sub.wait_until(lambda: len(buffer) == 0, "the batches acknowledged", within=8.0)
        await _until(sub, "the DDATA", lambda: "DDATA" in map(_kind, _spb(sub)))
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    ddata = [_decode(m) for m in _spb(sub) if _kind(m) == "DDATA"]
    assert [d.metrics[0].double_value for d in ddata] == [50.0], "only the energy batch skipped"
    assert sink.event_counts()["unencodable_batches"] == 1


async def test_a_send_the_host_went_offline_during_is_not_acknowledged(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """send() looked at the session once, before it published. The host's offline STATE,
    confirmed by the broker before the DDATA is even written, is read by the sink while
    the DDATA and its fence are in flight: the send must fail (the batch stays in the
    outbox and goes out again, historical, after the next birth), not be acknowledged as
    delivered to a host that never got it, as the births' fence already does
    (test_no_data_goes_out_when_the_host_went_offline_while_the_births_were_confirmed)
    [tck-id-operational-behavior-edge-node-termination-host-offline]."""
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    _publish(mosquitto.port, STATE, _state(True, t0), retain=True)
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, STATE, _state(False, t0 + 1), retain=True)  # confirmed
        with pytest.raises(SinkError, match="offline"):
            await sink.send([_batch(1.0)])
        host = sink.host
        assert host is not None
        assert host.state is not None
        assert host.state.timestamp_ms == t0 + 1, "the sink read the offline STATE meanwhile"
