"""Cross-field rules of ``metrics.baselines``, each finding tied to its own path (line).

Called from :func:`edge_agent.config.checks.metrics.check_metrics` with its tag view, in
the same one pass: names unique and not taken by a meter, machine or the plant total;
meters and machines exist; meters are electricity meters; parts variables have a
good-parts count; the temperature tag is a number; the window is computed; a CSV is
readable, with each bad row by line. :func:`baseline_warnings`: a CSV that is not UTF-8
and was read as GB18030 (Chinese Excel's CSV), which ``check`` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from edge_agent.config.baseline import BaselineConfig, FitCsv
from edge_agent.config.checks.common import Finding, Loc, duplicates, format_path
from edge_agent.config.metrics import MetricsConfig
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.window_history import GB18030, CsvError, csv_encoding, read_csv
from edge_agent.metrics.windows import DAY


class Tags(Protocol):
    def device(self, path: Loc, name: str) -> list[Finding]: ...

    def tag(self, path: Loc, device: str, name: str, need: str) -> list[Finding]: ...


def check_baselines(
    metrics: MetricsConfig, plant_name: str | None, tags: Tags, unchecked_metrics: set[str]
) -> list[Finding]:
    base: Loc = ("metrics", "baselines")
    found = duplicates(
        [((*base, i, "name"), b.name) for i, b in enumerate(metrics.baselines)],
        "baseline",
        format_path,
    )
    taken = {m.metric_name for m in metrics.meters} | {m.metric_name for m in metrics.machines}
    if metrics.plant_total and plant_name is not None:
        taken.add(plant_name)
    for index, baseline in enumerate(metrics.baselines):
        path: Loc = (*base, index)
        if baseline.name in taken:
            found.append(
                (
                    (*path, "name"),
                    f"{baseline.name!r} is already the name of a meter, machine or the plant "
                    "total: a baseline's batches need their own device name",
                )
            )
        found += _check_one(metrics, path, baseline, tags, unchecked_metrics)
    return found


def _check_one(
    metrics: MetricsConfig,
    path: Loc,
    baseline: BaselineConfig,
    tags: Tags,
    unchecked_metrics: set[str],
) -> list[Finding]:
    found: list[Finding] = []
    meters = {m.metric_name for m in metrics.meters}
    carriers = {m.metric_name: m.carrier for m in metrics.meters if not m.is_electric}
    machines = {m.metric_name: m for m in metrics.machines}
    for i, name in enumerate(baseline.meters):
        if name not in meters and name not in unchecked_metrics:
            found.append(((*path, "meters", i), f"{name!r} is not one of metrics.meters"))
        elif name in carriers:
            # Savings are kWh, converted with electricity's kgce and grid CO2 factors.
            found.append(
                (
                    (*path, "meters", i),
                    f"{name!r} is a {carriers[name].replace('_', ' ')} meter; baselines model "
                    "electricity (savings are kWh, in kgce and kgCO2e at electricity's factors)",
                )
            )
    wants_good = "parts_good" in baseline.variables
    wants_total = "parts_produced" in baseline.variables
    for i, name in enumerate(baseline.machines):
        machine = machines.get(name)
        if machine is None:
            if name not in unchecked_metrics:
                found.append(((*path, "machines", i), f"{name!r} is not one of metrics.machines"))
            continue
        parts = machine.parts
        if (wants_good or wants_total) and parts is None:
            found.append(
                ((*path, "machines", i), f"machine {name!r} has no parts counters (parts:)")
            )
        elif wants_good and parts is not None and parts.good is None and parts.scrap is None:
            found.append(
                (
                    (*path, "machines", i),
                    f"machine {name!r} counts only total parts; parts_good needs good or scrap",
                )
            )
    computed = {*metrics.windows, DEMAND_WINDOW, DAY}
    if baseline.window not in computed:
        found.append(
            (
                (*path, "window"),
                f"window {baseline.window!r} is not computed: add it to metrics.windows "
                f"(computed: {', '.join(sorted(computed))})",
            )
        )
    if baseline.temperature is not None:
        t = baseline.temperature
        found += tags.device((*path, "temperature", "device"), t.device)
        found += tags.tag((*path, "temperature", "tag"), t.device, t.tag, "a temperature")
    if isinstance(baseline.fit, FitCsv):
        try:
            read_csv(Path(baseline.fit.csv), list(baseline.variables))
        except CsvError as exc:
            found += [((*path, "fit", "csv"), problem) for problem in exc.problems]
    return found


def baseline_warnings(metrics: MetricsConfig) -> list[Finding]:
    """A CSV read as GB18030: right for Chinese Excel's "CSV (Comma delimited)", but a
    guess, so ``check`` says it (a warning: the fit uses the file)."""
    found: list[Finding] = []
    for index, baseline in enumerate(metrics.baselines):
        if isinstance(baseline.fit, FitCsv) and csv_encoding(Path(baseline.fit.csv)) == GB18030:
            found.append(
                (
                    ("metrics", "baselines", index, "fit", "csv"),
                    f"{baseline.fit.csv} is not UTF-8: read as GB18030, the encoding of "
                    '"CSV (Comma delimited)" from Excel on Chinese Windows; to be sure of '
                    'the reading, save it as CSV UTF-8 ("CSV UTF-8 (Comma delimited)")',
                )
            )
    return found
