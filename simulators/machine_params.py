"""Parameters of the machine models (CNC, press, compressor), validated once and frozen.

Kept apart from :mod:`simulators.machine` (the state machine itself) so that each
module stays small; :mod:`simulators.machine` re-exports every name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from simulators.energy_model import EfficiencyChange, EnergyModel, Outdoor
from simulators.machine_state import MachineState
from simulators.schema import Strict
from simulators.shifts import WEEKDAYS, ShiftWindow, Weekday, parse_clock


class StateValues(Strict):
    """One number per machine state (power in kW, speed in rpm, ...)."""

    off: float = Field(default=0.0, ge=0)
    idle: float = Field(ge=0)
    run: float = Field(ge=0)
    fault: float = Field(ge=0)

    def of(self, state: MachineState) -> float:
        return {
            MachineState.OFF: self.off,
            MachineState.IDLE: self.idle,
            MachineState.RUN: self.run,
            MachineState.FAULT: self.fault,
        }[state]


class Shift(Strict):
    """A shift in local time; ``end`` may be ``"24:00"`` or earlier than ``start`` (overnight)."""

    start: str
    end: str

    @field_validator("start")
    @classmethod
    def _valid_start(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("end")
    @classmethod
    def _valid_end(cls, value: str) -> str:
        parse_clock(value, allow_24=True)
        return value

    def window(self) -> ShiftWindow:
        start, end = parse_clock(self.start), parse_clock(self.end, allow_24=True)
        if start == end:
            raise ValueError("a shift of zero length (for the whole day write 00:00 to 24:00)")
        return ShiftWindow(start, end)


_TWO_SHIFTS = (Shift(start="06:00", end="14:00"), Shift(start="14:00", end="22:00"))


class MachineParams(Strict):
    """Parameters common to every machine kind; each kind sets its own defaults."""

    kind: Literal["cnc", "press", "compressor", "drive"]
    shifts: tuple[Shift, ...] = Field(default=_TWO_SHIFTS, min_length=1)
    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, min_length=1)
    power_kw: StateValues
    power_noise: float = Field(default=0.05, ge=0, lt=1, description="Relative, uniform ±.")
    speed_rpm: StateValues
    speed_noise: float = Field(default=0.01, ge=0, lt=1)
    cycle_time_s: float | None = Field(
        gt=0, description="Ideal cycle time; None for equipment that makes no parts."
    )
    cycle_variation: float = Field(
        default=0.1, ge=0, le=1, description="Each cycle lasts ideal x (1 + U(0, variation))."
    )
    scrap_rate: float = Field(default=0.02, ge=0, le=1)
    mean_run_s: float = Field(default=1800.0, gt=0)
    mean_idle_s: float = Field(default=240.0, gt=0)
    fault_probability: float = Field(
        default=0.2, ge=0, le=1, description="Share of stops that are faults, not idle gaps."
    )
    mean_fault_s: float = Field(default=600.0, gt=0)
    alarm_codes: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        default=(1001,), min_length=1
    )
    programs: tuple[str, ...] = Field(default=("MAIN",), min_length=1)
    position_amplitude_mm: float = Field(default=0.0, ge=0, le=2000)
    initial_good: int = Field(default=0, ge=0, description="Good-part counter at start.")
    initial_scrap: int = Field(default=0, ge=0, description="Scrap counter at start.")
    initial_energy_kwh: float = Field(default=0.0, ge=0)
    energy_resolution_kwh: float = Field(default=0.001, ge=1e-6)
    energy_model: EnergyModel | None = Field(
        default=None,
        description="Power from idle + energy per part + temperature (replaces power_kw).",
    )
    outdoor: Outdoor = Outdoor()
    efficiency_change: EfficiencyChange | None = Field(
        default=None, description="A known efficiency change at a known time (energy_model)."
    )

    @field_validator("programs")
    @classmethod
    def _ascii_programs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not all(p.isascii() and p.isprintable() for p in value):
            raise ValueError("program names must be printable ASCII (they are served as bytes)")
        return value

    @field_validator("shifts")
    @classmethod
    def _valid_shifts(cls, value: tuple[Shift, ...]) -> tuple[Shift, ...]:
        for shift in value:
            shift.window()
        return value


class CncParams(MachineParams):
    kind: Literal["cnc"]
    power_kw: StateValues = StateValues(idle=2.5, run=14.0, fault=1.2)
    speed_rpm: StateValues = StateValues(idle=0.0, run=8000.0, fault=0.0)
    cycle_time_s: float | None = Field(default=95.0, gt=0)
    alarm_codes: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        default=(1001, 2040, 3002, 4105), min_length=1
    )
    programs: tuple[str, ...] = Field(
        default=("O1001 FLANGE", "O1002 SHAFT", "O2050 HOUSING"), min_length=1
    )
    position_amplitude_mm: float = Field(default=150.0, ge=0, le=2000)


class PressParams(MachineParams):
    kind: Literal["press"]
    power_kw: StateValues = StateValues(idle=5.0, run=28.0, fault=3.0)
    power_noise: float = Field(default=0.15, ge=0, lt=1)
    speed_rpm: StateValues = StateValues(idle=0.0, run=12.0, fault=0.0)
    cycle_time_s: float | None = Field(default=5.0, gt=0)
    scrap_rate: float = Field(default=0.01, ge=0, le=1)
    mean_run_s: float = Field(default=1200.0, gt=0)
    alarm_codes: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        default=(11, 12, 31), min_length=1
    )
    programs: tuple[str, ...] = Field(default=("DIE-17 BRACKET", "DIE-22 COVER"), min_length=1)
    position_amplitude_mm: float = Field(default=120.0, ge=0, le=2000)


class CompressorParams(MachineParams):
    """Run = loaded, idle = unloaded (motor turning, no air delivered).

    The discharge pressure setpoint (a setting a client may write) moves two things,
    linearly in the distance from ``rated_pressure_bar`` (where ``power_kw`` holds):

    * loaded power x (1 + ``power_per_bar`` x (setpoint - rated)): the rule of thumb
      of compressed-air audits is about 7 % of the power per bar (1 % per 2 psi);
    * the duty: mean loaded stretch x (1 + ``duty_per_bar`` x (setpoint - rated)),
      mean unloaded stretch divided by the same factor: leaks and unregulated users
      draw less air at a lower pressure, so the compressor is loaded for less of the
      time (4 % per bar by default: leaks of about a third of the demand, their flow
      proportional to the absolute pressure of about 8 bar).

    Unloaded power does not depend on the setpoint (the sump is blown down).
    """

    kind: Literal["compressor"]
    shifts: tuple[Shift, ...] = Field(default=(Shift(start="05:30", end="22:30"),), min_length=1)
    power_kw: StateValues = StateValues(idle=9.0, run=30.0, fault=0.0)
    power_noise: float = Field(default=0.03, ge=0, lt=1)
    speed_rpm: StateValues = StateValues(idle=1480.0, run=1470.0, fault=0.0)
    cycle_time_s: float | None = Field(default=None, gt=0)
    scrap_rate: float = Field(default=0.0, ge=0, le=1)
    mean_run_s: float = Field(default=90.0, gt=0)
    mean_idle_s: float = Field(default=45.0, gt=0)
    fault_probability: float = Field(default=0.005, ge=0, le=1)
    mean_fault_s: float = Field(default=900.0, gt=0)
    alarm_codes: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = Field(
        default=(51, 52), min_length=1
    )
    programs: tuple[str, ...] = Field(default=("AUTO",), min_length=1)
    setpoint_bar: float = Field(default=7.0, description="Pressure setpoint at start.")
    rated_pressure_bar: float = Field(
        default=7.0, gt=0, description="The pressure at which power_kw and the means hold."
    )
    setpoint_min_bar: float = Field(default=4.0, gt=0, description="Lowest setpoint taken.")
    setpoint_max_bar: float = Field(default=10.0, gt=0, description="Highest setpoint taken.")
    power_per_bar: float = Field(
        default=0.07, ge=0, lt=1, description="Relative change of loaded power per bar."
    )
    duty_per_bar: float = Field(
        default=0.04, ge=0, lt=1, description="Relative change of the loaded stretch per bar."
    )

    @model_validator(mode="after")
    def _setpoint_in_range(self) -> CompressorParams:
        low, high = self.setpoint_min_bar, self.setpoint_max_bar
        if not low <= self.setpoint_bar <= high:
            raise ValueError(f"setpoint_bar {self.setpoint_bar} is outside {low}-{high} bar")
        factors = (("power_per_bar", self.power_per_bar), ("duty_per_bar", self.duty_per_bar))
        for name, per_bar in factors:
            if 1 + per_bar * (low - self.rated_pressure_bar) <= 0:
                raise ValueError(f"{name}: the factor at {low} bar would not be positive")
        return self

    def pressure_factors(self, setpoint_bar: float) -> tuple[float, float]:
        """(loaded power factor, loaded stretch factor) at ``setpoint_bar``."""
        delta = setpoint_bar - self.rated_pressure_bar
        return 1 + self.power_per_bar * delta, 1 + self.duty_per_bar * delta


AnyMachineParams = CncParams | PressParams | CompressorParams
