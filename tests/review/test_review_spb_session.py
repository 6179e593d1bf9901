"""Review of the Sparkplug B session side (sink, node, host state, runner seam): failing tests.

Each test shows one finding of the review (docs of the findings: the review report). The
session tests run on a real mosquitto and read the traffic back with a raw subscriber,
as tests/integration/test_sparkplug_sink.py does (its helpers are reused through the
module, not imported by name, so its tests are not collected twice); the pure parts
(:class:`~edge_agent.sinks.sparkplug.node.EdgeNode`) are tested directly.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import tests.integration.test_sparkplug_sink as base
from edge_agent.config import PlantIdentity
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.config.loader import parse_config
from edge_agent.metrics.contract import report_attributes
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats
from edge_agent.service.telemetry import build_registry, render_metrics
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.node import EdgeNode, NodeInfo
from edge_agent.sinks.sparkplug.sink import SparkplugSink
from edge_agent.sinks.sparkplug.topics import Topics
from tests.memory_buffer import MemoryBuffer
from tests.mqtt_support import fast_backoff
from tests.servers import Mosquitto

STATE = "spBv1.0/STATE/scada"


def _tag(name: str, value_type: str, device: str = "meter") -> TagInfo:
    return TagInfo(device, "fast", name, value_type, None, 1.0)


def _ddata_aliases_born(messages: list[Any]) -> list[str]:
    """Every DDATA whose aliases were not all in its device's latest DBIRTH before it
    (tck-id-operational-behavior-data-publish-dbirth: a device's metrics are born first)."""
    born: dict[str, set[int]] = {}
    problems = []
    for message in messages:
        kind = base._kind(message)
        device = message.topic.split("/")[-1]
        if kind == "NBIRTH":
            born.clear()
        elif kind == "DBIRTH":
            born[device] = {m.alias for m in base._decode(message).metrics}
        elif kind == "DDEATH":
            born.pop(device, None)
        elif kind == "DDATA":
            aliases = {m.alias for m in base._decode(message).metrics}
            missing = aliases - born.get(device, set())
            if missing:
                problems.append(f"DDATA seq {base._decode(message).seq} of {device}: {missing}")
    return problems


# ---------------------------------------------------------------- primary host (STATE)


@pytest.mark.integration
async def test_host_offline_then_online_read_together_does_not_hold_the_sink_for_good(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The primary host goes offline and is back at once (a host restart: its Will, then
    its new birth; paho hands both to ``on_message`` from one read when they arrive
    together). The OFFLINE clears ``_ready``; by the time the session task looks, the host
    is online and the session still born, so it only reconciles and never sets ``_ready``
    again: the sink neither disconnects (tck-id-message-flow-edge-node-birth-publish-phid-offline)
    nor resumes: it holds "the primary host scada is offline" while the host is online,
    for as long as the connection lasts. Expected: either resume, or NDEATH and a new
    session that is born again."""
    sub = await subscriber_factory(mosquitto.port, STATE)
    sink = base._sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    base._publish(mosquitto.port, STATE, base._state(True, t0), retain=True)
    async with base._running(sink):
        await base._born(sink)
        # Both published before the loop runs again (the helper blocks): they are read
        # from the sink's socket before its session task looks.
        base._publish(mosquitto.port, STATE, base._state(False, t0 + 1), retain=True)
        base._publish(mosquitto.port, STATE, base._state(True, t0 + 2), retain=True)
        host = sink.host
        assert host is not None
        await base._until(
            sub,
            "the sink to read both STATE messages",
            lambda: host.state is not None and host.state.timestamp_ms == t0 + 2,
        )
        try:
            await base._born(sink, within=8.0)
        except TimeoutError:
            pytest.fail(
                "the host is online again but the sink still holds: "
                f"{sink.holding_reason!r} (sessions: {sink.sessions}, connected: {sink.connected})"
            )


@pytest.mark.integration
async def test_no_birth_in_a_new_session_before_the_host_says_online_in_it(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The broker restarts (no persistence: the retained STATE is gone, the host has not
    reconnected yet). The sink remembers the host as online from its previous session
    (HostWatch lives across sessions) and births right after the SUBACK, without any
    STATE in this session [tck-id-message-flow-edge-node-birth-publish-phid-wait,
    tck-id-operational-behavior-edge-node-birth-sequence-wait: "MUST also wait to
    publish its BIRTH sequence until an online=true STATE message is received"]. Its
    data then goes to a broker where no host listens, and the outbox counts it delivered
    (QoS 0, fenced): lost for the host. The same happens when the retained STATE is
    offline but is read a moment after the SUBACK."""
    sink = base._sink(mosquitto, tmp_path, primary_host="scada")
    base._publish(mosquitto.port, STATE, base._state(True, int(time.time() * 1000)), retain=True)
    async with base._running(sink):
        await base._born(sink)
        mosquitto.stop()
        mosquitto.start()  # same port, nothing retained
        deadline = time.monotonic() + 10.0
        while not (
            sink.sessions >= 2
            and sink.connected
            and (sink.born or "waiting for the primary host" in sink.holding_reason)
        ):
            assert time.monotonic() < deadline, f"no new session: {sink.holding_reason!r}"
            await asyncio.sleep(0.01)
        assert not sink.born, "born in a new session without any STATE from the primary host"


@pytest.mark.integration
async def test_no_data_goes_out_when_the_host_went_offline_while_the_births_were_confirmed(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The host's offline STATE arrives while the births are in flight (read before the
    fence's UNSUBACK): ``_on_state`` clears ``_ready``, then the session sets it again
    right after the births without looking at the host, and the runner, woken at once,
    sends its batches as DDATA before the session task gets to its NDEATH. The outbox
    counts them delivered; the host is offline: lost for it
    [tck-id-message-flow-edge-node-birth-publish-phid-offline: "MUST immediately publish
    an NDEATH"; the contract: no data while the primary host is offline]."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = base._sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    base._publish(mosquitto.port, STATE, base._state(True, t0), retain=True)
    fence = sink._connection.fence
    fences = 0

    async def host_goes_offline_during_the_first_fence(*, within: float) -> None:
        nonlocal fences
        fences += 1
        if fences == 1:  # the births' fence: the host dies meanwhile
            base._publish(mosquitto.port, STATE, base._state(False, t0 + 1), retain=True)
        await fence(within=within)

    sink._connection.fence = host_goes_offline_during_the_first_fence  # type: ignore[method-assign]
    buffer = MemoryBuffer(100)
    buffer.append(base._batch(1.0))
    runner = SinkRunner(sink, buffer)
    task = asyncio.create_task(runner.run())
    try:
        await base._until(sub, "the NDEATH", lambda: "NDEATH" in map(base._kind, base._spb(sub)))
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    kinds = [base._kind(m) for m in base._spb(sub)]
    assert "DDATA" not in kinds[: kinds.index("NDEATH")], kinds


# ---------------------------------------------------------------- reload


@pytest.mark.integration
async def test_a_reload_that_adds_a_tag_never_lets_ddata_use_an_alias_before_its_dbirth(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """``describe_devices`` (a reload) swaps the device's table at once but leaves the
    DBIRTH to the session task (``reconcile``); a send that takes the lock first (the
    runner resumes before the session task: nothing orders them) delivers the new tag's
    batch as DDATA with the new tag's alias, never born, and the DBIRTH comes after it
    [tck-id-operational-behavior-data-publish-dbirth, tck-id-payloads-alias-data-cmd-requirement:
    a host cannot resolve the alias]. A changed datatype goes out the same way before the
    DBIRTH that declares it."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = base._sink(mosquitto, tmp_path)
    async with base._running(sink):
        await base._born(sink)
        await sink.send([base._batch(1.0)])
        await base._kinds(sub, "NBIRTH", "DBIRTH", "DDATA")
        grown = DeviceInfo.of(
            "meter",
            "modbus",
            [_tag("power_kw", "float32"), _tag("running", "bool"), _tag("voltage", "float32")],
        )
        sink.describe_devices([grown])
        batch = SampleBatch(
            "meter",
            "fast",
            time.time_ns(),
            ("power_kw", "running", "voltage"),
            [2.0, True, 230.0],
            [Quality.GOOD] * 3,
            [""] * 3,
        )
        await sink.send([batch])
        await base._until(
            sub, "the reload's DBIRTH", lambda: len(base._spb(sub)) >= 5
        )  # NBIRTH DBIRTH DDATA + DDATA and DBIRTH in some order
        await sink.send([batch])
        messages = await base._kinds(sub, "DDATA")
    assert _ddata_aliases_born(messages) == []


def test_a_removed_device_is_not_born_again_by_its_batches_still_in_the_outbox() -> None:
    """A reload removes device ``meter``: its DDEATH goes out (reconcile). Its batches
    collected before the reload are still in the outbox; the first one makes ``_device``
    create a *virtual* device of the same id, which gets a DBIRTH (with metrics learned from
    values: units, descriptions and declared types gone) and stays born for the rest of
    the session and every later one: the host shows a removed device online for good,
    and no DDEATH will ever end it (tck-id-operational-behavior-device-ddeath). Expected:
    batches of a removed device are dropped (counted) or at least followed by its DDEATH."""
    node = EdgeNode(Topics("G", "N"), NodeInfo(1000, {}), lambda device: device)
    meter = DeviceInfo.of("meter", "modbus", [_tag("p", "float32")])
    other = DeviceInfo.of("other", "modbus", [_tag("x", "float32", "other")])
    node.describe([meter, other])
    node.births(0)
    collected_before_the_reload = SampleBatch(
        "meter", "fast", time.time_ns(), ("p",), [1.0], [Quality.GOOD], [""]
    )
    node.describe([other])
    assert [topic for topic, _ in node.reconcile()] == ["spBv1.0/G/DDEATH/N/meter"]
    topics = [topic for topic, _ in node.deliver(collected_before_the_reload)]
    assert not node.device_ids.get("meter", False), f"a removed device is born again: {topics}"


# ---------------------------------------------------------------- values that cannot be encoded


@pytest.mark.integration
async def test_a_live_string_with_a_lone_surrogate_does_not_end_the_session_task(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """asyncua decodes OPC UA Strings with errors="surrogateescape": a PLC string in
    Latin-1 ("St\\xf6rung") becomes "St\\udcf6rung", a GOOD value. Seen live, it is in the
    births; ``encode_dbirth`` raises UnicodeEncodeError, ``_session`` only catches
    MqttError, ``_supervise`` nothing: the session task dies ("sparkplug session task
    died"), the sink stays connected without an NBIRTH and never tries again until the
    agent restarts. (The JSON sink sends such strings: sinks/payload.py, ensure_ascii.)
    Expected: the metric goes out (bad with a reason, or the text repaired) and the node
    is born."""
    sink = SparkplugSink(
        base._config(mosquitto),
        PlantIdentity(name="line-1", site="Hall 3"),
        tmp_path,
        devices=[DeviceInfo.of("meter", "opcua", [_tag("state", "string")])],
        ack_timeout=3.0,
        connect_timeout=2.0,
        backoff=fast_backoff(),
    )
    sink.see_live(
        SampleBatch(
            "meter", "fast", time.time_ns(), ("state",), ["St\udcf6rung"], [Quality.GOOD], [""]
        )
    )
    async with base._running(sink):
        try:
            await base._born(sink, within=8.0)
        except TimeoutError:
            task = sink._supervisor
            died = task is not None and task.done()
            pytest.fail(f"never born: {sink.holding_reason!r}; session task ended: {died}")


@pytest.mark.integration
async def test_a_batch_with_a_lone_surrogate_does_not_block_every_batch_after_it(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """The same string in a delivered batch: ``deliver`` raises, ``send`` drops the
    session (a new bdSeq, full births) and re-raises a UnicodeEncodeError, which the
    runner treats as an unexpected sink error: backoff, then the same batch again. A
    poison batch: nothing after it is ever delivered, and every retry is a new session.
    Expected: the value goes out as bad (or repaired) and delivery goes on."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = SparkplugSink(
        base._config(mosquitto),
        PlantIdentity(name="line-1", site="Hall 3"),
        tmp_path,
        devices=[DeviceInfo.of("meter", "opcua", [_tag("state", "string")])],
        ack_timeout=3.0,
        connect_timeout=2.0,
        backoff=fast_backoff(),
    )
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, backoff=fast_backoff())
    task = asyncio.create_task(runner.run())
    try:
        for text in ("St\udcf6rung", "Betrieb"):
            buffer.append(
                SampleBatch(
                    "meter", "fast", time.time_ns(), ("state",), [text], [Quality.GOOD], [""]
                )
            )
        await sub.wait_until(lambda: len(buffer) == 0, "both batches delivered", within=8.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()


# ---------------------------------------------------------------- historical flag


def test_a_report_made_after_the_devices_birth_is_live_not_historical() -> None:
    """A report batch's time is the start of its period (metrics/reports.py: start_s), so
    a daily report made at midnight, on a device born again during that day (a reconnect,
    a rebirth, a metric's first window), is flagged ``is_historical``: hosts store it as
    history only (Ignition does not update the tag's current value from historical
    metrics), and the report tag keeps showing the day before. ``_collected_ns`` knows the
    window end of metric batches, not the period end of reports. Expected: a report
    delivered live (not ``batch.historical``) after the birth is not historical."""
    day_start = 1_767_225_600_000_000_000  # 2026-01-01T00:00Z
    now = [day_start + 10 * 3600 * 10**9]  # the session is born at 10:00
    node = EdgeNode(Topics("G", "N"), NodeInfo(1000, {}), lambda device: device, lambda: now[0])
    report = SampleBatch(
        "plant",
        "reports",
        day_start,
        ("report",),
        ['{"day": "2026-01-01"}'],
        [Quality.GOOD],
        [""],
        attributes=report_attributes("daily", "2026-01-01"),
    )
    node.see_live(report)  # first day: the name is learned, born
    node.births(0)
    now[0] = day_start + 24 * 3600 * 10**9  # the report is made at midnight, after the birth
    next_report = SampleBatch(
        "plant",
        "reports",
        day_start,
        ("report",),
        ['{"day": "2026-01-01", "final": true}'],
        [Quality.GOOD],
        [""],
        attributes=report_attributes("daily", "2026-01-01"),
    )
    messages = node.deliver(next_report)
    ddata = pb.Payload.FromString(messages[-1][1])
    assert not any(m.is_historical for m in ddata.metrics), "a live report flagged historical"


# ---------------------------------------------------------------- counted, but where?

PLANT = """
plant: {{name: p1}}
state_dir: {state}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - {{interval: 1s, tags: [{{name: v, address: 0}}]}}
sinks:
  - {{name: scada, type: sparkplug, host: 127.0.0.1, group_id: G, edge_node_id: N}}
"""


async def test_batches_skipped_while_a_device_is_dead_are_counted_where_an_operator_sees_them(
    tmp_path: Path,
) -> None:
    """The contract: all-bad batches of a dead device "are not sent (the death says it;
    they are counted)"; docs/SPARKPLUG.md "What is guaranteed" says the same. They are
    counted in ``EdgeNode.counters`` only, which neither /metrics nor the status reads,
    while the runner counts those batches and samples as *sent*
    (edge_agent_sink_batches_sent). Same for refused commands, undecodable commands and
    ignored STATE messages. Expected: the skipped batches on /metrics for the sink."""
    agent = Agent(parse_config(PLANT.format(state=tmp_path / "state"), "plant.yaml", env={}))
    runner = agent.sinks[0]
    sink = runner.sink
    assert isinstance(sink, SparkplugSink)
    sink.node.counters.dead_batches_skipped = 7
    body, _ = render_metrics(build_registry(agent, ServiceStats()))
    shown = [
        (sample.name, sample.value)
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.labels.get("sink") == "scada" and sample.value == 7
    ]
    assert shown, "the dead device's skipped batches appear nowhere on /metrics"
