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

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import structlog

from edge_agent.config import PlantConfig
from edge_agent.config_metrics import (
    KW_PER_UNIT,
    KWH_PER_UNIT,
    CounterTag,
    EnergyConfig,
    MachineConfig,
    MetricsConfig,
)
from edge_agent.config_metrics_checks import shift_specs
from edge_agent.metrics.conversions import Conversions
from edge_agent.metrics.demand import mean_kw
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.specs import (
    Context,
    CounterSpec,
    EnergySpec,
    MachineSpec,
    PartsSpec,
    PowerSpec,
    PowerStateSpec,
)
from edge_agent.metrics.store import StateStore
from edge_agent.metrics.tracks import A, OpenWindow, WindowTrack
from edge_agent.metrics.units import Handler, MachineUnit, MeterUnit, PlantTotal
from edge_agent.metrics.utilization import RUN, STATE_NAMES
from edge_agent.metrics.windows import (
    DAY,
    NS_PER_S,
    DayWindows,
    LocalTime,
    ShiftCalendar,
    WindowKind,
    build_kind,
)
from edge_agent.model import Quality, SampleBatch

log = structlog.get_logger("edge_agent.metrics")

STATE_VERSION: Final = 1
#: A sample stamped further than this in the future (a device clock gone wrong) is ignored.
MAX_FUTURE_S: Final = 300.0
#: Default max_gap: a sample may be missed once (2 intervals) before time counts as a gap.
GAP_INTERVALS: Final = 2.5
_INTEGER_BITS: Final = {
    "int16": 16,
    "uint16": 16,
    "int32": 32,
    "uint32": 32,
    "int64": 64,
    "uint64": 64,
}

Unit = MeterUnit | MachineUnit


@dataclass(frozen=True, slots=True)
class LiveKpis:
    """What ``edge-agent demo`` shows per metric device (today = the current local day)."""

    name: str
    kind: str
    energy_today_kwh: float | None
    demand_kw: float | None
    state: str | None
    utilization: float | None
    oee: float | None


class _TagInfo:
    """Config and poll interval of every tag, by device (any driver with poll groups)."""

    def __init__(self, plant: PlantConfig) -> None:
        self._tags: dict[tuple[str, str], tuple[Any, float]] = {}
        for device in plant.devices:
            for group in getattr(device, "poll_groups", []):
                for tag in getattr(group, "tags", []):
                    self._tags.setdefault((device.name, tag.name), (tag, float(group.interval)))

    def get(self, device: str, tag: str) -> tuple[Any, float]:
        found = self._tags.get((device, tag))
        if found is None:
            raise KeyError(f"device {device!r} has no tag {tag!r}")
        return found


def _gap_ns(explicit: float | None, interval: float) -> int:
    seconds = explicit if explicit is not None else GAP_INTERVALS * interval
    return round(seconds * NS_PER_S)


def _counter_spec(counter: CounterTag, device: str, tags: _TagInfo) -> CounterSpec:
    tag, interval = tags.get(device, counter.tag)
    bits = _INTEGER_BITS.get(getattr(tag, "type", ""), 0)
    scale = abs(float(getattr(tag, "scale", 1.0) or 1.0))
    resolution = counter.resolution or (scale if bits else 1e-6)
    modulus: int | None = None
    if counter.rollover == "auto":
        modulus = round(2**bits * scale / resolution) if bits else None
    elif counter.rollover != "none":
        modulus = round(float(counter.rollover) / resolution)
    return CounterSpec(
        counter.tag,
        KWH_PER_UNIT[counter.unit],
        resolution,
        modulus,
        _gap_ns(counter.max_gap, interval),
    )


def energy_spec(energy: EnergyConfig, device: str, tags: _TagInfo) -> EnergySpec:
    power = None
    if energy.power is not None:
        _, interval = tags.get(device, energy.power.tag)
        power = PowerSpec(
            energy.power.tag,
            KW_PER_UNIT[energy.power.unit],
            _gap_ns(energy.power.max_gap, interval),
        )
    counter = None if energy.counter is None else _counter_spec(energy.counter, device, tags)
    return EnergySpec(counter, power, energy.max_power)


def machine_spec(machine: MachineConfig, tags: _TagInfo) -> MachineSpec:
    device = machine.device
    labels: dict[str, int] = {}
    power_state = None
    if machine.state is not None:
        state_tag, interval = tags.get(device, machine.state.tag)
        for label in (getattr(state_tag, "enum", None) or {}).values():
            name = machine.state.map.get(label, label)
            if name in STATE_NAMES:
                labels[label] = STATE_NAMES.index(name)
    else:
        assert machine.state_from_power is not None
        p = machine.state_from_power
        _, interval = tags.get(device, p.tag)
        power_state = PowerStateSpec(
            p.tag,
            KW_PER_UNIT[p.unit],
            p.off_below,
            p.run_above,
            p.hysteresis,
            round(p.min_dwell * NS_PER_S),
        )
    parts = None
    if machine.parts is not None:
        names = (machine.parts.total, machine.parts.good, machine.parts.scrap)
        moduli: list[int | None] = []
        gaps: list[int] = []
        for name in names:
            if name is None:
                moduli.append(None)
                gaps.append(0)
                continue
            tag, tag_interval = tags.get(device, name)
            bits = _INTEGER_BITS.get(getattr(tag, "type", ""), 0)
            rollover = machine.parts.rollover
            if rollover == "auto":
                moduli.append(2**bits if bits else None)
            else:
                moduli.append(None if rollover == "none" else int(rollover))
            gaps.append(_gap_ns(machine.max_gap, tag_interval))
        parts = PartsSpec(names, (moduli[0], moduli[1], moduli[2]), (gaps[0], gaps[1], gaps[2]))
    return MachineSpec(
        name=machine.metric_name,
        device=device,
        state_tag=None if machine.state is None else machine.state.tag,
        state_labels=labels,
        power_state=power_state,
        max_gap_ns=_gap_ns(machine.max_gap, interval),
        ideal_cycle_s=machine.ideal_cycle_time,
        parts=parts,
        energy=None if machine.energy is None else energy_spec(machine.energy, device, tags),
        energy_device=device,
    )


def _skipped(unit: str, exc: KeyError) -> None:
    """A unit whose device or tag is not in the config (a plant file is checked for this at
    load; a config assembled in code may leave devices out): its metrics are skipped."""
    log.warning(
        "metrics unit skipped: its device or tag is not configured", unit=unit, error=str(exc)
    )


def _fingerprint(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_MISSING: Final = object()


class MetricsProcessor:
    """A pipeline processor that computes the plant's metrics (see the module docstring)."""

    def __init__(
        self,
        config: PlantConfig,
        *,
        clock: Callable[[], float] = time.time,
        store: StateStore | None = None,
    ) -> None:
        if config.metrics is None:
            raise ValueError("the plant has no metrics section")
        metrics: MetricsConfig = config.metrics
        self.config = metrics
        self.plant = config.plant.name
        self._clock = clock
        self._store = store
        local = LocalTime(config.plant.timezone)
        self.calendar = ShiftCalendar(shift_specs(metrics), local) if metrics.shifts else None
        names = list(dict.fromkeys([*metrics.windows, DEMAND_WINDOW, DAY]))
        self.kinds: list[WindowKind] = sorted(
            (build_kind(n, local, self.calendar) for n in names), key=lambda k: k.nominal_ns
        )
        self.context = Context(
            conversions=Conversions(
                metrics.coal_equivalent.coefficient, metrics.grid_emission_factor
            ),
            min_coverage=metrics.min_coverage,
            emitted=frozenset(metrics.windows),
            day=DayWindows(local),
        )
        self._grace_ns = round(metrics.grace * NS_PER_S)
        self.events: list[tuple[str, dict[str, Any]]] = []
        tags = _TagInfo(config)
        self.meters: list[MeterUnit] = []
        self.machines: list[MachineUnit] = []
        self._fingerprints: dict[str, str] = {}
        for meter in metrics.meters:
            try:
                spec = energy_spec(meter, meter.device, tags)
            except KeyError as exc:
                _skipped(meter.metric_name, exc)
                continue
            meter_unit = MeterUnit(meter.metric_name, meter.device, spec, self.kinds, self.events)
            self.meters.append(meter_unit)
            self._fingerprints[meter_unit.name] = _fingerprint("meter", meter.model_dump(), names)
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
            self._fingerprints[machine_unit.name] = _fingerprint(
                "machine", machine.model_dump(), names, [s.model_dump() for s in metrics.shifts]
            )
        self.units: list[Unit] = [*self.meters, *self.machines]
        self.total: PlantTotal | None = None
        if metrics.plant_total:
            members = [m for m in self.meters if m.name in metrics.plant_total]
            self.total = PlantTotal(config.plant.name, members)
        self._needs: dict[str, dict[str, list[tuple[int, Handler]]]] = {}
        for unit in self.units:
            for device, tag, priority, handler in unit.handlers():
                self._needs.setdefault(device, {}).setdefault(tag, []).append((priority, handler))
        self._routes: dict[tuple[str, str], Any] = {}
        self.started_ns = self._now_ns()
        self.ignored_future = 0
        if store is not None:
            self._restore(store.load())
        self._next_deadline_ns = 0
        self._close_due(self.started_ns)

    # ------------------------------------------------------------------ hot path

    def __call__(self, batch: SampleBatch) -> Iterable[SampleBatch]:
        route = self._routes.get((batch.device, batch.group), _MISSING)
        if route is _MISSING or (route is not None and route[0] is not batch.names):
            route = self._route(batch)
        now_ns = self._now_ns()
        closed = self._close_due(now_ns) if now_ns >= self._next_deadline_ns else None
        # Close first: a sample arriving after its window's grace is late, not in time.
        if route is not None:
            self._feed(batch, route[1], now_ns)
        return [batch, *closed] if closed else (batch,)

    def _feed(self, batch: SampleBatch, handlers: list[tuple[int, Handler]], now_ns: int) -> None:
        if batch.timestamp_ns > now_ns + MAX_FUTURE_S * NS_PER_S:
            if not self.ignored_future:
                log.warning(
                    "samples stamped in the future are left out of metrics (device clock?)",
                    device=batch.device,
                    group=batch.group,
                )
            self.ignored_future += 1
            return
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
        """Which samples of this (device, group) the units need, in priority order."""
        needs = self._needs.get(batch.device)
        if needs is None or batch.group.startswith("metrics:"):
            self._routes[(batch.device, batch.group)] = None
            return None
        found = [
            (priority, index, handler)
            for index, name in enumerate(batch.names)
            for priority, handler in needs.get(name, ())
        ]
        found.sort(key=lambda item: item[0])
        route = (batch.names, [(index, handler) for _, index, handler in found]) if found else None
        self._routes[(batch.device, batch.group)] = route
        return route

    def _log_events(self) -> None:
        for event, fields in self.events:
            if "reset" in event or "jump" in event:
                log.warning(event + ": new segment, change not counted as energy", **fields)
            else:
                log.info(event, **fields)
        self.events.clear()

    def _now_ns(self) -> int:
        return round(self._clock() * NS_PER_S)

    # ------------------------------------------------------------------ windows

    def close_due(self, now: float | None = None) -> list[SampleBatch]:
        """Close every window whose end + grace has passed; return their metric batches."""
        return self._close_due(self._now_ns() if now is None else round(now * NS_PER_S))

    def _close_due(self, now_ns: int) -> list[SampleBatch]:
        grace, not_before = self._grace_ns, self.started_ns + self._grace_ns
        out: list[SampleBatch] = []
        for unit in self.units:
            unit.stager.flush(invalidate=True)
        for kind in self.kinds:
            name = kind.name
            closed: dict[tuple[int, int, str], OpenWindow[Any]] = {}
            for meter in self.meters:
                for window in self._pop(meter.tracks[name], now_ns):
                    out += meter.close(name, window, self.context)
                    if self.total is not None and meter in self.total.members:
                        closed.setdefault((window.start_ns, window.end_ns, window.label), window)
            for machine in self.machines:
                for due in self._pop(machine.tracks[name], now_ns):
                    out += machine.close(name, due, self.context)
            if self.total is not None:
                for window in closed.values():
                    out += self.total.close(name, window, self.context)
        for meter in self.meters:
            meter.just_closed.clear()
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
        return out

    def _pop(self, track: WindowTrack[A], now_ns: int) -> list[OpenWindow[A]]:
        track.ensure(now_ns)
        return track.pop_due(now_ns, self._grace_ns, self.started_ns + self._grace_ns)

    def next_deadline(self) -> float:
        """When (clock seconds) the next window is due to close."""
        return self._next_deadline_ns / NS_PER_S

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        for unit in self.units:
            unit.stager.flush(invalidate=True)
        return {
            "version": STATE_VERSION,
            "plant": self.plant,
            "saved_at_ns": self._now_ns(),
            "units": {
                unit.name: {"fingerprint": self._fingerprints[unit.name], "state": unit.state()}
                for unit in self.units
            },
            "total": None if self.total is None else self.total.state(),
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
                log.warning(
                    "metrics config of this unit changed; its saved windows are dropped",
                    unit=unit.name,
                )
                continue
            unit.restore(entry.get("state", {}))
            restored.append(unit.name)
        if self.total is not None and data.get("total") is not None:
            self.total.restore(data["total"])
        if restored:
            log.info("metrics state restored", units=restored)

    # ------------------------------------------------------------------ live view

    def live(self) -> list[LiveKpis]:
        """Today's energy, current demand, state, utilization and OEE per unit (for displays)."""
        now_ns = self._now_ns()
        rows = []
        for unit in self.units:
            unit.stager.flush()
        for meter in self.meters:
            day = _open_at(meter.tracks[DAY].open, now_ns)
            block = _open_at(meter.tracks[DEMAND_WINDOW].open, now_ns)
            rows.append(
                LiveKpis(
                    meter.name,
                    "meter",
                    day.kwh if day is not None and day.touched else None,
                    _running_demand(block),
                    None,
                    None,
                    None,
                )
            )
        for machine in self.machines:
            acc = _open_at(machine.tracks[DAY].open, now_ns)
            energy = utilization = oee = None
            demand = None
            if acc is not None:
                known = sum(acc.state_ns)
                utilization = acc.state_ns[RUN] / known if known else None
                oee = machine.kpis(acc).oee
                if machine.feed is not None and acc.energy.touched:
                    energy = acc.energy.kwh
            if machine.feed is not None:
                block_acc = _open_at(machine.tracks[DEMAND_WINDOW].open, now_ns)
                demand = None if block_acc is None else _running_demand(block_acc.energy)
            rows.append(
                LiveKpis(
                    machine.name, "machine", energy, demand, machine.state_name, utilization, oee
                )
            )
        if self.total is not None:
            members = [r for r in rows[: len(self.meters)] if r.name in self.config.plant_total]
            energies = [r.energy_today_kwh for r in members]
            demands = [r.demand_kw for r in members]
            rows.append(
                LiveKpis(
                    self.total.name,
                    "plant",
                    None if None in energies else sum(e for e in energies if e is not None),
                    None if None in demands else sum(d for d in demands if d is not None),
                    None,
                    None,
                    None,
                )
            )
        return rows


def _open_at(windows: list[Any], t_ns: int) -> Any:
    for window in windows:
        if window.start_ns <= t_ns < window.end_ns:
            return window.acc
    return None


def _running_demand(acc: Any) -> float | None:
    """Mean power so far in the current 15-minute block (over its covered time)."""
    if acc is None or not acc.covered_ns or not acc.touched:
        return None
    return mean_kw(acc.kwh - acc.late_kwh, acc.covered_ns)
