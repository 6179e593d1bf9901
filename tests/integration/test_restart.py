"""Stop with the broker down, start again with it up: nothing collected may be lost.

The promise of issue 6 that the durable outbox (issue 5) keeps: what the sinks could
not deliver within ``service.drain_timeout`` stays in the outbox file at stop and is
replayed after the next start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from edge_agent.model import SampleBatch
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import demo_config, demo_profile
from tests.servers import Mosquitto
from tests.service_support import wait_for

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]


async def test_stop_with_the_broker_down_then_restart_loses_nothing(
    mosquitto: Mosquitto, subscriber_factory: SubscriberFactory, tmp_path: Path
) -> None:
    extra = (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {mosquitto.port}, keepalive: 5}}\n"
        "service: {drain_timeout: 0.5s}\n"
    )
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(ports, tmp_path, extra_yaml=extra)
        config = config.model_copy(update={"devices": config.devices[:1]})

        # First life: the broker is down the whole time; stopped as SIGTERM would.
        mosquitto.stop()
        first = Agent(config)
        collected: list[SampleBatch] = []
        first.pipeline.add_consumer(collected.append)
        supervisor = Supervisor(first)
        task = asyncio.create_task(supervisor.run(), name="first-life")
        try:
            await wait_for(lambda: len(collected) >= 3, 15, "batches collected")
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 20)
        assert first.sinks[0].counters.batches_sent == 0

        # Second life, same state directory, broker up.
        mosquitto.start()
        # Every topic: the demand guard's live batches and its events are collected too.
        sub = await subscriber_factory(mosquitto.port, f"edge/{config.plant.name}/#")
        second = Agent(config)
        supervisor = Supervisor(second)
        task = asyncio.create_task(supervisor.run(), name="second-life")
        try:
            await wait_for(
                lambda: (
                    second.sinks[0].counters.batches_sent >= 2 and not len(second.sinks[0].buffer)
                ),
                15,
                "the second life delivering",
            )
            await sub.wait_until(lambda: len(sub.messages) >= 2, "messages", within=10)
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 20)
        sub.pump()
        batches = [m for m in sub.messages if m.topic.endswith(("/data", "/metrics", "/events"))]
        received = {_key(m.payload) for m in batches}
        missing = [b for b in collected if (b.device, b.group, b.timestamp_ns) not in received]
        assert not missing, f"{len(missing)} of {len(collected)} batches of the first life lost"


def _key(payload: bytes) -> tuple[str, str, int]:
    doc = json.loads(payload)
    return (doc["device"], doc["group"], doc["ts_ns"])
