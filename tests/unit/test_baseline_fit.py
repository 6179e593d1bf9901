"""The baseline's pure parts: the OLS fit and its statistics, the CSV, the window history,
and the config checks of ``metrics.baselines``."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_agent.config.baseline import BaselineConfig
from edge_agent.config.loader import inspect_config, parse_config
from edge_agent.errors import ConfigError
from edge_agent.metrics.baseline import Fit, QualityLimits, fit_baseline
from edge_agent.metrics.baseline_fitting import BaselineFitting
from edge_agent.metrics.baseline_inputs import NS_PER_HOUR, above, baseline_spec
from edge_agent.metrics.store import StateStore
from edge_agent.metrics.window_history import (
    CsvError,
    Record,
    WindowHistory,
    parse_csv,
    read_csv,
)
from edge_agent.metrics.windows import LocalTime
from tests.baseline_sim import DEVICES, baseline_yaml


def test_ols_statistics_by_hand() -> None:
    # y = 1 + 2x plus residuals +0.1, -0.1, -0.1, +0.1 (zero mean, orthogonal to x).
    x = [0.0, 1.0, 2.0, 3.0]
    y = [1.1, 2.9, 4.9, 7.1]
    fit = fit_baseline(y, [[v] for v in x], ["parts_good"], QualityLimits())
    assert fit.intercept == pytest.approx(1.0)
    assert fit.coefficients == pytest.approx((2.0,))
    ss_res = 4 * 0.01
    mean = sum(y) / 4
    ss_tot = sum((v - mean) ** 2 for v in y)
    assert fit.r2 == pytest.approx(1 - ss_res / ss_tot)
    # ASHRAE Guideline 14: n - p degrees of freedom, p = 2 (intercept + one slope).
    assert fit.cv_rmse == pytest.approx(math.sqrt(ss_res / (4 - 2)) / mean)
    assert fit.ranges == ((0.0, 3.0),)
    assert fit.valid
    assert fit.n == 4
    assert fit.outside([3.5])
    assert not fit.outside([2.0])
    assert Fit.load(fit.state()) == fit


def test_poor_and_impossible_fits_are_flagged() -> None:
    noisy = fit_baseline(
        [1.0, 5.0, 2.0, 6.0, 1.5],
        [[1], [2], [3], [4], [5]],
        ["run_hours"],
        QualityLimits(0.75, 0.2),
    )
    assert not noisy.valid
    assert "R2" in noisy.reason
    assert "CV(RMSE)" in noisy.reason
    few = fit_baseline([1.0, 2.0], [[1], [2]], ["run_hours"], QualityLimits())
    assert not few.valid
    assert "need more than 2" in few.reason
    constant = fit_baseline([1.0, 2.0, 3.0], [[4], [4], [4]], ["run_hours"], QualityLimits())
    assert not constant.valid
    assert "run_hours did not vary" in constant.reason
    collinear = fit_baseline(
        [1.0, 2.0, 3.0, 4.5],
        [[1, 2], [2, 4], [3, 6], [4, 8]],
        ["parts_good", "run_hours"],
        QualityLimits(),
    )
    assert not collinear.valid
    assert "collinear" in collinear.reason


def test_degree_hours_of_a_straight_line() -> None:
    assert above(20.0, 24.0, 18.0) == pytest.approx(4.0)
    assert above(10.0, 14.0, 18.0) == 0.0
    assert above(16.0, 20.0, 18.0) == pytest.approx(0.5 * 2 / 2)  # half the time, mean 1
    assert above(-16.0, -20.0, -18.0) == pytest.approx(0.5)  # heating: the same, mirrored


def test_csv_rows_and_their_errors_by_line() -> None:
    text = "# comment\nstart,energy_kwh,parts_good\n2024-01-01T00:00,10,3\n,11,4\n,12,5\n"
    records = parse_csv(text, ["parts_good"])
    assert [r.energy_kwh for r in records] == [10.0, 11.0, 12.0]
    bad = "energy_kwh,parts_good\n10,3\nten,4\n12\n-1,5\n13,nan\n"
    with pytest.raises(CsvError) as caught:
        parse_csv(bad, ["parts_good"])
    assert caught.value.problems == [
        "line 3: energy_kwh 'ten' is not a finite number",
        "line 4: 1 cells, the header has 2",
        "line 5: energy_kwh is negative",
        "line 6: parts_good 'nan' is not a finite number",
    ]
    with pytest.raises(CsvError, match="line 1: no column temperature"):
        parse_csv("energy_kwh,parts_good\n1,2\n", ["parts_good", "temperature"])


def test_history_survives_restarts_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "baseline-x.windows.jsonl"
    history = WindowHistory(path)
    first = Record(0, 3600, 10.0, {"parts_good": 3.0}, 1.0)
    assert history.add(first)
    assert not history.add(first)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"start_ns": 3600, "end_')  # torn by a power cut
    again = WindowHistory(path)
    assert again.records == [first]
    assert not again.add(Record(0, 3600, 99.0, {}, 1.0)), "a window is kept once"
    assert again.add(Record(3600, 7200, 11.0, {"parts_good": None}, 0.5))
    assert [r.start_ns for r in WindowHistory(path).records] == [0, 3600]


def test_history_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_agent.metrics.window_history as module

    monkeypatch.setattr(module, "MAX_RECORDS", 3)
    monkeypatch.setattr(module, "COMPACT_AT", 5)
    path = tmp_path / "h.jsonl"
    history = WindowHistory(path)
    for k in range(5):
        history.add(Record(k, k + 1, 1.0, {}, 1.0))
    assert len(path.read_text().splitlines()) == 3
    assert [r.start_ns for r in WindowHistory(path).records] == [2, 3, 4]


def _oven_baseline(window: str) -> BaselineConfig:
    return BaselineConfig.model_validate(
        {
            "name": "oven-savings",
            "meters": ["oven-meter"],
            "machines": ["oven-1"],
            "window": window,
            "variables": ["parts_good"],
            "fit": {"from": "2027-01-01", "to": "2027-01-07"},
        }
    )


def test_a_refit_uses_only_windows_recorded_under_the_current_settings(tmp_path: Path) -> None:
    """The history file is named after the baseline alone. When the plant changes the
    baseline's window (here ``1h`` to ``1d``, after the baseline period) the agent
    refits at start from that file; hourly records fitted as if they were days gave a
    "valid" baseline (R2 = 1) predicting 5 kWh of idle energy a day instead of 120, and
    every day a large negative saving, published good. (Changing ``meters`` does the
    same with the energy of other meters.) Each record carries the key of the settings
    it was made under, and a fit takes only records of its own key: here none, so the
    baseline is flagged with the reason, not used."""
    utc = LocalTime("UTC")
    hourly = baseline_spec(_oven_baseline("1h"), utc, None)
    assert hourly.period is not None
    start, end = hourly.period
    path = tmp_path / "baseline-oven-savings.windows.jsonl"
    recorded = WindowHistory(path)
    for hour in range((end - start) // NS_PER_HOUR):
        parts = float((hour * 7) % 13 * 10)
        a = start + hour * NS_PER_HOUR
        variables: dict[str, float | None] = {"parts_good": parts, "run_hours": 1.0}
        record = Record(a, a + NS_PER_HOUR, 5.0 + 0.2 * parts, variables, 1.0, hourly.record_key)
        assert recorded.add(record)

    daily = baseline_spec(_oven_baseline("1d"), utc, None)
    assert daily.record_key != hourly.record_key
    history = WindowHistory(path)
    # A day's record is kept though an hour of the old settings started at the same time.
    assert history.add(Record(end, end + 24 * NS_PER_HOUR, 120.0, {}, 1.0, daily.record_key))
    fitting = BaselineFitting(
        daily, history, StateStore(tmp_path / "baseline-oven-savings.fit.json"), end, 0.9
    )
    fitting.fit_if_due([])  # the agent's first close pass: nothing of the period open
    assert fitting.fit is not None
    assert fitting.usable() is None
    assert "168 windows of the period were recorded under other settings" in fitting.fit.reason
    # The same records under their own settings do fit (R2 = 1: exactly linear).
    again = BaselineFitting(hourly, WindowHistory(path), None, end, 0.9)
    again.fit_if_due([])
    assert again.usable() is not None


def test_records_from_before_settings_keys_are_not_fitted(tmp_path: Path) -> None:
    """A history file written before records carried a settings key cannot say what its
    windows hold: its records are read with the key ``""`` and never fitted. (A fit made
    from them then is in ``.fit.json`` and still loads while the settings are the same.)"""
    hourly = baseline_spec(_oven_baseline("1h"), LocalTime("UTC"), None)
    assert hourly.period is not None
    start, end = hourly.period
    path = tmp_path / "h.jsonl"
    lines = []
    for hour in range((end - start) // NS_PER_HOUR):
        a = start + hour * NS_PER_HOUR
        parts = (hour * 7) % 13 * 10
        lines.append(
            f'{{"start_ns":{a},"end_ns":{a + NS_PER_HOUR},"energy_kwh":{5 + 0.2 * parts},'
            f'"variables":{{"parts_good":{parts}}},"coverage":1.0}}\n'
        )
    path.write_text("".join(lines))
    history = WindowHistory(path)
    assert {r.key for r in history.records} == {""}
    fitting = BaselineFitting(hourly, history, None, end, 0.9)
    fitting.fit_if_due([])
    assert fitting.fit is not None
    assert fitting.usable() is None


def test_config_checks_name_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "b.csv"
    csv.write_text("energy_kwh,parts_good,temperature\n1,2,x\n")
    text = DEVICES.replace("windows: [15m, 1h, 1d]", "windows: [15m, 1d]") + baseline_yaml(
        "oven-meter", f"{{csv: {csv}}}"
    ).replace("[oven-1]", "[oven-2]").replace("tag: outdoor_c", "tag: outdoor")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, str(tmp_path / "plant.yaml"), env={})
    message = str(caught.value)
    assert "'oven-meter' is already the name of a meter" in message
    assert "'oven-2' is not one of metrics.machines" in message
    assert "window '1h' is not computed" in message
    assert "device 'oven-1' has no tag 'outdoor'" in message
    assert "line 2: temperature 'x' is not a finite number" in message


GAS_BASELINE = """
plant: {name: line-1, timezone: UTC}
devices:
  - name: gas
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups:
      - interval: 1s
        tags:
          - {name: volume, address: 0, type: uint32, scale: 0.01}
          - {name: outdoor, address: 2, type: float32}
metrics:
  windows: [1h]
  meters:
    - {device: gas, name: boiler-gas, carrier: natural_gas, counter: {tag: volume, unit: Nm3}}
  baselines:
    - name: boiler-savings
      meters: [boiler-gas]
      window: 1h
      variables: [heating_degree_hours]
      temperature: {device: gas, tag: outdoor}
      fit: {from: "2027-01-01", to: "2027-01-28"}
"""


def test_check_refuses_a_baseline_of_a_non_electric_meter(tmp_path: Path) -> None:
    """A baseline's savings are kWh, converted with electricity's kgce and grid CO2
    factors, and the savings unit only finds electricity meters: a gas meter in
    ``meters`` would pass ``check`` and then be skipped at run time with a warning, and
    the plant would never get its savings. ``check`` refuses it at its line, as it does
    for a carrier meter in ``plant_total``."""
    with pytest.raises(ConfigError) as caught:
        parse_config(GAS_BASELINE, str(tmp_path / "plant.yaml"), env={})
    message = str(caught.value)
    assert "plant.yaml:18: metrics.baselines[0].meters[0]" in message
    assert "'boiler-gas' is a natural gas meter; baselines model electricity" in message


def test_csv_path_is_relative_to_the_plant_file(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text(
        "energy_kwh,parts_good,temperature\n1,2,3\n2,3,5\n3,5,4\n4,6,8\n"
    )
    config = parse_config(
        DEVICES + baseline_yaml("oven", "{csv: b.csv}"), str(tmp_path / "plant.yaml"), env={}
    )
    assert config.metrics is not None
    fit = config.metrics.baselines[0].fit
    assert Path(getattr(fit, "csv")) == tmp_path / "b.csv"  # noqa: B009 -- a union member's field


#: A baseline CSV as Excel on Chinese Windows saves it ("CSV (Comma delimited)"): GBK,
#: with Chinese in a comment and in the dates of the start column.
EXCEL_ROWS = (
    "# 烘箱基线数据 (2026年1月)\n"
    "start,energy_kwh,parts_good,temperature\n"
    "2026年1月5日 08:00,1,2,3\n"
    "2026年1月5日 09:00,2,3,5\n"
    "2026年1月5日 10:00,3,5,4\n"
    "2026年1月5日 11:00,4,6,8\n"
)


def test_a_csv_saved_by_chinese_excel_is_read_as_gb18030_and_check_says_so(
    tmp_path: Path,
) -> None:
    """Excel on Chinese Windows saves CSV in GBK: not UTF-8. It was a UnicodeDecodeError
    traceback in ``check`` (and a reload that failed part-way). GB18030, the superset of
    GBK, reads it; ``check`` says it guessed, as a warning."""
    (tmp_path / "b.csv").write_bytes(EXCEL_ROWS.encode("gbk"))
    text = DEVICES + baseline_yaml("oven", "{csv: b.csv}")
    report = inspect_config(text, str(tmp_path / "plant.yaml"), env={})
    (warning,) = [w for w in report.warnings if "b.csv" in w]
    assert ": metrics.baselines[0].fit.csv: warning: " in warning
    assert "not UTF-8: read as GB18030" in warning
    assert "save it as CSV UTF-8" in warning
    assert [r.energy_kwh for r in read_csv(tmp_path / "b.csv", ["parts_good", "temperature"])] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]


def test_a_csv_in_utf8_with_or_without_bom_reads_without_a_warning(tmp_path: Path) -> None:
    for name, data in (
        ("plain.csv", EXCEL_ROWS.encode("utf-8")),
        ("bom.csv", EXCEL_ROWS.encode("utf-8-sig")),
    ):
        (tmp_path / name).write_bytes(data)
        text = DEVICES + baseline_yaml("oven", f"{{csv: {name}}}")
        report = inspect_config(text, str(tmp_path / "plant.yaml"), env={})
        assert not [w for w in report.warnings if name in w], name
        records = read_csv(tmp_path / name, ["parts_good", "temperature"])
        assert [r.energy_kwh for r in records] == [1.0, 2.0, 3.0, 4.0]


def test_a_csv_in_neither_encoding_is_an_error_naming_the_file(tmp_path: Path) -> None:
    # Excel's "Unicode Text" is UTF-16: neither UTF-8 nor GB18030.
    (tmp_path / "b.csv").write_bytes(EXCEL_ROWS.encode("utf-16"))
    text = DEVICES + baseline_yaml("oven", "{csv: b.csv}")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, str(tmp_path / "plant.yaml"), env={})
    (line,) = caught.value.problems
    assert ": metrics.baselines[0].fit.csv: " in line
    assert str(tmp_path / "b.csv") in line
    assert "neither UTF-8 nor GB18030" in line
    assert "save it as CSV UTF-8" in line
    with pytest.raises(CsvError, match="save it as CSV UTF-8"):
        read_csv(tmp_path / "b.csv", ["parts_good", "temperature"])
