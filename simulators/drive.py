"""A variable-frequency drive (a fan or pump motor on a VFD) as a seeded machine model.

It is a :class:`~simulators.machine.Machine` (state from the shift calendar, power and
speed per state, exact energy) that also shows what a drive's keypad shows, derived
from the motor's speed and power with the textbook relations of an induction motor
under V/f control:

* output frequency = speed / rated speed x rated frequency (slip ignored);
* output voltage = supply voltage x min(1, frequency / rated frequency);
* output current = P / (sqrt(3) x V x power factor), 0 when stopped;
* DC bus voltage = 1.35 x supply voltage (a six-pulse rectifier's mean), with noise;
* output power and torque as a percentage of the rated power and torque.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

from pydantic import Field

from simulators.machine import MACHINE_QUANTITIES, Machine, MachineParams, StateValues
from simulators.schema import Quantity, Value
from simulators.stepping import noise_at, noise_key

_CH_BUS = 3


class DriveParams(MachineParams):
    """A 15 kW fan on a 400 V drive, running at about 40 Hz during shifts by default."""

    kind: Literal["drive"]
    power_kw: StateValues = StateValues(idle=0.2, run=9.0, fault=0.0)
    power_noise: float = Field(default=0.04, ge=0, lt=1)
    speed_rpm: StateValues = StateValues(idle=0.0, run=1185.0, fault=0.0)
    speed_noise: float = Field(default=0.005, ge=0, lt=1)
    cycle_time_s: float | None = Field(default=None, gt=0)
    scrap_rate: float = Field(default=0.0, ge=0, le=1)
    mean_run_s: float = Field(default=3600.0, gt=0)
    mean_idle_s: float = Field(default=600.0, gt=0)
    fault_probability: float = Field(default=0.05, ge=0, le=1)
    alarm_codes: tuple[int, ...] = Field(default=(2, 5, 11), min_length=1)
    programs: tuple[str, ...] = Field(default=("FAN",), min_length=1)
    rated_power_kw: float = Field(default=15.0, gt=0)
    rated_speed_rpm: float = Field(default=1470.0, gt=0)
    rated_frequency_hz: float = Field(default=50.0, gt=0)
    supply_voltage_v: float = Field(default=400.0, gt=0, description="Line to line.")
    motor_power_factor: float = Field(default=0.85, gt=0, le=1)
    bus_noise: float = Field(default=0.005, ge=0, lt=0.2)


#: What a drive serves beyond a machine's quantities.
DRIVE_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        **MACHINE_QUANTITIES,
        "output_frequency_hz": Quantity("float", "Hz", "speed / rated speed x rated frequency"),
        "reference_frequency_hz": Quantity("float", "Hz", "the run speed's frequency (setpoint)"),
        "output_voltage_v": Quantity("float", "V", "V/f: supply x frequency / rated frequency"),
        "output_current_a": Quantity("float", "A", "P / (sqrt 3 x V x PF), 0 when stopped"),
        "dc_bus_voltage_v": Quantity("float", "V", "1.35 x supply voltage, with noise"),
        "output_power_percent": Quantity("float", "%", "power / rated power"),
        "output_torque_percent": Quantity("float", "%", "torque / rated torque"),
    }
)


class Drive(Machine):
    """A seeded drive; see the module docstring."""

    params: DriveParams

    def __init__(
        self,
        params: DriveParams,
        *,
        seed: int,
        start: float,
        step_s: float = 1.0,
        timezone: str = "UTC",
    ) -> None:
        super().__init__(params, seed=seed, start=start, step_s=step_s, timezone=timezone)
        self._bus_key = noise_key(seed, _CH_BUS)

    def read(self) -> dict[str, Value]:
        """Every quantity of :data:`DRIVE_QUANTITIES` at the model's current time."""
        values = super().read()
        p = self.params
        speed = float(values["speed_rpm"])
        power_kw = float(values["power_kw"])
        frequency = speed / p.rated_speed_rpm * p.rated_frequency_hz
        voltage = p.supply_voltage_v * min(1.0, frequency / p.rated_frequency_hz)
        current = (
            power_kw * 1000 / (math.sqrt(3) * voltage * p.motor_power_factor) if voltage else 0.0
        )
        rated_torque = p.rated_power_kw / p.rated_speed_rpm
        values.update(
            output_frequency_hz=frequency,
            reference_frequency_hz=p.speed_rpm.run / p.rated_speed_rpm * p.rated_frequency_hz,
            output_voltage_v=voltage,
            output_current_a=current,
            dc_bus_voltage_v=1.35
            * p.supply_voltage_v
            * (1 + p.bus_noise * noise_at(self._bus_key, self._k)),
            output_power_percent=power_kw / p.rated_power_kw * 100,
            output_torque_percent=(power_kw / speed / rated_torque * 100) if speed else 0.0,
        )
        return values
