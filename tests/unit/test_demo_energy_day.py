"""A simulated day of the whole demo plant: every energy part in its daily report.

configs/demo-plant.yaml as it ships (tariff, demand limit, gas meter, baseline from
configs/demo-baseline.csv, shifts) runs for 25 hours of simulated time against the demo
simulators (tests/metrics_sim.py, polled every 2 s: twice the demo's interval, well
inside each tag's max gap) with the reporter the agent builds. Monday 6 May 2024 in
Shanghai is a workday of the tariff's "rest" season: valley, peak, flat, peak, flat.

The daily report must hold, per meter and for the plant, the cost by period and in
total, the peak demand and when, the month's peak, and per machine the idle energy and
kWh per good part; kgce of electricity and of gas, kgCO2e, the baseline's fit and
coverage. The day's events must include demand_limit starts and ends in pairs. Each
report goes out once, and none before its day or shift is over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.report_files import build_reporter
from edge_agent.model import SampleBatch
from simulators.profile import parse_profile
from tests.metrics_sim import SimulatedPolling, metric_tags
from tests.plant import CONFIG_FILE, PROFILE_FILE
from tests.unit.test_metrics_ground_truth import local

START = local(5, 23, 30)  # Sunday night: the simulation covers all of Monday 6 May
END = local(7, 0, 30)
STEP_S = 2
DAY = "2024-05-06"
PLANT = "demo-plant"
PRICES = {"critical_peak": 1.3, "peak": 1.05, "flat": 0.62, "valley": 0.25, "deep_valley": 0.15}
ELECTRIC = ("line-meter", "compressor-meter", "oven-meter")
#: dryer-gas: calorific value 35.59 MJ/Nm3 from the bill; 1 kgce = 29.3076 MJ (GB/T 2589).
GAS_KGCE_PER_NM3 = 35.59 / 29.3076


@dataclass
class Day:
    metrics: list[SampleBatch]
    events: list[SampleBatch]
    #: (clock when sent, report batch)
    reports: list[tuple[float, SampleBatch]]
    root: Path

    def report(self, kind: str, day: str, shift: str | None = None) -> dict[str, Any]:
        found = [
            b
            for _, b in self.reports
            if (b.attributes["report"], b.attributes["day"], b.attributes.get("shift"))
            == (kind, day, shift)
        ]
        assert len(found) == 1, [b.attributes for b in found]
        document: dict[str, Any] = json.loads(str(found[0].values[0]))
        return document


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    state = tmp_path_factory.mktemp("state")
    config = parse_config(
        CONFIG_FILE.read_text(), str(CONFIG_FILE), env={"EDGE_AGENT_STATE": str(state)}
    )
    profile = parse_profile(PROFILE_FILE.read_text(), str(PROFILE_FILE))
    polling = SimulatedPolling(profile, config, START, only_tags=metric_tags(config))
    now = [float(START)]
    processor = MetricsProcessor(
        config, clock=lambda: now[0], reporter=build_reporter(config, clock=lambda: now[0])
    )
    out = Day([], [], [], state / "reports")
    for t, batches in polling.run(END, STEP_S):
        now[0] = t
        made: list[SampleBatch] = []
        for batch in batches:
            made += [b for b in processor(batch) if b is not batch]
        if t >= processor.next_deadline():
            made += processor.close_due(t)
        for batch in made:
            kind = batch.attributes.get("kind")
            if kind == "report":
                out.reports.append((t, batch))
            elif kind == "event":
                out.events.append(batch)
            elif metric_info(batch) is not None:
                out.metrics.append(batch)
    return out


def figures(document: dict[str, Any], device: str) -> dict[tuple[str, str], dict[str, Any]]:
    (found,) = [d for d in document["devices"] if d["device"] == device]
    return {(f["family"], f["name"]): f for f in found["figures"]}


def v(figs: dict[tuple[str, str], dict[str, Any]], family: str, name: str) -> float:
    figure = figs[(family, name)]
    assert figure["quality"] == "good", figure
    value = figure["value"]
    assert isinstance(value, int | float), figure
    return float(value)


def test_every_report_goes_out_once_and_only_when_its_window_is_over(day: Day) -> None:
    sent = [
        (b.attributes["report"], b.attributes["day"], b.attributes.get("shift"))
        for _, b in day.reports
    ]
    assert len(sent) == len(set(sent)), sent
    assert ("daily", DAY, None) in sent
    assert {("shift", DAY, s) for s in ("early", "late")} <= set(sent)
    for when, batch in day.reports:
        document = json.loads(str(batch.values[0]))
        assert document["end_s"] <= when, f"{batch.attributes} sent before its end"
    # ...and its files are in the state directory.
    for suffix in ("json", "csv", "html"):
        assert (day.root / "daily" / f"{DAY}.{suffix}").is_file()


def test_the_daily_report_prices_every_meter_and_the_plant_by_period(day: Day) -> None:
    document = day.report("daily", DAY)
    assert document["status"] == "complete"
    assert document["notes"] == []
    total = {"energy": 0.0, "cost": 0.0}
    for device in (*ELECTRIC, PLANT):
        figs = figures(document, device)
        assert figs[("tariff", "cost")]["unit"] == "CNY"
        kwh = {p: v(figs, "tariff", f"kwh_{p}") for p in PRICES}
        cost = {p: v(figs, "tariff", f"cost_{p}") for p in PRICES}
        for period, price in PRICES.items():
            assert cost[period] == pytest.approx(kwh[period] * price, abs=1e-3)
        assert v(figs, "tariff", "cost") == pytest.approx(sum(cost.values()), abs=1e-3)
        assert sum(kwh.values()) == pytest.approx(v(figs, "energy", "energy_kwh"), abs=0.01)
        # A Monday of the rest season: no critical peak, no deep valley, all others used.
        assert kwh["critical_peak"] == kwh["deep_valley"] == 0
        assert min(kwh["valley"], kwh["peak"], kwh["flat"]) > 0
        assert v(figs, "tariff", "peak_share") == pytest.approx(
            kwh["peak"] / sum(kwh.values()), abs=1e-4
        )
        if device != PLANT:
            total["energy"] += v(figs, "energy", "energy_kwh")
            total["cost"] += v(figs, "tariff", "cost")
    # The plant is its three electricity supplies (the gas is not in kWh).
    plant = figures(document, PLANT)
    assert v(plant, "energy", "energy_kwh") == pytest.approx(total["energy"], abs=0.01)
    assert v(plant, "tariff", "cost") == pytest.approx(total["cost"], abs=0.01)


def test_the_daily_report_has_peaks_month_peaks_and_kgce_kgco2e(day: Day) -> None:
    document = day.report("daily", DAY)
    start, end = document["start_s"], document["end_s"]
    for device in (*ELECTRIC, PLANT):
        figs = figures(document, device)
        peak, at = v(figs, "demand", "peak_demand_kw"), v(figs, "demand", "peak_demand_at_s")
        assert peak > 0
        assert start <= at < end
        assert figs[("demand", "peak_demand_at_s")]["local_time"].startswith(DAY)
        # The simulation began the night before: the month's peak is at least the day's.
        assert v(figs, "demand", "month_peak_kw") >= peak
        energy = v(figs, "energy", "energy_kwh")
        assert v(figs, "energy", "kgce") == pytest.approx(energy * 0.1229, abs=0.01)
        assert v(figs, "energy", "kgco2e") == pytest.approx(energy * 0.5306, abs=0.01)
        assert v(figs, "energy", "coverage") == 1.0
    # The line's 15-minute peak is above the demo's limit of 12 kW (why the guard fires).
    assert v(figures(document, "line-meter"), "demand", "peak_demand_kw") > 12

    gas = figures(document, "dryer-gas")
    assert gas[("carrier", "amount")]["unit"] == "Nm3"
    amount = v(gas, "carrier", "amount")
    assert amount == pytest.approx(12.0 * 24, rel=0.01)  # 12 Nm3/h all day
    assert v(gas, "carrier", "kgce") == pytest.approx(amount * GAS_KGCE_PER_NM3, abs=0.01)
    assert v(gas, "carrier", "coverage") == 1.0
    assert ("tariff", "cost") not in gas


def test_the_daily_report_has_idle_energy_and_kwh_per_good_part(day: Day) -> None:
    document = day.report("daily", DAY)
    for machine in ("cnc-1", "press-1"):
        figs = figures(document, machine)
        assert v(figs, "energy", "idle_energy_kwh") > 0
        good = v(figs, "utilization", "parts_good")
        assert good > 0
        assert v(figs, "energy", "kwh_per_good_part") == pytest.approx(
            v(figs, "energy", "energy_kwh") / good, rel=1e-4
        )
        assert v(figs, "utilization", "coverage") == 1.0
    assert v(figures(document, "compressor-1"), "energy", "idle_energy_kwh") > 0


def test_the_daily_report_has_the_baseline_and_the_day_saved_against_it(day: Day) -> None:
    document = day.report("daily", DAY)
    (baseline,) = [d for d in document["devices"] if d["role"] == "baseline"]
    assert baseline["device"] == "oven-savings"
    figs = {(f["family"], f["name"]): f for f in baseline["figures"]}
    assert v(figs, "baseline", "valid") == 1
    assert v(figs, "baseline", "r2") >= 0.75
    assert v(figs, "baseline", "cv_rmse") <= 0.2
    # The day's savings windows (15 minutes): every one has its figures, and the oven,
    # whose idle power was cut by 30 %, saves against its baseline.
    start, end = document["start_s"] * 1e9, document["end_s"] * 1e9
    windows = [
        b
        for b in day.metrics
        if b.device == "oven-savings"
        and b.attributes["family"] == "savings"
        and b.attributes["window"] == "15m"
        and start <= b.timestamp_ns < end
    ]
    assert len(windows) == 96
    # The day's savings in the report: the sums of its 96 windows (savings_day.py).
    for name in ("expected_kwh", "actual_kwh", "avoided_kwh"):
        summed = sum(float(b.values[b.names.index(name)]) for b in windows)  # type: ignore[arg-type]
        assert v(figs, "savings", name) == pytest.approx(summed, abs=1e-3)
    avoided = v(figs, "savings", "avoided_kwh")
    assert avoided > 0
    assert v(figs, "savings", "avoided_kgce") == pytest.approx(avoided * 0.1229, abs=0.001)
    last = windows[-1]
    assert v(figs, "savings", "cumulative_avoided_kwh") == pytest.approx(
        last.values[last.names.index("cumulative_avoided_kwh")], abs=1e-6
    )
    oven = figures(document, "oven-1")
    assert v(figs, "savings", "kwh_per_good_part") == pytest.approx(
        v(figs, "savings", "actual_kwh") / v(oven, "utilization", "parts_good"), rel=1e-4
    )
    assert v(figs, "savings", "actual_kwh") == pytest.approx(
        v(figures(document, "oven-meter"), "energy", "energy_kwh"), abs=0.01
    )


def test_the_days_events_have_demand_limit_starts_and_ends_in_pairs(day: Day) -> None:
    limits = [
        (info.state, b.timestamp_ns, b.device)
        for b in day.events
        if (info := event_info(b)) is not None and info.event == "demand_limit"
    ]
    starts = [e for e in limits if e[0] == "start"]
    ends = [e for e in limits if e[0] == "end"]
    assert starts
    assert len(starts) == len(ends)
    assert {e[2] for e in limits} == {"line-meter"}
    for start, end in zip(starts, ends, strict=True):
        assert start[1] < end[1]
    # The first one: within the first minute of the agent (its first block).
    assert starts[0][1] - START * 10**9 < 60 * 10**9
