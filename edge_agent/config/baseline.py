"""``metrics.baselines``: energy baselines (ISO 50006), fitted at the edge, and savings.

A baseline names the meters whose energy it models, the machines whose production and
run time are its relevant variables, the window it works in, and where its fit comes
from: the agent's own closed windows of a past period (``fit: {from, to}``) or a CSV
the plant supplies (``fit: {csv: path}``, relative to the plant file). Rules that need
the rest of the plant (do the meters and machines exist, is the temperature tag a
number, is the window computed, is the CSV readable) are in
:mod:`edge_agent.config.checks.baseline`. docs/METRICS.md, "Baselines, EnPIs and
savings", explains the model.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.bundled import configs_dir
from edge_agent.config.base import Duration, Name, Strict
from edge_agent.metrics.baseline import MACHINE_VARIABLES, TEMPERATURE_VARIABLES
from edge_agent.metrics.windows import parse_window

Variable = Literal[
    "parts_good",
    "parts_produced",
    "run_hours",
    "temperature",
    "heating_degree_hours",
    "cooling_degree_hours",
]


class TemperatureSource(Strict):
    """An outdoor temperature tag (degC): its window mean, or degree-hours from ``base_c``."""

    device: Name
    tag: Name
    base_c: float = Field(
        default=18.0,
        ge=-50,
        le=50,
        description="Base temperature of heating/cooling degree-hours, degC.",
    )
    max_gap: Duration | None = Field(
        default=None,
        gt=0,
        description="Samples further apart are not bridged; default 2.5 x the poll interval.",
    )


class FitPeriod(Strict):
    """Fit from the agent's own closed windows of these local days (``to`` included)."""

    start: dt.date = Field(alias="from")
    to: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> FitPeriod:
        if self.to < self.start:
            raise ValueError("to is before from")
        return self


class FitCsv(Strict):
    """Fit from a CSV: a header ``energy_kwh,<variable>...`` (optional ``start``), one window
    a row; relative paths are relative to the plant file."""

    csv: str = Field(min_length=1)


class BaselineQuality(Strict):
    """A fit below these is published with ``valid`` 0 and not used for savings."""

    min_r2: float = Field(default=0.75, ge=0, le=1)
    max_cv_rmse: float = Field(default=0.2, gt=0, le=10)


class BaselineConfig(Strict):
    """One energy baseline: energy of ``meters`` against ``variables`` per ``window``."""

    name: Name = Field(description="Metric device name of its savings and baseline batches.")
    meters: list[Name] = Field(
        min_length=1, description="Meters (metric names) whose sum it models."
    )
    machines: list[Name] = Field(
        default_factory=list, description="Machines whose parts and run time are its variables."
    )
    window: str = Field(default="1h", description="1h, 1d, shift or another computed window.")
    variables: list[Variable] = Field(min_length=1)
    temperature: TemperatureSource | None = None
    fit: FitPeriod | FitCsv
    quality: BaselineQuality = BaselineQuality()

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_window(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BaselineConfig:
        if len(set(self.variables)) != len(self.variables):
            raise ValueError("a variable is listed twice")
        wanted = set(self.variables)
        if wanted & TEMPERATURE_VARIABLES and self.temperature is None:
            raise ValueError("temperature variables need temperature: {device, tag}")
        if wanted & MACHINE_VARIABLES and not self.machines:
            raise ValueError("parts and run_hours need machines")
        for name, what in (("meters", self.meters), ("machines", self.machines)):
            if len(set(what)) != len(what):
                raise ValueError(f"{name} lists one twice")
        return self


def resolve_csv_paths(data: Any, file: str) -> None:
    """Make each ``metrics.baselines[].fit.csv`` written relative absolute from the plant
    file's directory (as ``templates_dir`` is), before validation: the agent may run from
    any directory. A name that is not there but is a file shipped with edge-agent
    (``demo-baseline.csv``) is the shipped one, as bundled templates are found by name: a
    copy of the demo plant works anywhere."""
    metrics = data.get("metrics") if isinstance(data, dict) else None
    baselines = metrics.get("baselines") if isinstance(metrics, dict) else None
    if not isinstance(baselines, list):
        return
    for baseline in baselines:
        fit = baseline.get("fit") if isinstance(baseline, dict) else None
        if not isinstance(fit, dict):
            continue
        value = fit.get("csv")
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            if not path.is_absolute():
                beside = Path(file).parent / path
                bundled = configs_dir() / path
                use = bundled if not beside.exists() and bundled.is_file() else beside
                fit["csv"] = str(use)
