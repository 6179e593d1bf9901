"""What a baseline's windows are made of: its spec, and outdoor temperature per window.

:class:`BaselineSpec` is the plain, frozen view of one ``metrics.baselines`` entry the
savings unit works from (the calculators take no pydantic models). The temperature of a
window is the time integral of the tag between samples (trapezoidal, like power; samples
further apart than ``max_gap`` are not bridged and lower the coverage): its mean, and
heating/cooling degree-hours computed exactly for the straight line between samples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edge_agent.config.baseline import BaselineConfig, FitCsv
from edge_agent.metrics.baseline import QualityLimits
from edge_agent.metrics.energy import NS_PER_S
from edge_agent.metrics.units.feed import finite_number
from edge_agent.metrics.windows import LocalTime
from edge_agent.model import Value

NS_PER_HOUR: Final = 3600 * NS_PER_S
#: Default max_gap of the temperature tag: this many poll intervals.
GAP_POLLS: Final = 2.5


@dataclass(frozen=True, slots=True)
class TemperatureSpec:
    device: str
    tag: str
    base_c: float
    max_gap_ns: int


@dataclass(frozen=True, slots=True)
class BaselineSpec:
    """One baseline, as the savings unit needs it (see :mod:`edge_agent.config.baseline`)."""

    name: str
    meters: tuple[str, ...]
    machines: tuple[str, ...]
    window: str
    variables: tuple[str, ...]
    temperature: TemperatureSpec | None
    #: ``[start_ns, end_ns)`` of the baseline period (local days), or None for a CSV fit.
    period: tuple[int, int] | None
    csv: Path | None
    quality: QualityLimits
    #: Identifies what the fit depends on: a saved fit is reused only while it is equal.
    fit_key: str
    #: Identifies what a recorded window holds (window, meters, machines, temperature):
    #: a fit from history takes only the records of its own key.
    record_key: str
    #: Identifies the whole baseline: cumulative savings restart when it changes.
    key: str


def baseline_spec(
    config: BaselineConfig, local: LocalTime, interval_s: float | None
) -> BaselineSpec:
    """``interval_s``: poll interval of the temperature tag (for its default max_gap)."""
    temperature = None
    if config.temperature is not None:
        t = config.temperature
        gap_s = t.max_gap or GAP_POLLS * (interval_s or 1.0)
        temperature = TemperatureSpec(t.device, t.tag, t.base_c, round(gap_s * NS_PER_S))
    period = None
    csv_path = None
    csv_digest = None
    fit = config.fit
    if isinstance(fit, FitCsv):
        csv_path = Path(fit.csv)
        try:
            csv_digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
        except OSError:
            csv_digest = "unreadable"
    else:
        start = local.at(fit.start, 0)
        end = local.at(fit.to + dt.timedelta(days=1), 0)
        period = (start, end)
    dump = config.model_dump(mode="json", by_alias=True)
    fit_key = _digest(
        [dump["meters"], dump["machines"], dump["window"], dump["variables"]],
        dump["temperature"],
        dump["fit"],
        dump["quality"],
        csv_digest,
    )
    return BaselineSpec(
        name=config.name,
        meters=tuple(config.meters),
        machines=tuple(config.machines),
        window=config.window,
        variables=tuple(config.variables),
        temperature=temperature,
        period=period,
        csv=csv_path,
        quality=QualityLimits(config.quality.min_r2, config.quality.max_cv_rmse),
        fit_key=fit_key,
        record_key=_digest(dump["window"], dump["meters"], dump["machines"], dump["temperature"]),
        key=_digest(dump, csv_digest),
    )


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def above(v1: float, v2: float, base: float) -> float:
    """Mean of ``max(0, T - base)`` for T linear from ``v1`` to ``v2``."""
    low, high = min(v1, v2), max(v1, v2)
    if low >= base:
        return (v1 + v2) / 2 - base
    if high <= base:
        return 0.0
    share = (high - base) / (high - low)
    return share * (high - base) / 2


class TemperatureAcc:
    """One window's temperature: integral of T, of degree excesses, and the time covered."""

    __slots__ = ("cooling_ns", "covered_ns", "heating_ns", "sum_ns")

    def __init__(self) -> None:
        self.sum_ns = 0.0
        self.heating_ns = 0.0
        self.cooling_ns = 0.0
        self.covered_ns = 0

    def state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def load(cls, state: dict[str, Any]) -> TemperatureAcc:
        acc = cls()
        for name in cls.__slots__:
            if name in state:
                setattr(acc, name, state[name])
        return acc

    def mean_c(self) -> float | None:
        return self.sum_ns / self.covered_ns if self.covered_ns else None

    def degree_hours(self, heating: bool) -> float | None:
        if not self.covered_ns:
            return None
        return (self.heating_ns if heating else self.cooling_ns) / NS_PER_HOUR


class TemperatureFeed:
    """Samples of the temperature tag, spread as intervals over a window track."""

    def __init__(self, spec: TemperatureSpec, spread: Any) -> None:
        self.spec = spec
        self._spread = spread
        self.last: tuple[int, float] | None = None

    def on_sample(self, t_ns: int, value: Value) -> None:
        number = finite_number(value)
        if number is None:
            return
        last, self.last = self.last, (t_ns, number)
        if last is None or t_ns <= last[0]:
            if last is not None and t_ns < last[0]:
                self.last = last  # an older sample: keep the newer one
            return
        t1, v1 = last
        if t_ns - t1 > self.spec.max_gap_ns:
            return
        mean = (v1 + number) / 2
        base = self.spec.base_c
        cooling = above(v1, number, base)
        heating = above(-v1, -number, -base)

        def add(acc: TemperatureAcc, a: int, b: int, late: bool) -> None:
            if late:
                return  # time-like: a closed window's mean cannot be repaired
            span = b - a
            acc.sum_ns += mean * span
            acc.cooling_ns += cooling * span
            acc.heating_ns += heating * span
            acc.covered_ns += span

        self._spread(t1, t_ns, add)

    def state(self) -> list[float] | None:
        return None if self.last is None else [self.last[0], self.last[1]]

    def restore(self, state: list[float] | None) -> None:
        self.last = None if state is None else (int(state[0]), float(state[1]))
