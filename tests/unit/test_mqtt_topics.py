"""Which topic each kind of batch goes to (docs/MQTT.md): data, metrics, events, reports."""

from __future__ import annotations

from edge_agent.config import PlantIdentity
from edge_agent.config.mqtt import MqttSinkConfig
from edge_agent.metrics.contract import report_attributes
from edge_agent.metrics.events import event_batch
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.mqtt import MqttSink

S = 1_000_000_000
T0 = 1_800_000_000


def sink() -> MqttSink:
    config = MqttSinkConfig(name="mqtt", type="mqtt", host="127.0.0.1", port=1)
    return MqttSink(config, PlantIdentity(name="p1"))


def test_an_event_goes_to_the_events_topic_even_after_a_poll_group_named_events() -> None:
    """A device may have a poll group named ``events`` (a meter's event-log registers);
    its data topic, once cached for (device, group), must not catch the device's
    demand_limit, idle_energy or meter_stalled events: they go to ``events_topic``."""
    mqtt = sink()
    data = SampleBatch("m", "events", T0 * S, ("last_code",), [7], [Quality.GOOD], [""])
    assert mqtt._topic(data) == "edge/p1/m/data"
    event = event_batch(
        "demand_limit", "m", "critical", "start", T0 * S, None, "over", ("limit_kw",), [40.0]
    )
    assert mqtt._topic(event) == "edge/p1/events"
    assert mqtt._topic(data) == "edge/p1/m/data"


def test_a_report_goes_to_its_topic_even_from_a_device_named_as_the_plant() -> None:
    """Likewise a device named as the plant with a group ``reports``: the plant's daily
    report still goes to ``reports_topic``."""
    mqtt = sink()
    data = SampleBatch("p1", "reports", T0 * S, ("count",), [1], [Quality.GOOD], [""])
    assert mqtt._topic(data) == "edge/p1/p1/data"
    report = SampleBatch(
        "p1",
        "reports",
        T0 * S,
        ("report",),
        ["{}"],
        [Quality.GOOD],
        [""],
        attributes=report_attributes("daily", "2027-01-15"),
    )
    assert mqtt._topic(report) == "edge/p1/reports/daily"
