"""The console's energy and production page: today's figures as the agent publishes them.

:func:`energy_document` builds the ``/console/api/energy`` answer (shape in
docs/CONSOLE.md, "The energy document"). Nothing is recomputed for the browser:

* closed windows come from the **metric batches the agent published** today (15-minute
  ``demand`` blocks, ``shift`` energy), read through
  :func:`~edge_agent.metrics.contract.metric_info` only. Blocks the batches do not hold
  (``15m`` not in ``metrics.windows``, or older than what the caller kept) come from the
  day's blocks the meter's :class:`~edge_agent.metrics.demand.PeakTracker` keeps: the
  same numbers its demand batches carry (or would carry);
* running figures (energy today, demand in the open block, state, KPIs, today's peak so
  far) come from the processor's open windows through
  :func:`~edge_agent.metrics.live.live_kpis`, and a running shift from its open shift
  window: what those windows will publish when they close, so far;
* each machine's state band from its :class:`~edge_agent.metrics.timeline.StateTimeline`;
* cost by tariff period, the demand guard, events, other carriers and savings: see
  :mod:`~edge_agent.console.energy_figures`.

Every number is rounded as it is published (:func:`~edge_agent.metrics.output.published`);
``None`` (JSON null) where it is not known. ``notes`` tell the page why something is
missing (``code`` for a translated label, ``text`` in English as the fallback).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from edge_agent.console.energy_figures import (
    carrier_rows,
    event_rows,
    guard_row,
    month_peak,
    priced_members,
    savings_rows,
    tariff_figures,
    tariff_of_batch,
    today_tariff,
)
from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.contract import metric_info
from edge_agent.metrics.cost import FAMILY as TARIFF_FAMILY
from edge_agent.metrics.guard import FAMILY as GUARD_FAMILY
from edge_agent.metrics.live import LiveKpis, live_kpis
from edge_agent.metrics.output import DEMAND_WINDOW, published
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.timeline import MAX_CHANGES
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.units.machine import MachineUnit
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.metrics.utilization import STATE_NAMES
from edge_agent.metrics.windows import NS_PER_S, SHIFT
from edge_agent.model import SampleBatch

#: State names of the band: the four machine states, then unknown (no good reading).
BAND_STATES: Final = (*STATE_NAMES, "unknown")
#: Field of a meter row -> the metric whose precision it is published with.
METER_FIELDS: Final = {
    "energy_today_kwh": "energy_kwh",
    "demand_kw": "demand_kw",
    "peak_demand_kw": "peak_demand_kw",
    "peak_demand_at_s": "peak_demand_at_s",
    "kgce": "kgce",
    "kgco2e": "kgco2e",
}
MACHINE_FIELDS: Final = {
    "utilization": "utilization",
    "availability": "availability",
    "effectiveness": "effectiveness",
    "quality_ratio": "quality_ratio",
    "oee": "oee",
    "energy_today_kwh": "energy_kwh",
    "kwh_per_good_part": "kwh_per_good_part",
    "idle_energy_kwh": "idle_energy_kwh",
    "parts_made": "parts_produced",
    "parts_good": "parts_good",
}


def energy_document(
    processor: MetricsProcessor | None,
    metric_batches: Iterable[SampleBatch],
    now_ns: int | None = None,
    *,
    timezone: str = "UTC",
    events: Iterable[SampleBatch] = (),
) -> dict[str, Any]:
    """The ``/console/api/energy`` document for the local day containing ``now_ns``.

    ``metric_batches``: the metric batches the agent published today (any others, and
    those of other days, are skipped; of a meter's ``demand_guard`` batches the newest
    made by ``now_ns`` counts). ``events``: the event batches kept (any others are
    skipped). ``timezone`` is used only without a processor (no ``metrics`` section), to
    date the empty page.
    """
    if processor is None:
        now_ns = time.time_ns() if now_ns is None else now_ns
        return {
            "date": _local(now_ns, ZoneInfo(timezone)).date().isoformat(),
            "timezone": timezone,
            "now_s": now_ns / NS_PER_S,
            "meters": [],
            "machines": [],
            "events": [],
            "carriers": [],
            "savings": [],
            "notes": [
                _note("metrics_off", "", None, "No metrics section in the plant file: no figures.")
            ],
        }
    now_ns = processor.now_ns() if now_ns is None else now_ns
    zone = ZoneInfo(processor.timezone)
    day = processor.context.day.window_at(now_ns)
    assert day is not None, "days leave no hole"
    today = (day.start_ns, day.end_ns)
    batches = list(metric_batches)
    blocks, shifts = _published(batches, today)
    guard_batches = _newest_guard_batches(batches, now_ns)
    # live_kpis lists the meters, the machines, then the plant total, in the processor's order.
    live = live_kpis(processor, now_ns)
    live_machines = live[len(processor.meters) : len(processor.meters) + len(processor.machines)]
    notes = _notes(processor, today, zone)
    meters: list[dict[str, Any]] = []
    guards = {guard.meter.name: guard for guard in processor.watchers.guards}
    for unit, live_row in zip(processor.meters, live, strict=False):
        row = _meter(live_row, "meter", unit.peaks.blocks_of(today[0]), blocks)
        row.update(month_peak(processor, unit.peaks, now_ns))
        row["tariff"] = _tariff(unit.tariff.name if unit.tariff else None, [unit], now_ns)
        guard = guards.get(unit.name)
        row["guard"] = None
        if guard is not None:
            row["guard"] = guard_row(guard, guard_batches.get(unit.name), now_ns)
            if row["guard"]["predicted_kw"] is None:
                notes.append(_guard_note(unit.name))
        row["shifts"] = _shift_rows(processor, [unit], shifts.get(unit.name, {}), today, now_ns)
        meters.append(row)
    if processor.total is not None:
        total = processor.total
        row = _meter(live[-1], "plant", total.peaks.blocks_of(today[0]), blocks)
        row.update(month_peak(processor, total.peaks, now_ns))
        row["tariff"] = _tariff(None, total.members, now_ns)
        if row["tariff"] is None and any(m.tariff is not None for m in total.members):
            notes.append(_unpriced_note(total.name))
        row["guard"] = None
        row["shifts"] = _shift_rows(
            processor, total.members, shifts.get(total.name, {}), today, now_ns
        )
        meters.append(row)
    machines = []
    for machine, live_row in zip(processor.machines, live_machines, strict=True):
        machines.append(_machine(machine, live_row, today[0], now_ns))
        timeline = machine.timeline
        if timeline is not None and timeline.dropped:
            first = timeline.first_ns()
            notes.append(
                _note(
                    "timeline_truncated",
                    machine.name,
                    None if first is None else first / NS_PER_S,
                    f"More than {MAX_CHANGES} state changes today: the band of "
                    f"{machine.name} starts at {_hhmm(first, zone)}.",
                )
            )
    return {
        "date": _local(day.start_ns, zone).date().isoformat(),
        "timezone": processor.timezone,
        "now_s": now_ns / NS_PER_S,
        "meters": meters,
        "machines": machines,
        "events": event_rows(events, today[0]),
        "carriers": _carriers(processor, now_ns, notes),
        "savings": savings_rows(processor, batches, today),
        "notes": notes,
    }


def _tariff(name: str | None, meters: Sequence[MeterUnit], now_ns: int) -> dict[str, Any] | None:
    """Cost by period today, or None: unpriced (a meter without a tariff; a plant total
    with a member without one)."""
    figures = today_tariff(meters, now_ns)
    return None if figures is None else {"name": name, "today": figures}


def _carriers(
    processor: MetricsProcessor, now_ns: int, notes: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = carrier_rows(processor, now_ns)
    for row in rows:
        if not row["has_co2_factor"]:
            notes.append(
                _note(
                    "carrier_no_co2",
                    row["name"],
                    None,
                    f"{row['name']} has no CO2 factor configured: no kgCO2e.",
                )
            )
    return rows


def _guard_note(meter: str) -> dict[str, Any]:
    return _note(
        "guard_no_reading",
        meter,
        None,
        f"No reading of {meter} with power in this 15-minute block yet: no prediction.",
    )


def _unpriced_note(total: str) -> dict[str, Any]:
    return _note(
        "total_unpriced",
        total,
        None,
        f"Not every meter of {total} has a tariff: its cost is not shown (it would "
        "look whole and not be).",
    )


def _newest_guard_batches(batches: Iterable[SampleBatch], now_ns: int) -> dict[str, SampleBatch]:
    """Per meter, its newest ``demand_guard`` batch made by ``now_ns``."""
    newest: dict[str, SampleBatch] = {}
    for batch in batches:
        info = metric_info(batch)
        if info is None or info.family != GUARD_FAMILY or batch.timestamp_ns > now_ns:
            continue
        kept = newest.get(batch.device)
        if kept is None or batch.timestamp_ns >= kept.timestamp_ns:
            newest[batch.device] = batch
    return newest


# --------------------------------------------------------------------------- published


Blocks = dict[str, dict[int, dict[str, Any]]]


def _published(batches: Iterable[SampleBatch], today: tuple[int, int]) -> tuple[Blocks, Blocks]:
    """Today's 15-minute blocks and shift rows by unit name and window start, as published
    (a shift row with its cost by period when a ``tariff`` batch of it was published)."""
    blocks: Blocks = {}
    shifts: Blocks = {}
    costs: Blocks = {}
    for batch in batches:
        info = metric_info(batch)
        if info is None or info.bounds is None:
            continue
        start, end = info.bounds
        if info.family == "demand" and info.window == DEMAND_WINDOW:
            if today[0] <= start < today[1]:
                blocks.setdefault(batch.device, {})[start] = {
                    "start_s": start / NS_PER_S,
                    "end_s": end / NS_PER_S,
                    "demand_kw": _value(batch, "demand_kw"),
                    "quality": _quality(batch, "demand_kw"),
                }
        elif info.family == "energy" and info.window == SHIFT and _overlaps(start, end, today):
            shifts.setdefault(batch.device, {})[start] = {
                "name": info.shift or "",
                "start_s": start / NS_PER_S,
                "end_s": end / NS_PER_S,
                "energy_kwh": _value(batch, "energy_kwh"),
                "kgce": _value(batch, "kgce"),
                "kgco2e": _value(batch, "kgco2e"),
                "quality": _quality(batch, "energy_kwh"),
                "open": False,
            }
        elif info.family == TARIFF_FAMILY and info.window == SHIFT and _overlaps(start, end, today):
            costs.setdefault(batch.device, {})[start] = tariff_of_batch(batch)
    for device, rows in shifts.items():
        for start, row in rows.items():
            row["tariff"] = costs.get(device, {}).get(start)
    return blocks, shifts


def _overlaps(start_ns: int, end_ns: int, today: tuple[int, int]) -> bool:
    """A shift of today: one that crossed midnight into it counts too (a night shift)."""
    return start_ns < today[1] and end_ns > today[0]


def _value(batch: SampleBatch, name: str) -> float | None:
    try:
        value = batch.values[list(batch.names).index(name)]
    except ValueError:
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _quality(batch: SampleBatch, name: str) -> str:
    try:
        return batch.qualities[list(batch.names).index(name)].label
    except ValueError:
        return "bad"


# --------------------------------------------------------------------------- meters


def _meter(live: LiveKpis, kind: str, kept: list[Any], published_: Blocks) -> dict[str, Any]:
    row: dict[str, Any] = {"name": live.name, "kind": kind}
    for field, metric in METER_FIELDS.items():
        row[field] = _round(metric, getattr(live, field))
    by_start = {
        block.start_ns: {
            "start_s": block.start_ns / NS_PER_S,
            "end_s": block.end_ns / NS_PER_S,
            "demand_kw": _round("demand_kw", block.demand_kw),
            "quality": "good" if block.good else "uncertain",
        }
        for block in kept
    }
    by_start.update(published_.get(live.name, {}))  # what went out wins
    row["blocks"] = [by_start[start] for start in sorted(by_start)]
    return row


def _shift_rows(
    processor: MetricsProcessor,
    meters: Sequence[MeterUnit],
    published_: dict[int, dict[str, Any]],
    today: tuple[int, int],
    now_ns: int,
) -> list[dict[str, Any]]:
    """Published shift rows, then the started ones not yet published, summed over ``meters``
    (one meter, or the plant total's members, as :class:`PlantTotal` sums them)."""
    rows = dict(published_)
    running: dict[int, list[OpenWindow[EnergyAcc]]] = {}
    by_meter: dict[int, dict[str, EnergyAcc]] = {}
    for meter in meters:
        track = meter.tracks.get(SHIFT)
        for window in [] if track is None else track.open:
            if (
                window.start_ns <= now_ns
                and window.end_ns > today[0]
                and window.start_ns < today[1]
            ):
                running.setdefault(window.start_ns, []).append(window)
                by_meter.setdefault(window.start_ns, {})[meter.name] = window.acc
    conv, min_coverage = processor.context.conversions, processor.config.min_coverage
    for start, windows in running.items():
        if start in rows:
            continue
        first, accs = windows[0], [w.acc for w in windows]
        touched = [acc for acc in accs if acc.touched]
        kwh = sum(acc.kwh for acc in touched) if touched else None
        elapsed = max(1, min(now_ns, first.end_ns) - start)
        coverage = 0.0 if len(accs) < len(meters) else min(a.covered_ns for a in accs) / elapsed
        rows[start] = {
            "name": first.label,
            "start_s": start / NS_PER_S,
            "end_s": first.end_ns / NS_PER_S,
            "energy_kwh": _round("energy_kwh", kwh),
            "kgce": _round("kgce", None if kwh is None else conv.kgce(kwh)),
            "kgco2e": _round("kgco2e", None if kwh is None else conv.kgco2e(kwh)),
            "quality": "good" if kwh is not None and coverage >= min_coverage else "uncertain",
            "open": True,
            "tariff": None,
        }
        members = priced_members(meters, [by_meter[start].get(m.name) for m in meters])
        if members is not None:
            rows[start]["tariff"] = tariff_figures(members, start, first.end_ns)
    return [rows[start] for start in sorted(rows)]


# --------------------------------------------------------------------------- machines


def _machine(machine: MachineUnit, live: LiveKpis, day_ns: int, now_ns: int) -> dict[str, Any]:
    tracker = machine.states
    last_seen = tracker.last_ns
    deriver = machine.deriver
    if deriver is not None and deriver.pending_times:
        # Samples waiting out min_dwell: the machine is seen, its new state not yet settled.
        last_seen = max(last_seen or 0, deriver.pending_times[-1])
    fresh = last_seen is not None and now_ns - last_seen <= tracker.max_gap_ns
    state = live.state if fresh or live.state is None else "unknown"
    row: dict[str, Any] = {"name": machine.name, "state": state}
    for field, metric in MACHINE_FIELDS.items():
        row[field] = _round(metric, getattr(live, field))
    band = []
    if machine.timeline is not None:
        for start, end, index in machine.timeline.intervals(day_ns, now_ns, tracker.last_ns, fresh):
            band.append(
                {"start_s": start / NS_PER_S, "end_s": end / NS_PER_S, "state": BAND_STATES[index]}
            )
    row["timeline"] = band
    return row


# --------------------------------------------------------------------------- notes


def _notes(
    processor: MetricsProcessor, today: tuple[int, int], zone: ZoneInfo
) -> list[dict[str, Any]]:
    notes = []
    started = processor.started_ns
    if today[0] < started < today[1]:
        notes.append(
            _note(
                "started_today",
                processor.plant,
                started / NS_PER_S,
                f"The agent started at {_hhmm(started, zone)}: demand bars and state bands "
                "begin then; today's totals include earlier data only if its saved state "
                "was restored.",
            )
        )
    windows = processor.config.windows
    if DEMAND_WINDOW not in windows:
        notes.append(
            _note(
                "blocks_unpublished",
                processor.plant,
                None,
                "15m is not in metrics.windows: the bars are the agent's own 15-minute "
                "blocks, not sent to the sinks.",
            )
        )
    if not processor.config.shifts:
        notes.append(_note("no_shifts", processor.plant, None, "No shifts are configured."))
    elif SHIFT not in windows:
        notes.append(
            _note(
                "shift_windows_off",
                processor.plant,
                None,
                "shift is not in metrics.windows: no energy per shift is computed.",
            )
        )
    return notes


def _note(code: str, subject: str, at_s: float | None, text: str) -> dict[str, Any]:
    return {"code": code, "subject": subject, "at_s": at_s, "text": text}


def _round(metric: str, value: float | None) -> float | None:
    return None if value is None else published(metric, value)


def _local(t_ns: int, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.fromtimestamp(t_ns // NS_PER_S, zone)


def _hhmm(t_ns: int | None, zone: ZoneInfo) -> str:
    return "--:--" if t_ns is None else _local(t_ns, zone).strftime("%H:%M")
