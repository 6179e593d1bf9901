"""Sparkplug DCMD writes through the write gate (the stand-in of tests/writes_support.py),
on a real mosquitto: device by the sink's device ids read backwards, tag by metric name or
alias, refusals counted, logged once per (device, metric, reason), and audited by the
gate; NCMD metrics other than Rebirth refused (node metrics are not tags)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.sinks.base import TakesCommands
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.commands import NODE_METRIC
from edge_agent.sinks.sparkplug.sink import SparkplugSink
from edge_agent.writes.model import WriteRequest
from tests.integration.test_sparkplug_sink import (
    GROUP,
    NODE,
    _born,
    _command,
    _decode,
    _kinds,
    _metric,
    _publish,
    _running,
    _sink,
)
from tests.servers import Mosquitto
from tests.writes_support import RecordingGate

pytestmark = pytest.mark.integration

DCMD = f"spBv1.0/{GROUP}/DCMD/{NODE}"


async def _requests(gate: RecordingGate, count: int) -> list[WriteRequest]:
    async with asyncio.timeout(5):
        while len(gate.requests) < count:
            await asyncio.sleep(0.01)
    return gate.requests


def _by_alias(alias: int, value: float | None) -> bytes:
    payload = pb.Payload(timestamp=int(time.time() * 1000))
    metric = payload.metrics.add(alias=alias, datatype=9)  # Float
    if value is None:
        metric.is_null = True
    else:
        metric.float_value = value
    return payload.SerializeToString()


async def test_dcmd_by_name_and_by_alias_reaches_the_gate(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Any
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    gate = RecordingGate()
    sink = _sink(mosquitto, tmp_path)
    assert isinstance(sink, TakesCommands)
    sink.take_commands(gate)
    async with _running(sink):
        await _born(sink)
        messages = await _kinds(sub, "NBIRTH", "DBIRTH")
        dbirth = _decode(messages[-1])
        alias = _metric(dbirth, "power_kw").alias
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 5.0}))
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _by_alias(alias, 6.5))
        first, second = await _requests(gate, 2)
    for request, value in ((first, 5.0), (second, 6.5)):
        assert request.channel == "sparkplug"
        assert request.identity == "sparkplug"
        assert (request.device, request.tag, request.value) == ("meter", "power_kw", value)
        assert request.refusal == ""
        assert request.id.startswith("sparkplug-")
    assert first.id != second.id  # the gate refuses an id seen before
    assert sink.event_counts()["commands_accepted"] == 2
    assert sink.event_counts()["commands_refused"] == 0


async def test_what_names_nothing_is_refused_audited_and_logged_once(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    gate = RecordingGate()
    sink = _sink(mosquitto, tmp_path, primary_host="")
    sink.take_commands(gate)
    async with _running(sink):
        await _born(sink)
        with capture_logs() as logs:
            _publish(mosquitto.port, f"{DCMD}/Meter 9", _command({"power_kw": 5.0}))
            _publish(mosquitto.port, f"{DCMD}/Meter 1", _by_alias(999, 1.0))
            _publish(mosquitto.port, f"{DCMD}/Meter 1", _by_alias(999, 1.0))
            _publish(mosquitto.port, f"{DCMD}/Meter 1", _by_alias(1_000, None))
            _publish(mosquitto.port, f"spBv1.0/{GROUP}/NCMD/{NODE}", _command({"speed": 2.0}))
            requests = await _requests(gate, 5)
            async with asyncio.timeout(5):
                while sink.event_counts()["commands_refused"] < 5:
                    await asyncio.sleep(0.01)
    assert all(r.tag is None and r.method is None and r.refusal for r in requests)
    reasons = [r.refusal for r in requests]
    assert "no device of this agent has the Sparkplug device id 'Meter 9'" in reasons[0]
    assert reasons[1] == reasons[2] == "alias 999 is no metric of device 'Meter 1'"
    assert reasons[4] == NODE_METRIC
    assert requests[4].device == ""
    refused = [e for e in logs if e["event"] == "sparkplug command refused"]
    assert len(refused) == 4  # the repeated alias 999 logged once
    assert sink.event_counts()["commands_accepted"] == 0


async def test_null_value_is_refused_with_its_metric(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Any
) -> None:
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    gate = RecordingGate()
    sink = _sink(mosquitto, tmp_path)
    sink.take_commands(gate)
    async with _running(sink):
        await _born(sink)
        alias = _metric(_decode((await _kinds(sub, "NBIRTH", "DBIRTH"))[-1]), "power_kw").alias
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _by_alias(alias, None))
        [request] = await _requests(gate, 1)
    assert request.device == "meter"
    assert request.tag is None
    assert request.refusal == (
        "metric power_kw carries no value (null, or not in the field of its datatype)"
    )


async def test_writes_beyond_the_bound_are_refused_busy_and_stop_ends_the_rest(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    gate = RecordingGate(hold=asyncio.Event())
    sink: SparkplugSink = _sink(mosquitto, tmp_path)
    sink.take_commands(gate)
    sink.commands.max_in_flight = 1
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 1.0, "running": True}))
        await _requests(gate, 1)
        async with asyncio.timeout(5):
            while sink.event_counts()["commands_refused"] < 1:
                await asyncio.sleep(0.01)
        await sink.commands.stop(grace_s=0.0)
    assert len(gate.requests) == 1
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("sparkplug-write")]
