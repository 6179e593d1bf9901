"""A production machine (CNC, press, compressor) as a pure, seeded state machine.

State follows the shift calendar: off outside shifts; during a shift the
machine alternates run stretches with idle gaps and faults whose durations are
drawn from seeded exponential distributions. Motor power follows the state (with
seeded noise), and parts are produced at the ideal cycle time slowed by a
seeded per-cycle variation; each part is good or scrap by a seeded draw.

No I/O and no clock of its own: time comes from :meth:`advance_to`. Ground
truth (energy, time in each state, parts) is kept in integers and is exact.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import Field, field_validator

from simulators.energy_model import (
    EfficiencyChange,
    EnergyModel,
    Outdoor,
    OutdoorTemperature,
    PowerModel,
)
from simulators.schema import Quantity, Strict, Value
from simulators.shifts import WEEKDAYS, ShiftCalendar, ShiftWindow, Weekday, parse_clock
from simulators.stepping import MW_PER_KW, UJ_PER_KWH, SteppedModel, noise_at, noise_key


class MachineState(enum.IntEnum):
    """Served as a uint16: 0 off, 1 idle, 2 run, 3 fault."""

    OFF = 0
    IDLE = 1
    RUN = 2
    FAULT = 3


#: Bits of the ``status_word`` quantity (bit 0 = least significant).
STATUS_BITS: Mapping[str, int] = MappingProxyType(
    {"powered": 0, "running": 1, "fault": 2, "idle": 3}
)

# Noise channels: distinct streams of the counter-based noise.
_CH_POWER = 1
_CH_SPEED = 2
_CH_OUTDOOR = 3


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
    """Run = loaded, idle = unloaded (motor turning, no air delivered)."""

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


AnyMachineParams = CncParams | PressParams | CompressorParams

#: Everything a machine can serve, with its kind, unit of measure and meaning.
MACHINE_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        "state": Quantity("int", "", "0 off, 1 idle, 2 run, 3 fault"),
        "status_word": Quantity("int", "", "bit 0 powered, bit 1 running, bit 2 fault, bit 3 idle"),
        "powered": Quantity("bool", "", "state is not off"),
        "idle": Quantity("bool", "", "state is idle"),
        "running": Quantity("bool", "", "state is run"),
        "fault": Quantity("bool", "", "state is fault"),
        "alarm_code": Quantity("int", "", "active alarm, 0 when not in fault"),
        "power_kw": Quantity("float", "kW", "motor power during the current step"),
        "energy_kwh": Quantity(
            "float", "kWh", "energy counter: initial + consumed, floored to energy_resolution_kwh"
        ),
        "parts_total": Quantity("int", "", "parts_good + parts_scrap"),
        "parts_good": Quantity("int", "", "initial_good + good parts made since start"),
        "parts_scrap": Quantity("int", "", "initial_scrap + scrap parts made since start"),
        "ideal_cycle_time_s": Quantity("float", "s", "0 for equipment that makes no parts"),
        "last_cycle_time_s": Quantity("float", "s", "duration of the last finished cycle"),
        "program": Quantity("str", "", "active program (changes at shift start)"),
        "speed_rpm": Quantity("float", "rpm", "spindle / strokes per min / motor speed"),
        "position_um": Quantity("int", "µm", "axis or ram position, moves with the cycle"),
        "position_mm": Quantity("float", "mm", "position_um / 1000 (for points scaled to mm)"),
        "run_seconds": Quantity("int", "s", "whole seconds spent in run since start"),
        "outdoor_c": Quantity("float", "degC", "outdoor temperature (the energy model's)"),
    }
)


@dataclass(frozen=True)
class MachineTruth:
    """What really happened since the model started (exact, integer based)."""

    elapsed_ms: int
    state: MachineState
    ms_in_state: Mapping[MachineState, int]
    energy_uj: int
    parts_good: int
    parts_scrap: int
    #: Energy the machine would have drawn without its efficiency change.
    counterfactual_energy_uj: int = 0

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_ms / 1000

    @property
    def seconds_in_state(self) -> dict[MachineState, float]:
        return {s: ms / 1000 for s, ms in self.ms_in_state.items()}

    @property
    def energy_kwh(self) -> float:
        return self.energy_uj / UJ_PER_KWH

    @property
    def parts_total(self) -> int:
        return self.parts_good + self.parts_scrap


class Machine(SteppedModel):
    """A seeded machine model; see the module docstring for its behaviour."""

    def __init__(
        self,
        params: MachineParams,
        *,
        seed: int,
        start: float,
        step_s: float = 1.0,
        timezone: str = "UTC",
    ) -> None:
        super().__init__(start=start, step_s=step_s)
        self.params = params
        self._seed = seed
        self._power_key = noise_key(seed, _CH_POWER)
        self._speed_key = noise_key(seed, _CH_SPEED)
        # Hot path (86,400 steps a simulated day): per-state values as tuples.
        self._nominal_mw = tuple(params.power_kw.of(s) * MW_PER_KW for s in MachineState)
        self._mean_ms = tuple(
            1000 * m for m in (0.0, params.mean_idle_s, params.mean_run_s, params.mean_fault_s)
        )
        # Separate streams: changing the scrap rate must not move the faults.
        self._events = random.Random(f"{seed}:events")
        self._quality = random.Random(f"{seed}:quality")
        self._calendar = ShiftCalendar((s.window() for s in params.shifts), params.days, timezone)
        self._energy_res_uj = max(1, round(params.energy_resolution_kwh * UJ_PER_KWH))
        self._initial_energy_count = round(params.initial_energy_kwh / params.energy_resolution_kwh)
        self._ideal_cycle_ms = (
            0 if params.cycle_time_s is None else max(1, round(params.cycle_time_s * 1000))
        )
        self._state = MachineState.OFF
        self._state_until_ms = 0
        self._alarm = 0
        self._program = params.programs[0]
        self._power_mw = 0
        self._energy_uj = 0
        self._state_ms = dict.fromkeys(MachineState, 0)
        self._parts_good = 0
        self._parts_scrap = 0
        self._progress_ms = 0
        self._cycle_ms = self._draw_cycle_ms()
        self._last_cycle_ms = 0
        self._outdoor = OutdoorTemperature(
            params.outdoor, noise_key(seed, _CH_OUTDOOR), timezone, self._start_ms
        )
        model, change = params.energy_model, params.efficiency_change
        self._power_model = None if model is None else PowerModel(model, change)
        self._cf_power_mw = 0
        self._cf_energy_uj = 0
        self._enter_step(0)

    # ------------------------------------------------------------------ reads

    @property
    def state(self) -> MachineState:
        return self._state

    @property
    def power_mw(self) -> int:
        """Power during the current step, exact integer milliwatts."""
        return self._power_mw

    @property
    def power_kw(self) -> float:
        return self._power_mw / MW_PER_KW

    def energy_uj(self) -> int:
        """Exact energy since start, including the part of the current step elapsed."""
        return self._energy_uj + self._power_mw * self._into_step_ms()

    def truth(self) -> MachineTruth:
        ms_in_state = dict(self._state_ms)
        ms_in_state[self._state] += self._into_step_ms()
        return MachineTruth(
            elapsed_ms=self._now_ms - self.start_ms,
            state=self._state,
            ms_in_state=MappingProxyType(ms_in_state),
            energy_uj=self.energy_uj(),
            parts_good=self._parts_good,
            parts_scrap=self._parts_scrap,
            counterfactual_energy_uj=self._cf_energy_uj + self._cf_power_mw * self._into_step_ms(),
        )

    def outdoor_c(self) -> float:
        """Outdoor temperature during the current step."""
        return self._outdoor.celsius(self._start_ms + self._k * self._step_ms)

    def read(self) -> dict[str, Value]:
        """Every quantity of :data:`MACHINE_QUANTITIES` at the model's current time."""
        state = self._state
        status = 0
        flags = {
            "powered": state is not MachineState.OFF,
            "running": state is MachineState.RUN,
            "fault": state is MachineState.FAULT,
            "idle": state is MachineState.IDLE,
        }
        for name, bit in STATUS_BITS.items():
            status |= flags[name] << bit
        good = self.params.initial_good + self._parts_good
        scrap = self.params.initial_scrap + self._parts_scrap
        energy_count = self._initial_energy_count + self.energy_uj() // self._energy_res_uj
        speed = self.params.speed_rpm.of(state) * (
            1 + self.params.speed_noise * noise_at(self._speed_key, self._k)
        )
        phase = self._progress_ms / self._cycle_ms if self._cycle_ms else 0.0
        run_ms = self._state_ms[MachineState.RUN] + (
            self._into_step_ms() if state is MachineState.RUN else 0
        )
        position_um = round(
            self.params.position_amplitude_mm * 1000 * math.sin(2 * math.pi * phase)
        )
        return {
            "state": int(state),
            "status_word": status,
            **flags,
            "alarm_code": self._alarm,
            "power_kw": self.power_kw,
            "energy_kwh": energy_count * self.params.energy_resolution_kwh,
            "parts_total": good + scrap,
            "parts_good": good,
            "parts_scrap": scrap,
            "ideal_cycle_time_s": self._ideal_cycle_ms / 1000,
            "last_cycle_time_s": self._last_cycle_ms / 1000,
            "program": self._program,
            "speed_rpm": speed,
            "position_um": position_um,
            "position_mm": position_um / 1000,
            "run_seconds": run_ms // 1000,
            "outdoor_c": self.outdoor_c(),
        }

    # --------------------------------------------------------------- stepping

    def _enter_step(self, k: int) -> None:
        t_ms = self._start_ms + k * self._step_ms
        self._update_state(t_ms, first=k == 0)
        if self._power_model is not None:
            self._enter_modelled_step(k, t_ms)
            return
        nominal = self._nominal_mw[self._state]
        if nominal:
            factor = 1 + self.params.power_noise * noise_at(self._power_key, k)
            self._power_mw = round(nominal * factor)
        else:
            self._power_mw = 0
        self._cf_power_mw = self._power_mw

    def _enter_modelled_step(self, k: int, t_ms: int) -> None:
        """Power of the energy model (simulators/energy_model.py) while powered."""
        assert self._power_model is not None
        if self._state is MachineState.OFF:
            self._power_mw = self._cf_power_mw = 0
            return
        running = self._state is MachineState.RUN
        actual, counterfactual = self._power_model.nominal_mw(
            t_ms, running, self._cycle_ms, self._outdoor.celsius(t_ms)
        )
        factor = 1 + self.params.power_noise * noise_at(self._power_key, k)
        self._power_mw = round(actual * factor)
        self._cf_power_mw = round(counterfactual * factor)

    def _leave_step(self) -> None:
        step = self._step_ms
        self._energy_uj += self._power_mw * step
        self._cf_energy_uj += self._cf_power_mw * step
        self._state_ms[self._state] += step
        if self._state is not MachineState.RUN or not self._cycle_ms:
            return
        self._progress_ms += step
        while self._progress_ms >= self._cycle_ms:
            self._progress_ms -= self._cycle_ms
            self._last_cycle_ms = self._cycle_ms
            if self._quality.random() < self.params.scrap_rate:
                self._parts_scrap += 1
            else:
                self._parts_good += 1
            self._cycle_ms = self._draw_cycle_ms()

    def _update_state(self, t_ms: int, *, first: bool) -> None:
        if not self._calendar.in_shift_ms(t_ms):
            self._state, self._alarm = MachineState.OFF, 0
            return
        if self._state is MachineState.OFF:
            # Shift start (or a start in the middle of a shift).
            self._program = self._events.choice(self.params.programs)
            if first:
                self._enter_drawn_state(t_ms)
            else:
                self._enter(MachineState.IDLE, t_ms)  # warm-up, set-up
            return
        if t_ms < self._state_until_ms:
            return
        if self._state is not MachineState.RUN:
            self._enter(MachineState.RUN, t_ms)
        elif self._events.random() < self.params.fault_probability:
            self._enter(MachineState.FAULT, t_ms)
        else:
            self._enter(MachineState.IDLE, t_ms)

    def _enter_drawn_state(self, t_ms: int) -> None:
        """Starting mid-shift: draw the state from the long-run shares of time.

        Run stretches alternate with stops, a stop being a fault with probability
        ``fault_probability``, so over a long shift the shares of time are
        proportional to ``mean_run : (1 - p) * mean_idle : p * mean_fault``.
        """
        p = self.params
        weights = {
            MachineState.RUN: p.mean_run_s,
            MachineState.IDLE: (1 - p.fault_probability) * p.mean_idle_s,
            MachineState.FAULT: p.fault_probability * p.mean_fault_s,
        }
        (state,) = self._events.choices(list(weights), weights=list(weights.values()))
        self._enter(state, t_ms)

    def _enter(self, state: MachineState, t_ms: int) -> None:
        mean_ms = self._mean_ms[state]
        duration_ms = max(self._step_ms, round(self._events.expovariate(1 / mean_ms)))
        self._state = state
        self._state_until_ms = t_ms + duration_ms
        self._alarm = (
            self._events.choice(self.params.alarm_codes) if state is MachineState.FAULT else 0
        )

    def _draw_cycle_ms(self) -> int:
        if not self._ideal_cycle_ms:
            return 0
        slowdown = 1 + self.params.cycle_variation * self._quality.random()
        return max(1, round(self._ideal_cycle_ms * slowdown))
