"""What the processor builds from the config for each unit: plain frozen values.

The units (:mod:`~edge_agent.metrics.units`) take these instead of the pydantic
models, so that the calculators stay independent of the config layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_agent.metrics.conversions import Conversions
from edge_agent.metrics.windows import WEEKDAYS, ShiftSpec, WindowKind, parse_clock

if TYPE_CHECKING:
    # Only the annotation of shift_specs: the calculators load no pydantic.
    from edge_agent.config.metrics import MetricsConfig


@dataclass(frozen=True, slots=True)
class CounterSpec:
    """An energy counter tag: ``kwh = ticks x resolution x to_kwh``."""

    tag: str
    to_kwh: float
    resolution: float
    modulus_ticks: int | None
    max_gap_ns: int


@dataclass(frozen=True, slots=True)
class PowerSpec:
    tag: str
    to_kw: float
    max_gap_ns: int


@dataclass(frozen=True, slots=True)
class EnergySpec:
    counter: CounterSpec | None
    power: PowerSpec | None
    max_kw: float | None = None


@dataclass(frozen=True, slots=True)
class PowerStateSpec:
    tag: str
    to_kw: float
    off_below: float
    run_above: float
    hysteresis: float
    min_dwell_ns: int


@dataclass(frozen=True, slots=True)
class PartsSpec:
    """Parts counters (tag name or ``None``) for total, good and scrap, with their moduli."""

    tags: tuple[str | None, str | None, str | None]
    moduli: tuple[int | None, int | None, int | None]
    max_gap_ns: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class MachineSpec:
    name: str
    device: str
    state_tag: str | None
    state_labels: dict[str, int]
    power_state: PowerStateSpec | None
    max_gap_ns: int
    ideal_cycle_s: float | None
    parts: PartsSpec | None
    energy: EnergySpec | None
    energy_device: str


@dataclass(frozen=True)
class Context:
    """What closing a window needs besides the window: factors, thresholds, calendar."""

    conversions: Conversions
    min_coverage: float
    emitted: frozenset[str]
    day: WindowKind
    planned: Callable[[int, int], int] = field(default=lambda a, b: b - a)
    #: Start (ns) of the local calendar month containing a time: month peak demand.
    #: ``None``: no month figures (a context built without a time zone).
    month_start: Callable[[int], int] | None = None


def shift_specs(metrics: MetricsConfig) -> list[ShiftSpec]:
    """The configured shifts, as :class:`~edge_agent.metrics.windows.ShiftCalendar` takes them."""
    return [
        ShiftSpec(
            name=shift.name,
            start_min=parse_clock(shift.start),
            end_min=parse_clock(shift.end, allow_24=True),
            days=frozenset(WEEKDAYS.index(d) for d in shift.days),
            breaks=tuple(
                (parse_clock(b.start, allow_24=True), parse_clock(b.end, allow_24=True))
                for b in shift.breaks
            ),
        )
        for shift in metrics.shifts
    ]
