"""The ``metrics:`` section of the plant file: meters, machines, windows, shifts, factors.

``PlantConfig.metrics`` refers to :class:`MetricsConfig`. Rules that need the devices
(do the referenced devices and tags exist, are they numeric, is there an enum map)
are in :mod:`edge_agent.config.checks.metrics`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.baseline import BaselineConfig
from edge_agent.config.carriers import (
    DEFAULT_GRID_SELECTION,
    ELECTRICITY,
    CarrierName,
    CounterUnit,
    FlowUnit,
    GridFactorSelection,
    MeterUnits,
    electric_problem,
    grid_setting,
    meter_units,
)
from edge_agent.config.clock import ClockEnd, ClockStart
from edge_agent.config.guard import DemandGuardConfig, EventsConfig
from edge_agent.config.reports import ReportsConfig
from edge_agent.config.tariff import TariffConfig
from edge_agent.metrics.conversions import KGCE_PER_KWH_EQUIVALENT
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
    unit: CounterUnit = Field(
        default="kWh",
        description="Wh | kWh | MWh for electricity; another carrier's unit (m3, Nm3, t, kg, "
        "GJ, MJ) for a meter with that carrier.",
    )
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
    unit: FlowUnit = Field(
        default="kW",
        description="W | kW | MW for electricity; a flow (m3/h, Nm3/h, t/h, kg/h, GJ/h, MJ/h) "
        "for a meter with another carrier, integrated like power.",
    )
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
        description="kW the source can never exceed (another carrier: its counter unit per "
        "hour). Counter changes beyond it are rejected as jumps, and a reset is counted from "
        "zero when plausible.",
    )

    @model_validator(mode="after")
    def _has_a_source(self) -> EnergyConfig:
        if self.counter is None and self.power is None:
            raise ValueError("give a counter, a power tag, or both")
        if self.is_electric:
            problem = electric_problem(
                None if self.counter is None else self.counter.unit,
                None if self.power is None else self.power.unit,
            )
            if problem:
                raise ValueError(problem)
        return self

    @property
    def is_electric(self) -> bool:
        """A machine's energy is electricity; a meter says its carrier."""
        return True


class MeterConfig(EnergyConfig):
    """An energy meter on one device: electricity, or another carrier (docs/METRICS.md)."""

    name: Name | None = Field(default=None, description="Metric device name; default: device.")
    device: Name
    # ---- carriers (issue 16): the energy carrier and its coefficients
    carrier: CarrierName = Field(
        default=ELECTRICITY, description="Energy carrier; non-electric meters publish `carrier`."
    )
    kgce_per_unit: float | None = Field(
        default=None,
        gt=0,
        description="kgce per counter unit, instead of the GB/T 2589 reference value "
        "(natural gas: from the plant's own calorific value). Not for electricity.",
    )
    calorific_value: float | None = Field(
        default=None,
        gt=0,
        description="Net calorific value in MJ per counter unit (kgce = MJ / 29.3076). "
        "Not for electricity.",
    )
    kgco2e_per_unit: float | None = Field(
        default=None,
        ge=0,
        description="kgCO2e per counter unit; the carrier batch has kgco2e only with it. "
        "Not for electricity (grid_emission_factor).",
    )

    @model_validator(mode="after")
    def _carrier_units(self) -> MeterConfig:
        if self.carrier == ELECTRICITY:
            own = (
                ("kgce_per_unit", self.kgce_per_unit),
                ("calorific_value", self.calorific_value),
                ("kgco2e_per_unit", self.kgco2e_per_unit),
            )
            given = [key for key, value in own if value is not None]
            if given:
                raise ValueError(
                    f"{given[0]}: not for electricity (use metrics.coal_equivalent and "
                    "metrics.grid_emission_factor)"
                )
            return self
        for key in ("tariff", "demand_guard"):
            if getattr(self, key) is not None:
                raise ValueError(f"{key}: for electricity meters only (this one is {self.carrier})")
        if self.units.kgce_per_unit <= 0:  # computing units raises naming the field
            raise ValueError("kgce_per_unit must be positive")
        return self

    @property
    def is_electric(self) -> bool:
        return self.carrier == ELECTRICITY

    @property
    def units(self) -> MeterUnits:
        """Amount unit, tag conversions and kgce coefficient of a non-electric meter."""
        return meter_units(
            self.carrier,
            None if self.counter is None else self.counter.unit,
            None if self.power is None else self.power.unit,
            self.kgce_per_unit,
            self.calorific_value,
        )

    # ---- end carriers

    demand_guard: DemandGuardConfig | None = Field(
        default=None,
        description="Predicted end-of-block demand against a limit, with events (guard).",
    )
    tariff: Name | None = Field(
        default=None,
        description="Name of the time-of-use tariff (metrics.tariffs) its energy is priced by; "
        "default: the only tariff when exactly one is configured.",
    )

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
    start: ClockEnd  # a break may start at 24:00 of a shift that runs past midnight
    end: ClockEnd


class ShiftConfig(Strict):
    """A shift in local time; `end` may be 24:00 or earlier than `start` (crosses midnight)."""

    name: Name
    start: ClockStart
    end: ClockEnd
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    breaks: list[BreakConfig] = Field(default_factory=list)

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
    grid_emission_factor: float | GridFactorSelection = Field(
        default=DEFAULT_GRID_SELECTION,
        description="kgCO2e per kWh of grid electricity: a number, or {year, scope, region} "
        "from the published table (default: the latest national average, 2023).",
    )
    shifts: list[ShiftConfig] = Field(default_factory=list)
    meters: list[MeterConfig] = Field(default_factory=list)
    machines: list[MachineConfig] = Field(default_factory=list)
    tariffs: list[TariffConfig] = Field(
        default_factory=list,
        description="Time-of-use tariffs (docs/METRICS.md, cost by time-of-use tariff).",
    )
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
    events: EventsConfig = Field(
        default_factory=EventsConfig,
        description="Idle-energy and stalled-meter events (guard); none unless configured.",
    )
    # reports part (issue 16)
    reports: ReportsConfig = ReportsConfig()

    @field_validator("grid_emission_factor", mode="before")
    @classmethod
    def _grid_setting(cls, value: object) -> object:
        return grid_setting(value)

    def tariff_of(self, meter: MeterConfig) -> TariffConfig | None:
        """The tariff pricing ``meter``: its own, else the only one configured, else none
        (tariffs price electricity: a meter of another carrier has none)."""
        if not meter.is_electric:
            return None
        if meter.tariff is None:
            return self.tariffs[0] if len(self.tariffs) == 1 else None
        return next((t for t in self.tariffs if t.name == meter.tariff), None)
