"""How samples reach a unit: handlers, their priorities, and the energy feed.

The processor calls a unit's handlers with the time and value of each good sample of
the tags they were registered for; :class:`EnergyFeed` turns a counter or power tag
into energy spread over the unit's open windows (a meter's, or a machine's energy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.energy import (
    EVENT_OUT_OF_RANGE,
    CounterStep,
    CounterTracker,
    PowerIntegrator,
    PowerStep,
)
from edge_agent.metrics.specs import EnergySpec
from edge_agent.metrics.tariff import TariffCalendar
from edge_agent.model import Value

#: A handler gets the time and value of one good sample of the tag it was registered for.
Handler = Callable[[int, Value], None]
#: Handlers with a lower priority run first within a batch: energy and parts are
#: attributed to the machine state that held *before* this batch's state sample.
PRIORITY_AMOUNT: Final = 0
PRIORITY_STATE: Final = 1


def finite_number(value: Value) -> float | None:
    """A usable numeric sample value: finite int or float (bools and strings are not)."""
    kind = type(value)
    if kind is float:
        assert isinstance(value, float)
        return value if value - value == 0.0 else None  # NaN and infinities fail this
    if kind is int:
        assert isinstance(value, int)
        return float(value)
    return None


class EnergyFeed:
    """Counter and/or power of one energy source, spread into a unit's window tracks."""

    def __init__(
        self,
        spec: EnergySpec,
        spread: Callable[[int, int, Any], None],
        energy_of: Callable[[Any], EnergyAcc],
        is_idle: Callable[[], bool] = lambda: False,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        unit: str = "",
        tariff: TariffCalendar | None = None,
    ) -> None:
        self.spec = spec
        #: Splits primary energy by time-of-use period (a meter with a tariff only).
        self.tariff = tariff
        self._spread_into = spread
        self._energy_of = energy_of
        self._is_idle = is_idle
        self._events = events if events is not None else []
        self._unit = unit
        self.counter: CounterTracker | None = None
        self.power: PowerIntegrator | None = None
        if spec.counter is not None:
            c = spec.counter
            kwh_per_tick = c.resolution * c.to_kwh
            max_rate = None if spec.max_kw is None else spec.max_kw / 3600.0 / kwh_per_tick
            self.counter = CounterTracker(c.resolution, c.modulus_ticks, max_rate, c.max_gap_ns)
            self._kwh_per_tick = kwh_per_tick
        if spec.power is not None:
            self.power = PowerIntegrator(spec.power.max_gap_ns)

    @property
    def primary_is_counter(self) -> bool:
        return self.counter is not None

    def on_counter(self, t_ns: int, value: Value) -> None:
        number = finite_number(value)
        if number is None or self.counter is None:
            return
        step = self.counter.update(t_ns, number)
        if step is None:
            return
        if step.event:
            self._report(step)
        if not step.known:
            return  # discarded: nothing is known about this interval
        self._spread(step.t1_ns, step.t2_ns, step.ticks * self._kwh_per_tick, step.covered, True)

    def on_power(self, t_ns: int, value: Value) -> None:
        number = finite_number(value)
        if number is None or self.power is None or self.spec.power is None:
            return
        step: PowerStep | None = self.power.update(t_ns, number * self.spec.power.to_kw)
        if step is None or not step.covered:
            return  # a gap is not bridged: it only lowers coverage
        self._spread(step.t1_ns, step.t2_ns, step.kwh, True, self.counter is None)

    def _report(self, step: CounterStep) -> None:
        assert self.counter is not None
        fields: dict[str, Any] = {
            "unit": self._unit,
            "tag": self.spec.counter.tag if self.spec.counter else "",
            "counted_kwh": step.ticks * self._kwh_per_tick,
            "at_ns": step.t2_ns,
        }
        if step.event == EVENT_OUT_OF_RANGE:
            fields["value"] = self.counter.last_rejected
        self._events.append((f"energy counter {step.event}", fields))

    def _spread(self, t1: int, t2: int, kwh: float, covered: bool, primary: bool) -> None:
        span = t2 - t1
        idle = covered and primary and self._is_idle()
        energy_of = self._energy_of
        # Late parts too go to the period of their own time ([a, b) is when it was used).
        periods = self.tariff.add if primary and self.tariff is not None else None

        def add(acc: Any, a: int, b: int, late: bool) -> None:
            energy = energy_of(acc)
            share = kwh * (b - a) / span
            if primary:
                energy.kwh += share
                energy.touched = True
                if periods is not None:
                    periods(energy.period_kwh, a, b, share)
                if late:
                    energy.late_kwh += share
                    return
                energy.known_ns += b - a  # covered, or bridged by the counter
                if covered:
                    energy.covered_ns += b - a
                if idle:
                    energy.idle_kwh += share
            else:
                energy.alt_kwh += share
                if not late:
                    energy.alt_covered_ns += b - a

        self._spread_into(t1, t2, add)

    def handlers(self, device: str) -> list[tuple[str, str, int, Handler]]:
        out: list[tuple[str, str, int, Handler]] = []
        if self.spec.counter is not None:
            out.append((device, self.spec.counter.tag, PRIORITY_AMOUNT, self.on_counter))
        if self.spec.power is not None:
            out.append((device, self.spec.power.tag, PRIORITY_AMOUNT, self.on_power))
        return out

    def state(self) -> dict[str, Any]:
        return {
            "counter": None if self.counter is None else self.counter.state(),
            "power": None if self.power is None else self.power.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if self.counter is not None and state.get("counter") is not None:
            self.counter.restore(state["counter"])
        if self.power is not None and state.get("power") is not None:
            self.power.restore(state["power"])
