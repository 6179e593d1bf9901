"""A production machine (CNC, press, compressor) as a pure, seeded state machine.

State follows the shift calendar: off outside shifts; during a shift the
machine alternates run stretches with idle gaps and faults whose durations are
drawn from seeded exponential distributions. Motor power follows the state (with
seeded noise), and parts are produced at the ideal cycle time slowed by a
seeded per-cycle variation; each part is good or scrap by a seeded draw.

No I/O and no clock of its own: time comes from :meth:`advance_to`. Ground
truth (energy, time in each state, parts) is kept in integers and is exact.

Settings (:meth:`Machine.write`): a client may set the ``mode`` (0 auto: follow the
shifts; 1 stop: off until set back to auto) and, on a compressor, the
``pressure_setpoint_bar`` (see :class:`~simulators.machine_params.CompressorParams`
for its effect on power and duty). The new value shows at once in :meth:`read` (a
device shows the setting it stored) and acts from the step after the write: every
decision is taken at a step boundary, so ground truth stays exact and the same seeds
with the same writes at the same times give the same plant. Each accepted write is
kept in :attr:`MachineTruth.changes`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from simulators.energy_model import OutdoorTemperature, PowerModel
from simulators.machine_params import (
    AnyMachineParams,
    CncParams,
    CompressorParams,
    MachineParams,
    PressParams,
    Shift,
    StateValues,
)
from simulators.machine_state import (
    COMPRESSOR_QUANTITIES,
    COMPRESSOR_SETTINGS,
    MACHINE_QUANTITIES,
    MACHINE_SETTINGS,
    STATUS_BITS,
    MachineMode,
    MachineState,
    SettingChange,
    SettingError,
)
from simulators.schema import Value
from simulators.shifts import ShiftCalendar
from simulators.stepping import MW_PER_KW, UJ_PER_KWH, SteppedModel, noise_at, noise_key

__all__ = [
    "ACKNOWLEDGE",
    "COMPRESSOR_QUANTITIES",
    "MACHINE_QUANTITIES",
    "STATUS_BITS",
    "AnyMachineParams",
    "CncParams",
    "CompressorParams",
    "Machine",
    "MachineMode",
    "MachineParams",
    "MachineState",
    "MachineTruth",
    "PressParams",
    "SettingChange",
    "SettingError",
    "Shift",
    "StateValues",
]

#: The quantity of an alarm acknowledgement in :attr:`MachineTruth.changes`.
ACKNOWLEDGE = "acknowledge_alarm"

# Noise channels: distinct streams of the counter-based noise.
_CH_POWER = 1
_CH_SPEED = 2
_CH_OUTDOOR = 3


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
    #: Every accepted write since start, oldest first (the settings' history).
    changes: tuple[SettingChange, ...] = ()

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
        self._mode = MachineMode.AUTO
        #: What :meth:`read` shows: the settings as last written (they act a step later).
        self._settings: dict[str, Value] = {"mode": int(MachineMode.AUTO)}
        self._pending: dict[str, Value] = {}
        self._changes: list[SettingChange] = []
        self._loaded_factor = 1.0
        self._acknowledged = False
        if isinstance(params, CompressorParams):
            self._settings["pressure_setpoint_bar"] = params.setpoint_bar
            self._apply_setpoint(params.setpoint_bar)
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
            changes=tuple(self._changes),
        )

    # --------------------------------------------------------------- settings

    @property
    def settings(self) -> frozenset[str]:
        """The quantities :meth:`write` takes."""
        if isinstance(self.params, CompressorParams):
            return COMPRESSOR_SETTINGS
        return MACHINE_SETTINGS

    @property
    def mode(self) -> MachineMode:
        """The mode acting in the current step."""
        return self._mode

    def write(self, quantity: str, value: Value) -> SettingChange:
        """Set ``quantity`` now; it acts from the next step (see the module docstring).

        Raises :class:`SettingError` for a quantity that is not a setting or a value
        the machine does not take (nothing changes then).
        """
        accepted = self.check(quantity, value)
        return self._record(quantity, accepted)

    def acknowledge_alarm(self, code: int) -> SettingChange:
        """Acknowledge the active alarm ``code``: the fault ends at the next step (the
        machine goes idle, then runs again as after any stop). Raises
        :class:`SettingError` when no alarm is active or another one is."""
        if self._state is not MachineState.FAULT:
            raise SettingError("no alarm is active")
        if code != self._alarm:
            raise SettingError(f"alarm {self._alarm} is active, not {code}")
        return self._record(ACKNOWLEDGE, code)

    def _record(self, quantity: str, accepted: Value) -> SettingChange:
        change = SettingChange(
            time_ms=self._now_ms,
            step=self._k + 1,
            effective_ms=self.boundary_ms(self._k + 1),
            quantity=quantity,
            value=accepted,
        )
        if quantity != ACKNOWLEDGE:
            self._settings[quantity] = accepted
        self._pending[quantity] = accepted
        self._changes.append(change)
        return change

    def check(self, quantity: str, value: Value) -> Value:
        """The value :meth:`write` would store for ``value`` (an int mode, a float
        setpoint); :class:`SettingError` if the machine does not take it."""
        if quantity not in self.settings:
            takes = ", ".join(sorted(self.settings))
            raise SettingError(f"{quantity!r} is not a setting of this machine (takes: {takes})")
        if isinstance(value, str) or (isinstance(value, float) and not math.isfinite(value)):
            raise SettingError(f"{quantity}: {value!r} is not a finite number")
        if quantity == "mode":
            if value not in tuple(MachineMode) or (
                isinstance(value, float) and not value.is_integer()
            ):
                raise SettingError(f"mode: {value!r} is not 0 (auto) or 1 (stop)")
            return int(value)
        params = self.params
        assert isinstance(params, CompressorParams)
        low, high = params.setpoint_min_bar, params.setpoint_max_bar
        if not low <= value <= high:
            raise SettingError(f"pressure_setpoint_bar: {value} is outside {low}-{high} bar")
        return float(value)

    def _apply_pending(self) -> None:
        for quantity, value in self._pending.items():
            if quantity == "mode":
                self._mode = MachineMode(value)
            elif quantity == ACKNOWLEDGE:
                self._acknowledged = True
            elif quantity == "pressure_setpoint_bar":
                assert isinstance(value, float)
                self._apply_setpoint(value)
        self._pending.clear()

    def _apply_setpoint(self, setpoint_bar: float) -> None:
        params = self.params
        assert isinstance(params, CompressorParams)
        power, duty = params.pressure_factors(setpoint_bar)
        self._loaded_factor = power
        nominal = [params.power_kw.of(s) * MW_PER_KW for s in MachineState]
        nominal[MachineState.RUN] *= power
        self._nominal_mw = tuple(nominal)
        means = [1000 * params.mean_idle_s / duty, 1000 * params.mean_run_s * duty]
        self._mean_ms = (0.0, means[0], means[1], 1000 * params.mean_fault_s)

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
            **self._settings,
        }

    # --------------------------------------------------------------- stepping

    def _enter_step(self, k: int) -> None:
        t_ms = self._start_ms + k * self._step_ms
        if self._pending:
            self._apply_pending()
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
        if running and self._loaded_factor != 1.0:
            actual, counterfactual = (
                actual * self._loaded_factor,
                counterfactual * self._loaded_factor,
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
        acknowledged, self._acknowledged = self._acknowledged, False
        if self._mode is MachineMode.STOP or not self._calendar.in_shift_ms(t_ms):
            self._state, self._alarm = MachineState.OFF, 0
            return
        if acknowledged and self._state is MachineState.FAULT:
            self._enter(MachineState.IDLE, t_ms)
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
