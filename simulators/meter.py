"""A three-phase power meter as a pure, seeded model.

Its active power in each step is a noisy base load plus the exact power of the
machines it measures, so the meter's true energy equals the base-load energy
plus the machines' true energies, to the microjoule. Everything else a meter
shows (per-phase voltage and current, reactive and apparent power, power factor,
frequency) is derived from that power with bounded seeded noise, consistently:
``S = P / PF``, ``Q = sqrt(S² - P²)``, ``I = S_phase / V_phase``.

Import energy is a counter of ``counter_resolution_kwh`` units held in
``counter_bits`` bits that rolls over like a real meter's register::

    counter = (initial_counter + floor(true_energy / resolution)) mod 2**counter_bits
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pydantic import Field, model_validator

from simulators.machine import Machine
from simulators.schema import Name, Quantity, Strict, Value
from simulators.stepping import MW_PER_KW, UJ_PER_KWH, SteppedModel, noise_at, noise_key

_CH_BASE = 11
_CH_PF = 12
_CH_SHARE = (13, 14)
_CH_VOLT = (15, 16, 17)
_CH_FREQ = 18
_ALL_CHANNELS = (_CH_BASE, _CH_PF, *_CH_SHARE, *_CH_VOLT, _CH_FREQ)

_PHASES = ("l1", "l2", "l3")


class MeterParams(Strict):
    """Parameters of a power meter; ``loads`` names machine units of the same profile."""

    kind: Literal["power_meter"]
    base_load_kw: float = Field(default=2.0, ge=0, description="Lighting, HVAC, IT...")
    base_load_noise: float = Field(default=0.05, ge=0, lt=1)
    loads: tuple[Name, ...] = ()
    nominal_voltage_v: float = Field(default=230.0, gt=0, description="Phase to neutral.")
    voltage_noise: float = Field(default=0.01, ge=0, lt=0.5)
    nominal_frequency_hz: float = Field(default=50.0, gt=0)
    frequency_noise_hz: float = Field(default=0.02, ge=0, lt=1)
    power_factor: float = Field(default=0.92, gt=0, le=1)
    power_factor_noise: float = Field(default=0.02, ge=0, lt=0.5)
    phase_imbalance: float = Field(default=0.05, ge=0, le=0.5)
    phases: Literal[1, 3] = Field(
        default=3, description="1: a single-phase meter; l1 carries all the load."
    )
    export_energy_kwh: float = Field(
        default=0.0, ge=0, description="Export register: the plant consumes, so it stays here."
    )
    counter_resolution_kwh: float = Field(default=0.01, ge=1e-6)
    counter_bits: int = Field(default=32, ge=16, le=64)
    initial_counter: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _counter_fits(self) -> MeterParams:
        if self.initial_counter >= 2**self.counter_bits:
            raise ValueError(f"initial_counter does not fit in {self.counter_bits} bits")
        if len(set(self.loads)) != len(self.loads):
            raise ValueError("loads lists a machine twice")
        return self


#: Everything a meter can serve. Voltages are phase to neutral unless named l1_l2 etc.
METER_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        **{f"voltage_{p}_n": Quantity("float", "V", f"{p} to neutral") for p in _PHASES},
        **{
            f"voltage_{a}_{b}": Quantity("float", "V", f"{a} to {b}")
            for a, b in (("l1", "l2"), ("l2", "l3"), ("l3", "l1"))
        },
        **{f"current_{p}": Quantity("float", "A", f"phase {p}") for p in _PHASES},
        **{f"power_active_{p}_kw": Quantity("float", "kW", f"phase {p}") for p in _PHASES},
        **{f"power_reactive_{p}_kvar": Quantity("float", "kvar", f"phase {p}") for p in _PHASES},
        **{f"power_apparent_{p}_kva": Quantity("float", "kVA", f"phase {p}") for p in _PHASES},
        **{f"power_factor_{p}": Quantity("float", "", f"phase {p}") for p in _PHASES},
        "power_active_kw": Quantity("float", "kW", "total active power of the current step"),
        "power_reactive_kvar": Quantity("float", "kvar", "total reactive power"),
        "power_apparent_kva": Quantity("float", "kVA", "total apparent power"),
        "power_factor": Quantity("float", "", "P / S, 1.0 when there is no load"),
        "frequency_hz": Quantity("float", "Hz", "grid frequency"),
        "energy_import_kwh": Quantity(
            "float", "kWh", "import register reading: counter x counter_resolution_kwh (rolls)"
        ),
        "energy_export_kwh": Quantity("float", "kWh", "export register (constant: no export)"),
        "energy_import_counter": Quantity(
            "int", "", "raw import counter in units of counter_resolution_kwh (rolls)"
        ),
    }
)


@dataclass(frozen=True)
class MeterTruth:
    """True import energy since start (no rollover, no resolution) and its parts."""

    elapsed_ms: int
    energy_uj: int
    base_energy_uj: int
    counter: int
    rollovers: int

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_ms / 1000

    @property
    def energy_kwh(self) -> float:
        return self.energy_uj / UJ_PER_KWH


class PowerMeter(SteppedModel):
    """A seeded power meter; see the module docstring for its behaviour."""

    def __init__(
        self,
        params: MeterParams,
        *,
        seed: int,
        start: float,
        step_s: float = 1.0,
        loads: Sequence[Machine] = (),
    ) -> None:
        super().__init__(start=start, step_s=step_s)
        for load in loads:
            if (load.start_ms, load.step_ms) != (self.start_ms, self.step_ms):
                raise ValueError("a meter and its loads must share start time and step")
        self.params = params
        self._seed = seed
        self._keys = {ch: noise_key(seed, ch) for ch in _ALL_CHANNELS}
        self._base_nominal_mw = params.base_load_kw * MW_PER_KW
        self._loads = tuple(loads)
        self._res_uj = max(1, round(params.counter_resolution_kwh * UJ_PER_KWH))
        self._modulus = 2**params.counter_bits
        self._power_mw = 0
        self._base_mw = 0
        self._energy_uj = 0
        self._base_energy_uj = 0
        self._enter_step(0)

    @property
    def loads(self) -> tuple[Machine, ...]:
        return self._loads

    @property
    def power_mw(self) -> int:
        """Total active power during the current step, exact integer milliwatts."""
        return self._power_mw

    @property
    def power_kw(self) -> float:
        return self._power_mw / MW_PER_KW

    def energy_uj(self) -> int:
        """Exact import energy since start, including the elapsed part of the step."""
        return self._energy_uj + self._power_mw * self._into_step_ms()

    def truth(self) -> MeterTruth:
        into = self._into_step_ms()
        energy = self.energy_uj()
        total_count = self.params.initial_counter + energy // self._res_uj
        return MeterTruth(
            elapsed_ms=self._now_ms - self.start_ms,
            energy_uj=energy,
            base_energy_uj=self._base_energy_uj + self._base_mw * into,
            counter=total_count % self._modulus,
            rollovers=total_count // self._modulus,
        )

    def read(self) -> dict[str, Value]:
        """Every quantity of :data:`METER_QUANTITIES` at the model's current time."""
        p = self.params
        p_kw = self.power_kw
        pf = min(1.0, max(0.3, p.power_factor * (1 + p.power_factor_noise * self._n(_CH_PF))))
        s_kva = p_kw / pf if p_kw > 0 else 0.0
        if p.phases == 1:
            shares: tuple[float, float, float] = (1.0, 0.0, 0.0)
        else:
            share_1 = (1 + p.phase_imbalance * self._n(_CH_SHARE[0])) / 3
            share_2 = (1 + p.phase_imbalance * self._n(_CH_SHARE[1])) / 3
            shares = (share_1, share_2, 1 - share_1 - share_2)
        q_kvar = math.sqrt(max(0.0, s_kva * s_kva - p_kw * p_kw))
        volts = [p.nominal_voltage_v * (1 + p.voltage_noise * self._n(ch)) for ch in _CH_VOLT]
        values: dict[str, Value] = {}
        for i, phase in enumerate(_PHASES):
            values[f"voltage_{phase}_n"] = volts[i]
            values[f"current_{phase}"] = s_kva * shares[i] * 1000 / volts[i]
            values[f"power_active_{phase}_kw"] = p_kw * shares[i]
            values[f"power_reactive_{phase}_kvar"] = q_kvar * shares[i]
            values[f"power_apparent_{phase}_kva"] = s_kva * shares[i]
            # One power factor for every phase of the load (a loaded phase; else 1.0).
            values[f"power_factor_{phase}"] = pf if p_kw * shares[i] > 0 else 1.0
        for i, (a, b) in enumerate((("l1", "l2"), ("l2", "l3"), ("l3", "l1"))):
            va, vb = volts[i], volts[(i + 1) % 3]
            # Phasors 120° apart: |Va - Vb|² = Va² + Vb² + Va·Vb.
            values[f"voltage_{a}_{b}"] = math.sqrt(va * va + vb * vb + va * vb)
        counter = self.truth().counter
        values.update(
            power_active_kw=p_kw,
            power_reactive_kvar=q_kvar,
            power_apparent_kva=s_kva,
            power_factor=pf if p_kw > 0 else 1.0,
            frequency_hz=p.nominal_frequency_hz + p.frequency_noise_hz * self._n(_CH_FREQ),
            energy_import_kwh=counter * p.counter_resolution_kwh,
            energy_import_counter=counter,
            energy_export_kwh=p.export_energy_kwh,
        )
        return values

    def _n(self, channel: int) -> float:
        return noise_at(self._keys[channel], self._k)

    def _enter_step(self, k: int) -> None:
        t_ms = self._start_ms + k * self._step_ms
        load_mw = 0
        for load in self._loads:
            load.advance_to_ms(t_ms)
            if load.step_index != k:
                raise RuntimeError(
                    "a machine was advanced past the meter that measures it; "
                    "advance them together through Simulation.advance_to"
                )
            load_mw += load.power_mw
        factor = 1 + self.params.base_load_noise * noise_at(self._keys[_CH_BASE], k)
        self._base_mw = round(self._base_nominal_mw * factor)
        self._power_mw = self._base_mw + load_mw

    def _leave_step(self) -> None:
        self._energy_uj += self._power_mw * self._step_ms
        self._base_energy_uj += self._base_mw * self._step_ms
