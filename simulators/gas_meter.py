"""A natural-gas meter (a boiler's or a dryer's burner) as a pure, seeded model.

Its flow in each step is a nominal flow with bounded seeded noise, constant within the
step; the volume is an exact integer sum like a power meter's energy (micro-Nm3 per hour
x milliseconds, :data:`~simulators.stepping.UJ_PER_KWH` of them make one Nm3), so the
true volume is exact. The volume register counts ``counter_resolution_nm3`` units in
``counter_bits`` bits and rolls over like a real corrector's register::

    counter = (initial_counter + floor(true_volume / resolution)) mod 2**counter_bits

Volumes are at standard reference conditions (the corrector's output), which is what a
plant's gas bill and the GB/T 2589 coefficient count.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from pydantic import Field, model_validator

from simulators.schema import Quantity, Strict, Value
from simulators.stepping import UJ_PER_KWH, SteppedModel, noise_at, noise_key

#: Micro-units per hour x milliseconds in one unit (the same number as µJ in one kWh).
UNITS_PER_NM3 = UJ_PER_KWH
_MICRO = 1_000_000
_CH_FLOW = 31


class GasMeterParams(Strict):
    """A burner's gas meter: nominal flow, its noise, and the volume register."""

    kind: Literal["gas_meter"]
    flow_nm3_h: float = Field(default=12.0, ge=0, description="Nominal flow, Nm3/h.")
    flow_noise: float = Field(default=0.15, ge=0, lt=1, description="Relative, uniform.")
    counter_resolution_nm3: float = Field(default=0.01, ge=1e-6)
    counter_bits: int = Field(default=32, ge=16, le=64)
    initial_counter: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _counter_fits(self) -> GasMeterParams:
        if self.initial_counter >= 2**self.counter_bits:
            raise ValueError(f"initial_counter does not fit in {self.counter_bits} bits")
        return self


GAS_METER_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        "flow_nm3_h": Quantity("float", "Nm3/h", "flow of the current step"),
        "volume_nm3": Quantity(
            "float", "Nm3", "volume register: counter x counter_resolution_nm3 (rolls)"
        ),
        "volume_counter": Quantity("int", "", "raw volume counter (rolls)"),
    }
)


@dataclass(frozen=True)
class GasMeterTruth:
    """True volume since start (no rollover, no resolution)."""

    elapsed_ms: int
    volume_units: int
    counter: int
    rollovers: int

    @property
    def volume_nm3(self) -> float:
        return self.volume_units / UNITS_PER_NM3


class GasMeter(SteppedModel):
    """A seeded gas meter; see the module docstring."""

    def __init__(
        self, params: GasMeterParams, *, seed: int, start: float, step_s: float = 1.0
    ) -> None:
        super().__init__(start=start, step_s=step_s)
        self.params = params
        self._key = noise_key(seed, _CH_FLOW)
        self._nominal = round(params.flow_nm3_h * _MICRO)
        self._res_units = max(1, round(params.counter_resolution_nm3 * UNITS_PER_NM3))
        self._modulus = 2**params.counter_bits
        self._flow = 0  # micro-Nm3 per hour
        self._volume = 0
        self._enter_step(0)

    @property
    def flow_nm3_h(self) -> float:
        return self._flow / _MICRO

    def volume_units(self) -> int:
        """Exact volume since start, including the elapsed part of the step."""
        return self._volume + self._flow * self._into_step_ms()

    def truth(self) -> GasMeterTruth:
        volume = self.volume_units()
        total = self.params.initial_counter + volume // self._res_units
        return GasMeterTruth(
            elapsed_ms=self._now_ms - self.start_ms,
            volume_units=volume,
            counter=total % self._modulus,
            rollovers=total // self._modulus,
        )

    def read(self) -> dict[str, Value]:
        counter = self.truth().counter
        return {
            "flow_nm3_h": self.flow_nm3_h,
            "volume_nm3": counter * self.params.counter_resolution_nm3,
            "volume_counter": counter,
        }

    def _enter_step(self, k: int) -> None:
        factor = 1 + self.params.flow_noise * noise_at(self._key, k)
        self._flow = round(self._nominal * factor)

    def _leave_step(self) -> None:
        self._volume += self._flow * self._step_ms
