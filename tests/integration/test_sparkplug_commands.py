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
from tests.gate_support import make_gate
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


async def test_every_metric_of_one_dcmd_reaches_the_gate_in_order(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    """A Sparkplug host writes a recipe: ten setpoints in one DCMD (one message, as
    hosts do). Each metric is a command and Sparkplug has no result topic, so the audit
    log is the only trace: every one reaches the gate (which audits it), in order. (The
    handler once spawned a task per metric and refused the ninth and later "busy",
    neither written nor audited; review of issue 18.)"""
    gate = RecordingGate()  # the stand-in gate: each request it sees is one audit record
    sink = _sink(mosquitto, tmp_path)
    assert isinstance(sink, TakesCommands)
    sink.take_commands(gate)
    names = [f"setpoint_{n}" for n in range(10)]
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command(dict.fromkeys(names, 1.0)))
        # Each metric ends accepted or refused (counted): then all ten were handled.
        async with asyncio.timeout(5):
            while (
                sum(sink.event_counts()[k] for k in ("commands_accepted", "commands_refused")) < 10
            ):
                await asyncio.sleep(0.01)
    seen = [r.tag or "" for r in gate.requests]
    assert seen == names, (
        f"{10 - len(seen)} metric(s) of the DCMD never reached the gate (not audited); "
        f"counters: {sink.event_counts()}"
    )


async def test_a_dcmd_beyond_the_bound_has_each_metric_refused_busy_through_the_gate(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    """One DCMD is being handled (the gate holds it) and the bound is one: the next
    DCMD's metrics are refused "busy", each through the gate, so each is audited."""
    hold = asyncio.Event()
    gate = RecordingGate(hold=hold)
    sink: SparkplugSink = _sink(mosquitto, tmp_path)
    sink.take_commands(gate)
    sink.commands.max_in_flight = 1
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 1.0}))
        await _requests(gate, 1)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 2.0, "running": True}))
        await _requests(gate, 2)  # the stand-in holds the refusals too, one by one
        hold.set()
        first, *busy = await _requests(gate, 3)
        async with asyncio.timeout(5):
            while (
                sink.event_counts()["commands_accepted"] + sink.event_counts()["commands_refused"]
                < 3
            ):
                await asyncio.sleep(0.01)
    assert (first.tag, first.value, first.refusal) == ("power_kw", 1.0, "")
    assert [(r.tag, r.value) for r in busy] == [(None, None), (None, None)]
    assert [r.refusal.split("; ")[1] for r in busy] == [
        "metric power_kw was not written",
        "metric running was not written",
    ]
    assert all(r.refusal.startswith("busy: 1 Sparkplug commands") for r in busy)
    assert sink.event_counts()["commands_refused"] == 2
    assert sink.event_counts()["commands_dropped"] == 0


async def test_in_a_flood_beyond_both_bounds_a_dcmd_is_dropped_counted_and_stop_ends_the_rest(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    gate = RecordingGate(hold=asyncio.Event())
    sink: SparkplugSink = _sink(mosquitto, tmp_path)
    sink.take_commands(gate)
    sink.commands.max_in_flight = 1
    sink.commands.max_refusing = 1
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 1.0}))
        await _requests(gate, 1)
        _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 2.0}))
        await _requests(gate, 2)  # refused busy, held by the gate as the first is
        with capture_logs() as logs:
            _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 3.0}))
            _publish(mosquitto.port, f"{DCMD}/Meter 1", _command({"power_kw": 4.0}))
            async with asyncio.timeout(5):
                while sink.event_counts()["commands_dropped"] < 2:
                    await asyncio.sleep(0.01)
        await sink.commands.stop(grace_s=0.0)
    assert len(gate.requests) == 2
    assert [e["event"] for e in logs if "dropping" in e["event"]] == [
        "sparkplug commands arrive faster than they can even be refused; dropping some "
        "unaudited (quiet until one is handled again)"
    ]
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("sparkplug-write")]


def _dcmd(values: list[str]) -> bytes:
    from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb

    payload = pb.Payload(timestamp=1)
    for value in values:
        metric = payload.metrics.add(name="mode")
        metric.datatype, metric.string_value = 12, value  # String
    return payload.SerializeToString()


async def test_every_metric_of_a_dcmd_the_stop_cuts_short_is_audited() -> None:
    """A DCMD's metrics run one after the other in one task; stop() cancels it after its
    grace. The metric under way is audited by the gate (unknown: it was being written),
    the ones after it go to the gate as refusals (they were only counted and logged:
    commands that arrived and left no audit record, and Sparkplug has no result topic)."""
    from edge_agent.sinks.sparkplug.commands import CommandHandler
    from edge_agent.sinks.sparkplug.topics import CommandTopic

    gate = make_gate()
    gate.device.write_mode = "hangs"
    handler = CommandHandler(sink="spb", gate=gate.service)
    handler.describe(["compressor-1"])
    handler.handle(CommandTopic("compressor-1"), _dcmd(["auto", "off", "auto"]))
    await gate.device.hanging.wait()  # the first metric's write is out
    await handler.stop(grace_s=0)
    assert len(gate.device.writes) == 1
    assert [r["outcome"] for r in gate.audit.records] == ["unknown", "refused", "refused"]
