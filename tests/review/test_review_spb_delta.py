"""Fresh-eyes review of the Sparkplug delta since 939608a (reach, carried/historical,
known_time_ns, the skip after a deliver bug, STATE during a send, the device-id check).

Each test is one finding and FAILS on the reviewed code (no production code changed).
Pure units use EdgeNode as tests/unit/test_sparkplug_node.py does; session behaviour runs
on a real mosquitto as tests/integration/test_sparkplug_sink.py does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import load_config
from edge_agent.errors import ConfigError, SinkError
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.model import REASON_TIMEOUT, Quality, SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.sinks.sparkplug.node import EdgeNode
from tests.integration.test_sparkplug_sink import (
    STATE,
    _batch,
    _born,
    _decode,
    _kind,
    _publish,
    _running,
    _sink,
    _spb,
    _state,
)
from tests.memory_buffer import MemoryBuffer
from tests.mqtt_support import fast_backoff
from tests.servers import Mosquitto
from tests.unit.test_sparkplug_config import PLANT
from tests.unit.test_sparkplug_node import (
    T0,
    S,
    batch,
    device,
    edge_node,
    kinds,
    modbus_tag,
    parse,
)

MINUTE = 60 * S
HOUR = 60 * MINUTE


def _metric_batch(
    unit: str,
    family: str,
    window: str,
    bounds: tuple[int, int],
    names: tuple[str, ...],
    values: list[Any],
    at: int | None = None,
) -> SampleBatch:
    """A metric batch as edge_agent/metrics writes it (timestamp = window start unless
    ``at``: the guard's live batch is stamped with its poll)."""
    return SampleBatch(
        unit,
        metric_group(window),
        bounds[0] if at is None else at,
        names,
        values,
        [Quality.GOOD] * len(values),
        [""] * len(values),
        attributes=MetricInfo(family, window, bounds).attributes(),
    )


def _ddata(messages: list[tuple[str, bytes]]) -> Any:
    [payload] = [parse(p) for t, p in messages if t.split("/")[2] == "DDATA"]
    return payload


# ------------------------------------------------------------ 1. reach and the backlog


def test_a_replayed_outage_from_the_backlog_does_not_kill_a_live_device() -> None:
    """The outbox sends the live lane first and replays the backlog (historical) beside it
    (edge_agent/outbox/sink_view.py), so the sink's stream is not in time order. An
    all-timeout batch from an outage an hour ago, replayed while the device answers
    live, is taken as the group's *latest* batch by Reach.record: the live device gets a
    DDEATH (the host marks every metric stale), and the next live batch a DBIRTH; replaying
    the outage interleaved with live data makes the device flap at the poll rate, which
    reach.py exists to prevent [tck-id-operational-behavior-device-ddeath]."""
    node = edge_node(T0 + 2 * HOUR)
    node.describe([device(modbus_tag("a", "int16"))])
    node.births(0)
    live = batch(("a",), [1], at=T0 + 2 * HOUR)
    node.see_live(live)
    node.deliver(live)
    old_outage = dataclasses.replace(
        SampleBatch.all_bad("dev", "g", T0 + HOUR, ("a",), REASON_TIMEOUT), historical=True
    )
    messages = node.deliver(old_outage)
    assert "DDEATH" not in kinds(messages), (
        "a batch replayed from the backlog killed a device that answers live"
    )


# ------------------------------------------------ 2. known_time_ns of a running window


def test_a_baseline_announced_mid_day_is_not_stamped_at_the_end_of_the_day() -> None:
    """savings.py announces a new fit at once 'with today's bounds' (timestamp = the day's
    start, docs/METRICS.md "Family baseline"). known_time_ns takes a metric batch stamped
    at its window start for a closed window and returns the window END: the DDATA's
    metrics are stamped up to 24 h in the future (after the payload's own timestamp,
    although ddata.py says a payload is never stamped before its metrics), and a DBIRTH
    carries the same future time. (The demo's oven baseline does this at every start.)"""
    now = time.time_ns()
    day = (now - 10 * HOUR, now + 14 * HOUR)
    node = edge_node(now)
    node.births(0)
    announce = _metric_batch("oven", "baseline", "1d", day, ("r2", "n"), [0.93, 30.0])
    node.see_live(announce)
    messages = node.deliver(announce)
    birth = [parse(p) for t, p in messages if t.split("/")[2] == "DBIRTH"]
    data = _ddata(messages)
    late = [m.timestamp for m in data.metrics if m.timestamp > data.timestamp]
    assert not late, f"DDATA metrics stamped {(late[0] - data.timestamp) / 3.6e6:.1f} h ahead"
    assert all(m.timestamp <= now // 1_000_000 for b in birth for m in b.metrics)


def test_the_day_close_baseline_after_a_mid_day_announce_is_live_not_historical() -> None:
    """Consequence of the same rule: the announce's DBIRTH (new names: a learning birth)
    records carried = the day's end for (metrics:1d, Baseline); the baseline batch of the
    day's close (same bounds) is 'no newer' and goes out is_historical, so a host keeps
    the mid-day figures as current."""
    day = (T0, T0 + 24 * HOUR)
    node = edge_node(T0 + 10 * HOUR)
    node.births(0)
    announce = _metric_batch("oven", "baseline", "1d", day, ("r2", "n"), [0.93, 30.0])
    node.see_live(announce)
    node.deliver(announce)
    closing = _metric_batch("oven", "baseline", "1d", day, ("r2", "n"), [0.95, 31.0])
    node.see_live(closing)
    data = _ddata(node.deliver(closing))
    assert not any(m.is_historical for m in data.metrics)


def test_a_guard_poll_at_the_exact_block_start_does_not_freeze_the_block_as_history() -> None:
    """The guard's live batch is stamped with its poll; a poll whose (OPC UA source)
    timestamp is exactly the block start (servers that stamp on whole seconds) fails the
    strict ``timestamp_ns > bounds[0]`` and counts as known at the block's END: its DBIRTH
    carries the block end, and every later guard batch of the block goes out historical."""
    block = (T0, T0 + 15 * MINUTE)
    node = edge_node(T0 + 1)
    node.births(0)
    names = ("predicted_kw", "limit_kw")
    first = _metric_batch("meter", "demand_guard", "15m", block, names, [410.0, 500.0], at=T0)
    node.see_live(first)
    node.deliver(first)
    later = _metric_batch(
        "meter", "demand_guard", "15m", block, names, [420.0, 500.0], at=T0 + 5 * S
    )
    node.see_live(later)
    data = _ddata(node.deliver(later))
    assert not any(m.is_historical for m in data.metrics), (
        "a live guard prediction 5 s into the block went out historical"
    )


# --------------------------------------------- 3. the skip after a bug in deliver()


@pytest.mark.integration
async def test_a_deliver_bug_skips_only_its_own_batch_not_a_sibling_metric_batch(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poison key is (device, group, timestamp_ns). Metric batches of several families
    of one unit and window share all three (group metrics:15m, timestamp = window start),
    as do the daily report and the first shift's report (device = plant, group reports,
    timestamp = midnight). A bug on the energy batch makes the sink skip the demand batch
    of the same window too: acknowledged to the outbox, never published."""
    sub = await subscriber_factory(mosquitto.port, "spBv1.0/#")
    sink = _sink(mosquitto, tmp_path)
    deliver = EdgeNode.deliver

    def fragile(node: EdgeNode, item: SampleBatch) -> list[tuple[str, bytes]]:
        if item.attributes.get("family") == "energy":
            raise RuntimeError("a bug")
        return deliver(node, item)

    monkeypatch.setattr(EdgeNode, "deliver", fragile)
    start = (time.time_ns() // (15 * MINUTE) - 1) * 15 * MINUTE
    window = (start, start + 15 * MINUTE)
    energy = _metric_batch("plant", "energy", "15m", window, ("kwh",), [12.5])
    demand = _metric_batch("plant", "demand", "15m", window, ("demand_kw",), [50.0])
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, backoff=fast_backoff())
    task = asyncio.create_task(runner.run())
    try:
        buffer.append(energy)
        buffer.append(demand)
        await sub.wait_until(lambda: len(buffer) == 0, "the batches acknowledged", within=8.0)
        await asyncio.sleep(0.3)  # anything published is read by the subscriber by now
    finally:
        task.cancel()
        await asyncio.wait([task])
        await sink.stop()
    ddata = [_decode(m) for m in _spb(sub) if _kind(m) == "DDATA"]
    assert ddata, "the demand batch was acknowledged but never published"


# ------------------------------------------ 4. the host goes offline during a send


@pytest.mark.integration
async def test_a_send_the_host_went_offline_during_is_not_acknowledged(
    mosquitto: Mosquitto, subscriber_factory: Any, tmp_path: Path
) -> None:
    """send() checks _ready once, before it publishes. The host's offline STATE is
    confirmed by the broker before the DDATA is even written, read by the sink while the
    DDATA and its fence are in flight, and send() still returns: the runner acknowledges
    a batch published after the primary host said offline (the host never got it), where
    the births' fence (test_no_data_goes_out_when_the_host_went_offline_while_the_births_
    were_confirmed) does hold. It should fail the send so the batch is replayed,
    historical, after the next birth."""
    sink = _sink(mosquitto, tmp_path, primary_host="scada")
    t0 = int(time.time() * 1000)
    _publish(mosquitto.port, STATE, _state(True, t0), retain=True)
    async with _running(sink):
        await _born(sink)
        _publish(mosquitto.port, STATE, _state(False, t0 + 1), retain=True)  # confirmed
        raised = False
        try:
            await sink.send([_batch(1.0)])
        except SinkError:
            raised = True
        host = sink.host
        assert host is not None
        assert host.state is not None
        assert host.state.timestamp_ms == t0 + 1, "the sink read the offline STATE meanwhile"
        assert raised, "a DDATA published after the host's offline STATE was acknowledged"


# -------------------------------------------------- 5. the device id check


def test_check_finds_a_device_mapped_onto_the_plant_that_reports_go_to(tmp_path: Path) -> None:
    """Reports are on by default (1d is a default window) and go to device = the plant
    name whether or not plant_total is set (metrics/reports.py report_batch), yet
    _metric_units counts the plant only with plant_total: device_ids {meter: line-1}
    passes check, and the meter's windows and the plant's reports share one Sparkplug
    device (the same miss lets a device 'Line-1' stand beside the plant 'line-1')."""
    path = tmp_path / "plant.yaml"
    text = PLANT.replace("STATE", str(tmp_path)).replace("{meter: Meter 1}", "{meter: line-1}")
    path.write_text(text + "metrics:\n  meters: [{device: meter, power: {tag: p}}]\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"SPB_USER": "edge", "SPB_PASSWORD": "s3cret"})
    assert any("line-1" in p and "device_ids" in p for p in raised.value.problems)
