"""Config loading before and after a change, in interleaved pairs (issue 20, target 2).

    python -m bench.config_pairs BEFORE_TREE AFTER_TREE PLANT.yaml [--pairs 5]

Each tree is a checkout of edge-agent (``git archive <commit> | tar -x -C DIR``); each
run is a fresh ``python`` with ``PYTHONPATH=TREE`` that loads PLANT.yaml with
``load_config`` twice over: once plain, for the peak RSS (VmHWM) and the time of each
stage, once under tracemalloc, for the traced peak of the front end (the YAML read into
plain data and lines: before, the shape scan, ``yaml.compose`` and the node-tree
builder; after, ``read_document``), the peak of the whole load and what stays. Runs go
A B B A ..., and the table gives the median and range of each figure.

Generate plants with bench/plant.py, e.g. 100,000 tags::

    python -c "from bench.plant import *; s = PlantSpec(200, 500, 1.0); print(dump(
      agent_document(s, {s.device_name(i): 20000 + i for i in range(200)}, plant='x',
      state_dir='/tmp/x', sinks=[])))" > /tmp/plant-100000.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import gc, json, sys, time, tracemalloc
from pathlib import Path
import edge_agent.config.loader as L
from edge_agent.config.loader import load_config

trace = sys.argv[2] == "trace"
MB = 1 << 20
times: dict[str, float] = {}
front = {"peak": 0.0}

def wrap(owner, name, label, front_end=False):
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        if trace and front_end:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - started
            if trace and front_end:
                peak = tracemalloc.get_traced_memory()[1] - before
                front["peak"] = max(front["peak"], peak / MB)
    setattr(owner, name, wrapped)

if hasattr(L, "read_document"):  # one pass
    wrap(L, "read_document", "front end", front_end=True)
else:  # scan, compose, build: the peak is inside the builder, with the tree alive
    wrap(L, "scan_document", "scan")
    wrap(L.yaml, "compose", "compose")
    wrap(L.Builder, "document", "build")
wrap(L.PlantConfig, "model_validate", "model_validate")
wrap(L, "check_parts", "check_parts")
if trace:
    tracemalloc.start()
started = time.perf_counter()
config = load_config(Path(sys.argv[1]), env={})
total = time.perf_counter() - started
gc.collect()
result = {"total s": total, **{k + " s": v for k, v in times.items()}}
if "front end s" not in result:
    result["front end s"] = sum(times.get(k, 0.0) for k in ("scan", "compose", "build"))
if trace:
    current, peak = tracemalloc.get_traced_memory()
    result = {"front end peak MB": front["peak"] if front["peak"] else None,
              "load peak MB": peak / MB, "retained MB": current / MB}
else:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            result["VmHWM MB"] = int(line.split()[1]) / 1024
print(json.dumps(result))
"""


def _run(tree: str, plant: str, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, plant, mode],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def _old_front_end_peak(tree: str, plant: str) -> float:
    """Before: the traced peak from the scan to the end of the builder (tree alive)."""
    code = r"""
import sys, tracemalloc, os
from pathlib import Path
from edge_agent.config.reading import scan_document, YAML_LOADER, read_plant_file
from edge_agent.config.builder import Builder, SourceMap
import yaml
text = read_plant_file(Path(sys.argv[1]))
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
shape = scan_document(text, sys.argv[1])
node = yaml.compose(text, Loader=YAML_LOADER)
data = Builder(SourceMap(sys.argv[1]), os.environ, shape.anchored).document(node)
print((tracemalloc.get_traced_memory()[1] - before) / (1 << 20))
"""
    env = {**os.environ, "PYTHONPATH": tree}
    done = subprocess.run(
        [sys.executable, "-c", code, plant], env=env, cwd=tree, capture_output=True, text=True
    )
    return float(done.stdout.strip()) if done.returncode == 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("plant")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    plant = str(Path(args.plant).resolve())
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    order = []
    for pair in range(args.pairs):
        order += [("before", "after"), ("after", "before")][pair % 2]
    for label in order:
        tree = args.before if label == "before" else args.after
        figures = _run(tree, plant, "time") | _run(tree, plant, "trace")
        if figures.get("front end peak MB") is None:
            figures["front end peak MB"] = _old_front_end_peak(tree, plant)
        runs[label].append(figures)
        print(label, json.dumps({k: round(v, 2) for k, v in figures.items()}), flush=True)
    keys = sorted({key for figures in runs["before"] + runs["after"] for key in figures})
    print(f"\n{'':22} {'before: median (range)':>26} {'after: median (range)':>26}")
    for key in keys:
        cells = []
        for label in ("before", "after"):
            values = [f[key] for f in runs[label] if key in f]
            if not values:
                cells.append(f"{'-':>26}")
                continue
            cells.append(
                f"{statistics.median(values):>10.2f} ({min(values):.2f}-{max(values):.2f})".rjust(
                    26
                )
            )
        print(f"{key:22} {cells[0]} {cells[1]}")


if __name__ == "__main__":
    main()
