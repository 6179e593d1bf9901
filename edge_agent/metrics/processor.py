"""The metrics processor: the glue between the pipeline and the pure calculators.

The pipeline calls :class:`MetricsProcessor` for every batch. It looks up, once per
``(device, group, names)``, which samples of the batch some meter or machine needs
(by index, so the hot path is a short loop over a precomputed list), feeds those
good samples to the units, and returns the batch unchanged followed by the metric
batches of any window that is due to close. Windows also close on time without
samples: :mod:`edge_agent.metrics.timer` calls :meth:`MetricsProcessor.close_due`.

The clock is injected (seconds, like ``time.time``): the same code runs live and in
simulated time in the ground-truth tests. Accumulators are saved through a
:class:`~edge_agent.metrics.store.StateStore` after windows close, periodically,
and on stop, and restored at start, so that a restart loses and doubles nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import structlog

from edge_agent.config import PlantConfig, TagCatalog
from edge_agent.config.carriers import grid_factor
from edge_agent.config.metrics import MeterConfig, MetricsConfig
from edge_agent.config.tariff import TariffConfig, tariff_problems
from edge_agent.episodes import Episode
from edge_agent.metrics.build import energy_spec, machine_spec
from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.conversions import Conversions
from edge_agent.metrics.demand import month_start_ns
from edge_agent.metrics.energy import EVENT_GLITCH, EVENT_OUT_OF_RANGE
from edge_agent.metrics.fingerprints import (
    carrier_fingerprint,
    machine_fingerprint,
    meter_fingerprint,
    meter_source,
)
from edge_agent.metrics.holds import Holds
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.savings import SavingsUnit, build_savings
from edge_agent.metrics.specs import Context, shift_specs
from edge_agent.metrics.store import StateStore
from edge_agent.metrics.tariff import TariffCalendar
from edge_agent.metrics.tracks import A, OpenWindow, WindowTrack
from edge_agent.metrics.units.carrier import CarrierSpec, CarrierUnit
from edge_agent.metrics.units.feed import Handler
from edge_agent.metrics.units.machine import MachineUnit
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.metrics.units.total import PlantTotal
from edge_agent.metrics.watchers import Watchers
from edge_agent.metrics.windows import (
    DAY,
    NS_PER_S,
    DayWindows,
    LocalTime,
    ShiftCalendar,
    WindowKind,
    build_kind,
)
from edge_agent.model import KIND_ALIVE, Quality, SampleBatch

log = structlog.get_logger("edge_agent.metrics")

STATE_VERSION: Final = 1
#: A sample stamped further than this in the future (a device clock gone wrong) is ignored.
MAX_FUTURE_S: Final = 300.0
Unit = MeterUnit | MachineUnit | CarrierUnit
#: Given every metric batch of a close pass, returns batches to publish with them (the
#: reports: :class:`~edge_agent.metrics.reports.Reporter`).
PassHook = Callable[[Sequence[SampleBatch]], list[SampleBatch]]


def _skipped(unit: str, exc: KeyError) -> None:
    """A unit whose device or tag is not in the config (a plant file is checked for this at
    load; a config assembled in code may leave devices out): its metrics are skipped."""
    log.warning(
        "metrics unit skipped: its device or tag is not configured", unit=unit, error=str(exc)
    )


def _bad_tariff(tariff: TariffConfig) -> bool:
    """A tariff with gaps or overlaps (``check`` reports them in a plant file; a config
    assembled in code may have them): left out, its meters are not priced."""
    problems = tariff_problems(tariff)
    if problems:
        log.warning("tariff left out: " + problems[0][1], tariff=tariff.name)
    return bool(problems)


_MISSING: Final = object()


class MetricsProcessor:
    """A pipeline processor that computes the plant's metrics (see the module docstring)."""

    def __init__(
        self,
        config: PlantConfig,
        *,
        clock: Callable[[], float] = time.time,
        store: StateStore | None = None,
        reporter: PassHook | None = None,
    ) -> None:
        if config.metrics is None:
            raise ValueError("the plant has no metrics section")
        metrics: MetricsConfig = config.metrics
        self.config = metrics
        self.plant = config.plant.name
        #: The plant's IANA time zone: windows, shifts and "today" are in its local time.
        self.timezone = config.plant.timezone
        self._clock = clock
        self._store = store
        self.reporter = reporter
        self._reporter_failing = Episode()
        local = LocalTime(config.plant.timezone)
        self.calendar = ShiftCalendar(shift_specs(metrics), local) if metrics.shifts else None
        names = list(dict.fromkeys([*metrics.windows, DEMAND_WINDOW, DAY]))
        self.kinds: list[WindowKind] = sorted(
            (build_kind(n, local, self.calendar) for n in names), key=lambda k: k.nominal_ns
        )
        self.context = Context(
            conversions=Conversions(
                metrics.coal_equivalent.coefficient, grid_factor(metrics.grid_emission_factor)[0]
            ),
            min_coverage=metrics.min_coverage,
            emitted=frozenset(metrics.windows),
            day=DayWindows(local),
            month_start=functools.partial(month_start_ns, local),
        )
        self._grace_ns = round(metrics.grace * NS_PER_S)
        self.events: list[tuple[str, dict[str, Any]]] = []
        tags = TagCatalog.of(config.devices)
        self.meters: list[MeterUnit] = []
        self.machines: list[MachineUnit] = []
        #: Meters of other energy carriers (gas, steam, water ...): the ``carrier`` family.
        self.carriers: list[CarrierUnit] = []
        self._fingerprints: dict[str, str] = {}
        #: Per meter, its energy source alone (fingerprints.py: a change elsewhere keeps
        #: its peak demand of the day and the month).
        self._sources: dict[str, str] = {}
        tariffs = {t.name: t.spec() for t in metrics.tariffs if not _bad_tariff(t)}
        for meter in metrics.meters:
            if not meter.is_electric:
                self._add_carrier(meter, tags, names)
                continue
            try:
                spec = energy_spec(meter, meter.device, tags)
            except KeyError as exc:
                _skipped(meter.metric_name, exc)
                continue
            tariff = metrics.tariff_of(meter)
            spec_of = None if tariff is None else tariffs.get(tariff.name)
            calendar = None if spec_of is None else TariffCalendar(spec_of, local)
            meter_unit = MeterUnit(
                meter.metric_name, meter.device, spec, self.kinds, self.events, calendar
            )
            self.meters.append(meter_unit)
            self._fingerprints[meter_unit.name] = meter_fingerprint(
                meter, names, None if tariff is None else tariff.name
            )
            self._sources[meter_unit.name] = meter_source(meter)
        for machine in metrics.machines:
            try:
                machine_spec_ = machine_spec(machine, tags)
            except KeyError as exc:
                _skipped(machine.metric_name, exc)
                continue
            machine_unit = MachineUnit(machine_spec_, self.kinds, self.events)
            planned = machine.planned or ("shifts" if self.calendar is not None else "always")
            if planned == "shifts" and self.calendar is not None:
                machine_unit.planned = self.calendar.planned_ns
            self.machines.append(machine_unit)
            self._fingerprints[machine_unit.name] = machine_fingerprint(
                machine, names, metrics.shifts
            )
        self.units: list[Unit] = [*self.meters, *self.machines, *self.carriers]
        self.total: PlantTotal | None = None
        if metrics.plant_total:
            members = [m for m in self.meters if m.name in metrics.plant_total]
            self.total = PlantTotal(config.plant.name, members)
        #: Demand guard and event batches made while feeding, sent out with the batch.
        self._extra: list[SampleBatch] = []
        self._event_sent = False
        self.watchers = Watchers(metrics, self.meters, self.machines, self._extra, self._sent)
        # Baselines (issue 16): savings per window from the meters' and machines' windows.
        self.savings: list[SavingsUnit] = build_savings(
            metrics,
            self.meters,
            self.machines,
            self.kinds,
            local,
            tags,
            None if store is None else store.path.parent,
            self.now_ns(),
        )
        self._needs: dict[str, dict[str, list[tuple[int, Handler]]]] = {}
        handlers = [h for unit in [*self.units, *self.savings] for h in unit.handlers()]
        for device, tag, priority, handler in [*handlers, *self.watchers.handlers()]:
            self._needs.setdefault(device, {}).setdefault(tag, []).append((priority, handler))
        self._routes: dict[tuple[str, str], Any] = {}
        self._holds = Holds(tags.change_groups())
        self.started_ns = self.now_ns()
        self.ignored_future = 0
        if store is not None:
            self._restore(store.load())
        self._next_deadline_ns = 0
        self._close_due(self.started_ns, announce=False)  # nothing is due yet; arms the timer

    def _add_carrier(self, meter: MeterConfig, tags: TagCatalog, names: list[str]) -> None:
        units = meter.units
        try:
            spec = energy_spec(meter, meter.device, tags, (units.counter_factor, units.flow_factor))
        except KeyError as exc:
            _skipped(meter.metric_name, exc)
            return
        carrier = CarrierSpec(
            meter.carrier, units.amount_unit, units.kgce_per_unit, meter.kgco2e_per_unit
        )
        unit = CarrierUnit(meter.metric_name, meter.device, spec, carrier, self.kinds, self.events)
        self.carriers.append(unit)
        self._fingerprints[unit.name] = carrier_fingerprint(meter, names)

    # ------------------------------------------------------------------ hot path

    def __call__(self, batch: SampleBatch) -> Iterable[SampleBatch]:
        now_ns = self.now_ns()
        closed = self._close_due(now_ns) if now_ns >= self._next_deadline_ns else None
        # Close first: a sample arriving after its window's grace is late, not in time.
        if batch.names:
            route = self._routes.get((batch.device, batch.group), _MISSING)
            if route is _MISSING or (route is not None and route[0] is not batch.names):
                route = self._route(batch)
            if route is not None and route[1]:
                self._feed(batch, route, now_ns)
        else:
            self._alive(batch, now_ns)
        if self._extra:
            return [batch, *self._drain(), *(closed or ())]
        return [batch, *closed] if closed else (batch,)

    def _sent(self) -> None:
        self._event_sent = True

    def _drain(self) -> list[SampleBatch]:
        """The guard and event batches made so far; an event is saved before it leaves.

        Saved first: a crash after the save loses at most this event, never sends its
        start twice (the restored state knows it went out).
        """
        extra = list(self._extra)
        self._extra.clear()
        if self._event_sent:
            self._event_sent = False
            self.save()
        return extra

    def _alive(self, batch: SampleBatch, now_ns: int) -> None:
        """A batch without samples: a change-based group's proof of life, or nothing."""
        if batch.attributes.get("kind") != KIND_ALIVE or self._in_future(batch, now_ns):
            return
        self._holds.alive(batch, self._needs.get(batch.device, {}))
        if self.events:
            self._log_events()

    def _in_future(self, batch: SampleBatch, now_ns: int) -> bool:
        if batch.timestamp_ns <= now_ns + MAX_FUTURE_S * NS_PER_S:
            return False
        if not self.ignored_future:
            log.warning(
                "samples stamped in the future are left out of metrics (device clock?)",
                device=batch.device,
                group=batch.group,
            )
        self.ignored_future += 1
        return True

    def _feed(self, batch: SampleBatch, route: Any, now_ns: int) -> None:
        if self._in_future(batch, now_ns):
            return
        handlers: list[tuple[int, Handler]] = route[1]
        if route[2]:
            self._holds.feed(batch, handlers)  # a change-based group: its values hold
        else:
            qualities, values, stamps = batch.qualities, batch.values, batch.timestamps_ns
            good = Quality.GOOD
            if stamps is None:
                t = batch.timestamp_ns
                for index, handler in handlers:
                    if qualities[index] is good:
                        handler(t, values[index])
            else:
                for index, handler in handlers:
                    if qualities[index] is good:
                        handler(stamps[index], values[index])
        if self.events:
            self._log_events()

    def _route(self, batch: SampleBatch) -> Any:
        """Which samples of this (device, group) the units need, in priority order.

        ``(names, [(index, handler)], change_based)``, kept while the names tuple is the
        same; ``None`` for a device the metrics do not use. A change-based group names
        other tags in each batch: its route is worked out again for every batch.
        """
        key = (batch.device, batch.group)
        needs = self._needs.get(batch.device)
        if needs is None or metric_info(batch) is not None:
            self._routes[key] = None
            return None
        found = [
            (priority, index, handler)
            for index, name in enumerate(batch.names)
            for priority, handler in needs.get(name, ())
        ]
        found.sort(key=lambda item: item[0])
        handlers = [(index, handler) for _, index, handler in found]
        route = (batch.names, handlers, key in self._holds.groups)
        self._routes[key] = route
        return route

    def _log_events(self) -> None:
        for event, fields in self.events:
            if event.endswith(EVENT_OUT_OF_RANGE):
                log.warning(
                    event + ": reading left out of metrics, quiet until a good one", **fields
                )
            elif event.endswith(EVENT_GLITCH):
                log.warning(
                    event + ": readings came back to the old segment; the odd ones are not counted",
                    **fields,
                )
            elif "reset" in event or "jump" in event:
                log.warning(event + ": new segment, change not counted as energy", **fields)
            else:
                log.info(event, **fields)
        self.events.clear()

    def now_ns(self) -> int:
        return round(self._clock() * NS_PER_S)

    # ------------------------------------------------------------------ windows

    def close_due(self, now: float | None = None) -> list[SampleBatch]:
        """Close every window whose end + grace has passed; return their metric batches."""
        return self._close_due(self.now_ns() if now is None else round(now * NS_PER_S))

    def _close_due(self, now_ns: int, *, announce: bool = True) -> list[SampleBatch]:
        grace, not_before = self._grace_ns, self.started_ns + self._grace_ns
        out: list[SampleBatch] = []
        for unit in self.units:
            unit.stager.flush(invalidate=True)
        for kind in self.kinds:
            name = kind.name
            closed: dict[tuple[int, int, str], OpenWindow[Any]] = {}
            by_meter: dict[tuple[int, int, str], OpenWindow[Any]] = {}
            for meter in self.meters:
                for window in self._pop(meter.tracks[name], now_ns):
                    out += meter.close(name, window, self.context)
                    by_meter.setdefault((window.start_ns, window.end_ns, window.label), window)
                    if self.total is not None and meter in self.total.members:
                        closed.setdefault((window.start_ns, window.end_ns, window.label), window)
            for machine in self.machines:
                for due in self._pop(machine.tracks[name], now_ns):
                    out += machine.close(name, due, self.context)
            for carrier in self.carriers:
                for window in self._pop(carrier.tracks[name], now_ns):
                    out += carrier.close(name, window, self.context)
            if self.total is not None:
                for window in closed.values():
                    out += self.total.close(name, window, self.context)
            for saving in self.savings:
                for window in by_meter.values():
                    if (name, window.start_ns) in saving.meters[0].just_closed:
                        out += saving.close(name, window, self.context)
        for saving in self.savings if announce else ():
            out += saving.announce(now_ns, self.context)  # a fit not yet published
        for meter in self.meters:
            meter.just_closed.clear()
        for machine in self.machines:
            machine.just_closed.clear()
        if self.watchers and announce:  # not at start (announce=False): nowhere to send them
            self.watchers.expire(now_ns)
        if self._extra and announce:  # also an end made at start (Watchers.restore)
            out[:0] = self._drain()
        deadlines = [
            when
            for unit in self.units
            for track in unit.tracks.values()
            if (when := track.deadline_ns(grace, not_before)) is not None
        ]
        deadline = min(deadlines, default=None)
        self._next_deadline_ns = deadline if deadline is not None else now_ns + NS_PER_S
        if out:
            self.save()
            if self.reporter is not None:
                # After every kind closed (a day's report needs all of the day's batches)
                # and after the save (reports.py: why a report is then sent once).
                out += self._report(self.reporter, out)
        return out

    def _report(self, reporter: PassHook, closed: list[SampleBatch]) -> list[SampleBatch]:
        """The reports of this pass; a reporter that raises costs its reports, never the
        metric batches of the pass (they would be lost with it: the windows are closed)."""
        try:
            reports = reporter(closed)
        except Exception:
            if self._reporter_failing.begin():
                log.exception("energy report could not be made; metrics go on")
            return []
        self._reporter_failing.end()
        return reports

    def _pop(self, track: WindowTrack[A], now_ns: int) -> list[OpenWindow[A]]:
        track.ensure(now_ns)
        return track.pop_due(now_ns, self._grace_ns, self.started_ns + self._grace_ns)

    def next_deadline(self) -> float:
        """When (clock seconds) the next window is due to close, or an event to end (its
        readings stopped), or batches made at start are waiting to be sent."""
        deadline = self.started_ns if self._extra else self._next_deadline_ns
        return min([deadline, *self.watchers.deadlines()]) / NS_PER_S

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        for unit in self.units:
            unit.stager.flush(invalidate=True)
        return {
            "version": STATE_VERSION,
            "plant": self.plant,
            "saved_at_ns": self.now_ns(),
            "units": {
                unit.name: {
                    "fingerprint": self._fingerprints[unit.name],
                    "source": self._sources.get(unit.name),
                    "state": unit.state(),
                }
                for unit in self.units
            },
            "total": None if self.total is None else self.total.state(),
            "savings": {unit.name: unit.state() for unit in self.savings},
            "watchers": self.watchers.state(),
        }

    def save(self) -> bool:
        if self._store is None:
            return False
        return self._store.save(self.snapshot())

    def _restore(self, data: dict[str, Any] | None) -> None:
        if data is None:
            return
        if data.get("version") != STATE_VERSION or data.get("plant") != self.plant:
            log.warning("metrics state is from another version or plant; starting fresh")
            return
        saved = data.get("units", {})
        restored = []
        for unit in self.units:
            entry = saved.get(unit.name)
            if entry is None:
                continue
            if entry.get("fingerprint") != self._fingerprints[unit.name]:
                kept = isinstance(unit, MeterUnit) and entry.get("source") == self._sources.get(
                    unit.name
                )
                if isinstance(unit, MeterUnit) and kept:
                    unit.peaks.restore(entry.get("state", {}).get("peak"))
                log.warning(
                    "metrics config of this unit changed; its saved windows are dropped"
                    + ("; its peak demand of the day and the month is kept" if kept else ""),
                    unit=unit.name,
                )
                continue
            unit.restore(entry.get("state", {}))
            restored.append(unit.name)
        if self.total is not None and data.get("total") is not None:
            self.total.restore(data["total"])
        for saving in self.savings:
            entry = data.get("savings", {}).get(saving.name)
            if entry is not None and not saving.restore(entry):
                log.warning(
                    "baseline config changed; its cumulative savings start again",
                    baseline=saving.name,
                )
        self.watchers.restore(data.get("watchers"), data.get("saved_at_ns"))
        if restored:
            log.info("metrics state restored", units=restored)
