"""``python -m bench modbus-scale --pairs N``: agent and floor interleaved, the ratio of record.

One run of the agent followed by one of the floor gives a ratio that moves by 10-30 %
between runs on a shared 2-core machine: the floor itself drifts (2.9 to 1.9 µs per value
within an hour, docs/BENCHMARKS.md), and whatever else runs lands on one side only. So
the figure of record is taken in pairs on the same simulators: agent then floor, floor
then agent, ... (A B, B A, ...), each pair giving its own ratio, reported as the median
with its range, next to the load average at each run's start and the harness's count of
other processes' CPU during each window.

Usage (the figure of record for issue 20's target 1; about 80 s per pair)::

    python -m bench modbus-scale --interval 1s --pairs 5 --duration 30s --warmup 5s

Each agent run has its own broker, subscriber, sinks and outbox directory (a fresh
agent, as in a single run); the simulators run for the whole series.
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.measure import add_warnings
from bench.plant import agent_document, dump
from bench.report import _all_lost, _fmt, check_targets
from bench.scale import (
    ScaleOptions,
    _finish_record,
    _run_floor,
    _start_record,
    run_agent,
    simulators,
)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_pairs(
    options: ScaleOptions,
    pairs: int,
    scenario: str = "modbus-scale",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``pairs`` interleaved agent and floor runs on one plant; returns the series record."""
    if pairs < 1:
        raise ValueError("--pairs must be at least 1")
    spec, stem, work, record = _start_record(options, scenario)
    record["params"]["pairs"] = pairs
    record["pipeline"] = []
    record["loadavg_at_start"] = _loadavg()
    results: list[dict[str, Any]] = []
    try:
        with simulators(spec, options.sim_procs, work) as (sims, ports):
            record["params"]["sim_procs"] = len(sims)
            log(f"  {len(sims)} simulator processes serve {spec.devices} devices")
            plan_config = work / "plan.yaml"
            plan_config.write_text(
                dump(agent_document(spec, ports, plant="bench", state_dir=str(work), sinks=[]))
            )
            for i in range(pairs):
                order = ("agent", "floor") if i % 2 == 0 else ("floor", "agent")
                pair: dict[str, Any] = {
                    "pair": i + 1,
                    "order": list(order),
                    "params": record["params"],
                    "warnings": [],
                    "loadavg": {},
                }
                for side in order:
                    log(f"  pair {i + 1} of {pairs}: {side}")
                    pair["loadavg"][side] = _loadavg()
                    if side == "agent":
                        run_dir = work / f"pair-{i + 1}"
                        run_dir.mkdir()
                        run_agent(pair, spec, options, sims, ports, run_dir, f"{stem}-{i}", log)
                        shutil.rmtree(run_dir / "state", ignore_errors=True)
                    else:
                        pair["floor"] = _run_floor(spec, plan_config, work, options, sims, log)
                floor_us = pair["floor"].get("cpu_us_per_value")
                agent_us = pair["agent"].get("cpu_us_per_value")
                if floor_us and agent_us:
                    pair["agent_floor_ratio"] = round(agent_us / floor_us, 3)
                add_warnings(pair, options.profiler)
                pair.pop("params")
                pair.pop("latency_histogram_ms", None)
                record["pipeline"] = pair.get("pipeline", [])
                results.append(pair)
                log(f"  pair {i + 1}: ratio {pair.get('agent_floor_ratio')}")
        record["pairs"] = results
        record["window_s"] = results[0].get("window_s", 0)
        summary = summarise(results)
        record.update(summary)
        record["warnings"] = [
            f"pair {p['pair']}: {w}" for p in results for w in p["warnings"]
        ] + summary["warnings"]
        record["loadavg_at_end"] = _loadavg()
        return _finish_record(record, options, stem)
    finally:
        if options.keep:
            log(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _spread(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "n": len(values),
    }


def _other_load(pair: Mapping[str, Any]) -> float:
    """Cores used by processes outside the run, the worse of the pair's two windows."""
    return float(
        max(
            pair.get("helpers", {}).get("foreign_cores", 0.0),
            pair.get("floor", {}).get("foreign_cores", 0.0),
        )
    )


def _figures(pairs: Sequence[Mapping[str, Any]], side: str) -> list[float]:
    """The ``side``'s CPU per value of each pair that has one."""
    found = (p.get(side, {}).get("cpu_us_per_value") for p in pairs)
    return [x for x in found if x is not None]


def _no_ratio(pair: Mapping[str, Any]) -> str:
    """Why a pair has no ratio, in a WARNING line of the table."""
    missing = [
        f"the {side} {verb} nothing (no CPU per value)"
        for side, verb in (("agent", "delivered"), ("floor", "read"))
        if not pair.get(side, {}).get("cpu_us_per_value")
    ]
    why = " and ".join(missing) or "no agent/floor ratio"
    return f"pair {pair['pair']}: {why}; left out of the median"


def summarise(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The series' figures: each ratio's median and range, and the worst of the rest.

    ``agent_floor_ratio`` is the median of the pairs' own ratios (not the ratio of the
    medians), so that a pair measured while the machine was busy moves the figure no
    more than one pair. A pair without a ratio (its agent delivered nothing, or its
    floor read nothing: no CPU per value) is left out of the medians and named in
    ``warnings``, so the count of pairs behind the figure is never a silent loss.
    """
    ratios = [p["agent_floor_ratio"] for p in pairs if p.get("agent_floor_ratio")]
    agent_us = _figures(pairs, "agent")
    floor_us = _figures(pairs, "floor")
    warnings = [_no_ratio(p) for p in pairs if not p.get("agent_floor_ratio")]
    lost = [_all_lost(p.get("delivery", {})) for p in pairs]
    p99 = [p.get("delivery", {}).get("latency_ms", {}).get("p99") for p in pairs]
    jitter = [p.get("delivery", {}).get("jitter_ms", {}).get("p99") for p in pairs]
    rss = [p.get("agent", {}).get("peak_rss_mb") for p in pairs]
    foreign = [_other_load(p) for p in pairs]
    ratio = _spread(ratios)
    summary: dict[str, Any] = {
        "agent_floor_ratio": ratio["median"],
        "agent_floor_ratio_spread": ratio,
        "agent_cpu_us_per_value": _spread(agent_us),
        "floor_cpu_us_per_value": _spread(floor_us),
        "other_load_cores": _spread(foreign),
        "loadavg_1m": _spread([v[0] for p in pairs for v in p.get("loadavg", {}).values()]),
        "warnings": warnings,
    }
    # For check_targets: the median CPU, the worst of everything else.
    summary["agent"] = {
        "cpu_us_per_value": summary["agent_cpu_us_per_value"]["median"],
        "peak_rss_mb": max((r for r in rss if r is not None), default=None),
    }
    known_lost = [x for x in lost if x is not None]
    summary["delivery"] = {
        "values_lost": sum(known_lost) if known_lost else None,
        "latency_ms": {"p99": max((x for x in p99 if x is not None), default=None)},
        "jitter_ms": {"p99": max((x for x in jitter if x is not None), default=None)},
    }
    return summary


def render_pairs(record: Mapping[str, Any]) -> str:
    """The human table of a series: one line per pair, then the median and range."""
    p = record["params"]
    lines = [
        f"{record['scenario']}: {p['devices']} devices x {p['tags']} tags = "
        f"{p['devices'] * p['tags']:,} tags every {p['interval_s']:g} s; {p['pairs']} pairs, "
        f"windows of {record.get('window_s', 0):g} s after {p['warmup_s']:g} s warm-up",
        f"  pipeline: {' -> '.join(record.get('pipeline', []))}",
        "  pair  order         agent µs/value  floor µs/value  agent/floor  lost  "
        "latency p99 ms  other load (cores)  load avg 1m (agent, floor)",
    ]
    for pair in record.get("pairs", []):
        delivery = pair.get("delivery", {})
        foreign = _other_load(pair)
        load = pair.get("loadavg", {})
        lines.append(
            f"  {pair['pair']:<5} {','.join(pair['order']):<13} "
            f"{_fmt(pair.get('agent', {}).get('cpu_us_per_value')):<15} "
            f"{_fmt(pair.get('floor', {}).get('cpu_us_per_value')):<15} "
            f"{_fmt(pair.get('agent_floor_ratio')):<12} {_fmt(_all_lost(delivery)):<5} "
            f"{_fmt(delivery.get('latency_ms', {}).get('p99')):<15} {_fmt(foreign):<19} "
            f"{load.get('agent', ['-'])[0]}, {load.get('floor', ['-'])[0]}"
        )
    start_load = record.get("loadavg_at_start")
    ratio = record.get("agent_floor_ratio_spread", {})
    agent = record.get("agent_cpu_us_per_value", {})
    floor = record.get("floor_cpu_us_per_value", {})
    lines += [
        f"  agent / floor: median {_fmt(ratio.get('median'))}x "
        f"(range {_fmt(ratio.get('min'))}-{_fmt(ratio.get('max'))}, {ratio.get('n')} pairs); "
        f"agent {_fmt(agent.get('median'))} µs/value ({_fmt(agent.get('min'))}-"
        f"{_fmt(agent.get('max'))}), floor {_fmt(floor.get('median'))} "
        f"({_fmt(floor.get('min'))}-{_fmt(floor.get('max'))})",
        f"  load average (1, 5, 15 min) at start {start_load}, "
        f"at end {record.get('loadavg_at_end')}",
    ]
    targets = check_targets(record)
    marks = {True: "met", False: "MISSED", None: "n/a"}
    lines.append("  targets: " + "; ".join(f"{k}: {marks[v]}" for k, v in targets.items()))
    lines += [f"  WARNING: {warning}" for warning in record.get("warnings", [])]
    return "\n".join(lines)
