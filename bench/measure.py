"""Sampling a run: CPU of every process and of the machine, windows, warnings.

Kept apart from the orchestration in :mod:`bench.scale` so that a new scenario
(OPC UA, outbox) measures its processes the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.procs import BenchError, Child, CpuSample, machine_busy_seconds
from bench.report import cpu_figures

#: A simulator process above this share of one core may be what limits the run.
SIM_BUSY_PCT = 85.0
#: Other processes on the machine above this many cores make the figures suspect.
FOREIGN_CORES = 0.25


def sleep_until(deadline: float, watch: Sequence[Child] = ()) -> None:
    """Sleep until ``deadline`` (wall clock), failing early if a watched child dies."""
    while True:
        remaining = deadline - time.time()
        if remaining <= 0:
            return
        time.sleep(min(remaining, 0.5))
        for child in watch:
            if not child.alive():
                raise BenchError(
                    f"{child.name} exited early with code {child.process.returncode}{child.tail()}"
                )


def mid_tick_after(t: float, interval: float) -> float:
    """The first time at least ``t`` that lies halfway between two ticks."""
    return (math.ceil(t / interval - 0.5) + 0.5) * interval


@dataclass
class Sample:
    at: float
    cpu: dict[int, CpuSample]
    busy: float

    def used(self, before: Sample, pid: int) -> float:
        """CPU seconds ``pid`` used since ``before`` (0 if it was not sampled both times)."""
        if pid not in self.cpu or pid not in before.cpu:
            return 0.0
        return self.cpu[pid].seconds_since(before.cpu[pid])

    def used_ticks(self, before: Sample, pid: int) -> float:
        if pid not in self.cpu or pid not in before.cpu:
            return 0.0
        return self.cpu[pid].ticks_since(before.cpu[pid])

    def total(self, before: Sample) -> float:
        return sum(self.used(before, pid) for pid in self.cpu)


def sample(pids: Sequence[int]) -> Sample:
    cpu = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            cpu[pid] = CpuSample.of(pid)
    return Sample(time.time(), cpu, machine_busy_seconds()[0])


def share(before: Sample, after: Sample, pid: int) -> float:
    """Share of one core (%) that ``pid`` used between two samples."""
    return 100 * after.used(before, pid) / (after.at - before.at)


def cpu_of(before: Sample, after: Sample, pid: int, values: int, seconds: float) -> dict[str, Any]:
    """CPU figures of one process over the window, with the tick-based cross-check."""
    figures: dict[str, Any] = cpu_figures(after.used(before, pid), values, seconds)
    figures["cpu_s_proc_stat"] = round(after.used_ticks(before, pid), 2)
    return figures


def helper_shares(
    before: Sample, after: Sample, sims: Sequence[Child], broker: int, subscriber: int, agent: int
) -> dict[str, Any]:
    seconds = after.at - before.at
    ours = after.total(before)
    busy = after.busy - before.busy
    return {
        "simulators_pct": [round(share(before, after, c.pid), 1) for c in sims],
        "broker_pct": round(share(before, after, broker), 1),
        "subscriber_pct": round(share(before, after, subscriber), 1),
        "machine_busy_cores": round(busy / seconds, 2),
        "foreign_cores": round(max(0.0, busy - ours) / seconds, 2),
    }


def histogram(samples: Sequence[float]) -> dict[str, list[float]]:
    """Latency histogram (log-spaced 1 ms .. 10 s buckets), small enough for the JSON record."""
    edges = [round(10 ** (k / 20), 3) for k in range(81)]  # 1 ms .. 10,000 ms, 20 per decade
    counts = [0] * (len(edges) + 1)
    for value in samples:
        index = next((i for i, edge in enumerate(edges) if value < edge), len(edges))
        counts[index] += 1
    return {"edges_ms": edges, "counts": [float(c) for c in counts]}


def add_warnings(record: dict[str, Any], profiler: str | None) -> None:
    """Say plainly when a figure measures something other than the agent."""
    warnings: list[str] = record["warnings"]
    helpers = record.get("helpers", {})
    for k, pct in enumerate(helpers.get("simulators_pct", [])):
        if pct >= SIM_BUSY_PCT:
            warnings.append(
                f"simulator process {k} used {pct:.0f}% of a core during the agent's window: "
                "the simulators may be the bottleneck (use more --sim-procs, or fewer tags)"
            )
    floor = record.get("floor", {})
    for k, pct in enumerate(floor.get("simulators_pct", [])):
        if pct >= SIM_BUSY_PCT:
            warnings.append(
                f"simulator process {k} used {pct:.0f}% of a core during the floor's window"
            )
    delivery = record.get("delivery", {})
    if delivery.get("values_bad"):
        reasons = ", ".join(f"{r}: {n}" for r, n in delivery.get("bad_reasons", {}).items())
        warnings.append(
            f"{delivery['values_bad']} values arrived bad ({reasons or 'see the agent log'}); "
            "timeouts mean the simulators or the machine could not keep up"
        )
    for name, figures in (("agent", record.get("agent", {})), ("floor", floor)):
        precise, ticks = figures.get("cpu_s"), figures.get("cpu_s_proc_stat")
        if precise is not None and ticks is not None and abs(precise - ticks) > 0.05 + 0.05 * ticks:
            warnings.append(
                f"{name}: scheduler CPU time ({precise} s) and /proc/PID/stat ({ticks} s) "
                "disagree; a thread may have ended inside the window"
            )
    if floor.get("read_errors"):
        warnings.append(f"the floor client had {floor['read_errors']} failed reads")
    foreign = max(helpers.get("foreign_cores", 0.0), floor.get("foreign_cores", 0.0))
    if foreign >= FOREIGN_CORES:
        warnings.append(
            f"other processes used up to {foreign:.2f} cores during the windows: the machine "
            "was not quiet and the figures are contaminated"
        )
    cpus = os.cpu_count() or 1
    if helpers.get("machine_busy_cores", 0.0) >= 0.9 * cpus:
        warnings.append(
            f"the machine was saturated ({helpers['machine_busy_cores']:.2f} of {cpus} cores "
            "busy): the figures measure contention as much as the agent"
        )
    if profiler:
        warnings.append(
            f"profiled with {profiler}: CPU and latency include the profiler's overhead"
        )
