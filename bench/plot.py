"""PNG plots of benchmark runs, for docs/BENCHMARKS.md: cost per value and latency.

matplotlib is optional (the ``bench`` extra): without it the harness prints a note
and carries on, since the figures themselves are in the JSON records and tables.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_runs(runs: Sequence[Mapping[str, Any]], path: Path, title: str) -> str:
    """Cost per value by plant size (agent and floor) and the latency distribution.

    Returns a line for the console: where the plot went, or why there is none.
    """
    if not available():
        return "no plot: matplotlib is not installed (pip install -e '.[bench]')"
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a gateway or in CI
    import matplotlib.pyplot as plt

    fig, (cost, latency) = plt.subplots(1, 2, figsize=(11, 4.2))
    fig.suptitle(title)

    labels = [_label(r) for r in runs]
    by_interval: dict[float, list[Mapping[str, Any]]] = {}
    for run in runs:
        by_interval.setdefault(run["params"]["interval_s"], []).append(run)
    sizes = sorted({r["params"]["total_tags"] for r in runs})
    curves = len(sizes) > 1 and all(
        len({r["params"]["total_tags"] for r in group}) == len(group)
        for group in by_interval.values()
    )
    if curves:
        # One line per interval: the growth curve the issue asks to be flat.
        for interval, group in sorted(by_interval.items(), reverse=True):
            group = sorted(group, key=lambda r: r["params"]["total_tags"])
            xs = [r["params"]["total_tags"] for r in group]
            agent = [r.get("agent", {}).get("cpu_us_per_value") for r in group]
            floor = [r.get("floor", {}).get("cpu_us_per_value") for r in group]
            line = cost.plot(xs, agent, marker="o", label=f"agent @ {interval:g} s")[0]
            if any(f is not None for f in floor):
                cost.plot(
                    xs,
                    floor,
                    marker="s",
                    linestyle="--",
                    color=line.get_color(),
                    label=f"floor (bare pymodbus) @ {interval:g} s",
                )
        cost.set_xlabel("tags")
        cost.set_xscale("log")
        cost.set_xticks(sizes, [f"{s:,}" for s in sizes])
        cost.minorticks_off()
    else:
        agent = [r.get("agent", {}).get("cpu_us_per_value") for r in runs]
        floor = [r.get("floor", {}).get("cpu_us_per_value") for r in runs]
        xs = list(range(len(runs)))
        cost.bar([x - 0.2 for x in xs], [a or 0 for a in agent], width=0.4, label="agent")
        cost.bar([x + 0.2 for x in xs], [f or 0 for f in floor], width=0.4, label="floor")
        cost.set_xticks(xs, labels)
    cost.axhline(15.0, color="grey", linewidth=0.8, linestyle=":", label="target 15 µs")
    cost.set_ylabel("CPU µs per value")
    cost.set_ylim(bottom=0)
    cost.set_title("cost per value")
    cost.legend()

    for run, label in zip(runs, labels, strict=True):
        hist = run.get("latency_histogram_ms")
        if not hist:
            continue
        counts = hist["counts"]
        total = sum(counts)
        if not total:
            continue
        cumulative, running = [], 0.0
        for count in counts[:-1]:
            running += count
            cumulative.append(running / total)
        latency.plot(hist["edges_ms"], cumulative, label=label)
    latency.axvline(250.0, color="grey", linewidth=0.8, linestyle=":", label="p99 target 250 ms")
    latency.set_xscale("log")
    latency.set_xlabel("end-to-end latency, ms (sample timestamp to subscriber)")
    latency.set_ylabel("share of batches at or below")
    latency.set_title("latency distribution")
    latency.legend(fontsize="small")

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot: {path}"


def _label(run: Mapping[str, Any]) -> str:
    p = run["params"]
    return f"{p['total_tags']:,} tags @ {p['interval_s']:g} s"
