"""The month's maximum demand: local calendar month, kept across a restart.

Asia/Shanghai is UTC+8: 1 February 01:00 local is still 31 January in UTC, so a
peak then must count for February (the plant's month), not January.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from edge_agent.config.loader import parse_config
from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.demand import PeakTracker
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import Quality, SampleBatch

ZONE = ZoneInfo("Asia/Shanghai")
S = 1_000_000_000
PLANT = """
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
  windows: [15m, 1d]
  meters: [{device: m, power: {tag: power}}]
"""


def local(day: int, hour: int, minute: int = 0) -> int:
    month, day = (1, day) if day <= 31 else (2, day - 31)
    return int(dt.datetime(2024, month, day, hour, minute, tzinfo=ZONE).timestamp())


def power_at(t: int) -> float:
    """30 kW, with an 80 kW block on 31 January 21:00 and a 90 kW one on 1 February 01:00."""
    if local(31, 21) <= t < local(31, 21, 15):
        return 80.0
    if local(32, 1) <= t < local(32, 1, 15):
        return 90.0
    return 30.0


def run(processor: MetricsProcessor, clock: list[float], start: int, end: int) -> list[Any]:
    days = []
    for t in range(start, end, 60):
        clock[0] = float(t)
        batch = SampleBatch("m", "g", t * S, ("power",), [power_at(t)], [Quality.GOOD], [""])
        out = list(processor(batch))[1:]
        if t >= processor.next_deadline():
            out += processor.close_due(t)
        for b in out:
            info = metric_info(b)
            if info is not None and (info.window, info.family) == ("1d", "demand"):
                days.append((b.timestamp_ns // S, dict(zip(b.names, b.values, strict=True))))
    return days


def test_month_peak_by_local_month_across_a_restart(tmp_path: Path) -> None:
    config = parse_config(PLANT, env={})
    clock = [float(local(31, 20))]
    first = MetricsProcessor(
        config, clock=lambda: clock[0], store=StateStore(tmp_path / STATE_FILE)
    )
    days = run(first, clock, local(31, 20), local(32, 3))
    first.save()
    (january,) = days
    assert january[0] == local(31, 0)
    # Trapezoids of one-minute samples: the block's last minute ramps from 80 to 30 kW.
    assert january[1]["month_peak_kw"] == round((80 * 14 + 55) / 15, 3)
    assert january[1]["month_peak_at_s"] == local(31, 21)
    # Restarted at 03:00 on 1 February; 1 February's peak (90 kW at 01:00) was before it.
    clock[0] = float(local(32, 3))
    second = MetricsProcessor(
        config, clock=lambda: clock[0], store=StateStore(tmp_path / STATE_FILE)
    )
    days = run(second, clock, local(32, 3), local(33, 0, 2))
    (february,) = days
    assert february[0] == local(32, 0)
    assert february[1]["month_peak_kw"] == 88.0, "February's own peak, remembered"
    assert february[1]["month_peak_at_s"] == local(32, 1)
    assert february[1]["peak_demand_kw"] == 88.0  # (90 x 14 + 60) / 15


def test_the_month_peak_is_saved_and_an_older_state_still_loads() -> None:
    peaks = PeakTracker()
    peaks.add_block(100, 100, 12.5, month_ns=0)
    peaks.add_block(200, 250, 20.0, month_ns=0)
    peaks.add_block(300, 300, 15.0, month_ns=0)
    restored = PeakTracker()
    restored.restore(peaks.state())
    month = restored.month_peak_of(0)
    assert month is not None
    assert (month.peak_kw, month.block_start_ns) == (20.0, 250)
    assert restored.month_peak_of(1) is None
    # A block of the previous month closing late does not replace this month's peak.
    restored.add_block(50, 50, 99.0, month_ns=-10)
    assert restored.month_peak_of(0) == month
    before = PeakTracker()
    before.restore({"day": 100, "kw": 12.5, "block": 100})  # saved before month peaks
    assert before.month is None
    assert before.peak_of(100) is not None
