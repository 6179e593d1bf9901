"""The ``metrics:`` section of the plant file: meters, machines, windows, shifts, factors.

``PlantConfig.metrics`` refers to :class:`MetricsConfig`. Rules that need the devices
(do the referenced devices and tags exist, are they numeric, is there an enum map)
are in :mod:`edge_agent.config.checks.metrics`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.baseline import BaselineConfig, FitCsv
from edge_agent.metrics.conversions import GRID_FACTOR_CN_2022, KGCE_PER_KWH_EQUIVALENT
from edge_agent.metrics.utilization import StateName
from edge_agent.metrics.windows import WEEKDAYS, Weekday, parse_clock, parse_window

EnergyUnit = Literal["Wh", "kWh", "MWh"]
PowerUnit = Literal["W", "kW", "MW"]

#: kWh per unit of an energy counter, kW per unit of a power tag.
KWH_PER_UNIT: dict[str, float] = {"Wh": 0.001, "kWh": 1.0, "MWh": 1000.0}
KW_PER_UNIT: dict[str, float] = {"W": 0.001, "kW": 1.0, "MW": 1000.0}


# --------------------------------------------------------------------------- energy


class CounterTag(Strict):
    """A cumulative energy counter (import register of a meter, energy of a drive)."""

    tag: Name
    unit: EnergyUnit = "kWh"
    rollover: float | Literal["auto", "none"] = Field(
        default="auto",
        description=(
            "Value (in `unit`) at which the counter wraps to zero. auto: from the register "
            "type and scale of a Modbus integer tag (uint32 x 0.01 -> 42949672.96), else none."
        ),
    )
    resolution: float | None = Field(
        default=None,
        gt=0,
        description="Smallest step of the counter in `unit`; default: the tag's scale for "
        "integer registers, else 1e-6.",
    )
    max_gap: Duration | None = Field(
        default=None,
        gt=0,
        description="Readings further apart are bridged (the counter knows the energy) but "
        "count as missing coverage; default 2.5 x the poll interval.",
    )

    @field_validator("rollover")
    @classmethod
    def _positive_rollover(cls, value: float | str) -> float | str:
        if isinstance(value, float | int) and not value > 0:
            raise ValueError("rollover must be positive (or auto / none)")
        return value


class PowerTag(Strict):
    """Active power, integrated with the trapezoidal rule."""

    tag: Name
    unit: PowerUnit = "kW"
    max_gap: Duration | None = Field(
        default=None,
        gt=0,
        description="Samples further apart are not bridged; default 2.5 x the poll interval.",
    )


class EnergyConfig(Strict):
    """An energy source: a counter (the truth), power, or both (power is then a cross-check)."""

    counter: CounterTag | None = None
    power: PowerTag | None = None
    max_power: float | None = Field(
        default=None,
        gt=0,
        description="kW the source can never exceed. Counter changes beyond it are rejected "
        "as jumps, and a reset is counted from zero when plausible.",
    )

    @model_validator(mode="after")
    def _has_a_source(self) -> EnergyConfig:
        if self.counter is None and self.power is None:
            raise ValueError("give a counter, a power tag, or both")
        return self


class MeterConfig(EnergyConfig):
    """An energy meter on one device."""

    name: Name | None = Field(default=None, description="Metric device name; default: device.")
    device: Name

    @property
    def metric_name(self) -> str:
        return self.name or self.device


# --------------------------------------------------------------------------- machines


class StateFromTag(Strict):
    """Machine state from an enum tag: each enum label maps to off, idle, run or fault."""

    tag: Name
    map: dict[str, StateName] = Field(
        default_factory=dict,
        description="Enum label -> state; labels named off/idle/run/fault map to themselves.",
    )


class StateFromPower(Strict):
    """Machine state from power: off below `off_below`, run from `run_above`, idle between."""

    tag: Name
    unit: PowerUnit = "kW"
    off_below: float = Field(ge=0)
    run_above: float = Field(gt=0)
    hysteresis: float = Field(default=0.0, ge=0, description="kW band around each threshold.")
    min_dwell: Duration = Field(
        default=0.0, ge=0, le=3600, description="A new state must hold this long to count."
    )

    @model_validator(mode="after")
    def _thresholds_apart(self) -> StateFromPower:
        if not self.off_below + self.hysteresis / 2 < self.run_above - self.hysteresis / 2:
            raise ValueError("off_below and run_above (with the hysteresis band) overlap")
        return self


class PartsConfig(Strict):
    """Parts counters (rollover-aware): total produced, good, scrap; two of them suffice."""

    total: Name | None = None
    good: Name | None = None
    scrap: Name | None = None
    rollover: int | Literal["auto", "none"] = Field(
        default="auto", description="Count at which the counters wrap; auto: from the register."
    )

    @model_validator(mode="after")
    def _enough_counters(self) -> PartsConfig:
        given = [c for c in (self.total, self.good, self.scrap) if c is not None]
        if not given:
            raise ValueError("give at least one of total, good, scrap")
        if self.total is None and (self.good is None or self.scrap is None):
            raise ValueError("without total, both good and scrap are needed")
        return self


class MachineConfig(Strict):
    """A machine: state, parts and ideal cycle time for OEE, optional energy for idle energy."""

    name: Name | None = Field(default=None, description="Metric device name; default: device.")
    device: Name
    state: StateFromTag | None = None
    state_from_power: StateFromPower | None = None
    max_gap: Duration | None = Field(
        default=None,
        gt=0,
        description="State samples further apart leave the time between unknown; "
        "default 2.5 x the poll interval.",
    )
    ideal_cycle_time: Duration | None = Field(default=None, gt=0, description="Seconds per part.")
    parts: PartsConfig | None = None
    energy: EnergyConfig | None = Field(
        default=None, description="The machine's own energy tags (on the same device)."
    )
    planned: Literal["shifts", "always"] | None = Field(
        default=None,
        description="Planned time: the shift calendar, or always (utilities); "
        "default: shifts if the plant has any.",
    )

    @model_validator(mode="after")
    def _one_state_source(self) -> MachineConfig:
        if (self.state is None) == (self.state_from_power is None):
            raise ValueError("give exactly one of state (a tag) and state_from_power")
        return self

    @property
    def metric_name(self) -> str:
        return self.name or self.device


# --------------------------------------------------------------------------- plant


class BreakConfig(Strict):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        parse_clock(value, allow_24=True)
        return value


class ShiftConfig(Strict):
    """A shift in local time; `end` may be 24:00 or earlier than `start` (crosses midnight)."""

    name: Name
    start: str
    end: str
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    breaks: list[BreakConfig] = Field(default_factory=list)

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str) -> str:
        parse_clock(value, allow_24=True)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> ShiftConfig:
        if parse_clock(self.start) == parse_clock(self.end, allow_24=True) % (24 * 60):
            raise ValueError("a shift of zero length (for a whole day write 00:00 to 24:00)")
        return self


class CoalEquivalent(Strict):
    """kWh -> kgce by GB/T 2589-2020: equivalent value (default) or equal value."""

    method: Literal["equivalent_value", "equal_value"] = "equivalent_value"
    kgce_per_kwh: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Required for equal_value (the year's coal consumption of power supply, "
        "e.g. about 0.30); overrides 0.1229 for equivalent_value.",
    )

    @model_validator(mode="after")
    def _equal_value_needs_factor(self) -> CoalEquivalent:
        if self.method == "equal_value" and self.kgce_per_kwh is None:
            raise ValueError(
                "equal_value needs kgce_per_kwh (the coal consumption of power supply of the "
                "year you report, e.g. about 0.30 kgce/kWh)"
            )
        return self

    @property
    def coefficient(self) -> float:
        return self.kgce_per_kwh if self.kgce_per_kwh is not None else KGCE_PER_KWH_EQUIVALENT


def _window(value: str) -> str:
    parse_window(value)
    return value


WindowName = Annotated[str, AfterValidator(_window)]


class MetricsConfig(Strict):
    """Edge metrics of the plant (docs/METRICS.md)."""

    windows: list[WindowName] = Field(
        default_factory=lambda: ["15m", "1h", "1d"],
        min_length=1,
        description="Published windows: 1d, shift, or a duration dividing an hour (1m, 15m, 1h).",
    )
    grace: Duration = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="A window closes this long after its end; later samples count as late.",
    )
    min_coverage: float = Field(
        default=0.9, ge=0, le=1, description="Below this share of good data a window is uncertain."
    )
    coal_equivalent: CoalEquivalent = CoalEquivalent()
    grid_emission_factor: float = Field(
        default=GRID_FACTOR_CN_2022,
        ge=0,
        le=5,
        description="kgCO2e per kWh of grid electricity (default: China 2022 national average).",
    )
    shifts: list[ShiftConfig] = Field(default_factory=list)
    meters: list[MeterConfig] = Field(default_factory=list)
    machines: list[MachineConfig] = Field(default_factory=list)
    plant_total: list[Name] = Field(
        default_factory=list,
        description="Meters whose sum is published as the plant's energy (device = plant name).",
    )
    save_interval: Duration = Field(
        default=60.0, ge=1, le=3600, description="Seconds between saves of the accumulators."
    )
    # baseline part (issue 16): ISO 50006 baselines and measured savings
    baselines: list[BaselineConfig] = Field(
        default_factory=list,
        description="Energy baselines: savings and EnPIs per window (docs/METRICS.md).",
    )


def summary_lines(metrics: MetricsConfig) -> list[str]:
    """What ``edge-agent check`` prints about the metrics section."""
    lines = [f"metrics: windows {', '.join(metrics.windows)}; grace {metrics.grace:g}s"]
    for meter in metrics.meters:
        sources = [s for s, given in (("counter", meter.counter), ("power", meter.power)) if given]
        lines.append(f"  meter {meter.metric_name}: {' + '.join(sources)} of {meter.device}")
    for machine in metrics.machines:
        how = "state tag" if machine.state is not None else "state from power"
        extras = [x for x, given in (("parts", machine.parts), ("energy", machine.energy)) if given]
        lines.append(
            f"  machine {machine.metric_name}: {how}"
            + (f", {', '.join(extras)}" if extras else "")
            + (f", ideal cycle {machine.ideal_cycle_time:g}s" if machine.ideal_cycle_time else "")
        )
    if metrics.shifts:
        shifts = ", ".join(f"{s.name} {s.start}-{s.end}" for s in metrics.shifts)
        lines.append(f"  shifts: {shifts}")
    if metrics.plant_total:
        lines.append(f"  plant total: {' + '.join(metrics.plant_total)}")
    for baseline in metrics.baselines:
        source = (
            f"csv {baseline.fit.csv}"
            if isinstance(baseline.fit, FitCsv)
            else f"{baseline.fit.start} to {baseline.fit.to}"
        )
        lines.append(
            f"  baseline {baseline.name}: {' + '.join(baseline.meters)} per {baseline.window} "
            f"on {', '.join(baseline.variables)}; fit from {source}"
        )
    lines.append(
        f"  {metrics.coal_equivalent.coefficient:g} kgce/kWh, "
        f"{metrics.grid_emission_factor:g} kgCO2e/kWh"
    )
    return lines
