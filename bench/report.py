"""From raw records to the figures of a run: delivered values, losses, jitter, latency, CPU.

How "collected" and "lost" are known without trusting the agent: the agent stamps
each batch with the time its read started, on wall-clock-aligned ticks. The
subscriber sees every batch that was delivered. Over a measured window that holds
exactly ``n`` ticks of every poll group, the schedule says ``n x tags`` values
per group must arrive; every (device, group, tick) that does not arrive is a missed
tick, and its values are lost, whether the agent skipped the read (overrun) or
dropped the batch afterwards. Until the agent exports its own counters (issue 6's
/metrics), the two causes are not told apart; the total is what a plant loses.

Jitter is the batch timestamp minus its scheduled tick: the last multiple of the
interval at or before the timestamp (reads never start before their tick, save for
the few microseconds an event loop may wake early, which :data:`EARLY_S` allows
for). A read that starts a whole interval late is taken for the next tick, and
then shows as a missed tick plus a duplicate, never hidden.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: How early a read may start before its tick: the loop's timer runs on the monotonic
#: clock, the ticks on the wall clock, and NTP may slew the one against the other
#: (at most 500 ppm; twice that is allowed).
EARLY_S = 0.005
EARLY_SHARE = 0.001


@dataclass(frozen=True, slots=True)
class Window:
    """The measured window: ``ticks`` ticks of ``interval_ns``, from ``start_ns`` (mid-tick)."""

    start_ns: int
    interval_ns: int
    ticks: int

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.ticks * self.interval_ns

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def tick_of(self, timestamp_ns: int) -> int:
        """Index of the tick a read stamped ``timestamp_ns`` was scheduled for."""
        early_ns = round(EARLY_S * 1e9 + EARLY_SHARE * self.interval_ns)
        return (timestamp_ns + early_ns) // self.interval_ns

    def contains_tick(self, tick: int) -> bool:
        return self.start_ns <= tick * self.interval_ns < self.end_ns


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max by nearest rank (no interpolation: every figure was observed)."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"p50": round(rank(50), 3), "p99": round(rank(99), 3), "max": round(ordered[-1], 3)}


def analyse_deliveries(
    records: Iterable[Sequence[Any]],
    window: Window,
    groups: Mapping[tuple[str, str], int],
) -> dict[str, Any]:
    """Values, losses, jitter and latency from subscriber records.

    ``records``: ``[arrival_ns, ts_ns, device, group, values, good, historical]``;
    ``groups``: (device, group) -> tags, every poll group the agent should deliver.
    """
    seen: set[tuple[str, str, int]] = set()
    duplicates = 0
    unexpected = 0
    delivered = good = 0
    short_batches = 0
    jitter_ms: list[float] = []
    latency_ms: list[float] = []
    for arrival, ts, device, group, count, good_count, historical in records:
        if historical:
            continue  # replayed backlog is not this window's collection
        tick = window.tick_of(ts)
        if not window.contains_tick(tick):
            continue
        key = (device, group, tick)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        tags = groups.get((device, group))
        if tags is None:
            unexpected += 1
            continue
        if count != tags:
            short_batches += 1
        delivered += count
        good += good_count
        jitter_ms.append((ts - tick * window.interval_ns) / 1e6)
        latency_ms.append((arrival - ts) / 1e6)
    expected_batches = window.ticks * len(groups)
    expected = window.ticks * sum(groups.values())
    return {
        "values_expected": expected,
        "values_delivered": delivered,
        "values_good": good,
        "values_bad": delivered - good,
        "values_lost": expected - delivered,
        "batches_expected": expected_batches,
        "batches_delivered": len(seen) - unexpected,
        "ticks_missed": expected_batches - (len(seen) - unexpected),
        "batches_duplicated": duplicates,
        "batches_short": short_batches,
        "batches_unexpected": unexpected,
        "values_per_s_delivered": round(delivered / window.seconds, 1),
        "jitter_ms": percentiles(jitter_ms),
        "latency_ms": percentiles(latency_ms),
        "_latency_samples_ms": latency_ms,
    }


def analyse_floor(
    records: Iterable[Sequence[Any]], window: Window, groups: Mapping[tuple[str, str], int]
) -> dict[str, Any]:
    """Values read and jitter from the floor client's poll records."""
    seen: set[tuple[str, str, int]] = set()
    values = errors = 0
    jitter_ms: list[float] = []
    read_ms: list[float] = []
    for started, duration, device, group, count, errs in records:
        tick = window.tick_of(started)
        if not window.contains_tick(tick) or (device, group, tick) in seen:
            continue
        seen.add((device, group, tick))
        values += count
        errors += errs
        jitter_ms.append((started - tick * window.interval_ns) / 1e6)
        read_ms.append(duration / 1e6)
    expected = window.ticks * sum(groups.values())
    return {
        "values_expected": expected,
        "values_read": values,
        "values_missed": expected - values,
        "read_errors": errors,
        "values_per_s": round(values / window.seconds, 1),
        "jitter_ms": percentiles(jitter_ms),
        "poll_duration_ms": percentiles(read_ms),
    }


def cpu_figures(cpu_s: float, values: int, seconds: float) -> dict[str, float | None]:
    """CPU per value in the units the issue states its targets in."""
    return {
        "cpu_s": round(cpu_s, 3),
        "core_share_pct": round(100 * cpu_s / seconds, 1) if seconds else None,
        "cpu_us_per_value": round(1e6 * cpu_s / values, 3) if values else None,
        "cpu_s_per_100k_values": round(1e5 * cpu_s / values, 3) if values else None,
    }


#: The issue's targets, for the headline configuration (10,000 tags at 1 s).
TARGETS = {
    "cpu_us_per_value": 15.0,
    "peak_rss_mb": 120.0,
    "agent_floor_ratio": 1.5,
    "latency_p99_ms": 250.0,
    "jitter_p99_ms": 20.0,
    "values_lost": 0,
}


def check_targets(run: Mapping[str, Any]) -> dict[str, bool | None]:
    """Target -> met (None: not measured in this run)."""
    agent = run.get("agent", {})
    delivery = run.get("delivery", {})

    def at_most(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def below(value: float | None, limit: float) -> bool | None:
        return None if value is None else value < limit

    return {
        "cpu_us_per_value <= 15": at_most(
            agent.get("cpu_us_per_value"), TARGETS["cpu_us_per_value"]
        ),
        "peak_rss_mb <= 120": at_most(agent.get("peak_rss_mb"), TARGETS["peak_rss_mb"]),
        "agent/floor <= 1.5": at_most(run.get("agent_floor_ratio"), TARGETS["agent_floor_ratio"]),
        "latency p99 < 250 ms": below(
            delivery.get("latency_ms", {}).get("p99"), TARGETS["latency_p99_ms"]
        ),
        "jitter p99 < 20 ms": below(
            delivery.get("jitter_ms", {}).get("p99"), TARGETS["jitter_p99_ms"]
        ),
        "values lost == 0": at_most(_all_lost(delivery), TARGETS["values_lost"]),
    }


def _all_lost(delivery: Mapping[str, Any]) -> int | None:
    """Values the subscriber missed plus what any sink never confirmed (agent counters)."""
    lost = delivery.get("values_lost")
    if lost is None:
        return None
    return int(lost) + sum(max(0, int(v)) for v in delivery.get("sink_unconfirmed", {}).values())


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def _pair(first: Any, second: Any, unit: str = "") -> str:
    return f"{_fmt(first)} / {_fmt(second, unit)}"


def render_run(run: Mapping[str, Any]) -> str:
    """The human table of one run."""
    p = run["params"]
    a = run.get("agent", {})
    d = run.get("delivery", {})
    f = run.get("floor", {})
    lines = [
        f"{run['scenario']}: {p['devices']} devices x {p['tags']} tags = "
        f"{p['devices'] * p['tags']:,} tags every {p['interval_s']:g} s; "
        f"window {run.get('window_s', 0):g} s after {p['warmup_s']:g} s warm-up",
        f"  pipeline: {' -> '.join(run.get('pipeline', []))}",
    ]
    if run.get("pipeline_missing"):
        lines.append(f"  not in the pipeline yet: {', '.join(run['pipeline_missing'])}")
    rows: list[tuple[str, str]] = []
    if d:
        jitter, latency = d.get("jitter_ms", {}), d.get("latency_ms", {})
        rows += [
            (
                "values/s expected (schedule)",
                _fmt(round(d["values_expected"] / run["window_s"], 1)),
            ),
            ("values/s delivered", _fmt(d.get("values_per_s_delivered"))),
            ("values lost (expected - delivered)", _fmt(d.get("values_lost"))),
            (
                "  per sink: appended - confirmed",
                ", ".join(f"{k} {v}" for k, v in d.get("sink_unconfirmed", {}).items()) or "-",
            ),
            (
                "  ticks missed / duplicated / bad values",
                f"{_fmt(d.get('ticks_missed'))} / "
                + _pair(d.get("batches_duplicated"), d.get("values_bad")),
            ),
            ("agent CPU µs per value", _fmt(a.get("cpu_us_per_value"))),
            ("agent CPU s per 100,000 values", _fmt(a.get("cpu_s_per_100k_values"))),
            ("agent CPU share of one core", _fmt(a.get("core_share_pct"), " %")),
            (
                "agent RSS peak (VmHWM) / at end",
                _pair(a.get("peak_rss_mb"), a.get("rss_end_mb"), " MB"),
            ),
            ("poll jitter p50 / p99", _pair(jitter.get("p50"), jitter.get("p99"), " ms")),
            ("end-to-end latency p50 / p99", _pair(latency.get("p50"), latency.get("p99"), " ms")),
        ]
    if f:
        rows += [
            ("floor values/s read", _fmt(f.get("values_per_s"))),
            ("floor CPU µs per value (bare pymodbus)", _fmt(f.get("cpu_us_per_value"))),
            ("floor CPU share of one core", _fmt(f.get("core_share_pct"), " %")),
            (
                "floor values missed / read errors",
                _pair(f.get("values_missed"), f.get("read_errors")),
            ),
        ]
        if not d:
            jitter, polls = f.get("jitter_ms", {}), f.get("poll_duration_ms", {})
            rows += [
                ("floor poll jitter p50 / p99", _pair(jitter.get("p50"), jitter.get("p99"), " ms")),
                ("floor poll duration p50 / p99", _pair(polls.get("p50"), polls.get("p99"), " ms")),
            ]
    if d and f:
        rows.append(("agent / floor CPU per value", _fmt(run.get("agent_floor_ratio"), " x")))
    width = max((len(r[0]) for r in rows), default=0)
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    helpers = run.get("helpers", {})
    if helpers:
        sims = ", ".join(f"{s:.0f}%" for s in helpers.get("simulators_pct", []))
        broker, subscriber = helpers.get("broker_pct"), helpers.get("subscriber_pct")
        lines.append(
            f"  helpers (% of one core): simulators {sims}; broker {_fmt(broker)}; "
            f"subscriber {_fmt(subscriber)}; other load on the machine "
            f"{_fmt(helpers.get('foreign_cores'))} cores"
        )
    if f and not helpers:
        sims = ", ".join(f"{s:.0f}%" for s in f.get("simulators_pct", []))
        lines.append(
            f"  simulators (% of one core): {sims}; other load on the machine "
            f"{_fmt(f.get('foreign_cores'))} cores"
        )
    targets = run.get("targets", {})
    if any(v is not None for v in targets.values()):
        marks = {True: "met", False: "MISSED", None: "n/a"}
        lines.append("  targets: " + "; ".join(f"{k}: {marks[v]}" for k, v in targets.items()))
    lines += [f"  WARNING: {warning}" for warning in run.get("warnings", [])]
    if run.get("profile"):
        lines.append(f"  profile: {run['profile']}")
    return "\n".join(lines)
