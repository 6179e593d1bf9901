"""The demand guards and event detectors of a plant, built from its config for the processor.

Only what is configured is built: a meter without ``demand_guard`` and a plant
without ``metrics.events`` add no handler, so the hot path of everything else is
unchanged. Their handlers run after the units' own (:data:`PRIORITY_AFTER`): they
read what this batch's samples just did to the meter or machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from edge_agent.config.metrics import MetricsConfig
from edge_agent.metrics.energy import NS_PER_S
from edge_agent.metrics.events import (
    IDLE_ENERGY,
    METER_STALLED,
    EventLog,
    IdleDetector,
    StalledDetector,
    end_removed_detector,
)
from edge_agent.metrics.guard import DemandGuard, GuardSpec, end_removed_guard
from edge_agent.metrics.units.feed import Handler
from edge_agent.metrics.units.machine import MachineUnit
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.model import SampleBatch

#: After the energy (0) and state (1) handlers of the same batch.
PRIORITY_AFTER: Final = 2


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_S)


class Watchers:
    """Every guard and detector of the plant; their batches go into ``out``."""

    def __init__(
        self,
        metrics: MetricsConfig,
        meters: Sequence[MeterUnit],
        machines: Sequence[MachineUnit],
        out: list[SampleBatch],
        on_event: Callable[[], None],
    ) -> None:
        self._out, self._on_event = out, on_event
        self.guards: list[DemandGuard] = []
        self.idle: list[IdleDetector] = []
        self.stalled: list[StalledDetector] = []
        self._handlers: list[tuple[str, str, int, Handler]] = []
        units = {m.name: m for m in meters}
        for meter_config in metrics.meters:
            meter = units.get(meter_config.metric_name)
            guard_config = meter_config.demand_guard
            if meter is None or guard_config is None:
                continue
            guard_spec = GuardSpec(
                limit_kw=guard_config.limit_kw,
                critical=guard_config.kind == "contracted",
                hysteresis=guard_config.hysteresis,
                min_hold_ns=_ns(guard_config.min_hold),
                quiet_start_ns=_ns(guard_config.quiet_start),
                rate_window_ns=_ns(guard_config.rate_window),
            )
            guard = DemandGuard(meter, guard_spec, out)
            guard.events.bind(on_event)
            self.guards.append(guard)
            self._handlers.append((meter.device, guard.primary_tag, PRIORITY_AFTER, guard.on_poll))
        events = metrics.events
        if events.meter_stalled is not None:
            for meter in meters:
                feed = meter.feed
                counter, power = feed.spec.counter, feed.spec.power
                if feed.counter is None or feed.power is None or counter is None or power is None:
                    continue  # without both, nothing tells a stalled counter from no load
                stalled = StalledDetector(
                    meter.name,
                    feed.counter,
                    feed.power,
                    power.max_gap_ns,
                    counter.resolution * counter.to_kwh,
                    events.meter_stalled.after,
                    events.meter_stalled.min_kw,
                    EventLog(out, on_event),
                    counter.max_gap_ns,
                )
                self.stalled.append(stalled)
                self._handlers.append(
                    (meter.device, counter.tag, PRIORITY_AFTER, stalled.on_counter)
                )
        if events.idle_energy is not None:
            for machine in machines:
                m = machine.spec
                if m.energy is not None and m.energy.power is not None:
                    device, tag = m.energy_device, m.energy.power.tag
                    to_kw, gap = m.energy.power.to_kw, m.energy.power.max_gap_ns
                elif m.power_state is not None:
                    device, tag = m.device, m.power_state.tag
                    to_kw, gap = m.power_state.to_kw, m.max_gap_ns
                else:
                    continue  # no power tag: its idle power is not known
                rule = events.idle_energy.rule_for(machine.name)
                idle = IdleDetector(
                    machine.name,
                    machine.states,
                    to_kw,
                    rule.after,
                    rule.above_kw,
                    gap,
                    EventLog(out, on_event),
                )
                self.idle.append(idle)
                self._handlers.append((device, tag, PRIORITY_AFTER, idle.on_power))

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        return list(self._handlers)

    def expire(self, now_ns: int) -> None:
        """End the demand events of blocks that have ended (also without a poll since), and
        the idle and stalled events whose readings stopped for longer than ``max_gap``."""
        for guard in self.guards:
            guard.expire(now_ns)
        for idle in self.idle:
            idle.expire(now_ns)
        for stalled in self.stalled:
            stalled.expire(now_ns)

    def deadlines(self) -> list[int]:
        """When :meth:`expire` ends an active idle or stalled event if no reading comes (a
        demand event ends with its block's window, which has its own deadline)."""
        found = [d.deadline_ns() for d in self.idle] + [d.deadline_ns() for d in self.stalled]
        return [when for when in found if when is not None]

    def state(self) -> dict[str, Any]:
        return {
            "guards": {g.meter.name: g.state() for g in self.guards},
            "idle": {d.machine: d.state() for d in self.idle},
            "stalled": {d.meter: d.state() for d in self.stalled},
        }

    def restore(self, state: dict[str, Any] | None, saved_at_ns: int | None = None) -> None:
        """Restore each guard and detector from its saved state; an event active in the
        state whose guard or detector no longer exists is ended here (``saved_at_ns``:
        when the state was saved), its batch left in ``out`` for the processor to send."""
        if not state:
            return
        self._end_removed(state, saved_at_ns)
        for guard in self.guards:
            saved = state.get("guards", {}).get(guard.meter.name)
            if saved is not None:
                guard.restore(saved)
        for idle in self.idle:
            saved = state.get("idle", {}).get(idle.machine)
            if saved is not None:
                idle.restore(saved)
        for stalled in self.stalled:
            saved = state.get("stalled", {}).get(stalled.meter)
            if saved is not None:
                stalled.restore(saved)

    def _end_removed(self, state: dict[str, Any], saved_at_ns: int | None) -> None:
        kept = {g.meter.name for g in self.guards}
        for name, saved in state.get("guards", {}).items():
            if name not in kept:
                end_removed_guard(name, saved, saved_at_ns, self._log())
        for key, event, names in (
            ("idle", IDLE_ENERGY, {d.machine for d in self.idle}),
            ("stalled", METER_STALLED, {d.meter for d in self.stalled}),
        ):
            for name, saved in state.get(key, {}).items():
                if name not in names:
                    end_removed_detector(event, name, saved, self._log())

    def _log(self) -> EventLog:
        return EventLog(self._out, self._on_event)
