"""Per-device metric units: meters, machines and plant totals.

A unit owns the calculators of one metric device (counter and power trackers,
state tracker, parts counters), its open windows of every kind, and turns a
closed window into metric batches (:mod:`~edge_agent.metrics.output`).

Pure: units are fed ``(t_ns, value)`` of good samples by the processor, and are
told which windows closed; they never read a clock or touch a file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc, MachineAcc
from edge_agent.metrics.demand import PeakTracker
from edge_agent.metrics.energy import (
    NS_PER_S,
    CounterStep,
    CounterTracker,
    PowerIntegrator,
    PowerStep,
)
from edge_agent.metrics.output import (
    CROSS_CHECK_NAMES,
    ENERGY_NAMES,
    MACHINE_ENERGY_NAMES,
    UTILIZATION_NAMES,
    cross_check_values,
    energy_and_demand_batches,
    energy_values,
    metric_batch,
)
from edge_agent.metrics.specs import Context, EnergySpec, MachineSpec
from edge_agent.metrics.tracks import OpenWindow, Stager, WindowTrack
from edge_agent.metrics.utilization import (
    IDLE,
    RUN,
    STATE_NAMES,
    Kpis,
    PowerStateDeriver,
    StateStep,
    StateTracker,
    compute_kpis,
    kwh_per_part,
)
from edge_agent.metrics.windows import WindowKind
from edge_agent.model import SampleBatch, Value

#: A handler gets the time and value of one good sample of the tag it was registered for.
Handler = Callable[[int, Value], None]
#: Handlers with a lower priority run first within a batch: energy and parts are
#: attributed to the machine state that held *before* this batch's state sample.
PRIORITY_AMOUNT: Final = 0
PRIORITY_STATE: Final = 1


def _number(value: Value) -> float | None:
    """A usable numeric sample value: finite int or float (bools and strings are not)."""
    kind = type(value)
    if kind is float:
        assert isinstance(value, float)
        return value if value - value == 0.0 else None  # NaN and infinities fail this
    if kind is int:
        assert isinstance(value, int)
        return float(value)
    return None


# --------------------------------------------------------------------------- energy feed


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
    ) -> None:
        self.spec = spec
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
        number = _number(value)
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
        number = _number(value)
        if number is None or self.power is None or self.spec.power is None:
            return
        step: PowerStep | None = self.power.update(t_ns, number * self.spec.power.to_kw)
        if step is None or not step.covered:
            return  # a gap is not bridged: it only lowers coverage
        self._spread(step.t1_ns, step.t2_ns, step.kwh, True, self.counter is None)

    def _report(self, step: CounterStep) -> None:
        assert self.counter is not None
        self._events.append(
            (
                f"energy counter {step.event}",
                {
                    "unit": self._unit,
                    "tag": self.spec.counter.tag if self.spec.counter else "",
                    "counted_kwh": step.ticks * self._kwh_per_tick,
                    "at_ns": step.t2_ns,
                },
            )
        )

    def _spread(self, t1: int, t2: int, kwh: float, covered: bool, primary: bool) -> None:
        span = t2 - t1
        idle = covered and primary and self._is_idle()
        energy_of = self._energy_of

        def add(acc: Any, a: int, b: int, late: bool) -> None:
            energy = energy_of(acc)
            share = kwh * (b - a) / span
            if primary:
                energy.kwh += share
                energy.touched = True
                if late:
                    energy.late_kwh += share
                    return
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


# --------------------------------------------------------------------------- units


class MeterUnit:
    """An energy meter: energy, demand and its daily peak, coal and CO2 equivalents."""

    def __init__(
        self,
        name: str,
        device: str,
        spec: EnergySpec,
        kinds: Sequence[WindowKind],
        events: list[tuple[str, dict[str, Any]]],
    ) -> None:
        self.name = name
        self.device = device
        self.tracks: dict[str, WindowTrack[EnergyAcc]] = {
            k.name: WindowTrack(k, EnergyAcc) for k in kinds
        }
        self.stager = Stager(list(self.tracks.values()), EnergyAcc, EnergyAcc.merge)
        self.feed = EnergyFeed(spec, self.stager.spread, lambda acc: acc, events=events, unit=name)
        self.peaks = PeakTracker()
        self._names = ENERGY_NAMES + (CROSS_CHECK_NAMES if spec.counter and spec.power else ())
        #: Energy of the windows closed in the current close pass, by (kind, start): what
        #: plant totals add up (several windows of a kind close at once after a stall).
        self.just_closed: dict[tuple[str, int], EnergyAcc] = {}

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        return self.feed.handlers(self.device)

    def close(self, kind: str, window: OpenWindow[EnergyAcc], ctx: Context) -> list[SampleBatch]:
        acc, length = window.acc, window.end_ns - window.start_ns
        self.just_closed[(kind, window.start_ns)] = acc
        kwh, values = energy_values(acc, length, ctx.conversions)
        coverage = acc.covered_ns / length
        if self.feed.spec.counter and self.feed.spec.power:
            values += cross_check_values(acc, length, ctx.min_coverage)
        return energy_and_demand_batches(
            self.name, kind, window, self._names, values, kwh, coverage, self.peaks, ctx
        )

    def state(self) -> dict[str, Any]:
        return {
            "feed": self.feed.state(),
            "tracks": {name: track.state() for name, track in self.tracks.items()},
            "peak": self.peaks.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.feed.restore(state.get("feed", {}))
        for name, windows in state.get("tracks", {}).items():
            if name in self.tracks:
                self.tracks[name].restore(windows, EnergyAcc.load)
        self.peaks.restore(state.get("peak"))


class MachineUnit:
    """A machine: state timeline, parts, ISO 22400-2 KPIs, and its energy when configured."""

    def __init__(
        self,
        spec: MachineSpec,
        kinds: Sequence[WindowKind],
        events: list[tuple[str, dict[str, Any]]],
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.tracks: dict[str, WindowTrack[MachineAcc]] = {
            k.name: WindowTrack(k, MachineAcc) for k in kinds
        }
        self.stager = Stager(list(self.tracks.values()), MachineAcc, MachineAcc.merge)
        self.states = StateTracker(spec.max_gap_ns)
        self.deriver: PowerStateDeriver | None = None
        if spec.power_state is not None:
            p = spec.power_state
            self.deriver = PowerStateDeriver(p.off_below, p.run_above, p.hysteresis, p.min_dwell_ns)
        self.parts: list[CounterTracker | None] = [None, None, None]
        if spec.parts is not None:
            rate = None if spec.ideal_cycle_s is None else 10.0 / spec.ideal_cycle_s
            for k, tag in enumerate(spec.parts.tags):
                if tag is not None:
                    self.parts[k] = CounterTracker(
                        1.0, spec.parts.moduli[k], rate, spec.parts.max_gap_ns[k]
                    )
        self.feed: EnergyFeed | None = None
        if spec.energy is not None:
            self.feed = EnergyFeed(
                spec.energy,
                self.stager.spread,
                lambda acc: acc.energy,
                is_idle=lambda: self.states.state == IDLE,
                events=events,
                unit=spec.name,
            )
        self._events = events
        self._energy_names: tuple[str, ...] = ENERGY_NAMES + MACHINE_ENERGY_NAMES
        if spec.energy is not None and spec.energy.counter and spec.energy.power:
            self._energy_names += CROSS_CHECK_NAMES
        self.planned: Callable[[int, int], int] = lambda a, b: b - a

    # ------------------------------------------------------------------ feeding

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        spec = self.spec
        out: list[tuple[str, str, int, Handler]] = []
        if spec.state_tag is not None:
            out.append((spec.device, spec.state_tag, PRIORITY_STATE, self.on_state_label))
        if spec.power_state is not None:
            out.append((spec.device, spec.power_state.tag, PRIORITY_STATE, self.on_power_state))
        if spec.parts is not None:
            for k, tag in enumerate(spec.parts.tags):
                if tag is not None:
                    out.append((spec.device, tag, PRIORITY_AMOUNT, self._parts_handler(k)))
        if self.feed is not None:
            out.extend(self.feed.handlers(spec.energy_device))
        return out

    def on_state_label(self, t_ns: int, value: Value) -> None:
        state = self.spec.state_labels.get(value) if isinstance(value, str) else None
        if state is not None:
            self._state_point(t_ns, state)

    def on_power_state(self, t_ns: int, value: Value) -> None:
        number = _number(value)
        if number is None or self.deriver is None or self.spec.power_state is None:
            return
        for t, state in self.deriver.update(t_ns, number * self.spec.power_state.to_kw):
            self._state_point(t, state)

    def _state_point(self, t_ns: int, state: int) -> None:
        step = self.states.update(t_ns, state)
        if step is None or not step.covered:
            return  # unknown time: neither a state nor coverage
        self._spread_state(step)

    def _spread_state(self, step: StateStep) -> None:
        state, planned = step.state, self.planned

        def add(acc: MachineAcc, a: int, b: int, late: bool) -> None:
            if late:
                return
            acc.state_ns[state] += b - a
            acc.planned_ns[state] += planned(a, b)

        self.stager.spread(step.t1_ns, step.t2_ns, add)

    def _parts_handler(self, k: int) -> Handler:
        def on_parts(t_ns: int, value: Value) -> None:
            tracker = self.parts[k]
            number = _number(value)
            if tracker is None or number is None:
                return
            step = tracker.update(t_ns, number)
            if step is None:
                return
            if step.event:
                self._events.append(
                    (
                        f"parts counter {step.event}",
                        {"unit": self.name, "counter": ("total", "good", "scrap")[k]},
                    )
                )
            if step.known:
                # Zero deltas too: they show the counter was read in the window.
                self._spread_parts(k, step)

        return on_parts

    def _spread_parts(self, k: int, step: CounterStep) -> None:
        span = step.t2_ns - step.t1_ns
        count, covered, planned = float(step.ticks), step.covered, self.planned

        def add(acc: MachineAcc, a: int, b: int, late: bool) -> None:
            acc.parts_touched[k] = True
            if not count:
                return
            share = count * (b - a) / span
            acc.parts[k] += share
            if covered and not late:
                acc.parts_planned[k] += share * planned(a, b) / (b - a)

        self.stager.spread(step.t1_ns, step.t2_ns, add)

    # ------------------------------------------------------------------ closing

    def parts_of(
        self, sums: list[float], touched: list[bool]
    ) -> tuple[float | None, float | None, float | None]:
        """(produced, good, scrap) from whichever counters are configured.

        ``None`` where no counter defines it, or a counter it needs had no data in
        the window (its poll group was down): a missing count is not a zero.
        """
        if self.spec.parts is None:
            return None, None, None
        tags = self.spec.parts.tags
        if any(tag is not None and not seen for tag, seen in zip(tags, touched, strict=True)):
            return None, None, None
        total, good, scrap = (sums[k] if tags[k] is not None else None for k in range(3))
        if total is None and good is not None and scrap is not None:
            total = good + scrap
        if good is None and total is not None and scrap is not None:
            good = total - scrap
        if scrap is None and total is not None and good is not None:
            scrap = total - good
        return total, good, scrap

    def kpis(self, acc: MachineAcc) -> Kpis:
        """ISO 22400-2 KPIs of a window: planned time with known state, parts made in it."""
        planned_busy = sum(acc.planned_ns) / NS_PER_S
        production = acc.planned_ns[RUN] / NS_PER_S
        produced, good, _ = self.parts_of(acc.parts_planned, acc.parts_touched)
        return compute_kpis(planned_busy, production, produced, good, self.spec.ideal_cycle_s)

    def kpi_values(self, acc: MachineAcc, length_ns: int, start_ns: int) -> list[float | None]:
        """The utilization batch's values, in :data:`UTILIZATION_NAMES` order."""
        known = sum(acc.state_ns)
        kpis = self.kpis(acc)
        produced, good, scrap = self.parts_of(acc.parts, acc.parts_touched)
        return [
            acc.state_ns[0] / NS_PER_S,
            acc.state_ns[1] / NS_PER_S,
            acc.state_ns[2] / NS_PER_S,
            acc.state_ns[3] / NS_PER_S,
            (length_ns - known) / NS_PER_S,
            self.planned(start_ns, start_ns + length_ns) / NS_PER_S,
            acc.state_ns[RUN] / known if known else None,
            kpis.availability,
            kpis.effectiveness,
            kpis.quality_ratio,
            kpis.oee,
            produced,
            good,
            scrap,
            known / length_ns,
        ]

    def close(self, kind: str, window: OpenWindow[MachineAcc], ctx: Context) -> list[SampleBatch]:
        if kind not in ctx.emitted:
            return []
        acc, length = window.acc, window.end_ns - window.start_ns
        values = self.kpi_values(acc, length, window.start_ns)
        coverage = sum(acc.state_ns) / length
        out = [
            metric_batch(
                self.name,
                kind,
                window,
                "utilization",
                UTILIZATION_NAMES,
                values,
                coverage,
                ctx.min_coverage,
            )
        ]
        if self.feed is not None:
            energy = acc.energy
            kwh, energy_row = energy_values(energy, length, ctx.conversions)
            good = values[UTILIZATION_NAMES.index("parts_good")]
            energy_row += [
                energy.idle_kwh if kwh is not None else None,
                kwh_per_part(kwh, good),
            ]
            assert self.spec.energy is not None
            if self.spec.energy.counter and self.spec.energy.power:
                energy_row += cross_check_values(energy, length, ctx.min_coverage)
            out.append(
                metric_batch(
                    self.name,
                    kind,
                    window,
                    "energy",
                    self._energy_names,
                    energy_row,
                    energy.covered_ns / length,
                    ctx.min_coverage,
                )
            )
        return out

    # ------------------------------------------------------------------ state

    @property
    def state_name(self) -> str | None:
        state = self.states.state
        return None if state is None else STATE_NAMES[state]

    def state(self) -> dict[str, Any]:
        return {
            "states": self.states.state_dict(),
            "deriver": None if self.deriver is None else self.deriver.state_dict(),
            "parts": [None if p is None else p.state() for p in self.parts],
            "feed": None if self.feed is None else self.feed.state(),
            "tracks": {name: track.state() for name, track in self.tracks.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.states.restore(state.get("states", {}))
        if self.deriver is not None and state.get("deriver") is not None:
            self.deriver.restore(state["deriver"])
        for tracker, saved in zip(self.parts, state.get("parts", [None] * 3), strict=False):
            if tracker is not None and saved is not None:
                tracker.restore(saved)
        if self.feed is not None and state.get("feed") is not None:
            self.feed.restore(state["feed"])
        for name, windows in state.get("tracks", {}).items():
            if name in self.tracks:
                self.tracks[name].restore(windows, MachineAcc.load)


class PlantTotal:
    """Energy and demand of the whole plant: the sum of the member meters, window by window."""

    def __init__(self, name: str, members: Sequence[MeterUnit]) -> None:
        self.name = name
        self.members = tuple(members)
        self.peaks = PeakTracker()

    def close(self, kind: str, window: OpenWindow[Any], ctx: Context) -> list[SampleBatch]:
        total = EnergyAcc()
        length = window.end_ns - window.start_ns
        coverage = 1.0
        for member in self.members:
            acc = member.just_closed.get((kind, window.start_ns))
            if acc is None:
                coverage = 0.0
                continue
            if acc.touched:
                total.touched = True
                total.kwh += acc.kwh
                total.late_kwh += acc.late_kwh
            coverage = min(coverage, acc.covered_ns / length)
        total.covered_ns = round(coverage * length)
        kwh, values = energy_values(total, length, ctx.conversions)
        return energy_and_demand_batches(
            self.name, kind, window, ENERGY_NAMES, values, kwh, coverage, self.peaks, ctx
        )

    def state(self) -> dict[str, Any]:
        return {"peak": self.peaks.state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.peaks.restore(state.get("peak"))
