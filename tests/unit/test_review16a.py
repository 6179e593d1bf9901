"""Review of issue 16, the numbers (tariffs, carriers, baselines, savings, restore).

One test per finding; each fails on the merged code and says what is wrong and what a
plant should get instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.config.loader import parse_config
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import Quality, SampleBatch

S = 1_000_000_000
T0 = 1_800_000_000  # 2027-01-15 08:00:00 UTC, a whole hour
DAY_S = 86_400

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
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _batch(t: float, kw: float, counter: float) -> SampleBatch:
    return SampleBatch(
        "m",
        "fast",
        round(t * S),
        ("power", "energy"),
        [kw, round(counter, 2)],
        [Quality.GOOD, Quality.GOOD],
        ["", ""],
    )


def _values(batch: SampleBatch) -> dict[str, Any]:
    return dict(zip(batch.names, batch.values, strict=True))


def _find(out: list[SampleBatch], device: str, window: str, family: str) -> list[SampleBatch]:
    return [
        b
        for b in out
        if (b.device, b.group, b.attributes.get("family")) == (device, f"metrics:{window}", family)
    ]


# --------------------------------------------------------------------------- 1


#: metrics-state.json exactly as the agent before issue 16 (c883c95) wrote it for
#: OLD_STATE_PLANT after 600 s at 60 kW from T0 (counter 1000 kWh at T0).
OLD_STATE = (
    '{"version":1,"plant":"p1","saved_at_ns":1800000599000000000,"units":{"metered":'
    '{"fingerprint":"5d81def9f9bf60ff","state":{"feed":{"counter":{"last_ticks":100998,'
    '"last_ns":1800000599000000000,"rollovers":0,"resets":0,"jumps":0,"glitches":0,'
    '"suspect":null},"power":{"last_ns":1800000599000000000,"last_kw":60.0}},"tracks":'
    '{"15m":[[1800000000000000000,1800000900000000000,"",{"alt_covered_ns":599000000000,'
    '"alt_kwh":9.983333333333409,"covered_ns":599000000000,"idle_kwh":0.0,'
    '"kwh":9.979999999999867,"late_kwh":0.0,"touched":true}]],"1d":[[1799971200000000000,'
    '1800057600000000000,"",{"alt_covered_ns":599000000000,"alt_kwh":9.983333333333409,'
    '"covered_ns":599000000000,"idle_kwh":0.0,"kwh":9.979999999999867,"late_kwh":0.0,'
    '"touched":true}]]},"peak":null}}},"total":null}'
)
OLD_STATE_METRICS = """
metrics:
  windows: [15m]
  grace: 5s
  meters:
    - {name: metered, device: m, counter: {tag: energy}, power: {tag: power}, max_power: 500}
"""


def test_a_state_file_from_before_issue_16_keeps_the_open_windows_of_unchanged_meters(
    tmp_path: Path,
) -> None:
    """An agent upgraded to issue 16 with an unchanged plant file throws away every
    meter's saved open windows (and its last counter reading): the meter fingerprint
    (processor.py, ``_fingerprint("meter", dump, ...)``) hashes ``meter.model_dump()``,
    which now holds the new keys ``carrier``, ``kgce_per_unit``, ``calorific_value`` and
    ``kgco2e_per_unit``, so it differs from the one the old version saved. The first
    15-minute block, hour and day after the upgrade lose their energy so far (here 10 of
    15 kWh), and docs/METRICS.md's promise that an old state file "loads with the period
    kWh of its open windows at zero" never happens. Expected: a meter whose settings did
    not change restores; only settings that change a window change the fingerprint."""
    (tmp_path / STATE_FILE).write_text(OLD_STATE)
    config = parse_config(PLANT + OLD_STATE_METRICS + f"state_dir: {tmp_path}\n", env={})
    clock = Clock(T0 + 600.0)
    with capture_logs() as logs:
        processor = MetricsProcessor(config, clock=clock, store=StateStore(tmp_path / STATE_FILE))
    out: list[SampleBatch] = []
    for second in range(600, 906):
        clock.now = T0 + second
        out += list(processor(_batch(clock.now, 60.0, 1000 + 60 * second / 3600)))[1:]
    out += processor.close_due(T0 + 906.0)
    events = [entry["event"] for entry in logs]
    assert "metrics config of this unit changed; its saved windows are dropped" not in events
    (block,) = [b for b in _find(out, "metered", "15m", "energy") if b.timestamp_ns == T0 * S]
    assert _values(block)["energy_kwh"] == pytest.approx(15.0, abs=0.02)


# --------------------------------------------------------------------------- 3

DAY_PLANT = """
metrics:
  windows: {windows}
  grace: 5s
  meters:
    - name: metered
      device: m
      counter: {{tag: energy, max_gap: 90s}}
      power: {{tag: power, max_gap: 90s}}
"""
D0 = 1_799_884_800  # 2027-01-14 00:00 UTC


def _run_day_plant(
    processor: MetricsProcessor,
    clock: Clock,
    start: int,
    stop: int,
    kw_at: Any,
    counter: list[float],
) -> list[SampleBatch]:
    """A sample every 30 s from ``start`` to ``stop`` (s); ``counter[0]`` the kWh so far."""
    out: list[SampleBatch] = []
    for t in range(start, stop, 30):
        clock.now = float(t)
        kw = kw_at(t)
        out += list(processor(_batch(t, kw, counter[0])))[1:]
        counter[0] += kw * 30 / 3600
        if t >= processor.next_deadline():
            out += processor.close_due(t)
    return out


def test_the_month_peak_survives_a_restart_with_another_window_list(tmp_path: Path) -> None:
    """The month's maximum demand (the billing figure issue 16 asks to keep across
    restarts) lives in the meter's saved state, and the whole state is dropped when the
    meter's fingerprint changes. The fingerprint also hashes the list of computed windows
    and the tariff's name, so adding ``1h`` to ``metrics.windows`` (or renaming the tariff)
    mid-month forgets the month's peak: here a 120 kW block on the 14th, then the next
    full day (good coverage) publishes ``month_peak_kw`` 60, quality good. Expected: the
    month peak (like the day's) is kept across a change that does not touch the meter's
    energy source, or published uncertain when it cannot be known."""
    store = StateStore(tmp_path / STATE_FILE)
    counter = [1000.0]
    clock = Clock(float(D0))
    before = parse_config(PLANT + DAY_PLANT.format(windows="[15m, 1d]"), env={})
    first = MetricsProcessor(before, clock=clock, store=store)
    high_block = D0 + 10 * 3600
    _run_day_plant(
        first,
        clock,
        D0,
        D0 + 12 * 3600,
        lambda t: 120.0 if high_block <= t < high_block + 900 else 60.0,
        counter,
    )
    first.save()

    after = parse_config(PLANT + DAY_PLANT.format(windows="[15m, 1h, 1d]"), env={})
    second = MetricsProcessor(after, clock=clock, store=store)
    out = _run_day_plant(
        second, clock, D0 + 12 * 3600, D0 + 2 * DAY_S + 60, lambda t: 60.0, counter
    )
    (day,) = [
        b for b in _find(out, "metered", "1d", "demand") if b.timestamp_ns == (D0 + DAY_S) * S
    ]
    index = day.names.index("month_peak_kw")
    assert (day.values[index], day.qualities[index]) != (60.0, Quality.GOOD)
    assert day.values[index] == pytest.approx(120.0, abs=0.1)
