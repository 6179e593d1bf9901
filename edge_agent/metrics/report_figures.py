"""Which published figures a report shows, in which order, with which unit and labels.

A report is built from the metric batches by family and name only (the contract of
:mod:`edge_agent.metrics.contract`), so a figure is shown exactly when its family was
published for the window: a plant without a tariff has no cost rows, a meter without
a baseline no savings. The families and names are those of docs/METRICS.md ("What is
published", "What a report holds"); a name of a listed family that is not listed here
(the utilization family's time split, the energy cross-check) is left to the metric
batches.

Labels are English and Simplified Chinese: the CSV carries both (Excel opens it with
either team), the HTML page shows both.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple


class FigureSpec(NamedTuple):
    """A figure of a report: ``name`` of ``family`` (a regular expression for the tariff's
    per-period figures), its unit, and its labels (``{period}`` filled in)."""

    family: str
    name: str
    unit: str
    en: str
    zh: str


#: Unit of a cost figure when the caller does not say the tariff's currency.
CURRENCY: Final = "currency"
#: Unit of a time figure: seconds since the epoch (the report adds the local time).
EPOCH_S: Final = "unix s"
RATIO: Final = "ratio"
_PERIOD: Final = r"(?P<period>[a-z_]+)"

FIGURES: Final[tuple[FigureSpec, ...]] = (
    FigureSpec("energy", "energy_kwh", "kWh", "Energy", "用电量"),
    FigureSpec("carrier", "amount", "", "Amount", "用量"),
    FigureSpec("tariff", "cost", CURRENCY, "Cost", "费用"),
    FigureSpec("tariff", f"kwh_{_PERIOD}", "kWh", "Energy in {period}", "{period}电量"),
    FigureSpec("tariff", f"cost_{_PERIOD}", CURRENCY, "Cost in {period}", "{period}费用"),
    FigureSpec("tariff", "peak_share", RATIO, "Share in peak periods", "峰段电量占比"),
    FigureSpec("demand", "peak_demand_kw", "kW", "Peak demand (15 min)", "最大需量（15分钟）"),
    FigureSpec("demand", "peak_demand_at_s", EPOCH_S, "Peak demand at", "最大需量时刻"),
    FigureSpec("demand", "month_peak_kw", "kW", "Month's peak demand", "本月最大需量"),
    FigureSpec("demand", "month_peak_at_s", EPOCH_S, "Month's peak at", "本月最大需量时刻"),
    FigureSpec("energy", "idle_energy_kwh", "kWh", "Idle energy", "待机能耗"),
    FigureSpec("utilization", "parts_produced", "parts", "Parts produced", "产量"),
    FigureSpec("utilization", "parts_good", "parts", "Good parts", "合格品数"),
    FigureSpec("utilization", "run_s", "s", "Run time", "运行时间"),
    FigureSpec("utilization", "oee", RATIO, "OEE", "设备综合效率"),
    FigureSpec("energy", "kwh_per_good_part", "kWh/part", "Energy per good part", "单件能耗"),
    FigureSpec("energy", "kgce", "kgce", "Standard coal equivalent", "折标准煤"),
    FigureSpec("carrier", "kgce", "kgce", "Standard coal equivalent", "折标准煤"),
    FigureSpec("energy", "kgco2e", "kgCO2e", "CO2 emissions", "二氧化碳排放"),
    FigureSpec("carrier", "kgco2e", "kgCO2e", "CO2 emissions", "二氧化碳排放"),
    FigureSpec("savings", "expected_kwh", "kWh", "Expected energy (baseline)", "基准预期能耗"),
    FigureSpec("savings", "actual_kwh", "kWh", "Actual energy", "实际能耗"),
    FigureSpec("savings", "avoided_kwh", "kWh", "Savings", "节能量"),
    FigureSpec("savings", "avoided_kgce", "kgce", "Savings in standard coal", "节能量（折标煤）"),
    FigureSpec("savings", "avoided_kgco2e", "kgCO2e", "CO2 avoided", "减排二氧化碳"),
    FigureSpec("savings", "cumulative_avoided_kwh", "kWh", "Savings to date", "累计节能量"),
    FigureSpec("savings", "cumulative_avoided_kgce", "kgce", "Savings to date in coal", "累计节能"),
    FigureSpec("savings", "kwh_per_good_part", "kWh/part", "Energy per good part", "单件能耗"),
    FigureSpec(
        "savings",
        "kwh_per_operating_hour",
        "kWh/h",
        "Energy per operating hour",
        "每运行小时能耗",
    ),
    FigureSpec("baseline", "r2", RATIO, "Baseline R²", "基准模型R²"),
    FigureSpec("baseline", "cv_rmse", RATIO, "Baseline CV(RMSE)", "基准模型CV(RMSE)"),
    FigureSpec("baseline", "valid", "1/0", "Baseline valid", "基准模型有效"),
    FigureSpec("energy", "coverage", RATIO, "Data coverage (energy)", "数据覆盖率（能耗）"),
    FigureSpec("carrier", "coverage", RATIO, "Data coverage (amount)", "数据覆盖率（用量）"),
    FigureSpec("utilization", "coverage", RATIO, "Data coverage (state)", "数据覆盖率（状态）"),
)

#: Tariff period names in Chinese (the contract's period names).
PERIODS_ZH: Final = {
    "critical_peak": "尖峰",
    "peak": "峰段",
    "flat": "平段",
    "valley": "谷段",
    "deep_valley": "深谷",
}

_PERIOD_ORDER: Final = {period: rank for rank, period in enumerate(PERIODS_ZH)}
_COMPILED: Final = tuple(
    (spec, re.compile(spec.name + r"\Z") if "(?P" in spec.name else None) for spec in FIGURES
)


class Matched(NamedTuple):
    """A figure of a batch: its place in :data:`FIGURES` (the order of a device's rows),
    its unit and its labels."""

    order: tuple[int, int]
    unit: str
    en: str
    zh: str


def match(family: str, name: str) -> Matched | None:
    """The report figure ``name`` of ``family`` is, or ``None`` if reports leave it out."""
    for order, (spec, pattern) in enumerate(_COMPILED):
        if spec.family != family:
            continue
        if pattern is None:
            if spec.name == name:
                return Matched((order, 0), spec.unit, spec.en, spec.zh)
            continue
        found = pattern.match(name)
        if found is not None:
            period = found.group("period")
            rank = _PERIOD_ORDER.get(period, len(_PERIOD_ORDER))
            return Matched(
                (order, rank),
                spec.unit,
                spec.en.format(period=period.replace("_", " ")),
                spec.zh.format(period=PERIODS_ZH.get(period, period)),
            )
    return None


def coverage_of(family: str) -> bool:
    """Whether the family's ``coverage`` figure says how much of the window had data."""
    return family in ("energy", "carrier", "utilization")
