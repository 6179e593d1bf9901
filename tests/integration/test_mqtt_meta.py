"""Device metadata on a real mosquitto: retained, re-published on change, cleared on removal.

The agent polls the demo plant's simulators; every check is made by a subscriber that
connects *after* the fact, so only the broker's retained messages can answer it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.backoff import Backoff
from edge_agent.config import PlantIdentity
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.config.loader import load_config
from edge_agent.errors import SinkError
from edge_agent.service.agent import Agent
from edge_agent.sinks.mqtt import MqttSink
from simulators.serve import serve_profile
from tests.integration.test_reload import _plant_file
from tests.mqtt_support import (
    Subscriber,
    batch,
    fast_backoff,
    make_sink,
    sink_config,
    wait_connected,
)
from tests.plant import demo_profile
from tests.servers import Mosquitto, free_port

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]

DEVICES = ("line-meter", "cnc-1")
META = "edge/demo-plant/+/meta"
#: The line meter's frequency tag in configs/demo-plant.yaml.
FREQUENCY = "{name: frequency, table: input, address: 24, type: float32, unit: Hz}"


async def _retained(factory: SubscriberFactory, port: int) -> dict[str, Any]:
    """What the broker retains for a subscriber that connects now: device -> meta document
    (None for an empty message). Messages published live meanwhile are left aside."""
    sub = await factory(port, META)
    await asyncio.sleep(0.3)  # retained messages come right after the SUBACK
    sub.pump()
    return {
        m.topic.split("/")[2]: json.loads(m.payload) if m.payload else None
        for m in sub.messages
        if m.retain
    }


async def test_meta_is_retained_updated_on_reload_and_cleared_for_a_removed_device(
    mosquitto: Mosquitto,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = _plant_file(tmp_path / "plant.yaml", ports, mosquitto, DEVICES)
        agent = Agent(load_config(path))
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            # Connected after the agent published: only retained messages reach it.
            first = await _until_retained(
                subscriber_factory, mosquitto.port, lambda got: set(got) == set(DEVICES)
            )
            meter = first["line-meter"]
            assert meter["schema"] == 1
            assert meter["plant"] == "demo-plant"
            assert meter["site"] == "Suzhou line 1"
            assert meter["driver"] == "modbus"
            assert meter["device_type"] == "power-meter"
            assert meter["template"] is None
            assert meter["tags"]["frequency"] == {
                "group": "electrical",
                "unit": "Hz",
                "description": "",
                "type": "float32",
                "enum": None,
                "address": {"table": "input", "address": 24},
                "interval": 1.0,
                "on_change": False,
            }
            assert meter["tags"]["energy_import"]["description"].startswith("import energy")
            cnc = first["cnc-1"]["tags"]
            assert cnc["state"]["enum"] == {"0": "off", "1": "idle", "2": "run", "3": "fault"}
            assert cnc["running"]["address"] == {"table": "holding", "address": 1, "bit": 1}
            assert list(cnc)[:3] == ["state", "running", "fault"], "config order"

            # A reload that changes one unit: the new meta replaces the retained one.
            per_second = {FREQUENCY: FREQUENCY.replace("Hz", "1/s")}
            _plant_file(path, ports, mosquitto, DEVICES, edits=per_second)
            result = await agent.reconfigure(load_config(path))
            assert result.applied, result.problems
            assert result.plan is not None
            assert result.plan.sinks_changed == ()
            await _until_retained(
                subscriber_factory,
                mosquitto.port,
                lambda got: got["line-meter"]["tags"]["frequency"]["unit"] == "1/s",
            )

            # A reload that removes a device: its retained meta is cleared.
            _plant_file(path, ports, mosquitto, ("line-meter",), edits=per_second)
            result = await agent.reconfigure(load_config(path))
            assert result.applied, result.problems
            assert result.plan is not None
            assert result.plan.devices_removed == ("cnc-1",)
            assert result.plan.devices_changed == ()
            await _until_retained(
                subscriber_factory, mosquitto.port, lambda got: set(got) == {"line-meter"}
            )
            last = await _retained(subscriber_factory, mosquitto.port)
            assert last["line-meter"]["tags"]["frequency"]["unit"] == "1/s"
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 15)


async def _until_retained(
    factory: SubscriberFactory,
    port: int,
    condition: Callable[[dict[str, Any]], bool],
    within: float = 10.0,
) -> dict[str, Any]:
    """Subscribe afresh until what is retained satisfies ``condition``; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await _retained(factory, port)
        if condition(got):
            return got
        assert loop.time() < deadline, f"retained meta never matched; last: {got!r:.1500}"


def _device(name: str, unit: str = "kW") -> DeviceInfo:
    tag = TagInfo(name, "fast", "power", "float32", None, 1.0, unit=unit, address={"node": "i=1"})
    return DeviceInfo.of(name, "opcua", [tag])


async def test_meta_comes_back_after_the_broker_lost_it(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, plant: PlantIdentity
) -> None:
    """A broker restarted without persistence forgets retained messages: the sink
    publishes every meta message again at each connection."""
    sink = make_sink(mosquitto, plant, meta_topic="m/{plant}/{device}/meta")
    sink.describe_devices([_device("a"), _device("b")])
    await sink.start()
    try:
        await wait_connected(sink)
        for _ in range(2):
            sub = await subscriber_factory(mosquitto.port, f"m/{plant.name}/+/meta")
            got = await sub.wait_count(2)
            assert {m.topic for m in got} == {f"m/{plant.name}/a/meta", f"m/{plant.name}/b/meta"}
            assert all(json.loads(m.payload)["tags"]["power"]["unit"] == "kW" for m in got)
            sub.close()
            mosquitto.stop()
            mosquitto.start()  # same port, nothing retained
    finally:
        await sink.stop()


async def test_changes_made_while_the_broker_is_away_are_published_when_it_is_back(
    persistent_mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, plant: PlantIdentity
) -> None:
    broker = persistent_mosquitto
    topic = f"edge/{plant.name}/{{}}/meta"
    sink = make_sink(broker, plant)
    sink.describe_devices([_device("a"), _device("b")])
    await sink.start()
    try:
        await wait_connected(sink)
        sub = await subscriber_factory(broker.port, topic.format("+"))
        await sub.wait_count(2)
        sub.close()
        broker.stop()
        # Gone while the broker is away: b removed, a's unit changed.
        sink.describe_devices([_device("a", unit="W")])
        broker.start()  # still retains both old messages
        later = await subscriber_factory(broker.port, topic.format("+"))
        await later.wait_until(
            lambda: (
                any(m.topic == topic.format("b") and not m.payload for m in later.messages)
                and any(
                    m.topic == topic.format("a") and b'"unit":"W"' in m.payload
                    for m in later.messages
                )
            ),
            "b cleared and a's new unit",
            within=10,
        )
    finally:
        await sink.stop()
    check = await subscriber_factory(broker.port, topic.format("+"))
    await check.wait_count(1)
    await asyncio.sleep(0.3)
    check.pump()
    assert [(m.topic, m.retain) for m in check.messages] == [(topic.format("a"), True)]


async def test_no_meta_topic_publishes_none(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, plant: PlantIdentity
) -> None:
    sub = await subscriber_factory(mosquitto.port, "#")
    sink = make_sink(mosquitto, plant, meta_topic="")
    sink.describe_devices([_device("a")])
    await sink.start()
    try:
        await wait_connected(sink)
        await sub.wait_count(1)  # the online status
        await asyncio.sleep(0.3)
        sub.pump()
    finally:
        await sink.stop()
    assert [m.topic for m in sub.messages] == [f"edge/{plant.name}/status"]


async def test_a_meta_message_the_broker_refuses_does_not_stop_the_data(
    tmp_path: Path, subscriber_factory: SubscriberFactory
) -> None:
    """A broker with a packet limit drops the connection of a client that sends a larger
    packet (mosquitto's max_packet_size; EMQX allows 1 MB by default, AWS IoT 128 KB): a
    device with many tags must not take the data of every device down with it."""
    broker = Mosquitto(
        port=free_port(), workdir=tmp_path / "mosquitto", extra_config="max_packet_size 20000"
    )
    broker.start()
    big = DeviceInfo.of(
        "big",
        "modbus",
        [
            TagInfo("big", "g", f"t{i}", "float32", None, 1.0, address={"address": 2 * i})
            for i in range(500)
        ],
    )
    small = DeviceInfo.of("small", "modbus", [TagInfo("small", "g", "power", "float32", None, 1.0)])
    plant = PlantIdentity(name="demo-plant", site="Hall 3")
    sink = MqttSink(
        sink_config(broker),
        plant,
        ack_timeout=2.0,
        connect_timeout=2.0,
        backoff=fast_backoff(),
        meta_backoff=Backoff(initial=60.0, cap=60.0, minimum=60.0),
        devices=[small, big],
    )
    try:
        await sink.start()
        delivered, seq = 0, 0
        deadline = time.monotonic() + 10.0
        while delivered < 20:  # in a row
            assert time.monotonic() < deadline, f"only {delivered} batches in a row delivered"
            seq += 1
            try:
                await sink.send([batch("small", seq)])
                delivered += 1
            except SinkError:
                delivered = 0
                await asyncio.sleep(0.05)
        # The messages that fit went out before the one the broker refused.
        assert set(await _retained(subscriber_factory, broker.port)) == {"small"}
    finally:
        await sink.stop()
        broker.stop()
