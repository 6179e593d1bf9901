"""Measured savings against an energy baseline (ISO 50015), per window and cumulatively.

For each closed window of its kind a :class:`SavingsUnit` takes its meters' energy and
its machines' parts and run time from the accumulators the processor has just closed
for the same window (as the plant total does), and the window's outdoor temperature from
its own track. Then (docs/METRICS.md, "Baselines, EnPIs and savings"):

* ``expected_kwh`` = the baseline's prediction for the window's variables,
* ``actual_kwh`` = the metered energy, ``avoided_kwh`` = expected - actual, in kgce and
  kgCO2e with the plant's factors, and running totals kept across restarts: the running
  kWh is summed, the running kgce is that sum x the kgce/kWh in use when it is published
  (summing each window's kgce would mix coefficients once ``coal_equivalent`` changes);
* the EnPIs ``kwh_per_good_part`` and ``kwh_per_operating_hour`` (run hours).

Without a valid fit, expected and avoided are ``None`` with the reason. Variables outside
the baseline's validity range make the window's savings uncertain (ISO 50006 caution).
A window below the minimum coverage, or whose energy or machine states are not known
for the whole of it (:data:`WHOLE_WINDOW`: the agent started mid-window), is uncertain
and left out of the running totals: a meter or a counter partly unread fakes savings.

The unit also records each window (:mod:`edge_agent.metrics.window_history`) and fits
the baseline once its period is over (:mod:`edge_agent.metrics.baseline_fitting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import structlog

from edge_agent.config import TagCatalog
from edge_agent.config.metrics import MetricsConfig
from edge_agent.metrics.accumulators import EnergyAcc, MachineAcc
from edge_agent.metrics.baseline_fitting import BaselineFitting
from edge_agent.metrics.baseline_inputs import (
    NS_PER_HOUR,
    BaselineSpec,
    TemperatureAcc,
    TemperatureFeed,
    baseline_spec,
)
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.savings_day import DaySavings
from edge_agent.metrics.specs import Context
from edge_agent.metrics.store import StateStore
from edge_agent.metrics.tracks import OpenWindow, WindowTrack
from edge_agent.metrics.units.feed import PRIORITY_AMOUNT, Handler
from edge_agent.metrics.units.machine import MachineUnit
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.metrics.utilization import RUN
from edge_agent.metrics.window_history import Record, WindowHistory
from edge_agent.metrics.windows import DAY, LocalTime, WindowKind
from edge_agent.model import Quality, SampleBatch

log = structlog.get_logger("edge_agent.metrics")

SAVINGS_NAMES: Final = (
    "expected_kwh",
    "actual_kwh",
    "avoided_kwh",
    "avoided_kgce",
    "avoided_kgco2e",
    "cumulative_avoided_kwh",
    "cumulative_avoided_kgce",
    "kwh_per_good_part",
    "kwh_per_operating_hour",
)
#: Samples that depend on the baseline's prediction.
_PREDICTED: Final = frozenset({"expected_kwh", "avoided_kwh", "avoided_kgce", "avoided_kgco2e"})
_CUMULATIVE: Final = frozenset({"cumulative_avoided_kwh", "cumulative_avoided_kgce"})
#: Savings are counted only for windows known this completely (energy counted or bridged,
#: machine states): the baseline expects the whole window.
WHOLE_WINDOW: Final = 0.999


class SavingsUnit:
    """One baseline: its windows' savings and EnPIs, the running totals, its fit."""

    def __init__(
        self,
        spec: BaselineSpec,
        meters: Sequence[MeterUnit],
        machines: Sequence[MachineUnit],
        kind: WindowKind,
        fitting: BaselineFitting,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.meters = tuple(meters)
        self.machines = tuple(machines)
        self.kind = kind
        self.fitting = fitting
        self.track: WindowTrack[TemperatureAcc] = WindowTrack(kind, TemperatureAcc)
        self.feed = (
            None
            if spec.temperature is None
            else TemperatureFeed(spec.temperature, self.track.spread)
        )
        self.cumulative_kwh = 0.0
        #: Windows starting before this were counted already (a restored window that
        #: closes a second time after a crash is not counted twice).
        self.counted_until_ns = 0
        #: The running day's sums, for its ``1d`` savings batch (windows shorter than a day).
        self.day: DaySavings | None = None

    def handlers(self) -> list[tuple[str, str, int, Handler]]:
        if self.feed is None:
            return []
        t = self.feed.spec
        return [(t.device, t.tag, PRIORITY_AMOUNT, self.feed.on_sample)]

    # ------------------------------------------------------------------ closing

    def close(self, kind: str, window: OpenWindow[Any], ctx: Context) -> list[SampleBatch]:
        """The batches of a window the meters just closed (of any kind)."""
        out: list[SampleBatch] = []
        if kind == self.spec.window:
            out += self._close_window(window, ctx)
        if kind == DAY:
            day, self.day = self.day, None
            if day is not None and day.start_ns == window.start_ns and DAY in ctx.emitted:
                out.append(day.batch(self.name, SAVINGS_NAMES, window, ctx, self._cumulative(ctx)))
            out.append(self.fitting.batch(window, ctx))
        return out

    def _cumulative(self, ctx: Context) -> tuple[float, float] | None:
        """The running sums in kWh and kgce (at the coefficient in use), as windows have."""
        if self.fitting.usable() is None:
            return None
        return self.cumulative_kwh, ctx.conversions.kgce(self.cumulative_kwh)

    def _close_window(self, window: OpenWindow[Any], ctx: Context) -> list[SampleBatch]:
        record = self.record(window, self._temperature(window))
        self.fitting.history.add(record)
        self.fitting.window_closed(window.end_ns)  # fits once the baseline period is over
        return [self._savings_batch(window, record, ctx, self._known_share(window))]

    def _known_share(self, window: OpenWindow[Any]) -> float:
        """The share of the window whose energy (counted or bridged) and machine states are
        known, the lowest of the baseline's meters and machines."""
        key = (self.spec.window, window.start_ns)
        length = window.end_ns - window.start_ns
        shares = [1.0]
        for meter in self.meters:
            acc: EnergyAcc | None = meter.just_closed.get(key)
            shares.append(0.0 if acc is None else acc.known_ns / length)
        for machine in self.machines:
            macc: MachineAcc | None = machine.just_closed.get(key)
            shares.append(0.0 if macc is None else sum(macc.state_ns) / length)
        return min(shares)

    def _temperature(self, window: OpenWindow[Any]) -> TemperatureAcc | None:
        if self.feed is None:
            return None
        self.track.ensure(window.start_ns)
        found = None
        while self.track.open and self.track.open[0].end_ns <= window.end_ns:
            popped = self.track.open.pop(0)
            if popped.start_ns == window.start_ns:
                found = popped.acc
        return found if found is not None else TemperatureAcc()

    def record(self, window: OpenWindow[Any], temperature: TemperatureAcc | None) -> Record:
        """The window's energy, variables and coverage, from what the units just closed."""
        key = (self.spec.window, window.start_ns)
        length = window.end_ns - window.start_ns
        coverage = 1.0
        energy: float | None = 0.0
        for meter in self.meters:
            acc: EnergyAcc | None = meter.just_closed.get(key)
            if acc is None or not acc.touched:
                energy, coverage = None, 0.0
                continue
            if energy is not None:
                energy += acc.kwh
            coverage = min(coverage, acc.covered_ns / length)
        good: float | None = 0.0
        produced: float | None = 0.0
        run_ns = 0
        for machine in self.machines:
            macc: MachineAcc | None = machine.just_closed.get(key)
            if macc is None:
                good = produced = None
                coverage = 0.0
                continue
            total, good_parts, _ = machine.parts_of(macc.parts, macc.parts_touched)
            good = None if good is None or good_parts is None else good + good_parts
            produced = None if produced is None or total is None else produced + total
            run_ns += macc.state_ns[RUN]
            coverage = min(coverage, sum(macc.state_ns) / length)
        variables: dict[str, float | None] = {}
        if self.machines:
            variables.update(
                parts_good=good, parts_produced=produced, run_hours=run_ns / NS_PER_HOUR
            )
        if temperature is not None:
            coverage = min(coverage, temperature.covered_ns / length)
            variables.update(
                temperature=temperature.mean_c(),
                heating_degree_hours=temperature.degree_hours(heating=True),
                cooling_degree_hours=temperature.degree_hours(heating=False),
            )
        return Record(
            window.start_ns, window.end_ns, energy, variables, coverage, self.spec.record_key
        )

    def _savings_batch(
        self, window: OpenWindow[Any], record: Record, ctx: Context, known_share: float
    ) -> SampleBatch:
        conv = ctx.conversions
        actual = record.energy_kwh
        good = record.variables.get("parts_good")
        run_hours = record.variables.get("run_hours")
        fit = self.fitting.usable()
        reasons: dict[str, str] = {}
        expected = avoided = None
        if fit is None:
            reason = self.fitting.not_usable_reason()
            reasons.update(dict.fromkeys(_PREDICTED | _CUMULATIVE, reason))
        else:
            x = [record.variables.get(v) for v in self.spec.variables]
            known = [v for v in x if v is not None]
            if actual is None:
                reasons.update(dict.fromkeys(_PREDICTED, "no energy data in this window"))
            elif len(known) != len(x):
                missing = [n for n, v in zip(self.spec.variables, x, strict=True) if v is None]
                reasons.update(
                    dict.fromkeys(_PREDICTED, f"{', '.join(missing)} unknown in this window")
                )
            else:
                expected = fit.predict(known)
                avoided = expected - actual
                if known_share < WHOLE_WINDOW:
                    # The baseline expects the whole window; the energy is short of what was
                    # drawn in the part not known (an agent started mid-window): counted,
                    # that difference would be savings that never were.
                    reasons.update(
                        dict.fromkeys(
                            _PREDICTED,
                            f"energy or production known for {known_share:.1%} of the window "
                            "only: not counted in the savings",
                        )
                    )
                outside = fit.outside(known)
                if outside:
                    reasons.update(
                        dict.fromkeys(
                            _PREDICTED,
                            "ISO 50006: the baseline is not valid here: " + "; ".join(outside),
                        )
                    )
            counts = (
                avoided is not None
                and known_share >= WHOLE_WINDOW
                and record.coverage >= ctx.min_coverage
                and window.start_ns >= self.counted_until_ns
                # The baseline period's own windows are the fit's residuals, not savings.
                and (self.spec.period is None or window.start_ns >= self.spec.period[1])
            )
            if counts:
                assert avoided is not None
                self.cumulative_kwh += avoided
                self.counted_until_ns = window.end_ns
        cumulative = None if fit is None else (self.cumulative_kwh, conv.kgce(self.cumulative_kwh))
        values = [
            expected,
            actual,
            avoided,
            None if avoided is None else conv.kgce(avoided),
            None if avoided is None else conv.kgco2e(avoided),
            None if cumulative is None else cumulative[0],
            None if cumulative is None else cumulative[1],
            actual / good if actual is not None and good else None,
            actual / run_hours if actual is not None and run_hours else None,
        ]
        if actual is not None:
            if not self.machines or good is None:
                reasons.setdefault(
                    "kwh_per_good_part", "no parts counted (no machines or counters)"
                )
            elif not good:
                reasons.setdefault("kwh_per_good_part", "no good parts")
            if not run_hours:
                reasons.setdefault("kwh_per_operating_hour", "no run time")
        batch = metric_batch(
            self.name,
            self.spec.window,
            window,
            "savings",
            SAVINGS_NAMES,
            values,
            record.coverage,
            ctx.min_coverage,
        )
        for index, name in enumerate(SAVINGS_NAMES):
            why = reasons.get(name)
            if why and (values[index] is None or name in _PREDICTED):
                batch.qualities[index] = Quality.UNCERTAIN
                batch.reasons[index] = why
        # The day sums what the totals would count on its data: not a window known in part
        # or below the minimum coverage (a baseline-period day still shows its residuals).
        whole = known_share >= WHOLE_WINDOW and record.coverage >= ctx.min_coverage
        uncertain = reasons.get("expected_kwh", "")
        self._add_to_day(window, record, expected, avoided, uncertain, whole, ctx)
        return batch

    def _add_to_day(
        self,
        window: OpenWindow[Any],
        record: Record,
        expected: float | None,
        avoided: float | None,
        uncertain: str,
        counted: bool,
        ctx: Context,
    ) -> None:
        """The window into its day's sums (savings_day.py), for the ``1d`` batch: what the
        running totals counted, so that the day and the totals tell one story."""
        if self.spec.window == DAY:
            return
        day = ctx.day.window_at(window.start_ns)
        if day is None:
            return
        if self.day is None or self.day.start_ns != day.start_ns:
            self.day = DaySavings(day.start_ns, day.end_ns)
        if not uncertain and record.coverage < ctx.min_coverage:
            uncertain = f"coverage {record.coverage:.1%} below {ctx.min_coverage:.0%}"
        self.day.add(record, expected, avoided, uncertain, counted)

    def announce(self, now_ns: int, ctx: Context) -> list[SampleBatch]:
        """The baseline batch of a fit made since the last close pass (with today's bounds,
        and ``as_of`` = ``now_ns``: the day is still running, the fit is known now).

        A fit due since start is made here, after the pass closed the windows restored
        open: one of the baseline period left open across the downtime is in it."""
        self.fitting.fit_if_due(
            [w.start_ns for m in self.meters for w in m.tracks[self.spec.window].open]
        )
        if not self.fitting.announce:
            return []
        day = ctx.day.window_at(now_ns)
        if day is None:
            return []
        window: OpenWindow[Any] = OpenWindow(day.start_ns, day.end_ns, day.label, None)
        return [self.fitting.batch(window, ctx, as_of=now_ns)]

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        return {
            "key": self.spec.key,
            "cumulative_kwh": self.cumulative_kwh,
            "counted_until_ns": self.counted_until_ns,
            "temperature": None if self.feed is None else self.feed.state(),
            "track": self.track.state(),
            "day": None if self.day is None else self.day.state(),
        }

    def restore(self, state: dict[str, Any]) -> bool:
        """False (nothing restored) when the baseline's config changed."""
        if state.get("key") != self.spec.key:
            return False
        self.cumulative_kwh = float(state.get("cumulative_kwh", 0.0))
        # A "cumulative_kgce" of an older state file is not read: kgce follows the kWh.
        self.counted_until_ns = int(state.get("counted_until_ns", 0))
        self.day = DaySavings.load(state.get("day"))
        if self.feed is not None:
            self.feed.restore(state.get("temperature"))
            self.track.restore(state.get("track", []), TemperatureAcc.load)
        return True


def build_savings(
    metrics: MetricsConfig,
    meters: Sequence[MeterUnit],
    machines: Sequence[MachineUnit],
    kinds: Sequence[WindowKind],
    local: LocalTime,
    tags: TagCatalog,
    state_dir: Path | None,
    started_ns: int,
) -> list[SavingsUnit]:
    """A savings unit per configured baseline (files in ``state_dir``; None: in memory)."""
    units: list[SavingsUnit] = []
    by_kind = {kind.name: kind for kind in kinds}
    meter_of = {m.name: m for m in meters}
    machine_of = {m.name: m for m in machines}
    for config in metrics.baselines:
        kind = by_kind.get(config.window)
        missing = [m for m in config.meters if m not in meter_of]
        missing += [m for m in config.machines if m not in machine_of]
        if kind is None or missing:
            log.warning(
                "baseline skipped: its window is not computed or a meter/machine is missing",
                baseline=config.name,
                window=config.window,
                missing=missing,
            )
            continue
        interval = None
        if config.temperature is not None:
            found = tags.tag(config.temperature.device, config.temperature.tag)
            interval = None if found is None else found.interval
        spec = baseline_spec(config, local, interval)
        files = None if state_dir is None else state_dir / f"baseline-{spec.name}"
        history = WindowHistory(None if files is None else files.with_suffix(".windows.jsonl"))
        store = None if files is None else StateStore(files.with_suffix(".fit.json"))
        fitting = BaselineFitting(spec, history, store, started_ns, metrics.min_coverage)
        units.append(
            SavingsUnit(
                spec,
                [meter_of[m] for m in config.meters],
                [machine_of[m] for m in config.machines],
                kind,
                fitting,
            )
        )
    return units
