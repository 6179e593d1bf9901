"""The metrics processor: batch contract, bad and late samples, closing on time, state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.metrics.timer import run_metrics_timer
from edge_agent.model import REASON_TIMEOUT, Quality, SampleBatch, Value

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC, a whole hour
NAMES = ("power", "energy", "state", "count")

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
          - {name: count, address: 5, type: uint32}
metrics:
  windows: [1m, 15m]
  grace: 5s
  meters:
    - {name: integrated, device: m, power: {tag: power}}
    - {name: metered, device: m, counter: {tag: energy}, power: {tag: power}, max_power: 500}
  machines:
    - {device: m, state: {tag: state}, ideal_cycle_time: 10s, parts: {total: count}}
"""


def config(state_dir: Path = Path("/nonexistent"), extra: str = "") -> PlantConfig:
    return parse_config(PLANT + extra + f"state_dir: {state_dir}\n", env={})


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def batch(
    t: float, power: Value, energy: Value, state: Value = "run", count: Value = 0
) -> SampleBatch:
    values: list[Value] = [power, energy, state, count]
    return SampleBatch(
        "m",
        "fast",
        round(t * S),
        NAMES,
        values,
        [Quality.GOOD if v is not None else Quality.BAD for v in values],
        ["" if v is not None else REASON_TIMEOUT for v in values],
    )


def run(
    processor: MetricsProcessor,
    clock: Clock,
    seconds: range,
    kw: float | None = 60.0,
    *,
    base: tuple[float, int] = (1000.0, 0),
    **kwargs: Any,
) -> list[SampleBatch]:
    """Constant power ``kw`` each second, the counter following it; metric batches out.

    ``base``: the counter reads ``base[0]`` kWh at second ``base[1]``.
    """
    out: list[SampleBatch] = []
    for second in seconds:
        clock.now = T0 + second
        energy = None if kw is None else round(base[0] + kw * (second - base[1]) / 3600, 2)
        incoming = batch(clock.now, kw, energy, **kwargs)
        result = list(processor(incoming))
        assert result[0] is incoming, "the batch itself passes first, unchanged"
        out += result[1:]
    return out


def find(
    batches: list[SampleBatch], device: str, window: str, family: str, start: float | None = None
) -> list[dict[str, Any]]:
    """Metric batches of one device, window and family as name -> value (and ``_batch``)."""
    return [
        {**dict(zip(b.names, b.values, strict=True)), "_batch": b}
        for b in batches
        if (b.device, b.group, b.attributes["family"]) == (device, f"metrics:{window}", family)
        and (start is None or b.timestamp_ns == round(start * S))
    ]


def test_a_metric_batch_follows_the_contract() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    out = run(processor, clock, range(66))
    (first,) = find(out, "integrated", "1m", "energy")
    b = first["_batch"]
    assert b.timestamp_ns == T0 * S
    assert b.attributes == {
        "kind": "metrics",
        "family": "energy",
        "window": "1m",
        "window_start": str(T0 * S),
        "window_end": str((T0 + 60) * S),
    }
    assert b.qualities == [Quality.GOOD] * len(b.names)
    assert all(isinstance(v, float) for v in b.values)
    assert first["energy_kwh"] == pytest.approx(1.0)  # 60 kW for one minute
    assert first["mean_kw"] == pytest.approx(60.0)
    assert first["coverage"] == 1.0
    assert first["kgce"] == pytest.approx(0.1229)
    (metered,) = find(out, "metered", "1m", "energy")
    assert metered["energy_kwh"] == pytest.approx(1.0)
    assert metered["integration_deviation_pct"] == pytest.approx(0.0, abs=1e-6)
    (machine,) = find(out, "m", "1m", "utilization")
    assert (machine["run_s"], machine["availability"], machine["oee"]) == (60.0, 1.0, 0.0)
    assert "peak_demand_kw" not in first, "demand is its own family, on 15-minute blocks"


def test_a_counter_reading_zero_once_is_a_logged_glitch_not_10000_kwh() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    with capture_logs() as logs:
        out = run(processor, clock, range(30), base=(10000.0, 0))
        clock.now = T0 + 30
        list(processor(batch(clock.now, 60.0, 0.0)))  # a gateway answering zeros, once
        out += run(processor, clock, range(31, 66), base=(10000.0, 0))
    (metered,) = find(out, "metered", "1m", "energy")
    assert metered["energy_kwh"] == pytest.approx(1.0), "60 kW for a minute, exactly"
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert any(w.startswith("energy counter reset") for w in warnings)
    assert any(w.startswith("energy counter glitch") for w in warnings)


def test_bad_samples_are_left_out_never_counted_as_zero() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    out = run(processor, clock, range(61))
    out += run(processor, clock, range(61, 120), kw=None)
    out += run(processor, clock, range(120, 190))
    (silent,) = find(out, "integrated", "1m", "energy", start=T0 + 60)
    assert silent["energy_kwh"] is None, "no data is not zero kWh"
    assert silent["coverage"] == 0.0
    assert silent["_batch"].qualities[0] is Quality.UNCERTAIN
    assert silent["_batch"].reasons[0] == "no data"
    (bridged,) = find(out, "metered", "1m", "energy", start=T0 + 60)
    assert bridged["energy_kwh"] == pytest.approx(1.0), "the counter knows what flowed meanwhile"
    assert bridged["coverage"] == 0.0
    assert bridged["_batch"].qualities[0] is Quality.UNCERTAIN
    assert bridged["_batch"].reasons[0] == "coverage 0.0% below 90%"


def test_windows_close_on_time_when_no_sample_comes() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    run(processor, clock, range(31))
    assert processor.close_due(T0 + 64.9) == []
    out = processor.close_due(T0 + 65)  # end + grace
    (half,) = find(out, "integrated", "1m", "energy")
    assert half["coverage"] == pytest.approx(0.5)
    assert half["energy_kwh"] == pytest.approx(0.5)
    out = processor.close_due(T0 + 125)
    (empty,) = find(out, "integrated", "1m", "energy")
    assert (empty["energy_kwh"], empty["coverage"]) == (None, 0.0)
    (machine,) = find(out, "m", "1m", "utilization")
    assert machine["unknown_s"] == 60.0
    assert machine["availability"] is None


def test_a_late_sample_counts_within_the_grace_period_and_as_late_after_it() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    run(processor, clock, range(60))
    clock.now = T0 + 63  # the sample of 60 s arrives 3 s late: within grace
    list(processor(batch(T0 + 60, 60.0, round(1000 + 60 * 60 / 3600, 2))))
    out = processor.close_due(T0 + 65)
    (window,) = find(out, "metered", "1m", "energy")
    assert (window["coverage"], window["late_kwh"]) == (1.0, 0.0)
    run(processor, clock, range(61, 120))
    clock.now = T0 + 127  # this one is 7 s late: its window is closed
    out = list(processor(batch(T0 + 120, 60.0, round(1000 + 60 * 120 / 3600, 2))))[1:]
    (closed,) = find(out, "metered", "1m", "energy")
    assert closed["coverage"] == pytest.approx(59 / 60, abs=5e-5)  # 4 decimals
    out = processor.close_due(T0 + 185)
    (following,) = find(out, "integrated", "1m", "energy")
    assert following["late_kwh"] == round(1 / 60, 3), "one second of 60 kW, counted once"
    assert following["energy_kwh"] == round(1 / 60, 3), "the late second, and nothing more"


def test_samples_stamped_in_the_future_are_left_out() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    with capture_logs() as logs:
        list(processor(batch(T0 + 3600, 60.0, 1000.0)))
    assert processor.ignored_future == 1
    assert any("future" in entry["event"] for entry in logs)


def test_a_counter_reset_is_logged_and_never_negative() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    run(processor, clock, range(30))
    with capture_logs() as logs:
        clock.now = T0 + 30
        list(processor(batch(T0 + 30, 60.0, 0.02)))  # the register was cleared
        out = run(processor, clock, range(31, 70), base=(0.02, 30))
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "energy counter reset: new segment, change not counted as energy"
    ]
    (window,) = find(out, "metered", "1m", "energy")
    # 0.48 before the reset, 0.02 counted from zero, then 0.02 -> 0.52: one kWh in all.
    assert window["energy_kwh"] == pytest.approx(1.0)


def test_unknown_enum_labels_and_other_devices_are_ignored() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    other = SampleBatch("x", "fast", T0 * S, ("power",), [5.0], [Quality.GOOD], [""])
    assert list(processor(other)) == [other]
    out = run(processor, clock, range(66), state="setup")
    (machine,) = find(out, "m", "1m", "utilization")
    assert machine["unknown_s"] == 60.0


# --------------------------------------------------------------------------- state


def test_state_is_saved_atomically_and_a_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / STATE_FILE)
    assert store.load() is None
    assert store.save({"version": 1, "x": [1, 2]})
    assert json.loads((tmp_path / "sub" / STATE_FILE).read_text()) == {"version": 1, "x": [1, 2]}
    assert not list((tmp_path / "sub").glob("*.tmp"))
    (tmp_path / "sub" / STATE_FILE).write_text("{truncated")
    with capture_logs() as logs:
        assert store.load() is None
    assert (tmp_path / "sub" / "metrics-state.corrupt").exists()
    assert "corrupt" in logs[0]["event"]


def test_a_restart_mid_window_continues_the_window(tmp_path: Path) -> None:
    store = StateStore(tmp_path / STATE_FILE)
    clock = Clock()
    first = MetricsProcessor(config(tmp_path), clock=clock, store=store)
    out = run(first, clock, range(25))
    first.save()  # what the timer does when the agent stops
    clock.now = T0 + 40
    second = MetricsProcessor(config(tmp_path), clock=clock, store=store)
    out += run(second, clock, range(40, 70))
    (window,) = find(out, "metered", "1m", "energy")
    assert window["energy_kwh"] == pytest.approx(1.0), "nothing lost, nothing twice"
    assert window["coverage"] == pytest.approx(44 / 60, abs=5e-5), "the 15 s the agent was down"
    (integrated,) = find(out, "integrated", "1m", "energy")
    assert integrated["energy_kwh"] == pytest.approx(44 / 60, abs=5e-4)  # to the Wh


def test_a_changed_unit_config_drops_its_saved_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path / STATE_FILE)
    clock = Clock()
    first = MetricsProcessor(config(tmp_path), clock=clock, store=store)
    run(first, clock, range(25))
    first.save()
    changed = PLANT.replace("max_power: 500", "max_power: 400")
    with capture_logs() as logs:
        second = MetricsProcessor(
            parse_config(changed + f"state_dir: {tmp_path}\n", env={}), clock=clock, store=store
        )
    assert any(e.get("unit") == "metered" and "changed" in e["event"] for e in logs)
    metered = next(u for u in second.meters if u.name == "metered")
    assert metered.feed.counter is not None
    assert metered.feed.counter.last_ticks is None
    integrated = next(u for u in second.meters if u.name == "integrated")
    assert integrated.feed.power is not None
    assert integrated.feed.power.last_ns == (T0 + 24) * S


async def test_the_timer_closes_windows_on_time_and_saves_on_stop(tmp_path: Path) -> None:
    store = StateStore(tmp_path / STATE_FILE)
    clock = Clock()
    processor = MetricsProcessor(config(tmp_path), clock=clock, store=store)
    run(processor, clock, range(30))
    emitted: list[SampleBatch] = []
    task = asyncio.create_task(
        run_metrics_timer(processor, emitted.append, save_interval=3600, clock=clock)
    )
    await asyncio.sleep(0.05)
    assert emitted == []
    clock.now = T0 + 66  # silence: the 1-minute windows are due anyway
    for _ in range(40):
        await asyncio.sleep(0.05)
        if emitted:
            break
    assert {b.device for b in emitted} == {"integrated", "metered", "m"}
    assert all(b.group == "metrics:1m" for b in emitted)
    task.cancel()
    await asyncio.wait([task])
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["units"]["metered"]["state"]["feed"]["counter"]["last_ns"] == (T0 + 29) * S


async def test_the_timer_survives_a_window_that_cannot_be_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    processor = MetricsProcessor(config(tmp_path), clock=clock, store=StateStore(tmp_path))
    run(processor, clock, range(30))
    real_close_due = processor.close_due
    failures = [ZeroDivisionError("a calculator bug"), ZeroDivisionError("still")]

    def flaky_close_due(now: float | None = None) -> list[SampleBatch]:
        if failures:
            raise failures.pop(0)
        return real_close_due(now)

    monkeypatch.setattr(processor, "close_due", flaky_close_due)
    emitted: list[SampleBatch] = []
    clock.now = T0 + 66
    with capture_logs() as logs:
        task = asyncio.create_task(
            run_metrics_timer(processor, emitted.append, save_interval=3600, clock=clock)
        )
        for _ in range(80):
            await asyncio.sleep(0.05)
            if emitted or task.done():
                break
        assert not task.done(), "the timer task must keep running"
        task.cancel()
        await asyncio.wait([task])
    assert not failures, "the timer retried"
    assert {b.device for b in emitted} == {"integrated", "metered", "m"}
    events = [e["event"] for e in logs]
    assert events.count("metric windows could not be closed; retrying quietly") == 1
    assert "metric windows close again" in events


def test_a_unit_whose_device_is_left_out_in_code_is_skipped_with_a_warning() -> None:
    # A plant file is checked at load; a config edited in code may drop a device.
    plant = config()
    other = plant.devices[0].model_copy(update={"name": "other"})
    with capture_logs() as logs:
        processor = MetricsProcessor(plant.model_copy(update={"devices": [other]}), clock=Clock())
    assert processor.units == []
    assert {e["unit"] for e in logs if "skipped" in e["event"]} == {"integrated", "metered", "m"}


def test_a_counter_that_did_not_move_across_a_gap_says_zero_not_unknown() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    out = run(processor, clock, range(61), kw=0.0)
    out += run(processor, clock, range(61, 120), kw=None)
    out += run(processor, clock, range(120, 190), kw=0.0)
    (window,) = find(out, "metered", "1m", "energy", start=T0 + 60)
    assert (window["energy_kwh"], window["coverage"]) == (0.0, 0.0)
    (integrated,) = find(out, "integrated", "1m", "energy", start=T0 + 60)
    assert integrated["energy_kwh"] is None


def test_late_energy_does_not_fake_a_demand_peak() -> None:
    clock = Clock()
    processor = MetricsProcessor(config(), clock=clock)
    out = run(processor, clock, range(600))
    out += run(processor, clock, range(600, 1200), kw=None)  # the meter is silent for 10 min
    out += processor.close_due(T0 + 910)
    out += run(processor, clock, range(1200, 1806))
    (block,) = find(out, "metered", "15m", "demand", start=T0 + 900)
    (energy,) = find(out, "metered", "15m", "energy", start=T0 + 900)
    assert energy["late_kwh"] == pytest.approx(5.0, abs=0.02), "the silent 5 min of the first block"
    assert block["demand_kw"] == pytest.approx(60.0, abs=0.1)
    assert block["peak_demand_kw"] == pytest.approx(60.0, abs=0.1)


def test_plant_totals_add_up_when_several_windows_close_at_once() -> None:
    clock = Clock()
    processor = MetricsProcessor(
        config(extra="  plant_total: [integrated, metered]\n"), clock=clock
    )
    for second in range(181):  # the timer does not get to run: nothing closes meanwhile
        list(processor(batch(T0 + second, 60.0, round(1000 + second / 60, 2))))
    out = processor.close_due(T0 + 245)  # then four 1-minute windows close at once
    totals = find(out, "p1", "1m", "energy")
    assert [t["_batch"].timestamp_ns for t in totals] == [(T0 + 60 * k) * S for k in range(4)]
    for total in totals[:3]:
        assert total["energy_kwh"] == pytest.approx(2.0, abs=0.011)
        assert total["coverage"] == 1.0
