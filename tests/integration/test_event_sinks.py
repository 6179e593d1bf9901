"""Event and report batches over the wire: a real mosquitto and a real VictoriaMetrics.

Events go to ``events_topic`` (not retained) and to the ``events`` measurement with
their type, severity and state as tags; a report batch goes to ``reports_topic``,
retained (a consumer connecting later still gets the last report), and is not
written to InfluxDB (its figures are there as metric batches) but counts as sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from edge_agent.config import PlantIdentity
from edge_agent.metrics.contract import REPORTS_GROUP, report_attributes
from edge_agent.metrics.events import event_batch
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.influxdb import InfluxSink
from tests.influx_support import influx_config, plant_config
from tests.mqtt_support import batch, make_sink, wait_connected
from tests.servers import Mosquitto, VictoriaMetrics

pytestmark = pytest.mark.integration

START_NS = 1_795_000_000_000_000_000
END_NS = START_NS + 125_000_000_000
NAMES = ("predicted_kw", "limit_kw", "shed_kw", "minutes_left")


def events() -> list[SampleBatch]:
    reason = "meter-1: predicted 48.2 kW, above the contracted limit of 40 kW; shed 9.1 kW"
    start = event_batch(
        "demand_limit", "meter-1", "critical", "start", START_NS, None, reason, NAMES,
        [48.2, 40.0, 9.1, 7.5],
    )  # fmt: skip
    end = event_batch(
        "demand_limit", "meter-1", "critical", "end", START_NS, END_NS, "over", NAMES,
        [39.0, 40.0, 0.0, 5.4],
    )  # fmt: skip
    return [start, end]


def report() -> SampleBatch:
    text = json.dumps({"day": "2026-12-04", "meters": {"meter-1": {"kwh": 812.5}}})
    return SampleBatch(
        device="plant-7",
        group=REPORTS_GROUP,
        timestamp_ns=START_NS,
        names=("report",),
        values=[text],
        qualities=[Quality.GOOD],
        reasons=[""],
        attributes=report_attributes("daily", "2026-12-04"),
    )


async def test_events_and_a_retained_report_on_mqtt(
    mosquitto: Mosquitto, plant: PlantIdentity, subscriber_factory: Any
) -> None:
    events_topic = f"edge/{plant.name}/events"
    report_topic = f"edge/{plant.name}/reports/daily"
    sub = await subscriber_factory(mosquitto.port, f"edge/{plant.name}/#")
    sink = make_sink(mosquitto, plant)
    await sink.start()
    try:
        await wait_connected(sink)
        # In order, the report between ordinary batches: runs of retained and not.
        await sink.send([batch("press-1", 0), *events(), report(), batch("press-1", 1)])
        await sub.wait_until(lambda: len(_data(sub.messages)) >= 5, "five messages")
    finally:
        await sink.stop()
    got = _data(sub.messages)
    assert [(m.topic, m.retain) for m in got] == [
        (f"edge/{plant.name}/press-1/data", False),
        (events_topic, False),
        (events_topic, False),
        (report_topic, False),  # live delivery to a subscriber: the retain flag is not set
        (f"edge/{plant.name}/press-1/data", False),
    ]
    start = json.loads(got[1].payload)
    assert start["attributes"] == {
        "kind": "event",
        "event": "demand_limit",
        "severity": "critical",
        "state": "start",
    }
    assert start["ts_ns"] == START_NS
    # A null is never good: the end of an active event is not known yet.
    assert start["values"]["end_s"]["v"] is None
    assert start["values"]["end_s"]["q"] == "uncertain"
    assert start["values"]["shed_kw"] == {"v": 9.1, "q": "good"}
    assert "contracted limit" in start["values"]["reason"]["v"]
    end = json.loads(got[2].payload)
    assert (end["ts_ns"], end["values"]["end_s"]["v"]) == (END_NS, END_NS / 1e9)
    assert end["values"]["start_s"]["v"] == START_NS / 1e9
    # A consumer that connects afterwards still gets the report: it was retained.
    late = await subscriber_factory(mosquitto.port, report_topic)
    await late.wait_until(lambda: bool(late.messages), "retained report")
    assert late.messages[0].retain
    document = json.loads(late.messages[0].payload)
    assert document["attributes"] == {"kind": "report", "report": "daily", "day": "2026-12-04"}
    assert json.loads(document["values"]["report"]["v"])["meters"]["meter-1"]["kwh"] == 812.5
    # ...and the events were not retained.
    later = await subscriber_factory(mosquitto.port, events_topic)
    await later.wait_until(lambda: True, "nothing")
    assert later.messages == []


def _data(messages: list[Any]) -> list[Any]:
    """Everything but the sink's own retained status."""
    return [m for m in messages if not m.topic.endswith("/status")]


async def test_events_land_in_the_events_measurement_and_reports_are_skipped(
    victoria: VictoriaMetrics,
) -> None:
    sink = InfluxSink(influx_config(victoria.url), plant_config(False))
    await sink.start()
    try:
        await sink.send([*events(), report()])
        assert sink.connected
    finally:
        await sink.stop()
    assert sink.lines_written == 2, "one line per event, none for the report"
    found = victoria.export('{__name__="events_shed_kw"}')
    by_state = {series["metric"]["state"]: series for series in found}
    assert set(by_state) == {"start", "end"}
    start = by_state["start"]
    assert start["metric"] == {
        "__name__": "events_shed_kw",
        "plant": "plant-7",
        "device": "meter-1",
        "event": "demand_limit",
        "severity": "critical",
        "state": "start",
        "line": "line 1",
        "cost_centre": "a=b",
    }
    assert start["values"] == [9.1]
    assert start["timestamps"] == [START_NS // 1_000_000]
    assert by_state["end"]["timestamps"] == [END_NS // 1_000_000]
    # end_s: left out while the event is active (None), written at its end.
    ends = victoria.export('{__name__="events_end_s"}')
    assert [s["metric"]["state"] for s in ends] == ["end"]
    assert ends[0]["values"] == [END_NS / 1e9]
    assert victoria.export('{__name__=~"reports.*"}') == []
