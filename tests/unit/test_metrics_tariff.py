"""Cost by time-of-use tariff through the metrics processor: ground truth by construction.

A meter draws a constant 36 kW (0.01 kWh a second: one tick of a 0.01 kWh counter), so
every period's kWh is known exactly from the wall clock. Samples come at half
seconds, so a period boundary at a whole minute falls inside an energy interval and
must be split there.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from structlog.testing import capture_logs

from edge_agent.config import PlantConfig
from edge_agent.config.loader import load_config, parse_config
from edge_agent.config.metrics_summary import summary_lines
from edge_agent.config.tariff import TariffConfig, tariff_problems, tariff_warnings
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import Quality, SampleBatch

S = 1_000_000_000
KW = 36.0
KWH_PER_S = KW / 3600  # 0.01
ROOT = Path(__file__).resolve().parent.parent.parent

PLANT = """
plant: {{name: p1, timezone: {zone}}}
devices:
  - name: m
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1, port: 1502}}
    poll_groups:
      - name: fast
        interval: {interval}
        tags:
          - {{name: power, address: 0, type: float32, unit: kW}}
          - {{name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}}
metrics:
  windows: [15m, 1h, 1d]
  grace: 5s
  tariffs:
    - name: grid
      prices: {{peak: 1.1, flat: 0.66, valley: 0.28}}
      seasons:
        - name: all
          months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          workday:
            - {{start: "21:00", end: "07:50", period: valley}}
            - {{start: "07:50", end: "12:00", period: peak}}
            - {{start: "12:00", end: "17:00", period: flat}}
            - {{start: "17:00", end: "21:00", period: peak}}
          holiday:
            - {{start: "00:00", end: "24:00", period: flat}}
{extra_tariffs}  meters:
    - {{name: counted, device: m, counter: {{tag: energy}}, max_power: 500{counted}}}
    - {{name: integrated, device: m, power: {{tag: power}}{integrated}}}
  plant_total: [counted, integrated]
"""

SECOND_TARIFF = """    - name: night-rate
      prices: {flat: 0.5, valley: 0.1}
      seasons:
        - name: all
          months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          workday:
            - {start: "22:00", end: "06:00", period: valley}
            - {start: "06:00", end: "22:00", period: flat}
"""


def config(
    zone: str = "Asia/Shanghai",
    state_dir: Path = Path("/nonexistent"),
    two: bool = False,
    interval: str = "1s",
) -> PlantConfig:
    text = PLANT.format(
        zone=zone,
        interval=interval,
        extra_tariffs=SECOND_TARIFF if two else "",
        counted=", tariff: grid" if two else "",
        integrated=", tariff: night-rate" if two else "",
    )
    return parse_config(text + f"state_dir: {state_dir}\n", env={})


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Feed:
    """36 kW every second at ``t + 0.5``, the counter following; metric batches kept."""

    def __init__(self, plant: PlantConfig, start: float, store: StateStore | None = None) -> None:
        self.clock = Clock(start)
        self.start = start
        #: When the next sample is taken.
        self.t = start
        self.processor = MetricsProcessor(plant, clock=self.clock, store=store)
        self.out: list[SampleBatch] = []

    def run(self, until: float, step: float = 1.0, missing: tuple[float, float] = (0, 0)) -> None:
        """Samples from :attr:`t` until ``until``; none in ``missing`` (a gap, then late)."""
        while self.t < until:
            t = self.t
            self.clock.now = t
            if not missing[0] <= t < missing[1]:
                self.sample(t, round((t - self.start) * KWH_PER_S / 0.01))
            self.t += step

    def sample(self, t: float, ticks: int, at: float | None = None) -> None:
        self.clock.now = t if at is None else at
        energy = round(1000.0 + ticks * 0.01, 2)
        batch = SampleBatch(
            "m",
            "fast",
            round(t * S),
            ("power", "energy"),
            [KW, energy],
            [Quality.GOOD] * 2,
            [""] * 2,
        )
        self.out += [b for b in self.processor(batch) if b is not batch]
        if self.clock.now >= self.processor.next_deadline():
            self.out += self.processor.close_due(self.clock.now)

    def find(self, device: str, window: str, family: str, start: float) -> dict[str, Any]:
        found = [
            {**dict(zip(b.names, b.values, strict=True)), "_batch": b}
            for b in self.out
            if (b.device, b.group, b.attributes["family"]) == (device, f"metrics:{window}", family)
            and b.timestamp_ns == round(start * S)
        ]
        assert found, f"no {family} batch of {device} {window} at {start}"
        return found[-1]


def local(zone: str, *args: int) -> float:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize("meter", ["counted", "integrated"])
def test_a_0750_boundary_inside_a_15_minute_block_is_priced_exactly(meter: str) -> None:
    block = local("Asia/Shanghai", 2026, 5, 6, 7, 45)  # a Wednesday
    feed = Feed(config(), block - 60.5)
    feed.run(block + 900 + 10)
    got = feed.find(meter, "15m", "tariff", block)
    # 07:45-07:50 valley (300 s), 07:50-08:00 peak (600 s), 0.01 kWh each second.
    assert got["kwh_valley"] == pytest.approx(3.0, abs=1e-9)
    assert got["kwh_peak"] == pytest.approx(6.0, abs=1e-9)
    assert got["kwh_flat"] == 0.0
    assert got["cost_valley"] == pytest.approx(3.0 * 0.28, abs=1e-9)
    assert got["cost_peak"] == pytest.approx(6.0 * 1.1, abs=1e-9)
    assert got["cost"] == pytest.approx(3.0 * 0.28 + 6.0 * 1.1, abs=1e-9)
    assert got["peak_share"] == pytest.approx(6.0 / 9.0, abs=1e-4)
    batch = got["_batch"]
    assert batch.names == (
        "kwh_peak",
        "kwh_flat",
        "kwh_valley",
        "cost_peak",
        "cost_flat",
        "cost_valley",
        "cost",
        "peak_share",
    )
    assert batch.attributes["currency"] == "CNY"
    assert batch.qualities == [Quality.GOOD] * len(batch.names)
    energy = feed.find(meter, "15m", "energy", block)
    assert energy["energy_kwh"] == pytest.approx(got["kwh_valley"] + got["kwh_peak"], abs=1e-3)


def test_the_plant_total_on_one_tariff_sums_kwh_and_cost() -> None:
    block = local("Asia/Shanghai", 2026, 5, 6, 7, 45)
    feed = Feed(config(), block - 60.5)
    feed.run(block + 900 + 10)
    total = feed.find("p1", "15m", "tariff", block)
    assert total["kwh_valley"] == pytest.approx(6.0, abs=1e-9)
    assert total["kwh_peak"] == pytest.approx(12.0, abs=1e-9)
    assert total["cost"] == pytest.approx(6.0 * 0.28 + 12.0 * 1.1, abs=1e-9)


def test_the_plant_total_on_two_tariffs_is_the_sum_of_the_members_costs() -> None:
    hour = local("Asia/Shanghai", 2026, 5, 6, 21, 0)  # grid: valley; night-rate: flat to 22:00
    feed = Feed(config(two=True), hour - 60.5)
    feed.run(hour + 3600 + 10)
    counted = feed.find("counted", "1h", "tariff", hour)
    integrated = feed.find("integrated", "1h", "tariff", hour)
    total = feed.find("p1", "1h", "tariff", hour)
    assert counted["cost"] == pytest.approx(36 * 0.28, abs=1e-9)
    assert integrated["cost"] == pytest.approx(36 * 0.5, abs=1e-9)
    assert total["cost"] == pytest.approx(36 * 0.28 + 36 * 0.5, abs=1e-9)
    assert total["kwh_valley"] == pytest.approx(36.0, abs=1e-9)
    assert total["kwh_flat"] == pytest.approx(36.0, abs=1e-9)
    assert total["cost_flat"] == pytest.approx(36 * 0.5, abs=1e-9)
    assert total["peak_share"] == 0.0


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 30), 24), ((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 10, 26), 24)],
)
def test_a_day_in_berlin_is_the_sum_of_its_periods_on_daylight_saving_days(
    day: tuple[int, int, int], hours: int
) -> None:
    zone = "Europe/Berlin"
    start = local(zone, *day, 0, 0)
    # Samples on whole 10 s (every boundary is one): no interval ends after its window
    # closed, so nothing is late and each day holds exactly its own hours.
    feed = Feed(config(zone, interval="10s"), start - 60.0)
    feed.run(start + hours * 3600 + 20, step=10.0)
    got = feed.find("integrated", "1d", "tariff", start)
    energy = feed.find("integrated", "1d", "energy", start)
    assert energy["energy_kwh"] == pytest.approx(hours * KW, abs=1e-3)
    assert energy["late_kwh"] == 0.0
    assert got["kwh_peak"] + got["kwh_flat"] + got["kwh_valley"] == pytest.approx(
        hours * KW, abs=1e-6
    )
    weekday = dt.date(*day).weekday() < 5
    if weekday:  # peaks 07:50-12:00 and 17:00-21:00 by the wall clock: 8 h 10 min
        assert got["kwh_peak"] == pytest.approx((8 + 10 / 60) * KW, abs=1e-6)
        assert got["kwh_flat"] == pytest.approx(5 * KW, abs=1e-6)
    else:  # Sunday: a holiday, flat all day however long the day
        assert got["kwh_flat"] == pytest.approx(hours * KW, abs=1e-6)


def test_late_energy_goes_to_the_period_it_was_used_in() -> None:
    # The meter's link drops at 07:49 and comes back at 08:01: the 12 minutes of
    # counted energy arrive after the 07:45 block closed, are late in the 08:00 block,
    # and are split at 07:50 all the same.
    block = local("Asia/Shanghai", 2026, 5, 6, 7, 45)
    feed = Feed(config(), block - 60.5)
    feed.run(block + 1800 + 10, missing=(block + 240, block + 960))
    got = feed.find("counted", "15m", "tariff", block + 900)
    energy = feed.find("counted", "15m", "energy", block + 900)
    # The interval 07:48:59.5 - 08:01:00.5: its part before 08:00 is late here.
    assert energy["late_kwh"] == pytest.approx(660.5 * KWH_PER_S, abs=1e-6)
    assert energy["energy_kwh"] == pytest.approx(900 * KWH_PER_S + 660.5 * KWH_PER_S, abs=1e-6)
    assert got["kwh_valley"] == pytest.approx(60.5 * KWH_PER_S, abs=1e-6)  # to 07:50
    assert got["kwh_peak"] == pytest.approx(1500 * KWH_PER_S, abs=1e-6)  # 07:50 - 08:15
    assert got["kwh_peak"] + got["kwh_valley"] == pytest.approx(energy["energy_kwh"], abs=1e-3)


def test_a_restart_in_the_middle_of_a_window_keeps_the_kwh_per_period(tmp_path: Path) -> None:
    hour = local("Asia/Shanghai", 2026, 5, 6, 7, 0)
    plant = config(state_dir=tmp_path)
    first = Feed(plant, hour - 60.5, StateStore(tmp_path / STATE_FILE))
    first.run(hour + 50 * 60 + 30)  # stops at 07:50:30, 30 s into the peak
    first.processor.save()
    second = Feed(plant, hour - 60.5, StateStore(tmp_path / STATE_FILE))
    second.t = first.t
    second.out = first.out
    second.run(hour + 3600 + 10)
    got = second.find("counted", "1h", "tariff", hour)
    assert got["kwh_valley"] == pytest.approx(50 * 60 * KWH_PER_S, abs=1e-6)
    assert got["kwh_peak"] == pytest.approx(10 * 60 * KWH_PER_S, abs=1e-6)


def test_kwh_of_a_period_an_edited_tariff_dropped_are_priced_in_its_current_periods(
    tmp_path: Path,
) -> None:
    """Editing a tariff keeps the open windows, their kWh already split into the old
    periods. Here 07:00-07:50 was deep valley and the edit makes it valley (deep_valley
    leaves ``prices``) while the agent was down at 07:10. Those 6 kWh were published in
    no ``kwh_<period>`` and priced at nothing, quality good. Now they go to the periods
    the tariff gives the window's time: the 07:00 block is all valley now, so that is
    exact and good; the hour 07:00-08:00 is valley then peak from 07:50, so the 6 kWh are
    spread by time (an estimate: truly all valley) and its tariff values are uncertain,
    with the reason."""
    old = PLANT.replace("{{peak: 1.1,", "{{deep_valley: 0.1, peak: 1.1,").replace(
        '{{start: "21:00", end: "07:50", period: valley}}',
        '{{start: "21:00", end: "07:00", period: valley}}\n'
        '            - {{start: "07:00", end: "07:50", period: deep_valley}}',
    )
    assert old.count("deep_valley") == 2
    text = old.format(
        zone="Asia/Shanghai", interval="1s", extra_tariffs="", counted="", integrated=""
    )
    hour = local("Asia/Shanghai", 2026, 5, 6, 7, 0)  # a Wednesday
    first = Feed(
        parse_config(text + f"state_dir: {tmp_path}\n", env={}),
        hour - 60.5,
        StateStore(tmp_path / STATE_FILE),
    )
    first.run(hour + 10 * 60)
    first.processor.save()
    second = Feed(config(state_dir=tmp_path), hour - 60.5, StateStore(tmp_path / STATE_FILE))
    second.t = first.t
    second.run(hour + 3600 + 10)

    block = second.find("counted", "15m", "tariff", hour)
    assert block["kwh_valley"] == pytest.approx(15 * 60 * KWH_PER_S, abs=1e-6)
    assert block["cost"] == pytest.approx(15 * 60 * KWH_PER_S * 0.28, abs=1e-6)
    assert set(block["_batch"].qualities) == {Quality.GOOD}

    for device, meters in (("counted", 1), ("integrated", 1), ("p1", 2)):
        got = second.find(device, "1h", "tariff", hour)
        energy = second.find(device, "1h", "energy", hour)["energy_kwh"]
        assert energy == pytest.approx(meters * 60 * 60 * KWH_PER_S, abs=0.02)
        # 6 kWh before the restart: 5/6 of them to valley (07:00-07:50), 1/6 to peak.
        assert got["kwh_valley"] == pytest.approx(meters * (24 + 5), abs=0.02)
        assert got["kwh_peak"] == pytest.approx(meters * (6 + 1), abs=0.02)
        assert got["kwh_valley"] + got["kwh_peak"] + got["kwh_flat"] == pytest.approx(energy)
        assert got["cost"] == pytest.approx(meters * (29 * 0.28 + 7 * 1.1), abs=0.02)
        batch = got["_batch"]
        assert set(batch.qualities) == {Quality.UNCERTAIN}
        assert "tariff 'grid' was edited while this window was open" in batch.reasons[0]
        assert "kWh of deep_valley (no longer priced)" in batch.reasons[0]


def test_a_state_saved_before_tariffs_loads_with_no_period_kwh(tmp_path: Path) -> None:
    hour = local("Asia/Shanghai", 2026, 5, 6, 7, 0)
    plant = config(state_dir=tmp_path)
    first = Feed(plant, hour - 60.5, StateStore(tmp_path / STATE_FILE))
    first.run(hour + 30 * 60)
    saved = first.processor.snapshot()
    old = copy.deepcopy(saved)
    for unit in old["units"].values():
        for windows in unit["state"]["tracks"].values():
            for window in windows:
                del window[3]["period_kwh"]
    (tmp_path / STATE_FILE).write_text(json.dumps(old))
    second = Feed(plant, hour - 60.5, StateStore(tmp_path / STATE_FILE))
    second.t = first.t
    second.run(hour + 3600 + 10)
    got = second.find("counted", "1h", "tariff", hour)
    energy = second.find("counted", "1h", "energy", hour)
    assert energy["energy_kwh"] == pytest.approx(60 * 60 * KWH_PER_S, abs=1e-3)
    # What was counted before the upgrade has no period; from then on it has.
    assert got["kwh_peak"] + got["kwh_valley"] == pytest.approx(30 * 60 * KWH_PER_S, abs=0.02)


def test_a_tariff_with_a_gap_assembled_in_code_is_left_out_not_looped_on() -> None:
    plant = config()
    assert plant.metrics is not None
    (grid,) = plant.metrics.tariffs
    season = grid.seasons[0].model_copy(update={"workday": grid.seasons[0].workday[1:]})
    broken = grid.model_copy(update={"seasons": [season]})
    metrics = plant.metrics.model_copy(update={"tariffs": [broken]})
    hour = local("Asia/Shanghai", 2026, 5, 6, 7, 0)
    with capture_logs() as logs:
        feed = Feed(plant.model_copy(update={"metrics": metrics}), hour - 60.5)
    assert any(e["event"].startswith("tariff left out: ") for e in logs)
    feed.run(hour + 3600 + 10)
    assert not any(b.attributes["family"] == "tariff" for b in feed.out)
    assert feed.find("counted", "1h", "energy", hour)["energy_kwh"] == pytest.approx(36.0, abs=0.01)


def test_a_meter_without_a_tariff_publishes_no_tariff_family() -> None:
    text = PLANT.format(
        zone="UTC", interval="1s", extra_tariffs=SECOND_TARIFF, counted="", integrated=""
    )
    plant = parse_config(text + "state_dir: /nonexistent\n", env={})
    hour = local("UTC", 2026, 5, 6, 7, 0)
    feed = Feed(plant, hour - 60.5)
    feed.run(hour + 3600 + 10)
    families = {(b.device, b.attributes["family"]) for b in feed.out}
    assert ("counted", "energy") in families
    assert not any(family == "tariff" for _, family in families), "two tariffs: no default"


def test_the_example_calendar_is_valid_labelled_and_copied_into_the_demo() -> None:
    path = ROOT / "configs" / "tariffs" / "example-cn-tou.yaml"
    text = path.read_text()
    assert text.startswith(
        "# EXAMPLE STRUCTURE ONLY - check your utility's current tariff; "
        "these are not anyone's current prices."
    )
    (example,) = [TariffConfig.model_validate(t) for t in yaml.safe_load(text)["tariffs"]]
    assert tariff_problems(example) == []
    assert tariff_warnings(example) == []
    prices = example.prices
    assert prices["peak"] / prices["valley"] >= 4
    assert prices["critical_peak"] >= 1.2 * prices["peak"]
    demo = load_config(ROOT / "configs" / "demo-plant.yaml", env={})
    assert demo.metrics is not None
    assert demo.metrics.tariffs == [example]
    electric = [m for m in demo.metrics.meters if m.is_electric]
    assert electric
    assert all(demo.metrics.tariff_of(m) == example for m in electric)
    # Tariffs price electricity: the demo's gas meter has none.
    assert all(demo.metrics.tariff_of(m) is None for m in demo.metrics.meters if not m.is_electric)
    assert "  tariff example-cn-tou (CNY, 2 seasons): line-meter, compressor-meter, oven-meter" in (
        summary_lines(demo.metrics)
    )
    summer = next(s for s in example.seasons if 7 in s.months)
    assert any(span.period == "critical_peak" for span in summer.workday)
