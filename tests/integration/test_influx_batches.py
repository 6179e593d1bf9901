"""Batches of the other parts of the agent, through the outbox, into a real VictoriaMetrics.

The metrics processor's windows (shift windows included) and an OPC UA subscription's
hand-overs (a list of changed tags, a timestamp per value) are appended to an outbox,
read back after a restart (replayed, as after an outage), and written by the InfluxDB
sink. What lands is compared with the batches themselves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import OutboxConfig, PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.sinks.influxdb import InfluxSink
from tests.influx_support import influx_config
from tests.servers import VictoriaMetrics
from tests.unit.test_outbox_streams import subscription_batches

pytestmark = pytest.mark.integration

S = 1_000_000_000
T0 = 1_772_352_000  # 2026-03-01 08:00:00 UTC (VictoriaMetrics refuses future times)
PLANT = """
plant: {name: p1, timezone: UTC}
state_dir: /nonexistent
devices:
  - name: m
    driver: modbus
    device_type: power-meter
    labels: {line: a}
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
          - {name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}
metrics:
  windows: [1m, shift]
  grace: 5s
  shifts: [{name: early, start: "08:00", end: "08:02"}]
  meters:
    - {device: m, counter: {tag: energy}, power: {tag: power}, max_power: 500}
"""


#: A time-of-use tariff whose valley ends at 08:01 (T0 is a Sunday: the holiday plan,
#: which is the workday plan here).
TARIFF = """  tariffs:
    - name: grid
      prices: {peak: 1.1, valley: 0.3}
      seasons:
        - name: all
          months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          workday:
            - {start: "08:01", end: "20:00", period: peak}
            - {start: "20:00", end: "08:01", period: valley}
"""


def _plant(tariff: bool = False) -> PlantConfig:
    return parse_config(PLANT + (TARIFF if tariff else ""), "plant.yaml", env={})


def metric_batches(tariff: bool = False) -> list[SampleBatch]:
    """150 s of a 60 kW load through the real metrics processor: its windows, in order."""
    now = [float(T0)]
    processor = MetricsProcessor(_plant(tariff), clock=lambda: now[0])
    out: list[SampleBatch] = []
    for second in range(150):
        now[0] = T0 + second
        batch = SampleBatch(
            "m",
            "fast",
            (T0 + second) * S,
            ("power", "energy"),
            [60.0, round(1000 + 60 * second / 3600, 2)],
            [Quality.GOOD, Quality.GOOD],
            ["", ""],
        )
        out += [b for b in processor(batch) if b is not batch]
    return out


async def _through_the_outbox(tmp_path: Path, batches: list[SampleBatch]) -> list[SampleBatch]:
    """``batches`` appended, the agent restarted, and read back as a replay."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(OutboxConfig(replay_rate=0), path, ["tsdb"])
    await outbox.start()
    try:
        for batch in batches:
            outbox.append(batch)
    finally:
        await outbox.close()
    outbox = Outbox(OutboxConfig(replay_rate=0), path, ["tsdb"])
    await outbox.start()
    back: list[SampleBatch] = []
    try:
        view = outbox.view("tsdb")
        while len(view):
            pending = await view.peek(1000)
            back += [p.batch for p in pending]
            view.ack(pending[-1].seq)
    finally:
        await outbox.close()
    assert all(b.historical for b in back)
    return back


async def _write(victoria: VictoriaMetrics, batches: list[SampleBatch]) -> None:
    sink = InfluxSink(influx_config(victoria.url, measurement="device_type"), _plant())
    await sink.start()
    try:
        await sink.send(batches)
    finally:
        await sink.stop()


async def test_metric_windows_land_per_family_with_window_and_shift_tags(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    made = metric_batches()
    windows = {(b.attributes["family"], b.attributes["window"]) for b in made}
    assert windows == {("energy", "1m"), ("energy", "shift")}, windows
    await _write(victoria, await _through_the_outbox(tmp_path, made))

    energy = [b for b in made if b.attributes["family"] == "energy"]
    found = victoria.export('{__name__="energy_energy_kwh"}')
    by_window = {s["metric"]["window"]: s for s in found}
    assert set(by_window) == {"1m", "shift"}
    for window, series in by_window.items():
        expected = [b for b in energy if b.attributes["window"] == window]
        kwh = [b.values[b.names.index("energy_kwh")] for b in expected]
        assert series["values"] == pytest.approx(kwh)
        # At each window's start, which is the batch's timestamp.
        assert series["timestamps"] == [b.timestamp_ns // 1_000_000 for b in expected]
        assert series["timestamps"] == [
            int(b.attributes["window_start"]) // 1_000_000 for b in expected
        ]
    assert by_window["1m"]["metric"] == {
        "__name__": "energy_energy_kwh",
        "plant": "p1",
        "device": "m",
        "window": "1m",
        "line": "a",
    }
    assert by_window["shift"]["metric"]["shift"] == "early"
    assert by_window["shift"]["values"] == [pytest.approx(2.0, abs=0.02)]  # 60 kW, 2 min


async def test_tariff_windows_land_as_their_own_measurement(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    made = metric_batches(tariff=True)
    tariff = [b for b in made if b.attributes["family"] == "tariff"]
    assert {b.attributes["window"] for b in tariff} == {"1m", "shift"}
    await _write(victoria, await _through_the_outbox(tmp_path, made))
    found = {s["metric"]["window"]: s for s in victoria.export('{__name__="tariff_cost"}')}
    for window, series in found.items():
        expected = [b for b in tariff if b.attributes["window"] == window]
        assert series["values"] == pytest.approx(
            [b.values[b.names.index("cost")] for b in expected]
        )
        assert series["timestamps"] == [b.timestamp_ns // 1_000_000 for b in expected]
    # The shift 08:00-08:02: a minute of valley, a minute of peak, 1 kWh each.
    assert found["shift"]["values"] == [pytest.approx(1.0 * 0.3 + 1.0 * 1.1, abs=0.02)]
    (peak,) = victoria.export('{__name__="tariff_kwh_peak", window="shift"}')
    assert peak["values"] == [pytest.approx(1.0, abs=0.01)]


async def test_subscription_batches_land_at_each_values_own_time(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    made = subscription_batches(300)
    await _write(victoria, await _through_the_outbox(tmp_path, made))

    # Expected per series: every good value at its own timestamp (VictoriaMetrics keeps
    # milliseconds and about 12 digits, and does not store strings); bad ones left out.
    expected: dict[str, dict[int, float]] = {}
    for batch in made:
        assert batch.timestamps_ns is not None
        for name, value, quality, stamp in zip(
            batch.names, batch.values, batch.qualities, batch.timestamps_ns, strict=True
        ):
            if quality is not Quality.BAD and not isinstance(value, str):
                assert value is not None
                expected.setdefault(f"opc_1_{name}", {})[stamp // 1_000_000] = float(value)
    assert len(expected) == 9, "doubles, integers and booleans, three tags each"
    found = victoria.export('{__name__=~"opc_1_.*"}')
    got = {
        s["metric"]["__name__"]: dict(zip(s["timestamps"], s["values"], strict=True))
        for s in found
        if s["metric"]["__name__"] in expected
    }
    assert set(got) == set(expected)
    for name, values in expected.items():
        assert got[name] == pytest.approx(values, rel=1e-11), name
    assert {s["metric"]["group"] for s in found} == {"events"}
