"""Write commands over the MQTT sink (``commands: true``), against a real mosquitto and the
stand-in gate (tests/writes_support.py): in on ``edge/{plant}/{device}/cmd``, results on
``.../cmd/result``, audit records on ``edge/{plant}/audit``."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import PlantIdentity
from edge_agent.sinks.base import EventCounting, TakesCommands
from edge_agent.sinks.mqtt import MqttSink
from edge_agent.sinks.mqtt_commands import NOT_ENABLED
from edge_agent.writes.command_json import sign_command
from edge_agent.writes.model import WriteRequest
from tests.mqtt_support import Subscriber, close_paho_sockets, make_sink, wait_connected
from tests.servers import LOOPBACK, Mosquitto
from tests.writes_support import RecordingGate

pytestmark = pytest.mark.integration

KEY = b"a shared key of the plant"
ISSUED = "2026-12-05T06:00:00Z"


class Sender:
    """A paho publisher pumped by the test (QoS 1, PUBACK awaited)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"cmd-{uuid.uuid4().hex[:8]}"
        )
        self.client.connect(LOOPBACK, port)

    async def send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        for _ in range(500):
            self.client.loop(0.0)
            if info.is_published():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("PUBACK never came")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(0.0)
        close_paho_sockets(self.client)


async def commands_sink(
    broker: Mosquitto, plant: PlantIdentity, gate: RecordingGate | None, **overrides: Any
) -> MqttSink:
    sink = make_sink(broker, plant, commands=True, **overrides)
    assert isinstance(sink, TakesCommands)
    sink.take_commands(gate)
    if gate is not None:
        gate.publish_to.append(sink.publish_audit)
    await sink.start()
    await wait_connected(sink)
    assert sink.commands is not None
    # Subscribed once the supervisor has had its SUBACK: wait for the log-free signal.
    await _subscribed(sink)
    return sink


async def _subscribed(sink: MqttSink) -> None:
    assert sink.commands is not None
    async with asyncio.timeout(5):
        while sink.commands.subscriptions == 0:
            await asyncio.sleep(0.01)


def command(ident: str, **changes: Any) -> bytes:
    document = {"id": ident, "tag": "pressure_setpoint", "value": 6.5, "issued_at": ISSUED}
    document.update(changes)
    return json.dumps(document).encode()


async def results(sub: Subscriber, count: int) -> list[dict[str, Any]]:
    await sub.wait_count(count)
    return [json.loads(m.payload) for m in sub.messages[:count]]


async def test_command_reaches_the_gate_and_the_result_comes_back(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    gate = RecordingGate()
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    audit_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/audit")
    sink = await commands_sink(mosquitto, plant, gate)
    sender = Sender(mosquitto.port)
    try:
        payload = command("c-1", dry_run=False, expires_at="2026-12-05T06:01:00+00:00")
        await sender.send(f"edge/{plant.name}/compressor-1/cmd", payload)
        [result] = await results(results_sub, 1)
        [request] = gate.requests
        assert request == WriteRequest(
            id="c-1",
            channel="mqtt",
            identity="",
            device="compressor-1",
            tag="pressure_setpoint",
            value=6.5,
            issued_at_ns=1_796_450_400_000_000_000,
            expires_at_ns=1_796_450_460_000_000_000,
            received_at_ns=request.received_at_ns,
        )
        assert request.received_at_ns > 0
        assert results_sub.messages[0].topic == f"edge/{plant.name}/compressor-1/cmd/result"
        assert not results_sub.messages[0].retain
        assert result["id"] == "c-1"
        assert result["tag"] == "pressure_setpoint"
        assert (result["outcome"], result["accepted"], result["read_back"]) == (
            "applied",
            True,
            6.5,
        )
        [audit] = [json.loads(m.payload) for m in await audit_sub.wait_count(1)]
        assert (audit["id"], audit["channel"], audit["outcome"]) == ("c-1", "mqtt", "applied")
    finally:
        sender.close()
        await sink.stop()


async def test_signed_command_carries_the_exact_text(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    gate = RecordingGate()
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    sink = await commands_sink(mosquitto, plant, gate)
    sender = Sender(mosquitto.port)
    try:
        inner = {
            "plant": plant.name,
            "device": "press-1",
            "id": "s-1",
            "tag": "mode",
            "value": "run",
            "issued_at": ISSUED,
        }
        payload = sign_command(inner, KEY)
        await sender.send(f"edge/{plant.name}/press-1/cmd", payload)
        await results(results_sub, 1)
        [request] = gate.requests
        text = json.loads(payload)["command"]
        assert request.signed is not None
        assert request.signed.canonical == text.encode()
        assert request.signed.signature == json.loads(payload)["signature"]
        assert (request.device, request.tag, request.value) == ("press-1", "mode", "run")
        # The same signed text sent to another device's topic: refused, never routed.
        await sender.send(f"edge/{plant.name}/press-2/cmd", payload)
        [_, other] = await results(results_sub, 2)
        assert other["outcome"] == "refused"
        assert 'names device "press-1"' in other["reason"]
        assert results_sub.messages[1].topic.endswith("/press-2/cmd/result")
    finally:
        sender.close()
        await sink.stop()


def malformed_payloads() -> list[bytes]:
    rng = random.Random(1818)
    payloads = [
        b"",
        b"\x00\xff",
        b"null",
        b"{}",
        b"[]",
        b'{"id": "x", "id": "y"}',
        b'{"id": "x", "tag": "t", "value": NaN, "issued_at": "' + ISSUED.encode() + b'"}',
        command("bad id!"),
        command("c-2", value={"nested": 1}),
        command("c-3", issued_at="yesterday"),
        b'{"command": "{}", "signature": "00"}',
        b"[" * 5000,
        b"x" * 20_000,
    ]
    payloads += [rng.randbytes(rng.randint(1, 200)) for _ in range(20)]
    return payloads


async def test_malformed_payloads_are_refused_and_the_sink_keeps_going(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    gate = RecordingGate()
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    audit_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/audit")
    sink = await commands_sink(mosquitto, plant, gate)
    sender = Sender(mosquitto.port)
    payloads = malformed_payloads()
    try:
        for count, payload in enumerate(payloads, 1):
            await sender.send(f"edge/{plant.name}/dev-1/cmd", payload)
            # One at a time, so a result is known to be this payload's.
            got = await results(results_sub, count)
            assert got[-1]["outcome"] == "refused", (payload, got[-1])
            assert got[-1]["reason"]
        assert len(gate.requests) == len(payloads)
        assert all(r.refusal and r.tag is None and r.method is None for r in gate.requests)
        assert [r["id"] for r in await results(results_sub, 3)][:3] == [None, None, None]
        # Still connected and answering a good one.
        await sender.send(f"edge/{plant.name}/dev-1/cmd", command("ok-1"))
        got = await results(results_sub, len(payloads) + 1)
        assert (got[-1]["id"], got[-1]["outcome"]) == ("ok-1", "applied")
        assert sink.connected
        await audit_sub.wait_count(len(payloads) + 1)
    finally:
        sender.close()
        await sink.stop()


async def test_without_a_gate_every_command_is_refused(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    sink = await commands_sink(mosquitto, plant, None)
    sender = Sender(mosquitto.port)
    try:
        await sender.send(f"edge/{plant.name}/dev-1/cmd", command("n-1"))
        [result] = await results(results_sub, 1)
        assert (result["id"], result["outcome"], result["reason"]) == (
            "n-1",
            "refused",
            NOT_ENABLED,
        )
    finally:
        sender.close()
        await sink.stop()


async def test_retained_command_is_refused(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    gate = RecordingGate()
    sender = Sender(mosquitto.port)
    topic = f"edge/{plant.name}/dev-1/cmd"
    await sender.send(topic, command("r-1"), retain=True)
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    sink = await commands_sink(mosquitto, plant, gate)
    try:
        [result] = await results(results_sub, 1)
        assert (result["id"], result["outcome"]) == ("r-1", "refused")
        assert "retained" in result["reason"]
        assert gate.requests[0].tag is None
    finally:
        await sender.send(topic, b"", retain=True)
        sender.close()
        await sink.stop()


async def test_commands_beyond_the_bound_are_answered_busy(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    gate = RecordingGate(hold=asyncio.Event())
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    sink = await commands_sink(mosquitto, plant, gate)
    assert sink.commands is not None
    sink.commands.max_in_flight = 2
    sender = Sender(mosquitto.port)
    try:
        for i in range(2):
            await sender.send(f"edge/{plant.name}/dev-1/cmd", command(f"h-{i}"))
        async with asyncio.timeout(5):
            while len(gate.requests) < 2:
                await asyncio.sleep(0.01)
        await sender.send(f"edge/{plant.name}/dev-1/cmd", command("h-2"))
        [busy] = await results(results_sub, 1)
        assert (busy["id"], busy["outcome"]) == ("h-2", "refused")
        assert busy["reason"].startswith("busy")
        assert len(gate.requests) == 2  # never queued behind the others
        gate.hold.set()  # type: ignore[union-attr]
        got = await results(results_sub, 3)
        assert sorted((r["id"], r["outcome"]) for r in got[1:]) == [
            ("h-0", "applied"),
            ("h-1", "applied"),
        ]
        assert sink.commands.counters.refused_busy == 1
        # Not audited (a flood would cost an fsync each), so counted where /metrics
        # shows it: edge_agent_sink_events{event="commands_refused_busy"}.
        assert isinstance(sink, EventCounting)
        assert sink.event_counts()["commands_refused_busy"] == 1
        assert sink.event_counts()["commands_received"] == 3
    finally:
        sender.close()
        await sink.stop()
    assert sink.commands.in_flight == 0


async def test_stop_ends_the_commands_still_held(
    mosquitto: Mosquitto, plant: PlantIdentity
) -> None:
    gate = RecordingGate(hold=asyncio.Event())
    sink = await commands_sink(mosquitto, plant, gate)
    sender = Sender(mosquitto.port)
    try:
        await sender.send(f"edge/{plant.name}/dev-1/cmd", command("held"))
        async with asyncio.timeout(5):
            while not gate.requests:
                await asyncio.sleep(0.01)
    finally:
        sender.close()
        assert sink.commands is not None
        await sink.commands.stop(grace_s=0.0)
        await sink.stop()
    assert sink.commands.in_flight == 0
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert not [name for name in names if name.startswith("mqtt-")], names


async def test_subscription_comes_back_after_a_broker_restart(
    mosquitto: Mosquitto, plant: PlantIdentity
) -> None:
    gate = RecordingGate()
    sink = await commands_sink(mosquitto, plant, gate)
    assert sink.commands is not None
    try:
        mosquitto.stop()
        mosquitto.start()
        async with asyncio.timeout(10):
            while sink.commands.subscriptions < 2:
                await asyncio.sleep(0.02)
        sender = Sender(mosquitto.port)
        try:
            await sender.send(f"edge/{plant.name}/dev-1/cmd", command("after-restart"))
            async with asyncio.timeout(5):
                while not gate.requests:
                    await asyncio.sleep(0.01)
        finally:
            sender.close()
        assert gate.requests[0].id == "after-restart"
    finally:
        await sink.stop()


async def test_audit_records_wait_for_the_broker(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    sink = await commands_sink(mosquitto, plant, RecordingGate())
    assert sink.commands is not None
    try:
        mosquitto.stop()
        async with asyncio.timeout(5):
            while sink.connected:
                await asyncio.sleep(0.01)
        for i in range(3):
            sink.publish_audit({"id": f"a-{i}", "outcome": "refused", "read_back": float("nan")})
        mosquitto.start()
        audit_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/audit")
        got = [json.loads(m.payload) for m in await audit_sub.wait_count(3, within=10)]
        assert [record["id"] for record in got] == ["a-0", "a-1", "a-2"]
        assert got[0]["read_back"] is None
    finally:
        await sink.stop()


async def test_a_sink_without_commands_subscribes_to_none(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    plain_gate, gate = RecordingGate(), RecordingGate()
    plain = make_sink(mosquitto, plant, name="plain")
    assert plain.commands is None
    plain.take_commands(plain_gate)
    plain.publish_audit({"id": "nowhere"})
    await plain.start()
    results_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/+/cmd/result")
    audit_sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/audit")
    sink = await commands_sink(mosquitto, plant, gate)
    sender = Sender(mosquitto.port)
    try:
        await wait_connected(plain)
        await sender.send(f"edge/{plant.name}/dev-1/cmd", command("one"))
        # The broker delivers to every subscriber as it gets the message: once the
        # commands sink's result is back, the plain sink would have had it too.
        await results(results_sub, 1)
        await audit_sub.wait_count(1)
        assert [r.id for r in gate.requests] == ["one"]
        assert plain_gate.requests == []
        # No command counts; the broker counts (failovers, batches_resent) every sink has.
        assert plain.event_counts() == {"failovers": 0, "batches_resent": 0}
        assert [json.loads(m.payload)["id"] for m in audit_sub.messages] == ["one"]
    finally:
        sender.close()
        await sink.stop()
        await plain.stop()
