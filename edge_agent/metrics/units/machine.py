"""A machine as a metric unit: state timeline, parts, ISO 22400-2 KPIs, and its energy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edge_agent.metrics.accumulators import MachineAcc
from edge_agent.metrics.energy import NS_PER_S, CounterStep, CounterTracker
from edge_agent.metrics.output import (
    CROSS_CHECK_NAMES,
    ENERGY_NAMES,
    MACHINE_ENERGY_NAMES,
    UTILIZATION_NAMES,
    cross_check_values,
    energy_values,
    metric_batch,
)
from edge_agent.metrics.specs import Context, MachineSpec
from edge_agent.metrics.timeline import StateTimeline
from edge_agent.metrics.tracks import OpenWindow, Stager, WindowTrack
from edge_agent.metrics.units.feed import (
    PRIORITY_AMOUNT,
    PRIORITY_STATE,
    EnergyFeed,
    Handler,
    finite_number,
)
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
from edge_agent.metrics.windows import DAY, WindowKind
from edge_agent.model import SampleBatch, Value


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
        day = next((kind for kind in kinds if kind.name == DAY), None)
        #: Today's state changes, for the console's band (kept since the agent started).
        self.timeline = None if day is None else StateTimeline(_day_bounds(day))
        self.states = StateTracker(spec.max_gap_ns, self.timeline)
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
        #: The windows closed in the current close pass, by (kind, start): what baselines
        #: take their parts and run time from (as the plant total takes meters' energy).
        self.just_closed: dict[tuple[str, int], MachineAcc] = {}

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
        number = finite_number(value)
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
            number = finite_number(value)
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
        self.just_closed[(kind, window.start_ns)] = window.acc
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


def _day_bounds(kind: WindowKind) -> Callable[[int], tuple[int, int]]:
    """``(start_ns, end_ns)`` of the local day containing a time."""

    def bounds(t_ns: int) -> tuple[int, int]:
        window = kind.window_at(t_ns)
        assert window is not None, "days leave no hole"
        return window.start_ns, window.end_ns

    return bounds
