"""Reports from hand-built batches of every family the contract names, and their files.

The other parts of issue 16 add families (tariff, carrier, savings, baseline, the
demand month figures); the reporter reads batches by family and name only, so these
tests build the batches exactly as docs/METRICS.md ("What is published") names them and check what a
report shows of each, in which order, with which unit and coverage. Then the files:
CSV for Excel (BOM, one row per figure), the printable HTML page (escaped, no script,
its style allowed by the hash the console sends), atomic replacement, pruning.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import structlog

from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.metrics.report_files import ReportFiles, find_report, list_reports
from edge_agent.metrics.report_render import CSV_COLUMNS, STYLE_CSP_HASH, render_csv, render_html
from edge_agent.metrics.reports import Reporter
from edge_agent.model import Quality, SampleBatch, Value

S = 1_000_000_000
DAY0 = 1_796_313_600  # 2026-12-04 00:00 in Shanghai (16:00 UTC on the 3rd)
DAY1 = DAY0 + 86_400
PLANT = "plant-7"


def metric(
    device: str,
    family: str,
    values: dict[str, Value],
    *,
    window: str = "1d",
    bounds: tuple[int, int] = (DAY0, DAY1),
    shift: str | None = None,
    quality: Quality = Quality.GOOD,
    attributes: dict[str, str] | None = None,
) -> SampleBatch:
    info = MetricInfo(family, window, (bounds[0] * S, bounds[1] * S), shift)
    names = tuple(values)
    return SampleBatch(
        device,
        metric_group(window),
        bounds[0] * S,
        names,
        list(values.values()),
        [Quality.UNCERTAIN if v is None else quality for v in values.values()],
        ["no data" if v is None else "" for v in values.values()],
        attributes={**info.attributes(), **(attributes or {})},
    )


ENERGY = {
    "energy_kwh": 812.345,
    "mean_kw": 33.848,
    "kgce": 99.837,
    "kgco2e": 463.286,
    "coverage": 1.0,
    "late_kwh": 0.0,
}
#: In an order of its own: the report puts the periods in their order (critical peak first).
TARIFF = {
    "kwh_valley": 200.0,
    "kwh_flat": 271.845,
    "kwh_peak": 300.5,
    "kwh_critical_peak": 40.0,
    "cost_valley": 56.0,
    "cost_flat": 179.418,
    "cost_peak": 330.55,
    "cost_critical_peak": 54.0,
    "cost": 619.968,
    "peak_share": 0.4191,
}
DEMAND_DAY = {
    "peak_demand_kw": 61.2,
    "peak_demand_at_s": DAY0 + 10 * 3600 + 900,
    "month_peak_kw": 64.0,
    "month_peak_at_s": DAY0 - 2 * 86_400 + 9 * 3600,
}
CARRIER = {"amount": 120.5, "kgce": 146.323, "kgco2e": 260.1, "coverage": 0.62, "late_amount": 0.0}
SAVINGS = {
    "expected_kwh": 900.0,
    "actual_kwh": 812.345,
    "avoided_kwh": 87.655,
    "avoided_kgce": 10.773,
    "avoided_kgco2e": 46.51,
    "cumulative_avoided_kwh": 1500.25,
    "cumulative_avoided_kgce": 184.38,
    "kwh_per_good_part": None,
    "kwh_per_operating_hour": 50.77,
}
BASELINE = {
    "r2": 0.93,
    "cv_rmse": 0.08,
    "n": 28.0,
    "intercept": 120.0,
    "coef_parts_good": 0.21,
    "valid": 1.0,
}


def day_batches() -> list[SampleBatch]:
    return [
        metric("line-meter", "energy", ENERGY),
        metric("line-meter", "demand", DEMAND_DAY),
        metric("line-meter", "tariff", TARIFF, attributes=CNY),
        metric("gas-meter", "carrier", CARRIER, quality=Quality.UNCERTAIN, attributes=NM3),
        metric("line", "savings", SAVINGS),
        metric("line", "baseline", BASELINE),
        metric(PLANT, "energy", ENERGY),
        metric(PLANT, "tariff", TARIFF, attributes=CNY),
        # Not in a daily report: another window, a live family, an event.
        metric("line-meter", "energy", ENERGY, window="1h", bounds=(DAY1 - 3600, DAY1)),
        metric(
            "line-meter",
            "demand_guard",
            {"predicted_kw": 70.0, "limit_kw": 60.0},
            window="15m",
            bounds=(DAY1 - 900, DAY1),
        ),
        SampleBatch(
            "line-meter",
            "events",
            DAY1 * S,
            ("reason",),
            ["demand above the limit"],
            [Quality.GOOD],
            [""],
            attributes={"kind": "event", "event": "demand_limit", "state": "start"},
        ),
    ]


#: What the tariff and carrier batches say about their units (metrics/cost.py, units/carrier.py).
CNY = {"currency": "CNY"}
NM3 = {"carrier": "natural_gas", "unit": "Nm3"}


def reporter(files: ReportFiles | None = None, clock: float = DAY1 + 5.0) -> Reporter:
    return Reporter(
        PLANT,
        "Asia/Shanghai",
        daily=True,
        shift=True,
        min_coverage=0.9,
        site="一号工厂 <Line & Co>",
        files=files,
        clock=lambda: clock,
    )


def only_report(batches: list[SampleBatch]) -> dict[str, Any]:
    assert len(batches) == 1
    document: dict[str, Any] = json.loads(str(batches[0].values[0]))
    return document


def figures(document: dict[str, Any], device: str) -> dict[str, dict[str, Any]]:
    found = next(d for d in document["devices"] if d["device"] == device)
    return {f"{f['family']}.{f['name']}": f for f in found["figures"]}


def test_every_family_of_the_contract_shows_in_order_with_unit_and_coverage() -> None:
    document = only_report(reporter()(day_batches()))
    assert [(d["device"], d["role"]) for d in document["devices"]] == [
        (PLANT, "plant"),
        ("line-meter", "meter"),
        ("gas-meter", "meter"),
        ("line", "baseline"),
    ]
    line = figures(document, "line-meter")
    assert list(line) == [
        "energy.energy_kwh",
        "tariff.cost",
        "tariff.kwh_critical_peak",
        "tariff.kwh_peak",
        "tariff.kwh_flat",
        "tariff.kwh_valley",
        "tariff.cost_critical_peak",
        "tariff.cost_peak",
        "tariff.cost_flat",
        "tariff.cost_valley",
        "tariff.peak_share",
        "demand.peak_demand_kw",
        "demand.peak_demand_at_s",
        "demand.month_peak_kw",
        "demand.month_peak_at_s",
        "energy.kgce",
        "energy.kgco2e",
        "energy.coverage",
    ]
    for name, value in TARIFF.items():
        assert line[f"tariff.{name}"]["value"] == value
    assert line["tariff.cost"]["unit"] == "CNY"
    assert line["tariff.kwh_valley"]["unit"] == "kWh"
    assert line["tariff.kwh_critical_peak"]["label"] == "Energy in critical peak"
    assert line["tariff.kwh_critical_peak"]["label_zh"] == "尖峰电量"
    assert line["demand.month_peak_kw"]["value"] == 64.0
    assert line["demand.month_peak_at_s"]["local_time"] == "2026-12-02T09:00:00+08:00"
    assert line["demand.peak_demand_at_s"]["local_time"] == "2026-12-04T10:15:00+08:00"
    # Tariff and demand come from the meter's window: the energy's coverage is theirs.
    assert {f["coverage"] for f in line.values()} == {1.0}
    gas = figures(document, "gas-meter")
    assert list(gas) == ["carrier.amount", "carrier.kgce", "carrier.kgco2e", "carrier.coverage"]
    assert gas["carrier.amount"]["unit"] == "Nm3"
    assert gas["carrier.kgce"]["value"] == 146.323
    assert {f["coverage"] for f in gas.values()} == {0.62}
    assert {f["quality"] for f in gas.values()} == {"uncertain"}
    baseline = figures(document, "line")
    assert list(baseline) == [f"savings.{n}" for n in SAVINGS] + [
        "baseline.r2",
        "baseline.cv_rmse",
        "baseline.valid",
    ]
    assert baseline["savings.avoided_kgce"]["value"] == 10.773
    assert baseline["savings.kwh_per_good_part"]["value"] is None
    assert baseline["savings.kwh_per_good_part"]["reason"] == "no data"
    assert {f["coverage"] for f in baseline.values()} == {None}
    assert figures(document, PLANT)["tariff.cost"]["value"] == 619.968
    assert document["status"] == "partial"
    assert document["notes"] == ["coverage 62% on gas-meter: figures are lower bounds"]
    assert document["coverage"] == 0.62
    assert document["day"] == "2026-12-04"
    assert document["generated_at"] == "2026-12-05T00:00:05+08:00"


def test_a_figure_shows_only_when_its_family_was_published() -> None:
    batches = [metric("line-meter", "energy", ENERGY)]
    document = only_report(reporter()(batches))
    assert list(figures(document, "line-meter")) == [
        "energy.energy_kwh",
        "energy.kgce",
        "energy.kgco2e",
        "energy.coverage",
    ]
    assert document["status"] == "complete"
    assert document["notes"] == []
    # No report window closed in a pass: no report at all.
    assert reporter()([metric("line-meter", "energy", ENERGY, window="1h")]) == []
    off = Reporter(PLANT, "UTC", daily=False, shift=True, min_coverage=0.9)
    assert off(batches) == []


def test_a_day_without_data_says_so() -> None:
    empty = {**ENERGY, "energy_kwh": None, "kgce": None, "kgco2e": None, "coverage": 0.0}
    document = only_report(reporter()([metric("line-meter", "energy", empty)]))
    assert document["status"] == "no_data"
    assert document["notes"] == ["no data on line-meter: its figures are missing"]


def test_one_report_per_shift_window_in_a_pass() -> None:
    early, late = (DAY0 + 6 * 3600, DAY0 + 14 * 3600), (DAY0 + 14 * 3600, DAY0 + 22 * 3600)
    batches = [
        metric("line-meter", "energy", ENERGY, window="shift", bounds=early, shift="early"),
        metric("line-meter", "energy", ENERGY, window="shift", bounds=late, shift="late"),
    ]
    out = reporter()(batches)
    assert [b.attributes for b in out] == [
        {"kind": "report", "report": "shift", "day": "2026-12-04", "shift": "early"},
        {"kind": "report", "report": "shift", "day": "2026-12-04", "shift": "late"},
    ]
    assert [b.timestamp_ns for b in out] == [early[0] * S, late[0] * S]


def test_no_report_of_a_day_that_is_not_over() -> None:
    """A baseline fitted at start is published with today's bounds (savings.py): today's
    report is made when today closes, not from that batch in the morning."""
    fitted = metric("oven", "baseline", {"r2": 0.99, "cv_rmse": 0.02, "valid": 1.0})
    assert reporter(clock=DAY0 + 8 * 3600)([fitted]) == []
    assert len(reporter(clock=DAY1 + 5)([fitted])) == 1


# ---------------------------------------------------------------------- files


def test_a_gap_above_min_coverage_still_says_so_and_is_not_complete() -> None:
    """Two hours missing of a day (coverage 91.7 %) is above the default min_coverage of
    90 %: the figures are published good, but the report built on that gap must not say
    ``complete`` with no word about it (found by review)."""
    gap = {**ENERGY, "coverage": 22 / 24}
    batches = [metric("line-meter", "energy", gap), metric("line-meter", "demand", DEMAND_DAY)]
    document = only_report(reporter()(batches))
    assert document["status"] == "partial"
    assert document["notes"] == ["coverage 91% on line-meter: 8.4% of the window has no data"]
    whole = only_report(reporter()([metric("line-meter", "energy", ENERGY)]))
    assert (whole["status"], whole["notes"]) == ("complete", [])


def test_csv_is_one_row_per_figure_with_unit_and_coverage_for_excel(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep_days=400)
    document = only_report(reporter(files)(day_batches()))
    raw = (tmp_path / "daily" / "2026-12-04.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8, Chinese shows
    assert raw == render_csv(document)
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    figures_total = sum(len(d["figures"]) for d in document["devices"])
    report_rows = [r for r in rows if r["role"] == "report"]
    assert len(rows) == figures_total + len(report_rows)
    assert [(r["figure"], r["value"]) for r in report_rows] == [
        ("status", "partial"),
        ("coverage", "0.62"),
        ("note", "coverage 62% on gas-meter: figures are lower bounds"),
    ]
    row = next(r for r in rows if (r["device"], r["figure"]) == ("line-meter", "cost_peak"))
    assert row["value"] == "330.55"
    assert (row["unit"], row["coverage"], row["quality"]) == ("CNY", "1.0", "good")
    assert row["label_zh"] == "峰段费用"
    at = next(r for r in rows if r["figure"] == "peak_demand_at_s")
    assert at["local_time"] == "2026-12-04T10:15:00+08:00"
    none = next(r for r in rows if r["figure"] == "kwh_per_good_part")
    assert (none["value"], none["quality"], none["reason"]) == ("", "uncertain", "no data")
    assert raw.count(b"\r\n") == len(rows) + 1


def test_the_html_page_is_printable_self_contained_and_escaped(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep_days=400)
    document = only_report(reporter(files)(day_batches()))
    page = (tmp_path / "daily" / "2026-12-04.html").read_text(encoding="utf-8")
    assert page.encode() == render_html(document)
    for text in (
        PLANT,
        "2026-12-04",
        "Asia/Shanghai",
        "2026-12-05T00:00:05+08:00",
        "coverage 62% on gas-meter: figures are lower bounds",
        "一号工厂 &lt;Line &amp; Co&gt;",
        "@media print",
        "Energy in peak",
        "41.91",  # peak share in percent
        "2026-12-04 10:15:00+08:00",  # the peak's time, local
    ):
        assert text in page, text
    assert "<Line" not in page
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<link" not in lowered
    assert "src=" not in lowered
    assert "http:" not in lowered
    assert "https:" not in lowered
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" == STYLE_CSP_HASH


def test_written_again_the_files_are_replaced_not_added(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep_days=400)
    first = reporter(files, clock=DAY1 + 5.0)(day_batches())
    assert len(first) == 1
    names = sorted(p.name for p in tmp_path.rglob("*"))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.*")}
    # The same report again (later): kept as it was, not sent again.
    assert reporter(files, clock=DAY1 + 60.0)(day_batches()) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.*")} == before
    # Changed content: replaced and sent, still one set of files.
    changed = [metric("line-meter", "energy", {**ENERGY, "energy_kwh": 800.0})]
    document = only_report(reporter(files, clock=DAY1 + 90.0)(changed))
    assert sorted(p.name for p in tmp_path.rglob("*")) == names
    kept = json.loads((tmp_path / "daily" / "2026-12-04.json").read_text(encoding="utf-8"))
    assert kept == document
    assert kept["generated_at"] == "2026-12-05T00:01:30+08:00"
    entry = find_report(tmp_path, "2026-12-04", None)
    assert entry is not None
    assert entry.files == {
        ".csv": "daily/2026-12-04.csv",
        ".html": "daily/2026-12-04.html",
        ".json": "daily/2026-12-04.json",
    }


def test_a_failed_write_leaves_the_old_report_whole_and_still_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ReportFiles(tmp_path, keep_days=400)
    reporter(files)(day_batches())
    old = (tmp_path / "daily" / "2026-12-04.csv").read_bytes()

    def refuse(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    changed = [metric("line-meter", "energy", {**ENERGY, "energy_kwh": 1.0})]
    with structlog.testing.capture_logs() as logs:
        sent = reporter(files)(changed)
        reporter(files)(changed)
    assert len(sent) == 1  # the report still goes out
    assert [e["event"] for e in logs].count(
        "cannot write the energy report files; the report is still published"
    ) == 1  # once per outage
    assert (tmp_path / "daily" / "2026-12-04.csv").read_bytes() == old  # whole, not torn
    monkeypatch.undo()
    reporter(files)(changed)
    assert not list(tmp_path.rglob("*.tmp"))  # the failed write's temporary file is gone


def test_reports_older_than_keep_days_are_pruned(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path, keep_days=2)
    for k in range(4):
        bounds = (DAY0 + k * 86_400, DAY1 + k * 86_400)
        reporter(files, clock=bounds[1] + 5)(
            [metric("line-meter", "energy", ENERGY, bounds=bounds)]
        )
        shift = (bounds[0] + 6 * 3600, bounds[0] + 14 * 3600)
        reporter(files, clock=bounds[1] + 5)(
            [metric("line-meter", "energy", ENERGY, window="shift", bounds=shift, shift="a")]
        )
    assert [(e.kind, e.stem) for e in list_reports(tmp_path)] == [
        ("daily", "2026-12-07"),
        ("shift", "2026-12-07-a"),
        ("daily", "2026-12-06"),
        ("shift", "2026-12-06-a"),
        ("daily", "2026-12-05"),
        ("shift", "2026-12-05-a"),
    ]
    assert len(list(tmp_path.rglob("*.*"))) == 18
