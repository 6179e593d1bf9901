"""End to end: simulators -> agent (Modbus) -> real mosquitto -> a subscriber.

The decoded values on the broker are compared with the simulators' ground truth, and
the broker is stopped and restarted while the agent runs: every batch collected
meanwhile must arrive, in order per device and group, with its original timestamp.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.model import SampleBatch
from edge_agent.service.agent import Agent
from simulators.serve import serve_profile
from tests.integration.test_modbus_agent import FrozenClock
from tests.mqtt_support import Subscriber
from tests.plant import close_enough, demo_config, demo_profile, expected_value
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]


def _mqtt_sink(broker: Mosquitto) -> str:
    return (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, keepalive: 5}}\n"
    )


async def _wait(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_values_on_the_broker_match_the_simulators_ground_truth(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    clock = FrozenClock()
    async with serve_profile(demo_profile(), clock=clock, start=clock.now - 7200) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(ports, tmp_path, extra_yaml=_mqtt_sink(mosquitto))
        sub = await subscriber_factory(mosquitto.port, "edge/demo-plant/+/data")
        groups = {(d.name, g.name) for d in config.devices for g in d.poll_groups}
        agent = Agent(config)
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            # Two messages per group: the first poll of the meter is also where holes are learned.
            def enough() -> bool:
                seen: dict[tuple[str, str], int] = {}
                for m in sub.messages:
                    doc = json.loads(m.payload)
                    key = (doc["device"], doc["group"])
                    seen[key] = seen.get(key, 0) + 1
                return all(seen.get(k, 0) >= 2 for k in groups)

            await sub.wait_until(enough, "two messages per device and group", within=30)
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 15)

        checked = 0
        for message in sub.messages:
            doc = json.loads(message.payload)
            assert message.topic == f"edge/demo-plant/{doc['device']}/data"
            assert doc["plant"] == "demo-plant"
            assert doc["site"] == "Suzhou line 1"
            device = next(d for d in config.devices if d.name == doc["device"])
            group = next(g for g in device.poll_groups if g.name == doc["group"])
            quantities = plant.read(device.name)
            codes = [t.code_name for t in group.tags if t.code_name is not None]
            assert list(doc["values"]) == [t.name for t in group.tags] + codes
            for tag in group.tags:
                entry = doc["values"][tag.name]
                assert entry["q"] == "good", (device.name, tag.name, entry)
                want = expected_value(plant.profile, quantities, device, tag)
                assert close_enough(tag, entry["v"], want), (device.name, tag.name, entry, want)
                checked += 1
                if tag.code_name is not None:  # the raw number beside the label
                    assert tag.enum is not None
                    code = doc["values"][tag.code_name]
                    assert code["q"] == "good", code
                    assert tag.enum[code["v"]] == entry["v"], (code, entry)
        assert checked >= 2 * sum(len(g.tags) for d in config.devices for g in d.poll_groups)


async def test_broker_restart_mid_run_loses_nothing(
    persistent_mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    broker = persistent_mosquitto
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(ports, tmp_path, extra_yaml=_mqtt_sink(broker))
        devices = [d for d in config.devices if d.name in ("line-meter", "cnc-1")]
        config = config.model_copy(update={"devices": devices})
        sub = await subscriber_factory(broker.port, "edge/demo-plant/+/data", persistent=True)
        agent = Agent(config, drain_seconds=15.0)
        collected: list[SampleBatch] = []
        agent.pipeline.add_consumer(collected.append)
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await sub.wait_until(lambda: len(sub.messages) >= 4, "first messages", within=15)
            broker.stop()
            down_from = len(collected)
            await _wait(lambda: len(collected) >= down_from + 6, 15, "polls while broker is down")
            assert not agent.sinks[0].sink.connected
            assert len(agent.sinks[0].buffer) > 0, "batches wait in the buffer"
            broker.start()
            await sub.reconnect(within=10)
            await _wait(lambda: len(agent.sinks[0].buffer) == 0, 30, "backlog delivered")
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)
        # The tag data (the metric windows, the demand guard's live batches and its events
        # go to their own topics, not subscribed here).
        emitted = [
            (b.device, b.group, b.timestamp_ns)
            for b in collected
            if metric_info(b) is None and event_info(b) is None
        ]
        await sub.wait_until(
            lambda: {_key(m.payload) for m in sub.messages} >= set(emitted),
            "every collected batch on the broker",
            within=15,
        )
        received = [_key(m.payload) for m in sub.messages]
        assert agent.sinks[0].buffer.dropped_batches == 0
        # At least once: duplicates are allowed, gaps are not; order kept per device and group.
        for device, group in {(d, g) for d, g, _ in emitted}:
            sent = [ts for d, g, ts in emitted if (d, g) == (device, group)]
            got = _dedupe([ts for d, g, ts in received if (d, g) == (device, group)])
            assert got == sent, (device, group)


def _key(payload: bytes) -> tuple[str, str, int]:
    doc: dict[str, Any] = json.loads(payload)
    return (doc["device"], doc["group"], doc["ts_ns"])


def _dedupe(items: list[int]) -> list[int]:
    seen: set[int] = set()
    return [i for i in items if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
