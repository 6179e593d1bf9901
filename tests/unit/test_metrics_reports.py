"""Daily and shift reports from a simulated day of the demo plant (tests/metrics_sim.py).

The ground-truth harness of test_metrics_ground_truth.py runs the plant for 25 hours
in simulated time (Monday 6 May 2024 in Shanghai, shifts 06:00-14:00 and 14:00-22:00)
with the line gateway down from 06:00 to 09:00, and a reporter fed by the processor's
close passes. The reports must carry exactly the figures of the metric batches they
come from, say plainly where the gap makes them lower bounds, and go out once per day
and shift as the contract's report batch; their files must be in the state directory.

A restart (the day closing again from a state saved before it closed) rewrites the
same files, sends nothing it sent already, and sends a report whose content changed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.report_figures import match
from edge_agent.metrics.report_files import ReportFiles
from edge_agent.metrics.reports import Reporter
from edge_agent.metrics.store import STATE_FILE, StateStore
from edge_agent.model import SampleBatch
from tests.metrics_sim import SimulatedPolling, metric_tags
from tests.unit.test_metrics_ground_truth import (
    END,
    START,
    local,
    plant_config,
    two_shift_profile,
)

GAP = (local(6, 6, 0), local(6, 9, 0))  # three hours: 62.5 % of the early shift is left
GAP_DEVICES = ("line-meter", "cnc-1", "press-1")
PLANT = "demo-plant"


@dataclass
class Day:
    metrics: list[SampleBatch]
    reports: list[SampleBatch]
    root: Path

    def report(self, kind: str, day: str, shift: str | None = None) -> dict[str, Any]:
        found = [
            b
            for b in self.reports
            if (b.attributes["report"], b.attributes["day"], b.attributes.get("shift"))
            == (kind, day, shift)
        ]
        assert len(found) == 1, found
        document: dict[str, Any] = json.loads(str(found[0].values[0]))
        return document


def reporter(root: Path, clock: list[float]) -> Reporter:
    return Reporter(
        PLANT,
        "Asia/Shanghai",
        daily=True,
        shift=True,
        min_coverage=0.9,
        site="Shanghai line",
        files=ReportFiles(root, keep_days=400),
        clock=lambda: clock[0],
    )


def simulate(
    processor: MetricsProcessor,
    polling: SimulatedPolling,
    now: list[float],
    start: int,
    end: int,
) -> list[SampleBatch]:
    out: list[SampleBatch] = []
    for t in range(start, end + 1):
        now[0] = t
        for batch in polling.poll(t):
            out += [b for b in processor(batch) if b is not batch]
        if t >= processor.next_deadline():
            out += processor.close_due(t)
    return out


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Day:
    root = tmp_path_factory.mktemp("state") / "reports"
    config = plant_config()
    polling = SimulatedPolling(two_shift_profile(), config, START, only_tags=metric_tags(config))
    polling.gaps += [(device, GAP[0], GAP[1]) for device in GAP_DEVICES]
    now = [float(START)]
    processor = MetricsProcessor(config, clock=lambda: now[0], reporter=reporter(root, now))
    published = simulate(processor, polling, now, START, END)
    reports = [b for b in published if b.attributes.get("kind") == "report"]
    metrics = [b for b in published if metric_info(b) is not None]
    return Day(metrics, reports, root)


def batches_of(day: Day, window: str, start_s: float, shift: str | None = None) -> list[Any]:
    return [
        b
        for b in day.metrics
        if (info := metric_info(b)) is not None
        and info.window == window
        and info.bounds is not None
        and info.bounds[0] == round(start_s * 1e9)
        and info.shift == shift
    ]


def assert_figures_are_the_batches(document: dict[str, Any], batches: list[SampleBatch]) -> None:
    """Every figure is its batch's value, quality and reason; every reported name is there."""
    shown = {
        (d["device"], f["family"], f["name"]): f for d in document["devices"] for f in d["figures"]
    }
    expected = set()
    for batch in batches:
        info = metric_info(batch)
        assert info is not None
        for name, value, quality, reason in batch:
            if match(info.family, name) is None:
                continue
            expected.add((batch.device, info.family, name))
            figure = shown[(batch.device, info.family, name)]
            assert figure["value"] == value, (batch.device, name)
            assert figure["quality"] == quality.label
            assert figure["reason"] == reason
    assert set(shown) == expected


def test_the_daily_report_holds_exactly_the_days_metric_batches(day: Day) -> None:
    batch = next(
        b
        for b in day.reports
        if (b.attributes["report"], b.attributes["day"]) == ("daily", "2024-05-06")
    )
    assert batch.device == PLANT
    assert batch.group == "reports"
    assert batch.attributes == {"kind": "report", "report": "daily", "day": "2024-05-06"}
    assert batch.names == ("report",)
    assert batch.timestamp_ns == local(6, 0) * 10**9
    document = day.report("daily", "2024-05-06")
    assert (document["start"], document["end"]) == (
        "2024-05-06T00:00:00+08:00",
        "2024-05-07T00:00:00+08:00",
    )
    assert document["timezone"] == "Asia/Shanghai"
    assert document["generated_at"] == "2024-05-07T00:00:05+08:00"  # end + grace
    batches = batches_of(day, "1d", local(6, 0))
    assert {metric_info(b).family for b in batches} == {"energy", "demand", "utilization"}  # type: ignore[union-attr]
    assert_figures_are_the_batches(document, batches)
    devices = [(d["device"], d["role"]) for d in document["devices"]]
    assert devices == [
        (PLANT, "plant"),
        ("line-meter", "meter"),
        ("compressor-meter", "meter"),
        ("cnc-1", "machine"),
        ("press-1", "machine"),
        ("compressor-1", "machine"),
    ]
    figures = {f["name"]: f for f in document["devices"][1]["figures"]}
    assert list(figures)[:3] == ["energy_kwh", "peak_demand_kw", "peak_demand_at_s"]
    assert figures["energy_kwh"]["unit"] == "kWh"
    assert figures["peak_demand_at_s"]["local_time"].startswith("2024-05-06T")
    cnc = {f["name"] for f in document["devices"][3]["figures"]}
    assert {"idle_energy_kwh", "kwh_per_good_part", "parts_good", "kgce", "kgco2e"} <= cnc


def test_a_gap_is_said_plainly_and_every_figure_carries_its_coverage(day: Day) -> None:
    document = day.report("daily", "2024-05-06")
    assert document["status"] == "partial"
    # 21 of 24 hours (87.5 %, rounded down: a note never claims more than there was).
    assert document["notes"] == [
        f"coverage 87% on {PLANT}: figures are lower bounds",
        "coverage 87% on line-meter: figures are lower bounds",
        "coverage 87% on cnc-1: figures are lower bounds",
        "coverage 87% on press-1: figures are lower bounds",
    ]
    line = next(d for d in document["devices"] if d["device"] == "line-meter")
    energy = next(b for b in batches_of(day, "1d", local(6, 0)) if b.device == "line-meter")
    coverage = energy.values[energy.names.index("coverage")]
    assert line["coverage"] == coverage
    assert 0.87 < coverage <= 0.875  # published to 4 decimals
    assert {f["coverage"] for f in line["figures"]} == {coverage}  # demand too: same window
    assert all(f["quality"] == "uncertain" for f in line["figures"])
    compressor = next(d for d in document["devices"] if d["device"] == "compressor-meter")
    assert compressor["coverage"] == 1.0
    assert document["coverage"] == min(d["coverage"] for d in document["devices"])
    # Sunday's report: the simulation started at 23:30, half an hour of the day.
    sunday = day.report("daily", "2024-05-05")
    assert sunday["status"] == "partial"
    assert "coverage 2.0% on line-meter: figures are lower bounds" in sunday["notes"]


def test_shift_reports_carry_their_shift_and_its_gap(day: Day) -> None:
    early = day.report("shift", "2024-05-06", "early")
    late = day.report("shift", "2024-05-06", "late")
    assert early["report"] == "shift"
    assert (early["start"], early["end"]) == (
        "2024-05-06T06:00:00+08:00",
        "2024-05-06T14:00:00+08:00",
    )
    assert "coverage 62% on line-meter: figures are lower bounds" in early["notes"]
    assert early["status"] == "partial"
    assert late["status"] == "complete"
    assert late["notes"] == []
    assert_figures_are_the_batches(early, batches_of(day, "shift", local(6, 6), "early"))
    assert_figures_are_the_batches(late, batches_of(day, "shift", local(6, 14), "late"))
    batch = next(b for b in day.reports if b.attributes.get("shift") == "late")
    assert batch.attributes == {
        "kind": "report",
        "report": "shift",
        "day": "2024-05-06",
        "shift": "late",
    }


def test_one_report_per_day_and_shift_and_its_files(day: Day) -> None:
    keys = sorted(
        (b.attributes["report"], b.attributes["day"], b.attributes.get("shift", ""))
        for b in day.reports
    )
    assert keys == [
        ("daily", "2024-05-05", ""),
        ("daily", "2024-05-06", ""),
        ("shift", "2024-05-06", "early"),
        ("shift", "2024-05-06", "late"),
    ]
    assert sorted(p.name for p in (day.root / "daily").iterdir()) == [
        f"2024-05-0{d}.{suffix}" for d in (5, 6) for suffix in ("csv", "html", "json")
    ]
    assert sorted(p.name for p in (day.root / "shift").iterdir()) == [
        f"2024-05-06-{s}.{suffix}" for s in ("early", "late") for suffix in ("csv", "html", "json")
    ]
    kept = json.loads((day.root / "daily" / "2024-05-06.json").read_text(encoding="utf-8"))
    assert kept == day.report("daily", "2024-05-06")


# ---------------------------------------------------------------------- restart


def test_a_day_closed_again_after_a_restart_is_rewritten_not_duplicated_nor_resent(
    tmp_path: Path,
) -> None:
    """The agent stops after the day's close pass made its report but before the state
    said so (a crash); the restart closes the day again from the older state."""
    config = plant_config()
    start, before_midnight, end = local(6, 23, 50), local(6, 23, 59), local(7, 0, 1)
    root = tmp_path / "reports"
    store = StateStore(tmp_path / STATE_FILE)

    def run(from_s: int, gap: tuple[int, int] | None = None) -> tuple[list[SampleBatch], Any]:
        polling = SimulatedPolling(two_shift_profile(), config, start, metric_tags(config))
        if gap is not None:
            polling.gaps.append(("compressor-meter", *gap))
        now = [float(from_s)]
        processor = MetricsProcessor(
            config, clock=lambda: now[0], store=store, reporter=reporter(root, now)
        )
        first = simulate(processor, polling, now, from_s, before_midnight)
        processor.save()
        saved = (tmp_path / STATE_FILE).read_bytes()
        rest = simulate(processor, polling, now, before_midnight + 1, end)
        return first + rest, saved

    published, saved = run(start)
    sent = [b for b in published if b.attributes.get("kind") == "report"]
    assert [b.attributes["day"] for b in sent] == ["2024-05-06"]
    files = sorted(p.name for p in root.rglob("*"))
    assert files == ["2024-05-06.csv", "2024-05-06.html", "2024-05-06.json", "daily"]
    first = {p.name: p.read_bytes() for p in (root / "daily").iterdir()}

    # Restart from the state saved at 23:59: the same day closes again, same content.
    (tmp_path / STATE_FILE).write_bytes(saved)
    again, _ = run(before_midnight)
    assert [b for b in again if b.attributes.get("kind") == "report"] == []
    assert sorted(p.name for p in root.rglob("*")) == files
    assert {p.name: p.read_bytes() for p in (root / "daily").iterdir()} == first

    # And once more, the compressor meter silent in the last minute: a changed report.
    (tmp_path / STATE_FILE).write_bytes(saved)
    changed, _ = run(before_midnight, gap=(before_midnight, end + 1))
    resent = [b for b in changed if b.attributes.get("kind") == "report"]
    assert len(resent) == 1
    document = json.loads(str(resent[0].values[0]))
    kept = json.loads((root / "daily" / "2024-05-06.json").read_text(encoding="utf-8"))
    assert kept == document
    compressor = next(d for d in document["devices"] if d["device"] == "compressor-meter")
    assert compressor["coverage"] < json.loads(first["2024-05-06.json"])["devices"][2]["coverage"]
    assert sorted(p.name for p in root.rglob("*")) == files


def test_a_reporter_that_fails_costs_its_report_never_the_metrics() -> None:
    config = plant_config()
    start, end = local(6, 23, 58), local(7, 0, 15, 6)  # two close passes
    polling = SimulatedPolling(two_shift_profile(), config, start, metric_tags(config))
    calls: list[int] = []

    def broken(closed: Sequence[SampleBatch]) -> list[SampleBatch]:
        calls.append(len(closed))
        raise ZeroDivisionError("a bug in a report")

    now = [float(start)]
    processor = MetricsProcessor(config, clock=lambda: now[0], reporter=broken)
    with structlog.testing.capture_logs() as logs:
        published = simulate(processor, polling, now, start, end)
    days = [b for b in published if (info := metric_info(b)) is not None and info.window == "1d"]
    assert {b.device for b in days} >= {PLANT, "line-meter", "cnc-1"}
    assert not [b for b in published if b.attributes.get("kind") == "report"]
    assert len(calls) == 2  # tried on every pass
    failures = [e for e in logs if e["event"] == "energy report could not be made; metrics go on"]
    assert len(failures) == 1  # logged once, then quietly
