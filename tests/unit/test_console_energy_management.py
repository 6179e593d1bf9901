"""The energy document's energy-management figures (issue 16): cost by tariff period, the
demand guard, events, other carriers, savings against a baseline.

The plant of tests/unit/test_console_energy.py (Shanghai, 16 January 2027, a Saturday),
with a time-of-use tariff whose boundaries fall at 06:00 and 06:30 (inside the run), a
demand guard at 55 kW on the line meter (its 40/50/60/70/50 kW blocks pass it at 06:00
and 06:15), an idle-energy rule that the compressor's idling at 10 kW from 06:10 breaks,
a natural-gas meter, and a baseline fitted from a CSV at start. A real processor runs
second by second on a simulated clock; the document must carry exactly what the
processor published or will publish when the open windows close.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.loader import parse_config
from edge_agent.console.energy import energy_document
from edge_agent.console.energy_figures import EVENTS_SHOWN, event_rows
from edge_agent.console.ring import EVENTS_KEPT, LiveRing
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.model import Quality, SampleBatch, Value
from tests.unit.test_console_energy import PLANT, START, Clock, cnc_state, comp_kw, local, meter_kw

S = 1_000_000_000

EXTRA_DEVICE = """
  - name: gas
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1, port: 1504}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: volume, address: 0, type: uint32, scale: 0.01, unit: Nm3}
metrics:"""

MANAGEMENT = """
  tariffs:
    - name: tou
      currency: CNY
      prices: {peak: 1.2, flat: 0.6, valley: 0.3}
      seasons:
        - name: all
          months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
          workday:
            - {start: "22:00", end: "06:00", period: valley}
            - {start: "06:00", end: "06:30", period: flat}
            - {start: "06:30", end: "22:00", period: peak}
  events:
    idle_energy: {after: 5m, above_kw: 5}
  baselines:
    - name: line
      meters: [lm]
      machines: [cnc]
      window: 15m
      variables: [parts_good]
      fit: {csv: CSV}
"""

GAS_NM3_PER_H = 12.0


def csv_text() -> str:
    """energy = 4 + 0.15 x parts, with a little scatter: a valid fit (R2 near 1)."""
    lines = ["start,energy_kwh,parts_good"]
    for k in range(40):
        parts = (k * 37) % 100
        scatter = 0.05 * ((k * 7) % 5 - 2)
        lines.append(
            f"2026-12-{1 + k // 24:02d}T{k % 24:02d}:00,{4 + 0.15 * parts + scatter:.4f},{parts}"
        )
    return "\n".join(lines) + "\n"


class Plant:
    """The processor of the plant above and every batch it made (what the console keeps)."""

    def __init__(self, csv: Path, start: float = START) -> None:
        self.clock = Clock(start)
        text = PLANT.replace("WINDOWS", "[15m, shift, 1d]").replace("\nmetrics:", EXTRA_DEVICE, 1)
        text = text.replace("  plant_total: [lm]\n", "  plant_total: [lm]\n" + MANAGEMENT)
        text = text.replace(
            "max_power: 500}",
            "max_power: 500, demand_guard: {limit_kw: 55, quiet_start: 20s}}\n"
            "    - {device: gas, carrier: natural_gas, counter: {tag: volume, unit: Nm3}, "
            "max_power: 100}",
        )
        config = parse_config(text.replace("CSV", str(csv)), env={})
        self.processor = MetricsProcessor(config, clock=self.clock)
        self.made: list[SampleBatch] = []
        self.kwh = 1000.0
        self.cnc_kwh = 500.0
        self.gas = 100.0
        self.parts = 0

    def run(self, until: float) -> None:
        t = self.clock.now
        while t < until:
            self.clock.now = t
            kw = meter_kw(t)
            self.kwh += kw / 3600
            self._feed("lm", ("power", "energy"), [kw, round(self.kwh, 2)])
            state = cnc_state(t)
            if state == "run" and int(t) % 10 == 0:
                self.parts += 1
            self.cnc_kwh += (8.0 if state == "run" else 2.0) / 3600
            values: list[Value] = [state, self.parts, comp_kw(t), round(self.cnc_kwh, 2), 0]
            self._feed("cnc", ("state", "count", "cp", "energy", "scrap"), values)
            self.gas += GAS_NM3_PER_H / 3600
            self._feed("gas", ("volume",), [round(self.gas, 2)])
            t += 1.0
        self.clock.now = until
        self.made += self.processor.close_due()

    def _feed(self, device: str, names: tuple[str, ...], values: list[Value]) -> None:
        good = [v is not None for v in values]
        batch = SampleBatch(
            device,
            "fast",
            round(self.clock.now * S),
            names,
            values,
            [Quality.GOOD if g else Quality.BAD for g in good],
            ["" if g else "timeout" for g in good],
        )
        self.made += list(self.processor(batch))[1:]

    def document(self, now: float | None = None) -> dict[str, Any]:
        """As the console builds it: the batches through the console's ring."""
        ring = LiveRing(600, 600)
        for batch in self.made:
            ring.append(batch)
        now_ns = None if now is None else round(now * S)
        return energy_document(
            self.processor, ring.metric_batches(), now_ns, events=ring.event_batches()
        )

    def batches(self, device: str, window: str, family: str) -> list[SampleBatch]:
        out = []
        for batch in self.made:
            info = metric_info(batch)
            if info is not None and (batch.device, info.window, info.family) == (
                device,
                window,
                family,
            ):
                out.append(batch)
        return out

    def events(self) -> list[SampleBatch]:
        return [b for b in self.made if event_info(b) is not None]


def values(batch: SampleBatch) -> dict[str, Any]:
    return dict(zip(batch.names, batch.values, strict=True))


def by_name(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (row,) = (r for r in rows if r["name"] == name)
    return row


def periods(figures: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    return {p["period"]: (p["kwh"], p["cost"]) for p in figures["periods"]}


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "line.csv"
    path.write_text(csv_text())
    return path


@pytest.fixture(scope="module")
def plant(csv: Path) -> Plant:
    """05:30 to 06:50 local: the night shift closed at 06:00, the early one running."""
    p = Plant(csv)
    p.run(local(16, 6, 50))
    return p


# --------------------------------------------------------------------------- cost


def test_cost_today_runs_from_the_open_day_window(plant: Plant) -> None:
    """05:30-06:00 valley (40 and 50 kW), 06:00-06:30 flat (60, 70), 06:30-06:50 peak (50)."""
    meter = by_name(plant.document()["meters"], "lm")
    tariff = meter["tariff"]
    assert tariff["name"] == "tou"
    today = tariff["today"]
    assert today["currency"] == "CNY"
    assert [p["period"] for p in today["periods"]] == ["peak", "flat", "valley"]
    assert {p["period"]: p["price"] for p in today["periods"]} == {
        "peak": 1.2,
        "flat": 0.6,
        "valley": 0.3,
    }
    kwh = periods(today)
    assert kwh["valley"][0] == pytest.approx((15 * 40 + 15 * 50) / 60, abs=0.02)
    assert kwh["flat"][0] == pytest.approx((15 * 60 + 15 * 70) / 60, abs=0.02)
    assert kwh["peak"][0] == pytest.approx(20 * 50 / 60, abs=0.02)
    # Exact: each cost is the period's kWh x its price, rounded as the tariff batch is.
    for name, price in (("peak", 1.2), ("flat", 0.6), ("valley", 0.3)):
        assert kwh[name][1] == pytest.approx(kwh[name][0] * price, abs=1e-3)
    assert today["cost"] == pytest.approx(sum(c for _, c in kwh.values()), abs=1e-3)
    assert today["peak_share"] == pytest.approx(
        kwh["peak"][0] / meter["energy_today_kwh"], abs=2e-4
    )
    plant_row = by_name(plant.document()["meters"], "p1")
    assert plant_row["tariff"] == {"name": None, "today": today}, "the plant total of one meter"


def test_cost_today_is_what_the_day_publishes_at_its_close(csv: Path) -> None:
    p = Plant(csv, start=local(16, 23, 40))
    p.run(local(16, 23, 59, 59))
    doc = p.document(local(16, 23, 59, 59))
    p.clock.now = local(17, 0, 0, 6)
    p.made += p.processor.close_due()  # the day closes at 00:00:05; nothing more is read
    (day,) = p.batches("lm", "1d", "tariff")
    published = values(day)
    today = by_name(doc["meters"], "lm")["tariff"]["today"]
    assert today["cost"] == published["cost"]
    assert today["peak_share"] == published["peak_share"]
    assert periods(today) == {
        name: (published[f"kwh_{name}"], published[f"cost_{name}"])
        for name in ("peak", "flat", "valley")
    }
    assert day.attributes["currency"] == today["currency"]


def test_shift_cost_closed_from_its_batch_running_from_its_window(plant: Plant) -> None:
    night, early = by_name(plant.document()["meters"], "lm")["shifts"]
    (published,) = plant.batches("lm", "shift", "tariff")
    figures = values(published)
    assert night["tariff"]["cost"] == figures["cost"]
    assert periods(night["tariff"])["valley"] == (figures["kwh_valley"], figures["cost_valley"])
    assert night["tariff"]["currency"] == "CNY"
    assert early["open"] is True
    running = periods(early["tariff"])
    assert running["valley"] == (0.0, 0.0)
    assert running["flat"][0] == pytest.approx((15 * 60 + 15 * 70) / 60, abs=0.02)
    assert running["peak"][0] == pytest.approx(20 * 50 / 60, abs=0.02)
    assert early["tariff"]["cost"] == pytest.approx(
        running["flat"][0] * 0.6 + running["peak"][0] * 1.2, abs=1e-3
    )


def test_a_meter_without_a_tariff_has_no_cost(plant: Plant) -> None:
    assert plant.document()["carriers"][0]["name"] == "gas"
    # The gas meter is not an electricity meter: it is no meter row, and has no cost.
    assert [m["name"] for m in plant.document()["meters"]] == ["lm", "p1"]


# --------------------------------------------------------------------------- guard


def test_the_guard_shows_the_newest_prediction_of_the_running_block(plant: Plant) -> None:
    doc = plant.document()
    guard = by_name(doc["meters"], "lm")["guard"]
    newest = [b for b in plant.made if metric_info(b) and metric_info(b).family == "demand_guard"][
        -1
    ]  # type: ignore[union-attr]
    published = values(newest)
    assert guard["at_s"] == newest.timestamp_ns / S == local(16, 6, 49, 59)
    for name in ("predicted_kw", "limit_kw", "block_kwh", "minutes_left", "shed_kw"):
        assert guard[name] == published[name], name
    assert guard["predicted_kw"] == pytest.approx(50, abs=0.5)
    assert guard["limit_kw"] == 55
    assert guard["shed_kw"] == 0
    assert guard["minutes_left"] == pytest.approx(10.02, abs=0.01)
    assert (guard["block_start_s"], guard["block_end_s"]) == (local(16, 6, 45), local(16, 7))
    assert guard["kind"] == "contracted"
    assert guard["active"] is False
    assert by_name(doc["meters"], "p1")["guard"] is None
    assert "guard_no_reading" not in [n["code"] for n in doc["notes"]]


def test_during_an_event_the_guard_says_so_with_the_kw_to_shed(csv: Path) -> None:
    p = Plant(csv)
    p.run(local(16, 6, 5))  # 60 kW since 06:00: the block ends at 60 kW, above 55
    guard = by_name(p.document()["meters"], "lm")["guard"]
    assert guard["active"] is True
    assert guard["predicted_kw"] == pytest.approx(60, abs=0.5)
    # The rest of the block must average 55 kW less what was over: shed ~5 kW x 15/10.
    assert guard["shed_kw"] == pytest.approx(7.5, abs=0.2)
    assert guard["minutes_left"] == pytest.approx(10.02, abs=0.01)
    (start,) = [e for e in p.events() if e.attributes["event"] == "demand_limit"]
    assert guard["active_since_s"] == values(start)["start_s"]


def test_without_a_reading_in_this_block_the_prediction_is_null_with_a_note(plant: Plant) -> None:
    doc = plant.document(local(16, 7, 0, 30))  # the next block: no poll in it yet
    guard = by_name(doc["meters"], "lm")["guard"]
    assert guard["predicted_kw"] is None
    assert guard["shed_kw"] is None
    assert guard["limit_kw"] == 55
    notes = [n for n in doc["notes"] if n["code"] == "guard_no_reading"]
    assert [n["subject"] for n in notes] == ["lm"]


def test_the_months_peak_and_when(plant: Plant) -> None:
    meter = by_name(plant.document()["meters"], "lm")
    # The 06:15 block at 70 kW, the highest of the month so far (the agent's first day).
    assert meter["month_peak_kw"] == meter["peak_demand_kw"]
    assert meter["month_peak_kw"] == pytest.approx(70, abs=0.05)
    assert meter["month_peak_at_s"] == local(16, 6, 15)
    assert by_name(plant.document()["meters"], "p1")["month_peak_kw"] == meter["month_peak_kw"]


# --------------------------------------------------------------------------- events


def test_events_today_with_the_active_one_first(plant: Plant) -> None:
    events = plant.document()["events"]
    assert [(e["event"], e["device"], e["active"]) for e in events] == [
        ("idle_energy", "comp", True),
        ("demand_limit", "lm", False),  # the 06:15 block's, newest first
        ("demand_limit", "lm", False),
    ]
    idle, second, first = events
    # Idle (by power) from 06:10:00, settled after min_dwell 5 s: the episode starts then.
    assert idle["start_s"] == local(16, 6, 10, 5)
    assert idle["end_s"] is None
    assert idle["severity"] == "warning"
    assert idle["reason"].startswith("comp has been idle for 5.0 minutes drawing 10.0 kW")
    assert idle["figures"] == {
        "idle_kw": 10.0,
        "idle_minutes": 5.0,
        "idle_kwh": pytest.approx(0.833, abs=1e-3),
    }
    # Each demand event: its start and its end batch are one row, with the end's figures.
    assert (first["end_s"], second["end_s"]) == (local(16, 6, 15), local(16, 6, 30))
    ends = [b for b in plant.events() if b.attributes["state"] == "end"]
    assert [values(b)["reason"] for b in reversed(ends)] == [second["reason"], first["reason"]]
    assert first["severity"] == "critical"  # a contracted limit
    assert first["figures"]["limit_kw"] == 55
    assert first["figures"]["minutes_left"] == 0


def test_events_of_yesterday_are_not_today() -> None:
    def event(start: float, end: float | None) -> SampleBatch:
        from edge_agent.metrics.events import event_batch

        return event_batch(
            "idle_energy",
            "comp",
            "warning",
            "start" if end is None else "end",
            round(start * S),
            None if end is None else round(end * S),
            "why",
            ("idle_kw",),
            [1.0],
        )

    kept = [
        event(local(15, 22), local(15, 23)),  # yesterday's, ended yesterday
        event(local(15, 23, 30), local(16, 0, 10)),  # ended today
        event(local(15, 20), None),  # still running since yesterday
    ]
    rows = event_rows(kept, round(local(16, 0) * S))
    assert [(r["start_s"], r["active"]) for r in rows] == [
        (local(15, 20), True),
        (local(15, 23, 30), False),
    ]


def test_the_events_kept_are_bounded() -> None:
    from edge_agent.metrics.events import event_batch

    ring = LiveRing(600, 600)
    for k in range(EVENTS_KEPT + 50):
        ring.append(
            event_batch("meter_stalled", "lm", "warning", "start", k * S, None, "r", (), [])
        )
    kept = ring.event_batches()
    assert len(kept) == EVENTS_KEPT
    assert kept[-1].timestamp_ns == (EVENTS_KEPT + 49) * S
    assert len(event_rows(kept, 0)) == EVENTS_SHOWN


def test_guard_batches_do_not_push_the_days_blocks_out_of_the_ring(plant: Plant) -> None:
    """One demand_guard batch a second would fill the 15m group in 25 minutes."""
    ring = LiveRing(600, 600)
    for batch in plant.made:
        ring.append(batch)
    kept = ring.metric_batches()
    guards = [b for b in kept if metric_info(b).family == "demand_guard"]  # type: ignore[union-attr]
    assert len(guards) == 1
    blocks = [b for b in kept if metric_info(b).family == "demand" and b.device == "lm"]  # type: ignore[union-attr]
    assert len(blocks) == len(plant.batches("lm", "15m", "demand")) == 5


# --------------------------------------------------------------------------- carriers


def test_the_gas_meter_today_in_its_own_unit(plant: Plant) -> None:
    (gas,) = plant.document()["carriers"]
    assert gas["carrier"] == "natural_gas"
    assert gas["unit"] == "Nm3"
    # 80 minutes at 12 Nm3/h, read in 0.01 Nm3 steps.
    assert gas["amount"] == pytest.approx(16.0, abs=0.02)
    assert gas["kgce"] == pytest.approx(gas["amount"] * 1.2143, abs=1e-3)
    assert gas["kgco2e"] is None, "natural gas has no CO2 factor unless configured"
    notes = [n["subject"] for n in plant.document()["notes"] if n["code"] == "carrier_no_co2"]
    assert notes == ["gas"]
    # The unit its carrier batches carry.
    (block,) = plant.batches("gas", "15m", "carrier")[:1]
    assert block.attributes["unit"] == gas["unit"]


def test_the_gas_amount_is_what_the_day_publishes(csv: Path) -> None:
    p = Plant(csv, start=local(16, 23, 40))
    p.run(local(16, 23, 59, 59))
    gas = p.document(local(16, 23, 59, 59))["carriers"][0]
    p.clock.now = local(17, 0, 0, 6)
    p.made += p.processor.close_due()
    (day,) = p.batches("gas", "1d", "carrier")
    assert (gas["amount"], gas["kgce"]) == (values(day)["amount"], values(day)["kgce"])


# --------------------------------------------------------------------------- savings


def test_savings_fit_today_and_cumulative(plant: Plant) -> None:
    (line,) = plant.document()["savings"]
    unit = plant.processor.savings[0]
    fit = unit.fitting.fit
    assert fit is not None
    assert fit.valid
    (baseline,) = plant.batches("line", "1d", "baseline")[:1]
    published = values(baseline)
    assert line["fit"] == {
        "r2": published["r2"],
        "cv_rmse": published["cv_rmse"],
        "n": 40,
        "valid": True,
    }
    assert line["usable"] is True
    assert line["reason"] is None
    windows = plant.batches("line", "15m", "savings")
    assert len(windows) == 5
    today = line["today"]
    assert (today["windows"], today["counted"]) == (5, 5)
    # Summed as the running totals count: the first window, known in part (the plant
    # started mid-window), is uncertain and left out, as the 1d savings batch leaves it.
    running = [values(w)["cumulative_avoided_kwh"] for w in windows]
    pairs = zip(windows, [0.0, *running[:-1]], running, strict=True)
    whole = [w for w, before, after in pairs if after != before]
    assert len(whole) == 4
    assert today["uncertain"] == 1
    for name in ("expected_kwh", "avoided_kwh", "avoided_kgce", "avoided_kgco2e"):
        assert today[name] == pytest.approx(sum(values(w)[name] for w in whole), abs=1e-5), name
    assert today["actual_kwh"] == pytest.approx(sum(values(w)["actual_kwh"] for w in windows))
    last = values(windows[-1])
    assert line["cumulative_avoided_kwh"] == last["cumulative_avoided_kwh"]
    assert line["cumulative_avoided_kgce"] == last["cumulative_avoided_kgce"]
    assert line["last"]["kwh_per_good_part"] == last["kwh_per_good_part"]
    assert line["last"]["kwh_per_operating_hour"] == last["kwh_per_operating_hour"]
    assert line["last"]["start_s"] == local(16, 6, 30)


def test_without_metrics_the_new_lists_are_empty() -> None:
    doc = energy_document(None, [], round(local(16, 5, 30) * S), timezone="Asia/Shanghai")
    assert (doc["events"], doc["carriers"], doc["savings"]) == ([], [], [])
