"""Review of issue 16 (guard, events, sinks, reports): one failing test per finding.

Each test states what is wrong and what is expected; they fail on main as merged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time as time_module
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config import PlantIdentity
from edge_agent.config.loader import parse_config
from edge_agent.config.mqtt import MqttSinkConfig
from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.events import event_batch
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.reports import Reporter
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.metrics.timer import run_metrics_timer
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.mqtt import MqttSink

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC: a block's start
NAMES = ("power", "energy", "state")

PLANT = """
plant: {name: p1, timezone: UTC}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
          - {name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}
          - {name: state, address: 4, type: uint16, enum: {0: "off", 1: idle, 2: run, 3: fault}}
metrics:
  windows: [15m]
"""


# --------------------------------------------------------------------------- month peak

ZONE = ZoneInfo("Asia/Shanghai")
MONTH_PLANT = """
plant: {name: p1, timezone: Asia/Shanghai}
devices:
  - name: m
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: g
        interval: 60s
        tags: [{name: power, address: 0, type: float32, unit: kW}]
metrics:
  windows: WINDOWS
  meters: [{device: m, power: {tag: power}}]
"""


def _local(day: int, hour: int, minute: int = 0) -> int:
    return int(dt.datetime(2024, 1, day, hour, minute, tzinfo=ZONE).timestamp())


def _run_month(processor: MetricsProcessor, clock: list[float], start: int, end: int) -> list[Any]:
    days = []
    for t in range(start, end, 60):
        clock[0] = float(t)
        kw = 90.0 if _local(10, 10) <= t < _local(10, 10, 15) else 30.0
        batch = SampleBatch("m", "g", t * S, ("power",), [kw], [Quality.GOOD], [""])
        out = list(processor(batch))[1:]
        if t >= processor.next_deadline():
            out += processor.close_due(t)
        for b in out:
            info = metric_info(b)
            if info is not None and (info.window, info.family) == ("1d", "demand"):
                days.append(dict(zip(b.names, b.values, strict=True)))
    return days


def test_the_month_peak_survives_a_restart_that_adds_a_window(tmp_path: Path) -> None:
    """The month's maximum demand (the billing figure the issue says is "kept across
    restarts") lives in the meter's PeakTracker, saved inside the meter unit's state.
    That state is dropped whenever the meter's fingerprint changes, and the fingerprint
    includes the list of windows (processor.py:162). Adding ``1h`` to
    ``metrics.windows`` mid-month (or any other change of the meter's settings that
    does not touch demand) forgets the 88 kW peak of 10 January: the next day reports
    a month peak of 30 kW.

    Expected: the month peak survives a config change that does not change how a
    15-minute block is measured (save it apart from the windows, keyed by meter name,
    as the guard state is).
    """
    store = StateStore(tmp_path / STATE_FILE)
    clock = [float(_local(10, 9))]
    config = parse_config(MONTH_PLANT.replace("WINDOWS", "[15m, 1d]"), env={})
    first = MetricsProcessor(config, clock=lambda: clock[0], store=store)
    days = _run_month(first, clock, _local(10, 9), _local(11, 0, 2))
    first.save()
    assert days[-1]["month_peak_kw"] == 88.0
    clock[0] = float(_local(11, 1))
    changed = parse_config(MONTH_PLANT.replace("WINDOWS", "[15m, 1h, 1d]"), env={})
    second = MetricsProcessor(changed, clock=lambda: clock[0], store=store)
    days = _run_month(second, clock, _local(11, 1), _local(12, 0, 2))
    assert days[-1]["month_peak_kw"] == 88.0, "January's peak of 10 January, remembered"


# --------------------------------------------------------------------------- sinks


def test_an_event_goes_to_the_events_topic_even_after_a_poll_group_named_events() -> None:
    """MqttSink._topic caches topics by (device, group) *before* looking at the batch's
    kind (mqtt.py:263). Event batches have group ``events`` and device = the meter or
    machine. A device with a poll group named ``events`` (a meter's event-log
    registers: a valid name) fills the cache with ``edge/p1/m/events`` first, and from
    then on every demand_limit / idle_energy / meter_stalled event of that device goes
    to the device's data topic instead of ``edge/{plant}/events``: subscribers of the
    events topic never see them. (Reports, group ``reports`` and device = plant,
    likewise if a device is named as the plant and has a group ``reports``.)

    Expected: an event batch always goes to ``events_topic``.
    """
    config = MqttSinkConfig(name="mqtt", type="mqtt", host="127.0.0.1", port=1)
    sink = MqttSink(config, PlantIdentity(name="p1"))
    data = SampleBatch("m", "events", T0 * S, ("last_code",), [7], [Quality.GOOD], [""])
    assert sink._topic(data) == "edge/p1/m/data"
    event = event_batch(
        "demand_limit", "m", "critical", "start", T0 * S, None, "over", ("limit_kw",), [40.0]
    )
    assert sink._topic(event) == "edge/p1/events"


# --------------------------------------------------------------------------- reports

DAY_PLANT = """
  windows: [15m, 1d]
  meters: [{device: m, power: {tag: power}}]
"""


def test_a_two_hour_gap_in_the_day_is_not_reported_as_complete() -> None:
    """The line meter misses two hours of the day (coverage 0.917). With the default
    ``min_coverage`` of 0.9 the daily report says ``status: complete`` with no note at
    all (reports.py ``build``: a note only below min_coverage), although two hours of
    energy, cost and peak demand are missing. The issue asks for "data coverage (so a
    report built on gaps says so)": a reader of the HTML page or of the retained MQTT
    report sees "complete" and no word about the gap.

    Expected: a report over a gap says so: not ``complete``, and a note naming the
    device and its coverage (``min_coverage`` may still decide the stronger "lower
    bounds" wording).
    """
    config = parse_config(PLANT.replace("  windows: [15m]\n", "") + DAY_PLANT, env={})
    reports: list[Any] = []
    day_start = T0 - 8 * 3600
    now = [float(day_start)]

    def keep(closed: Any) -> list[SampleBatch]:
        out = reporter(closed)
        reports.extend(out)
        return out

    reporter = Reporter("p1", "UTC", daily=True, shift=False, min_coverage=0.9)
    processor = MetricsProcessor(config, clock=lambda: now[0], reporter=keep)
    for k in range(86_400 + 120):
        t = day_start + k
        now[0] = float(t)
        if not 3600 <= k < 3 * 3600:  # 01:00 to 03:00: the gateway is down
            batch = SampleBatch(
                "m", "fast", t * S, NAMES, [30.0, None, "run"], [Quality.GOOD] * 3, [""] * 3
            )
            processor(batch)
        if t >= processor.next_deadline():
            processor.close_due(t)
    (batch,) = reports
    document = json.loads(str(batch.values[0]))
    assert document["coverage"] < 0.92
    assert document["status"] != "complete", "two hours missing, reported as complete"
    assert document["notes"], "no note about the two-hour gap"


async def test_writing_report_files_does_not_stall_the_event_loop() -> None:
    """The metrics timer (timer.py) calls ``processor.close_due`` on the event loop; the
    close pass calls the reporter, and ReportFiles.write writes three files, each with
    fsync, a directory fsync each, and lists the report directories to prune, all
    synchronously (report_files.py ``write``). On an SD card or eMMC under write load
    an fsync takes from tens of milliseconds to seconds, and for that long no poll is
    scheduled, no sink sends, the console does not answer.

    Here a report sink that takes 0.3 s (a slow card) stalls the loop for 0.3 s.
    Expected: report files are written off the loop (the worker thread the console and
    the outbox use; the "same content, not sent again" check can compare with the
    last content kept in memory), the loop never stalls for them.
    """

    class SlowFiles:
        def write(self, document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
            time_module.sleep(0.3)  # three fsyncs on a busy SD card
            return document, True

    config = parse_config(PLANT.replace("  windows: [15m]\n", "") + DAY_PLANT, env={})
    day_end = T0 - 8 * 3600 + 86_400
    now = [float(T0)]
    reporter = Reporter("p1", "UTC", daily=True, shift=False, min_coverage=0.9, files=SlowFiles())
    processor = MetricsProcessor(config, clock=lambda: now[0], reporter=reporter)
    now[0] = float(day_end + 60)
    emitted: list[SampleBatch] = []
    stall = 0.0

    async def ticker() -> None:
        nonlocal stall
        while True:
            before = time_module.monotonic()
            await asyncio.sleep(0.005)
            stall = max(stall, time_module.monotonic() - before)

    tick = asyncio.create_task(ticker())
    timer = asyncio.create_task(
        run_metrics_timer(processor, emitted.append, save_interval=3600, clock=lambda: now[0])
    )
    for _ in range(100):
        await asyncio.sleep(0.01)
        if any(b.attributes.get("kind") == "report" for b in emitted):
            break
    for task in (timer, tick):
        task.cancel()
    await asyncio.wait({timer, tick})
    assert any(b.attributes.get("kind") == "report" for b in emitted)
    assert stall < 0.1, f"the event loop stalled {stall:.2f} s writing a report"
