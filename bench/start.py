"""Start to first poll: a whole-process timer over several runs (issue 20, target 3).

    python -m bench.start                      # the demo plant, 7 timed runs
    python -m bench.start --runs 9 --fresh-state
    python -m bench.start --against /path/to/other/checkout   # interleaved pairs

Each run is ``python -m edge_agent run -c PLANT`` started with :func:`subprocess.Popen`
and timed with :func:`time.perf_counter` from just before the ``Popen`` to the moment its
first ``device online`` log line arrives on the pipe (the scheduler logs it once the
device answered its first read): interpreter start, imports, config load, state
restore, connect and the first read, everything a plant engineer waits for after
``systemctl start``. The agent is then stopped with SIGINT. The plant's simulators
(``edge-agent simulate -c demo-plant`` for the demo plant) run throughout.

Two cases, because the demo plant fits an energy baseline on its very first start:

* cached state (default): every timed run reuses one state directory that an untimed
  warm-up run filled (the fitted baseline is cached there), as on every start of a
  gateway after its first;
* ``--fresh-state``: each run gets an empty state directory, so it fits the baseline
  (numpy) too, as on the first start after installation.

One untimed run per tree first compiles the ``.pyc`` files. ``--against DIR`` times a
second checkout (``PYTHONPATH=DIR``) in interleaved pairs, A B then B A, so that a slow
moment of the machine falls on both; the report gives each tree's median and range, the
median of the per-pair differences, and the load average before and after. A record of
every run goes to ``bench/results/`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import ROOT, git_revision, machine_info

DEMO = ROOT / "configs" / "demo-plant.yaml"
FIRST_POLL = '"device online"'
MARKS = {"agent starting": '"agent starting"', "first device online": FIRST_POLL}
#: A run that has not polled by then has failed (the simulators are not there?).
GIVE_UP_S = 30.0


@dataclass
class Tree:
    """A checkout whose agent is timed: its label and the PYTHONPATH that selects it."""

    label: str
    path: Path
    runs: list[dict[str, float]] = field(default_factory=list)

    def env(self, state: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.path)
        env["EDGE_AGENT_STATE"] = str(state)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env


def timed_run(tree: Tree, plant: Path, state: Path) -> dict[str, float]:
    """Seconds from ``Popen`` to each mark of one agent start, and to its exit."""
    argv = [sys.executable, "-m", "edge_agent", "run", "-c", str(plant), "--duration", "60"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=tree.env(state),
        cwd=state.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    marks: dict[str, float] = {}
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            now = time.perf_counter() - start
            for name, text in MARKS.items():
                if name not in marks and text in line:
                    marks[name] = now
            if "first device online" in marks or now > GIVE_UP_S:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    if "first device online" not in marks:
        raise SystemExit(f"{tree.label}: no device came online (are the simulators running?)")
    return marks


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the simulators have not exited within 10 s.

    Not SIGINT: a shell that runs this in the background starts it, and so the
    simulators, with SIGINT ignored, and ``edge-agent simulate`` stops on SIGINT only
    through asyncio's default handler, which Python does not install then."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.3f} s, range {min(values):.3f}-{max(values):.3f},"
        f" n={len(values)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.start", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-c", "--config", type=Path, default=DEMO, help="the plant (demo plant)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tree (7)")
    parser.add_argument("--fresh-state", action="store_true", help="an empty state dir per run")
    parser.add_argument("--against", type=Path, help="another checkout, timed in pairs")
    parser.add_argument("--no-simulators", action="store_true", help="they already run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)

    trees = [Tree("this", ROOT)]
    if args.against is not None:
        trees.append(Tree("against", args.against.resolve()))
    load_before = os.getloadavg()
    sims = None
    if not args.no_simulators:
        sims = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "simulate", "-c", "demo-plant"],
            env=trees[0].env(Path(tempfile.gettempdir())),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2.0)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-start-") as work:
            cached = Path(work) / "state"
            for tree in trees:  # untimed: compiles .pyc, fits and caches the baseline
                timed_run(tree, args.config, cached)
            for i in range(args.runs):
                order = trees if i % 2 == 0 else trees[::-1]
                for tree in order:
                    state = (
                        Path(tempfile.mkdtemp(dir=work)) / "state" if args.fresh_state else cached
                    )
                    tree.runs.append(timed_run(tree, args.config, state))
    finally:
        if sims is not None:
            _stop(sims)
    load_after = os.getloadavg()

    case = "fresh state (fits the baseline)" if args.fresh_state else "cached state"
    print(f"start to first poll, {args.config.name}, {case}, commit {git_revision()}")
    for tree in trees:
        for mark in MARKS:
            print(f"  {tree.label:8s} {mark:20s} {_summary([r[mark] for r in tree.runs])}")
    if len(trees) == 2:
        diffs = [
            a["first device online"] - b["first device online"]
            for a, b in zip(trees[0].runs, trees[1].runs, strict=True)
        ]
        print(
            f"  this - against, per pair: median {statistics.median(diffs):+.3f} s,"
            f" range {min(diffs):+.3f} to {max(diffs):+.3f}"
        )
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    record = {
        "scenario": "start",
        "command": "python -m bench.start " + " ".join(argv if argv is not None else sys.argv[1:]),
        "commit": git_revision(),
        "machine": machine_info(),
        "case": case,
        "load_average": {"before": load_before, "after": load_after},
        "trees": {t.label: {"path": str(t.path), "runs": t.runs} for t in trees},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / time.strftime("%Y%m%d-%H%M%S-start.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"  record: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
