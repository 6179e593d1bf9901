"""The status document on the MQTT status topic: after "online", never after "offline"."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.config import PlantIdentity
from tests.mqtt_support import Received, make_sink, wait_connected
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

DOCUMENT = b'{"schema":1,"state":"online"}'


async def test_status_document_is_retained_between_online_and_offline(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    topic = f"edge/{plant.name}/status"
    sink = make_sink(mosquitto, plant)
    assert not await sink.publish_status(DOCUMENT)  # not connected: nothing to do
    await sink.start()
    try:
        await wait_connected(sink)
        sub = await subscriber_factory(mosquitto.port, topic)
        await sub.wait_until(lambda: bool(sub.messages), "retained online")
        assert await sink.publish_status(DOCUMENT)
        await sub.wait_until(lambda: len(sub.messages) >= 2, "the document")
        late = await subscriber_factory(mosquitto.port, topic)
        await late.wait_until(lambda: bool(late.messages), "the retained document")
        assert late.messages == [Received(topic, DOCUMENT, True)]
    finally:
        await sink.stop()
    assert not await sink.publish_status(DOCUMENT)  # stopped: "offline" stays the last word
    after = await subscriber_factory(mosquitto.port, topic)
    await after.wait_until(lambda: bool(after.messages), "the retained offline")
    assert after.messages == [Received(topic, b"offline", True)]
    await sub.wait_until(lambda: len(sub.messages) >= 3, "offline")
    assert [m.payload for m in sub.messages] == [b"online", DOCUMENT, b"offline"]
