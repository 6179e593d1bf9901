"""The console's energy document: the agent's published metrics, today, in the plant's zone.

A real :class:`MetricsProcessor` is driven second by second on a simulated clock
through several 15-minute blocks and the 06:00 shift change of a plant in Shanghai
(UTC+8, so its day starts at 16:00 UTC). The document must carry the numbers the
processor published (blocks, peak, shift energy, kgce, kgCO2e, the day's KPIs), the
running ones from its open windows, each machine's state band (with ``min_dwell``
dated back and a gap shown as unknown), and null where nothing is known.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.console.energy import energy_document
from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import REASON_TIMEOUT, Quality, SampleBatch, Value

S = 1_000_000_000
ZONE = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    """Unix seconds of a local time in Shanghai, January ``day`` 2027."""
    return dt.datetime(2027, 1, day, hour, minute, second, tzinfo=ZONE).timestamp()


START = local(16, 5, 30)  # 21:30 UTC on the 15th: the local day is the 16th
DAY_START = local(16, 0)

PLANT = """
plant: {name: p1, timezone: Asia/Shanghai}
state_dir: /nonexistent
devices:
  - name: lm
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32, unit: kW}
          - {name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}
  - name: cnc
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1503}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: state, address: 0, type: uint16, enum: {0: "off", 1: idle, 2: run, 3: fault}}
          - {name: count, address: 1, type: uint32}
          - {name: cp, address: 3, type: float32, unit: kW}
          - {name: energy, address: 5, type: uint32, scale: 0.01, unit: kWh}
          - {name: scrap, address: 7, type: uint32}
metrics:
  windows: WINDOWS
  grace: 5s
  shifts:
    - {name: night, start: "22:00", end: "06:00"}
    - {name: early, start: "06:00", end: "14:00", breaks: [{start: "10:00", end: "10:30"}]}
    - {name: late, start: "14:00", end: "22:00"}
  meters:
    - {device: lm, counter: {tag: energy}, power: {tag: power}, max_power: 500}
  machines:
    - {device: cnc, state: {tag: state}, ideal_cycle_time: 10s, parts: {total: count, scrap: scrap},
       energy: {counter: {tag: energy}, max_power: 100}}
    - {name: comp, device: cnc, planned: always,
       state_from_power: {tag: cp, off_below: 3, run_above: 20, hysteresis: 2, min_dwell: 5s}}
  plant_total: [lm]
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def meter_kw(t: float) -> float:
    """40 kW, 10 kW more in each block after 05:45, 20 kW less after 06:30."""
    if t < local(16, 5, 45):
        return 40.0
    if t < local(16, 6, 30):
        return 40.0 + 10 * (1 + int((t - local(16, 5, 45)) // 900))
    return 50.0


def cnc_state(t: float) -> str | None:
    """run, idle from 06:05, no answer 06:20-06:25 (a gap), fault to 06:30, run again."""
    if t < local(16, 6, 5):
        return "run"
    if t < local(16, 6, 20):
        return "idle"
    if t < local(16, 6, 25):
        return None
    if t < local(16, 6, 30):
        return "fault"
    return "run"


def comp_kw(t: float) -> float:
    """Running (30 kW) with one second of 10 kW at 06:00 (noise), idle (10 kW) from 06:10."""
    if t == local(16, 6, 0):
        return 10.0
    return 30.0 if t < local(16, 6, 10) else 10.0


class Plant:
    """A processor and the metric batches it published (what the console's ring keeps)."""

    def __init__(
        self,
        windows: str = "[15m, shift]",
        start: float = START,
        store: StateStore | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.clock = Clock(start)
        text = PLANT.replace("WINDOWS", windows).replace("Asia/Shanghai", timezone)
        config = parse_config(text, env={})
        self.processor = MetricsProcessor(config, clock=self.clock, store=store)
        self.published: list[SampleBatch] = []
        self.kwh = 1000.0
        self.cnc_kwh = 500.0
        self.parts = 0

    def run(self, until: float, *, cnc: Callable[[float], str | None] = cnc_state) -> None:
        """One batch per device per second from now until ``until`` (exclusive)."""
        t = self.clock.now
        while t < until:
            self.clock.now = t
            kw = meter_kw(t)
            self.kwh += kw / 3600
            self._feed("lm", ("power", "energy"), [kw, round(self.kwh, 2)])
            state = cnc(t)
            if state == "run" and int(t) % 10 == 0:
                self.parts += 1
            self.cnc_kwh += (8.0 if state == "run" else 2.0) / 3600
            energy = round(self.cnc_kwh, 2)
            values: list[Value] = [state, self.parts, comp_kw(t), energy, self.parts // 20]
            self._feed("cnc", ("state", "count", "cp", "energy", "scrap"), values)
            t += 1.0
        self.clock.now = until
        self.published += self.processor.close_due()

    def wait(self, until: float) -> None:
        """Time passes without a reading; windows close on time."""
        self.clock.now = until
        self.published += self.processor.close_due()

    def _feed(self, device: str, names: tuple[str, ...], values: list[Value]) -> None:
        good = [v is not None for v in values]
        batch = SampleBatch(
            device,
            "fast",
            round(self.clock.now * S),
            names,
            values,
            [Quality.GOOD if g else Quality.BAD for g in good],
            ["" if g else REASON_TIMEOUT for g in good],
        )
        out = list(self.processor(batch))
        self.published += out[1:]

    def document(self, now: float | None = None) -> dict[str, Any]:
        now_ns = None if now is None else round(now * S)
        return energy_document(self.processor, self.published, now_ns)

    def batches(self, device: str, window: str, family: str) -> list[dict[str, Any]]:
        """Published metric batches as name -> value, with ``_start``/``_end``/``_quality``."""
        out = []
        for batch in self.published:
            info = metric_info(batch)
            assert info is not None
            assert info.bounds is not None
            if (batch.device, info.window, info.family) == (device, window, family):
                row: dict[str, Any] = dict(zip(batch.names, batch.values, strict=True))
                row["_start"], row["_end"] = (b / S for b in info.bounds)
                row["_quality"] = dict(
                    zip(batch.names, (q.label for q in batch.qualities), strict=True)
                )
                row["_shift"] = info.shift
                out.append(row)
        return out


def by_name(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (row,) = (r for r in rows if r["name"] == name)
    return row


def band(row: dict[str, Any]) -> list[tuple[float, float, str]]:
    return [(i["start_s"], i["end_s"], i["state"]) for i in row["timeline"]]


@pytest.fixture(scope="module")
def plant() -> Plant:
    """05:30 to 06:50 local: five closed blocks, the night shift closed, early running."""
    p = Plant()
    p.run(local(16, 6, 50))
    return p


def test_the_day_is_the_plants_local_day(plant: Plant) -> None:
    doc = plant.document()
    assert doc["date"] == "2027-01-16"  # still the 15th in UTC
    assert doc["timezone"] == "Asia/Shanghai"
    assert doc["now_s"] == local(16, 6, 50)
    codes = [n["code"] for n in doc["notes"]]
    assert codes == ["started_today"], "the agent started at 05:30: bars begin then"
    assert doc["notes"][0]["at_s"] == START


def test_blocks_are_the_published_demand_batches(plant: Plant) -> None:
    meter = by_name(plant.document()["meters"], "lm")
    published = plant.batches("lm", "15m", "demand")
    assert [b["_start"] for b in published] == [START + 900 * k for k in range(5)]
    assert meter["blocks"] == [
        {
            "start_s": b["_start"],
            "end_s": b["_end"],
            "demand_kw": b["demand_kw"],
            "quality": b["_quality"]["demand_kw"],
        }
        for b in published
    ]
    # And they are the meter's power: 40, 50, 60, 70, 50 kW (counter in 0.01 kWh steps).
    kws = [b["demand_kw"] for b in meter["blocks"]]
    assert kws == pytest.approx([40, 50, 60, 70, 50], abs=0.05)


def test_the_peak_is_the_published_peak_at_its_blocks_start(plant: Plant) -> None:
    meter = by_name(plant.document()["meters"], "lm")
    last = plant.batches("lm", "15m", "demand")[-1]
    assert meter["peak_demand_kw"] == last["peak_demand_kw"]
    top = max(meter["blocks"], key=lambda b: b["demand_kw"])
    assert meter["peak_demand_kw"] == top["demand_kw"]
    assert meter["peak_demand_at_s"] == top["start_s"] == local(16, 6, 15)
    plant_row = by_name(plant.document()["meters"], "p1")
    assert plant_row["kind"] == "plant"
    assert plant_row["blocks"] == meter["blocks"], "the plant total of one meter"
    assert plant_row["peak_demand_kw"] == meter["peak_demand_kw"]


def test_running_figures_come_from_the_open_windows(plant: Plant) -> None:
    meter = by_name(plant.document()["meters"], "lm")
    # Energy since 05:30 (the agent's start), from the counter: 80 minutes of the profile.
    expected = (15 * 40 + 15 * 50 + 15 * 60 + 15 * 70 + 20 * 50) / 60
    assert meter["energy_today_kwh"] == pytest.approx(expected, abs=0.05)
    assert meter["kgce"] == pytest.approx(meter["energy_today_kwh"] * 0.1229, abs=2e-4)
    # The default grid factor: the 2023 national average (0.5306 kgCO2/kWh).
    assert meter["kgco2e"] == pytest.approx(meter["energy_today_kwh"] * 0.5306, abs=2e-4)
    assert meter["demand_kw"] == pytest.approx(50, abs=0.5), "the open 06:45 block"


def test_shift_rows_are_published_then_running(plant: Plant) -> None:
    meter = by_name(plant.document()["meters"], "lm")
    night, early = meter["shifts"]
    (published,) = plant.batches("lm", "shift", "energy")
    assert night == {
        "name": "night",
        "start_s": local(15, 22),
        "end_s": local(16, 6),
        "energy_kwh": published["energy_kwh"],
        "kgce": published["kgce"],
        "kgco2e": published["kgco2e"],
        "quality": "uncertain",  # the agent saw only its last half hour
        "open": False,
        "tariff": None,  # no tariff: no cost (tests/unit/test_console_energy_management.py)
    }
    assert published["_quality"]["energy_kwh"] == "uncertain"
    assert night["energy_kwh"] == pytest.approx((15 * 40 + 15 * 50) / 60, abs=0.05)
    assert early["name"] == "early"
    assert early["open"] is True
    assert (early["start_s"], early["end_s"]) == (local(16, 6), local(16, 14))
    assert early["energy_kwh"] == pytest.approx((15 * 60 + 15 * 70 + 20 * 50) / 60, abs=0.05)
    assert early["quality"] == "good"
    assert early["kgce"] == pytest.approx(early["energy_kwh"] * 0.1229, abs=2e-4)
    plant_night, plant_early = by_name(plant.document()["meters"], "p1")["shifts"]
    (total,) = plant.batches("p1", "shift", "energy")
    assert plant_night == {**night, **{k: total[k] for k in ("energy_kwh", "kgce", "kgco2e")}}
    assert plant_early == early, "the plant total of one meter"


def test_the_state_band_follows_the_changes_with_a_gap_as_unknown(plant: Plant) -> None:
    cnc = by_name(plant.document()["machines"], "cnc")
    assert band(cnc) == [
        (START, local(16, 6, 5), "run"),
        (local(16, 6, 5), local(16, 6, 19, 59), "idle"),
        # The last idle reading at 06:19:59, the next good one at 06:25:00: all unknown.
        (local(16, 6, 19, 59), local(16, 6, 25), "unknown"),
        (local(16, 6, 25), local(16, 6, 30), "fault"),
        (local(16, 6, 30), local(16, 6, 50), "run"),
    ]
    assert cnc["state"] == "run"


def test_min_dwell_is_dated_back_on_the_band(plant: Plant) -> None:
    """comp idles from 06:10:00; power says so for 5 s before it counts, then from 06:10:00.
    The one low second at 06:00 is noise shorter than min_dwell: no change."""
    comp = by_name(plant.document()["machines"], "comp")
    assert band(comp) == [
        (START, local(16, 6, 10), "run"),
        (local(16, 6, 10), local(16, 6, 50), "idle"),
    ]


def test_the_band_adds_up_to_the_published_time_in_state(plant: Plant) -> None:
    """Each closed block's time per state on the band equals its utilization batch."""
    for name in ("cnc", "comp"):
        intervals = band(by_name(plant.document()["machines"], name))
        for row in plant.batches(name, "15m", "utilization"):
            lo, hi = row["_start"], row["_end"]
            seconds = dict.fromkeys(("off", "idle", "run", "fault", "unknown"), 0.0)
            for start, end, state in intervals:
                seconds[state] += max(0.0, min(end, hi) - max(start, lo))
            seconds["unknown"] += (hi - lo) - sum(seconds.values())  # before the band starts
            for state, value in seconds.items():
                assert value == pytest.approx(row[f"{state}_s"], abs=1e-3), (name, lo, state)


def test_a_pending_change_keeps_the_settled_state_until_min_dwell() -> None:
    plant = Plant()
    plant.run(local(16, 6, 10, 3))  # comp has read 10 kW for 3 s: not yet idle
    comp = by_name(plant.document()["machines"], "comp")
    assert comp["state"] == "run"
    assert band(comp) == [(START, local(16, 6, 10, 3), "run")]


def test_silence_longer_than_max_gap_is_unknown_now() -> None:
    plant = Plant()
    plant.run(local(16, 5, 40))
    doc = plant.document(local(16, 5, 41))  # the last readings at 05:39:59
    cnc = by_name(doc["machines"], "cnc")
    assert cnc["state"] == "unknown"
    assert band(cnc) == [
        (START, local(16, 5, 39, 59), "run"),
        (local(16, 5, 39, 59), local(16, 5, 41), "unknown"),
    ]
    assert by_name(plant.document(local(16, 5, 40, 1))["machines"], "cnc")["state"] == "run"


def test_after_a_restart_the_band_resumes_at_the_saved_state(tmp_path: Path) -> None:
    """The band is not saved; the machine's last state is, and the downtime is unknown."""
    before = Plant(store=StateStore(tmp_path / STATE_FILE))
    before.run(local(16, 5, 40))
    assert before.processor.save()
    after = Plant(start=local(16, 5, 42), store=StateStore(tmp_path / STATE_FILE))
    # The plant ran on for the two minutes the agent was down.
    after.kwh = before.kwh + 40 * 120 / 3600
    after.cnc_kwh = before.cnc_kwh + 8 * 120 / 3600
    after.parts = before.parts + 12
    after.run(local(16, 5, 50))
    doc = after.document()
    assert band(by_name(doc["machines"], "cnc")) == [
        (local(16, 5, 39, 59), local(16, 5, 42), "unknown"),
        (local(16, 5, 42), local(16, 5, 50), "run"),
    ]
    meter = by_name(doc["meters"], "lm")
    # 05:30 to 05:50, the downtime counted from the counter (40 kW, 50 kW from 05:45).
    assert meter["energy_today_kwh"] == pytest.approx((15 * 40 + 5 * 50) / 60, abs=0.05)
    assert [n["at_s"] for n in doc["notes"] if n["code"] == "started_today"] == [local(16, 5, 42)]


def test_nothing_known_is_null_not_zero() -> None:
    plant = Plant()
    doc = plant.document()
    meter = by_name(doc["meters"], "lm")
    for key in ("energy_today_kwh", "demand_kw", "peak_demand_kw", "peak_demand_at_s", "kgce"):
        assert meter[key] is None, key
    assert meter["blocks"] == []
    cnc = by_name(doc["machines"], "cnc")
    for key in ("state", "utilization", "availability", "oee", "energy_today_kwh", "parts_made"):
        assert cnc[key] is None, key
    assert cnc["timeline"] == []
    plant.run(START + 60)
    comp = by_name(plant.document()["machines"], "comp")
    assert comp["utilization"] == 1.0
    assert comp["parts_made"] is None, "comp counts no parts"
    assert comp["oee"] is None
    assert comp["energy_today_kwh"] is None, "comp has no energy source"


def test_yesterdays_batches_are_not_today() -> None:
    """The ring may still hold the last evening's blocks: they are another local day."""
    plant = Plant(start=local(15, 23, 30))
    plant.run(local(16, 0, 20))
    meter = by_name(plant.document()["meters"], "lm")
    assert [b["start_s"] for b in meter["blocks"]] == [local(16, 0)]
    assert meter["peak_demand_at_s"] == local(16, 0)
    cnc = by_name(plant.document()["machines"], "cnc")
    assert band(cnc) == [(DAY_START, local(16, 0, 20), "run")], "the band starts at midnight"
    assert plant.document()["notes"] == [], "the agent ran before midnight"


def test_the_days_figures_are_what_the_day_publishes() -> None:
    """Read just before midnight, the document's day figures equal the 1d batches."""
    plant = Plant("[15m, shift, 1d]", start=local(16, 23, 0))
    plant.run(local(16, 23, 59))
    doc = plant.document(local(16, 23, 59, 30))
    plant.wait(local(17, 0, 0, 6))  # nothing more is read; the day closes at 00:00:05
    meter = by_name(doc["meters"], "lm")
    (energy,) = plant.batches("lm", "1d", "energy")
    (demand,) = plant.batches("lm", "1d", "demand")
    assert (meter["energy_today_kwh"], meter["kgce"], meter["kgco2e"]) == (
        energy["energy_kwh"],
        energy["kgce"],
        energy["kgco2e"],
    )
    assert (meter["peak_demand_kw"], meter["peak_demand_at_s"]) == (
        demand["peak_demand_kw"],
        demand["peak_demand_at_s"],
    )
    cnc = by_name(doc["machines"], "cnc")
    (kpis,) = plant.batches("cnc", "1d", "utilization")
    (cnc_energy,) = plant.batches("cnc", "1d", "energy")
    expected = {
        "utilization": kpis["utilization"],
        "availability": kpis["availability"],
        "effectiveness": kpis["effectiveness"],
        "quality_ratio": kpis["quality_ratio"],
        "oee": kpis["oee"],
        "parts_made": kpis["parts_produced"],
        "parts_good": kpis["parts_good"],
        "energy_today_kwh": cnc_energy["energy_kwh"],
        "kwh_per_good_part": cnc_energy["kwh_per_good_part"],
        "idle_energy_kwh": cnc_energy["idle_energy_kwh"],
    }
    assert {key: cnc[key] for key in expected} == expected
    assert cnc["oee"] is not None
    assert cnc["kwh_per_good_part"] is not None


def test_without_published_blocks_the_bars_are_the_agents_own() -> None:
    """15m not in metrics.windows: the same blocks, from the meter's day, and a note."""
    published = Plant()
    published.run(local(16, 6, 20))
    own = Plant("[shift]")
    own.run(local(16, 6, 20))
    assert not own.batches("lm", "15m", "demand")
    doc = own.document()
    expected = by_name(published.document()["meters"], "lm")
    meter = by_name(doc["meters"], "lm")
    assert meter["blocks"] == expected["blocks"]
    assert len(meter["blocks"]) == 3
    assert meter["peak_demand_kw"] == expected["peak_demand_kw"]
    assert "blocks_unpublished" in [n["code"] for n in doc["notes"]]


def test_shift_rows_need_shift_windows() -> None:
    plant = Plant("[15m]")
    plant.run(START + 30)
    doc = plant.document()
    assert by_name(doc["meters"], "lm")["shifts"] == []
    assert "shift_windows_off" in [n["code"] for n in doc["notes"]]


def test_a_daylight_saving_day_in_local_blocks_and_shifts() -> None:
    """Berlin, 28 March 2027: 02:00 becomes 03:00; the day has 23 hours, the night shift 7."""
    berlin = ZoneInfo("Europe/Berlin")

    def cet(day: int, hour: int, minute: int = 0) -> float:
        return dt.datetime(2027, 3, day, hour, minute, tzinfo=berlin).timestamp()

    plant = Plant(start=cet(28, 1, 30), timezone="Europe/Berlin")
    plant.run(cet(28, 3, 20))
    doc = plant.document()
    assert (doc["date"], doc["timezone"]) == ("2027-03-28", "Europe/Berlin")
    blocks = by_name(doc["meters"], "lm")["blocks"]
    assert [(b["start_s"], b["end_s"]) for b in blocks] == [
        (cet(28, 1, 30), cet(28, 1, 45)),
        (cet(28, 1, 45), cet(28, 3, 0)),  # 01:45 CET to 03:00 CEST: fifteen minutes
        (cet(28, 3, 0), cet(28, 3, 15)),
    ]
    (night,) = by_name(doc["meters"], "lm")["shifts"]
    assert (night["name"], night["end_s"] - night["start_s"]) == ("night", 7 * 3600)
    assert band(by_name(doc["machines"], "cnc")) == [(cet(28, 1, 30), cet(28, 3, 20), "run")]


def test_without_metrics_the_page_says_so() -> None:
    now = round(local(16, 5, 30) * S)
    doc = energy_document(None, [], now, timezone="Asia/Shanghai")
    assert doc == {
        "date": "2027-01-16",
        "timezone": "Asia/Shanghai",
        "now_s": local(16, 5, 30),
        "meters": [],
        "machines": [],
        "events": [],
        "carriers": [],
        "savings": [],
        "notes": [
            {
                "code": "metrics_off",
                "subject": "",
                "at_s": None,
                "text": "No metrics section in the plant file: no figures.",
            }
        ],
    }
