"""The energy page's energy-management figures: cost by tariff period, the demand guard,
events, other energy carriers and savings against baselines (issue 16).

:func:`~edge_agent.console.energy.energy_document` adds them to its answer (shape in
docs/CONSOLE.md, "The energy document"). As there, nothing is computed for the browser
that the agent does not publish:

* cost by period (``tariff``) runs from the open ``1d`` and ``shift`` windows through
  :func:`~edge_agent.metrics.cost.tariff_values`, the function the ``tariff`` batches are
  made with, so the figures move during the day and equal the batch at the window's close;
  a closed shift's come from its published ``tariff`` batch;
* the guard's live figures are its newest ``demand_guard`` batch (the block it is in), the
  limit and whether an event runs from the guard itself, the month's peak from the meter's
  :class:`~edge_agent.metrics.demand.PeakTracker` (what the ``1d`` demand batch publishes);
* events are the event batches the console kept (:meth:`LiveRing.event_batches`), a start
  and its end made one row;
* a carrier's amount today runs from its open ``1d`` window, as its ``carrier`` batch will
  publish it; savings are today's published ``savings`` batches and the unit's running
  totals and fit.

Every number is rounded as published (:func:`~edge_agent.metrics.output.published`), and
``None`` where it is not known; the callers add a note saying why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.metrics.conversions import Conversions
from edge_agent.metrics.cost import CURRENCY, tariff_names, tariff_values
from edge_agent.metrics.demand import PeakTracker
from edge_agent.metrics.guard import DemandGuard
from edge_agent.metrics.output import published
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.savings import SavingsUnit
from edge_agent.metrics.tariff import PERIODS, TariffCalendar
from edge_agent.metrics.tracks import OpenWindow, WindowTrack
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.metrics.windows import DAY, NS_PER_S
from edge_agent.model import Quality, SampleBatch, Value

#: Events the document lists at most (active first, then the newest).
EVENTS_SHOWN: Final = 50
#: Values of an event batch that are not figures of its type.
_EVENT_FIELDS: Final = frozenset({"start_s", "end_s", "reason"})
_SAVINGS_SUMS: Final = (
    "expected_kwh",
    "actual_kwh",
    "avoided_kwh",
    "avoided_kgce",
    "avoided_kgco2e",
)
_ENPIS: Final = ("kwh_per_good_part", "kwh_per_operating_hour")


def rounded(metric: str, value: float | None) -> float | None:
    return None if value is None else published(metric, value)


def number(value: Value) -> float | None:
    """A batch value as a number, or None (text, a flag, nothing)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def open_window(track: WindowTrack[Any] | None, now_ns: int) -> OpenWindow[Any] | None:
    """The window of ``track`` open at ``now_ns``, or None."""
    return None if track is None else track.containing(now_ns)


def open_acc(track: WindowTrack[Any] | None, now_ns: int) -> Any:
    """The accumulator of the window of ``track`` open at ``now_ns``, or None."""
    window = open_window(track, now_ns)
    return None if window is None else window.acc


# --------------------------------------------------------------------------- tariff


def tariff_figures(
    members: Sequence[tuple[EnergyAcc, TariffCalendar]], start_ns: int, end_ns: int
) -> dict[str, Any]:
    """kWh and cost per period, total cost and peak share of one or more meters' windows
    ``[start_ns, end_ns)``, as :func:`~edge_agent.metrics.cost.tariff_batch` publishes them
    (``estimate``: why they are, when a period an edited tariff dropped was repriced)."""
    priced, values, estimate = tariff_values(members, start_ns, end_ns)
    by_name = dict(zip(tariff_names(priced), values, strict=True))
    periods = []
    for p in priced:
        name = PERIODS[p]
        prices = {calendar.spec.prices[p] for _, calendar in members}
        periods.append(
            {
                "period": name,
                "kwh": rounded(f"kwh_{name}", by_name[f"kwh_{name}"]),
                "cost": rounded(f"cost_{name}", by_name[f"cost_{name}"]),
                # One price only where every member pays the same for the period.
                "price": prices.pop() if len(prices) == 1 else None,
            }
        )
    return {
        "currency": members[0][1].spec.currency,
        "periods": periods,
        "cost": rounded("cost", by_name["cost"]),
        "peak_share": rounded("peak_share", by_name["peak_share"]),
        "estimate": estimate or None,
    }


def tariff_of_batch(batch: SampleBatch) -> dict[str, Any]:
    """The same figures from a published ``tariff`` batch (a closed window)."""
    values = dict(zip(batch.names, batch.values, strict=True))
    periods = [
        {
            "period": name.removeprefix("kwh_"),
            "kwh": number(value),
            "cost": number(values.get("cost_" + name.removeprefix("kwh_"))),
            "price": None,
        }
        for name, value in values.items()
        if name.startswith("kwh_")
    ]
    return {
        "currency": batch.attributes.get(CURRENCY, ""),
        "periods": periods,
        "cost": number(values.get("cost")),
        "peak_share": number(values.get("peak_share")),
    }


def priced_members(
    meters: Sequence[MeterUnit], accs: Sequence[EnergyAcc | None]
) -> list[tuple[EnergyAcc, TariffCalendar]] | None:
    """Each meter's window with its tariff; None when a meter has none (as the plant total:
    a cost with a meter left unpriced would look whole and not be)."""
    members = []
    for meter, acc in zip(meters, accs, strict=True):
        calendar = meter.feed.tariff
        if calendar is None:
            return None
        members.append((acc or EnergyAcc(), calendar))
    return members or None


def today_tariff(meters: Sequence[MeterUnit], now_ns: int) -> dict[str, Any] | None:
    """Cost by period so far today from the meters' open ``1d`` windows, or None unpriced."""
    windows = [open_window(m.tracks.get(DAY), now_ns) for m in meters]
    members = priced_members(meters, [None if w is None else w.acc for w in windows])
    day = next((w for w in windows if w is not None), None)
    if members is None or day is None:
        return None
    return tariff_figures(members, day.start_ns, day.end_ns)


# --------------------------------------------------------------------------- demand


def month_peak(processor: MetricsProcessor, peaks: PeakTracker, now_ns: int) -> dict[str, Any]:
    """The month's highest 15-minute block so far, as the ``1d`` demand batch publishes it."""
    month_start = processor.context.month_start
    peak = None if month_start is None else peaks.month_peak_of(month_start(now_ns))
    if peak is None:
        return {"month_peak_kw": None, "month_peak_at_s": None}
    return {
        "month_peak_kw": rounded("month_peak_kw", peak.peak_kw),
        "month_peak_at_s": rounded("month_peak_at_s", peak.block_start_ns / NS_PER_S),
    }


def guard_row(guard: DemandGuard, batch: SampleBatch | None, now_ns: int) -> dict[str, Any]:
    """A guarded meter's live prediction: its newest ``demand_guard`` batch if that is of the
    block running at ``now_ns`` (else the figures are None), the limit, a running event."""
    spec, active = guard.spec, guard.active
    row: dict[str, Any] = {
        "limit_kw": spec.limit_kw,
        "kind": "contracted" if spec.critical else "target",
        "predicted_kw": None,
        "block_kwh": None,
        "minutes_left": None,
        "shed_kw": None,
        "at_s": None,
        "block_start_s": None,
        "block_end_s": None,
        "active": active is not None and now_ns < active.block_end_ns,
        "active_since_s": None if active is None else active.start_ns / NS_PER_S,
    }
    if not row["active"]:
        row["active_since_s"] = None
    info = None if batch is None else metric_info(batch)
    if batch is None or info is None or info.bounds is None:
        return row
    start, end = info.bounds
    if not start <= now_ns < end:
        return row  # the last reading was in an earlier block
    for name, value in zip(batch.names, batch.values, strict=True):
        if name in row:
            row[name] = number(value)  # rounded by the guard as it publishes them
    row.update(at_s=batch.timestamp_ns / NS_PER_S, block_start_s=start / NS_PER_S)
    row["block_end_s"] = end / NS_PER_S
    return row


# --------------------------------------------------------------------------- events


def event_rows(batches: Iterable[SampleBatch], since_ns: int) -> list[dict[str, Any]]:
    """Events as rows: a start and its end are one row (the end's figures); active ones, and
    those that ended at or after ``since_ns``; active first, then the newest first."""
    rows: dict[tuple[str, str, float | None], dict[str, Any]] = {}
    for batch in batches:
        info = event_info(batch)
        if info is None:
            continue
        values = dict(zip(batch.names, batch.values, strict=True))
        start_s, end_s = number(values.get("start_s")), number(values.get("end_s"))
        key = (info.event, batch.device, start_s)
        if end_s is None and key in rows:
            continue  # its end came first (kept out of order): the end holds
        reason = values.get("reason")
        rows[key] = {
            "event": info.event,
            "severity": info.severity,
            "device": batch.device,
            "start_s": start_s,
            "end_s": end_s,
            "active": end_s is None,
            "reason": reason if isinstance(reason, str) else "",
            "figures": {
                name: number(value) for name, value in values.items() if name not in _EVENT_FIELDS
            },
        }
    since_s = since_ns / NS_PER_S
    kept = [r for r in rows.values() if r["active"] or (r["end_s"] or 0.0) >= since_s]
    kept.sort(key=lambda r: (not r["active"], -(r["end_s"] or r["start_s"] or 0.0)))
    return kept[:EVENTS_SHOWN]


# --------------------------------------------------------------------------- carriers


def carrier_rows(processor: MetricsProcessor, now_ns: int) -> list[dict[str, Any]]:
    """Each non-electric meter's amount so far today (its counter's unit), kgce, kgCO2e."""
    rows = []
    for unit in processor.carriers:
        acc = open_acc(unit.tracks.get(DAY), now_ns)
        amount = acc.kwh if acc is not None and acc.touched else None  # the feed's "kwh"
        spec = unit.carrier
        co2 = spec.kgco2e_per_unit
        rows.append(
            {
                "name": unit.name,
                "carrier": spec.carrier,
                # The same text its carrier batches carry as the attribute ``unit``.
                "unit": spec.amount_unit,
                "amount": rounded("amount", amount),
                "kgce": rounded("kgce", None if amount is None else amount * spec.kgce_per_unit),
                "kgco2e": rounded(
                    "kgco2e", None if amount is None or co2 is None else amount * co2
                ),
                "has_co2_factor": co2 is not None,
            }
        )
    return rows


# --------------------------------------------------------------------------- savings


def savings_rows(
    processor: MetricsProcessor, batches: Sequence[SampleBatch], today: tuple[int, int]
) -> list[dict[str, Any]]:
    """Per baseline: its fit, today's closed windows summed, the running totals, the EnPIs
    of its last closed window."""
    rows = []
    conversions = processor.context.conversions
    for unit in processor.savings:
        windows = []
        for batch in batches:
            info = metric_info(batch)
            if (
                info is not None
                and info.family == "savings"
                and batch.device == unit.name
                and info.window == unit.spec.window
                and today[0] <= batch.timestamp_ns < today[1]
            ):
                windows.append(batch)
        fitting = unit.fitting
        fit = fitting.fit
        usable = fitting.usable() is not None
        rows.append(
            {
                "name": unit.name,
                "window": unit.spec.window,
                "variables": list(unit.spec.variables),
                "fit": None
                if fit is None
                else {
                    "r2": rounded("r2", fit.r2),
                    "cv_rmse": rounded("cv_rmse", fit.cv_rmse),
                    "n": fit.n,
                    "valid": fit.valid,
                },
                "usable": usable,
                "reason": None if usable else fitting.not_usable_reason(),
                "today": _savings_today(windows, unit, today, conversions),
                "cumulative_avoided_kwh": rounded("cumulative_avoided_kwh", unit.cumulative_kwh)
                if usable
                else None,
                "cumulative_avoided_kgce": rounded(
                    "cumulative_avoided_kgce", conversions.kgce(unit.cumulative_kwh)
                )
                if usable
                else None,
                "last": None if not windows else _savings_last(windows[-1]),
            }
        )
    return rows


def _savings_today(
    windows: Sequence[SampleBatch],
    unit: SavingsUnit,
    today: tuple[int, int],
    conversions: Conversions,
) -> dict[str, Any]:
    """Today's closed windows summed as the unit sums them for its ``1d`` batch
    (savings_day.py: what the running totals count on its data, a window known in part or
    below the minimum coverage left out), or, for a daily baseline, its window of today;
    how many windows had a prediction and how many of those were uncertain."""
    day = unit.day
    if day is not None and day.start_ns == today[0]:
        sums: dict[str, float | None] = {
            "expected_kwh": day.expected_kwh,
            "actual_kwh": day.actual_kwh,
            "avoided_kwh": day.avoided_kwh,
            "avoided_kgce": conversions.kgce(day.avoided_kwh),
            "avoided_kgco2e": conversions.kgco2e(day.avoided_kwh),
        }
        out: dict[str, Any] = {
            name: rounded(name, value) if day.predicted else None for name, value in sums.items()
        }
        out.update(windows=len(windows), counted=day.predicted, uncertain=day.uncertain)
        return out
    totals: dict[str, float] = dict.fromkeys(_SAVINGS_SUMS, 0.0)
    counted = uncertain = 0
    for batch in windows:
        values = dict(zip(batch.names, batch.values, strict=True))
        if number(values.get("avoided_kwh")) is None:
            continue
        counted += 1
        if batch.qualities[list(batch.names).index("avoided_kwh")] is not Quality.GOOD:
            uncertain += 1
        for name in _SAVINGS_SUMS:
            totals[name] += number(values.get(name)) or 0.0
    out = {name: rounded(name, value) if counted else None for name, value in totals.items()}
    out.update(windows=len(windows), counted=counted, uncertain=uncertain)
    return out


def _savings_last(batch: SampleBatch) -> dict[str, Any]:
    info = metric_info(batch)
    assert info is not None
    assert info.bounds is not None
    values = dict(zip(batch.names, batch.values, strict=True))
    row: dict[str, Any] = {
        "start_s": info.bounds[0] / NS_PER_S,
        "end_s": info.bounds[1] / NS_PER_S,
    }
    for name in (*_SAVINGS_SUMS, *_ENPIS):
        row[name] = number(values.get(name))
    index = list(batch.names).index("avoided_kwh")
    row["quality"] = batch.qualities[index].label
    row["reason"] = batch.reasons[index]
    return row
