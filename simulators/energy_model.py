"""A production-dependent energy model and an outdoor temperature, with exact ground truth.

What the baseline tests (issue 16) need from a machine: power that is a known linear
function of production and temperature, so a regression has coefficients to recover,
and a known efficiency change at a known time, so measured savings have a true value.

While the machine is powered (idle, run or fault)::

    power = idle_kw x f + kwh_per_part / cycle + kw_per_degc x (T_outdoor - reference_c)

with ``f`` = ``efficiency_change.idle_factor`` from ``efficiency_change.at`` on (1
before), the part term only in run (the current cycle's energy spread over its
duration, so each part costs ``kwh_per_part``), and the machine's seeded power noise on
top. The machine also keeps the energy it would have drawn with ``f = 1``: the true
savings are that minus its true energy, exact to the microjoule.

Outdoor temperature is a smooth, seeded function of time: a daily cosine peaking at
``warmest_hour`` local time plus a day-to-day offset interpolated between days::

    T = mean_c + daily_amplitude_c x cos(2 pi (hour - warmest_hour) / 24) + offset(day)
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from simulators.schema import Strict
from simulators.stepping import MW_PER_KW, noise_at

_MS_PER_DAY = 86_400_000
_J_PER_KWH = 3_600_000


class EnergyModel(Strict):
    """Power while powered: idle + energy per part + a temperature term (module docstring)."""

    idle_kw: float = Field(ge=0, le=10_000)
    kwh_per_part: float = Field(default=0.0, ge=0, le=1000)
    kw_per_degc: float = Field(default=0.0, ge=-1000, le=1000)
    reference_c: float = Field(default=0.0, ge=-50, le=50)


class Outdoor(Strict):
    """The outdoor temperature the machine's ``outdoor_c`` quantity serves."""

    mean_c: float = Field(default=15.0, ge=-50, le=50)
    daily_amplitude_c: float = Field(default=5.0, ge=0, le=30)
    day_to_day_c: float = Field(default=4.0, ge=0, le=30, description="Seeded offset, ±.")
    warmest_hour: float = Field(default=15.0, ge=0, lt=24)


class EfficiencyChange(Strict):
    """From ``at`` on, idle power is multiplied by ``idle_factor`` (0.7: cut by 30 %)."""

    at: dt.datetime
    idle_factor: float = Field(gt=0, le=2)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("give the time with its UTC offset, e.g. 2024-05-20T00:00:00+08:00")
        return value


class OutdoorTemperature:
    """``celsius(t_ms)``: the seeded outdoor temperature (module docstring)."""

    def __init__(self, params: Outdoor, key: int, timezone: str, start_ms: int) -> None:
        self.params = params
        self._key = key
        start = dt.datetime.fromtimestamp(start_ms / 1000, ZoneInfo(timezone))
        offset = start.utcoffset()
        self._offset_ms = 0 if offset is None else round(offset.total_seconds() * 1000)

    def celsius(self, t_ms: int) -> float:
        p = self.params
        day, into = divmod(t_ms + self._offset_ms, _MS_PER_DAY)
        frac = into / _MS_PER_DAY
        today = noise_at(self._key, day)
        tomorrow = noise_at(self._key, day + 1)
        offset = p.day_to_day_c * (today + (tomorrow - today) * frac)
        phase = 2 * math.pi * (frac * 24 - p.warmest_hour) / 24
        return p.mean_c + p.daily_amplitude_c * math.cos(phase) + offset


class PowerModel:
    """Nominal power (milliwatts) of a powered machine under :class:`EnergyModel`."""

    def __init__(self, model: EnergyModel, change: EfficiencyChange | None) -> None:
        self.model = model
        self._change_ms = None if change is None else round(change.at.timestamp() * 1000)
        self._factor = 1.0 if change is None else change.idle_factor

    def nominal_mw(
        self, t_ms: int, running: bool, cycle_ms: int, outdoor_c: float
    ) -> tuple[float, float]:
        """(power, power without the efficiency change), milliwatts, never negative."""
        m = self.model
        rest = m.kw_per_degc * (outdoor_c - m.reference_c) * MW_PER_KW
        if running and cycle_ms:
            rest += m.kwh_per_part * _J_PER_KWH * 1_000_000 / cycle_ms
        idle = m.idle_kw * MW_PER_KW
        changed = self._change_ms is not None and t_ms >= self._change_ms
        actual = idle * self._factor if changed else idle
        return max(0.0, actual + rest), max(0.0, idle + rest)
