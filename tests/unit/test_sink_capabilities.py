"""Optional sink capabilities are declared protocols: each sink has exactly the ones it means."""

from __future__ import annotations

from edge_agent.config import MqttSinkConfig, PlantIdentity
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.sinks.base import Lingering, RefusalCounting, StatusPublisher
from edge_agent.sinks.influxdb import InfluxSink
from edge_agent.sinks.mqtt import MqttSink
from tests.influx_support import influx_config, plant_config
from tests.memory_buffer import MemoryBuffer


async def test_the_influxdb_sink_lingers_and_counts_refusals() -> None:
    sink = InfluxSink(influx_config("http://127.0.0.1:9", flush_interval=0.25), plant_config())
    try:
        assert isinstance(sink, Lingering)
        assert isinstance(sink, RefusalCounting)
        assert not isinstance(sink, StatusPublisher)
        assert SinkRunner(sink, MemoryBuffer(1)).linger == 0.25
        assert SinkRunner(sink, MemoryBuffer(1), linger=0.0).linger == 0.0
    finally:
        await sink.stop()


async def test_the_mqtt_sink_carries_the_status_and_does_not_linger() -> None:
    config = MqttSinkConfig(name="mqtt", type="mqtt", host="127.0.0.1", port=9)
    sink = MqttSink(config, PlantIdentity(name="plant"))
    try:
        assert isinstance(sink, StatusPublisher)
        assert not isinstance(sink, Lingering)
        assert not isinstance(sink, RefusalCounting)
        assert SinkRunner(sink, MemoryBuffer(1)).linger == 0.0
    finally:
        await sink.stop()
