"""Finding reports: ``metrics.reports`` in the plant file, ``edge-agent report``, and the
console's file lookup, which no spelling of a path may lead out of the reports.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config.loader import parse_config
from edge_agent.config.metrics import MetricsConfig
from edge_agent.console.reports import HTML_CSP, read_report, report_answer, reports_document
from edge_agent.errors import ConfigError
from edge_agent.metrics.report_files import ReportFiles, build_reporter, reports_root
from tests.unit.test_reports import DAY0, ENERGY, day_batches, metric, reporter

PLANT_YAML = """
plant: {{name: plant-7, timezone: Asia/Shanghai}}
state_dir: {state}
devices:
  - name: lm
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1, port: 1502}}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {{name: energy, address: 2, type: uint32, scale: 0.01, unit: kWh}}
metrics:
  windows: {windows}
  meters: [{{device: lm, counter: {{tag: energy}}}}]
{reports}
"""


def plant_text(state: Path, windows: str = "[15m, 1d]", reports: str = "") -> str:
    return PLANT_YAML.format(state=state, windows=windows, reports=reports)


# ---------------------------------------------------------------------- config


def test_reports_follow_their_windows_unless_told() -> None:
    default = MetricsConfig()
    assert default.reports.keep_days == 400
    assert default.reports.on(default.windows) == (True, False)
    assert MetricsConfig(windows=["1d", "shift"]).reports.on(["1d", "shift"]) == (True, True)
    off = MetricsConfig.model_validate({"windows": ["1d"], "reports": {"daily": False}})
    assert off.reports.on(off.windows) == (False, False)


def test_a_report_asked_for_without_its_window_is_refused(tmp_path: Path) -> None:
    text = plant_text(tmp_path, "[15m, 1h]", "  reports: {daily: true, keep_days: 30}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "plant.yaml", env={})
    assert "plant.yaml:16: metrics.reports.daily: needs 1d in metrics.windows" in str(caught.value)
    with pytest.raises(ConfigError, match="keep_days"):
        parse_config(plant_text(tmp_path, reports="  reports: {keep_days: 0}"), "p.yaml", env={})


def test_a_report_without_its_window_hides_no_other_problem(tmp_path: Path) -> None:
    """Every problem in one pass (found by the new-user trial's helper): a report asked
    for without its window is reported beside the meter's unknown tag, not instead."""
    text = plant_text(tmp_path, "[15m, 1h]", "  reports: {shift: true}").replace(
        "counter: {tag: energy}", "counter: {tag: energie}"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "plant.yaml", env={})
    message = str(caught.value)
    assert "metrics.reports.shift: needs shift in metrics.windows" in message
    assert "energie" in message


def test_the_agent_makes_a_reporter_only_when_a_report_is_on(tmp_path: Path) -> None:
    plant = parse_config(plant_text(tmp_path), "plant.yaml", env={})
    made = build_reporter(plant)
    assert made is not None
    assert made.windows == {"1d"}
    assert made.files is not None
    assert build_reporter(parse_config(plant_text(tmp_path, "[15m]"), "p.yaml", env={})) is None


# ---------------------------------------------------------------------- edge-agent report


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """A plant file whose state directory holds a daily and a shift report."""
    files = ReportFiles(reports_root(tmp_path / "state"), keep_days=400)
    reporter(files)(day_batches())
    shift = (DAY0 + 6 * 3600, DAY0 + 14 * 3600)
    reporter(files)(
        [metric("line-meter", "energy", ENERGY, window="shift", bounds=shift, shift="early")]
    )
    config = tmp_path / "plant.yaml"
    config.write_text(plant_text(tmp_path / "state"))
    return config


@pytest.mark.parametrize("damage", ['{"day": "2026-12-04"', '{"day": "2026-12-04"}', "[]"])
def test_a_damaged_report_file_is_named_not_a_traceback(
    kept: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON file cut short (a full disk) or edited by hand: ``--text`` says which file
    it cannot read and exits 1 (found by review: it printed a traceback)."""
    damaged = kept.parent / "state" / "reports" / "daily" / "2026-12-04.json"
    damaged.write_text(damage)
    assert main(["report", "-c", str(kept), "--text"]) == 1
    assert f"cannot read {damaged}" in capsys.readouterr().err


def test_report_prints_the_paths_or_the_report(
    kept: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = kept.parent / "state" / "reports"
    assert main(["report", "-c", str(kept)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(root / "daily" / f"2026-12-04.{suffix}") for suffix in ("html", "csv", "json")
    ]
    assert main(["report", "-c", str(kept), "--day", "2026-12-04", "--shift", "early"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == str(root / "shift" / "2026-12-04-early.html")
    assert main(["report", "-c", str(kept), "--text"]) == 0
    text = capsys.readouterr().out
    assert "daily energy report: plant-7 2026-12-04" in text
    assert "! coverage 62% on gas-meter: figures are lower bounds" in text
    assert "Cost in peak" in text
    assert "330.55 CNY" in text
    assert main(["report", "-c", str(kept), "--list"]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [
        ["daily", "2026-12-04"],
        ["shift", "2026-12-04-early"],
    ]


def test_report_says_when_there_is_none(kept: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "-c", str(kept), "--day", "2026-12-05"]) == 1
    assert "no daily report of 2026-12-05 in" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["report", "-c", str(kept), "--day", "12/04/2026"])
    assert exited.value.code == 2
    assert "'12/04/2026' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


# ---------------------------------------------------------------------- console


def test_the_console_lists_kept_reports_with_their_urls(tmp_path: Path) -> None:
    reporter(ReportFiles(tmp_path, keep_days=400))(day_batches())
    assert reports_document(tmp_path) == {
        "reports": [
            {
                "report": "daily",
                "day": "2026-12-04",
                "shift": None,
                "files": {
                    "csv": "/console/reports/daily/2026-12-04.csv",
                    "html": "/console/reports/daily/2026-12-04.html",
                    "json": "/console/reports/daily/2026-12-04.json",
                },
            }
        ]
    }
    assert reports_document(tmp_path / "none") == {"reports": []}


TRAVERSALS = (
    "../metrics-state.json",
    "daily/../../metrics-state.json",
    "daily/../daily/2026-12-04.html",
    "daily/./2026-12-04.html",
    "daily//2026-12-04.html",
    "/daily/2026-12-04.html",
    "daily/2026-12-04.html/",
    "daily\\2026-12-04.html",
    "daily/2026-12-04.html\x00.png",
    "daily/..%2F..%2Fmetrics-state.json",
    "daily/2026-12-04-../../x.html",
    "daily/2026-12-04.HTML",
    "daily/2026-12-04.html.tmp",
    "daily/2026-12-04.py",
    "monthly/2026-12-04.html",
    "daily",
    "",
    "daily/2026-12-05.html",  # a link to a file outside, named like a report
    "daily/2026-12-06.html",  # a directory named like a report
)


def test_no_path_leads_out_of_the_reports(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    reporter(ReportFiles(root, keep_days=400))(day_batches())
    (tmp_path / "metrics-state.json").write_text('{"secret": 1}')
    os.symlink(tmp_path / "metrics-state.json", root / "daily" / "2026-12-05.html")
    (root / "daily" / "2026-12-06.html").mkdir()
    for attempt in TRAVERSALS:
        assert read_report(root, attempt) is None, attempt
    found = read_report(root, "daily/2026-12-04.json")
    assert found is not None
    body, content_type, name = found
    assert json.loads(body)["plant"] == "plant-7"
    assert (content_type, name) == ("application/json; charset=utf-8", "2026-12-04.json")


def test_report_answers_carry_their_type_and_the_page_its_own_policy(tmp_path: Path) -> None:
    reporter(ReportFiles(tmp_path, keep_days=400))(day_batches())
    page = report_answer(read_report(tmp_path, "daily/2026-12-04.html"))
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == HTML_CSP
    assert "script-src" not in HTML_CSP
    assert "default-src 'none'" in HTML_CSP
    sheet = report_answer(read_report(tmp_path, "daily/2026-12-04.csv"))
    assert sheet.headers["Content-Disposition"] == 'attachment; filename="2026-12-04.csv"'
    assert report_answer(None).status == 404
