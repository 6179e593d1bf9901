"""Profiling hooks: where the agent's time goes during a benchmark window.

Two profilers, both optional (``pip install -e '.[bench]'`` brings them):

* ``py-spy`` attaches to the running agent for exactly the measured window, in
  non-blocking mode (it reads the process's memory without stopping it, so the
  agent's own CPU figures stay close to an unprofiled run). It writes collapsed
  stacks (open them in https://www.speedscope.app) and the harness adds a text
  summary of the functions with the most samples, inclusive and own.
* ``pyinstrument`` runs the agent inside the profiler from its start (startup and
  warm-up included) and writes an HTML report when the agent exits; it costs the
  agent noticeably more CPU, so its figures are for finding hot paths, not for
  the tables.

Attaching py-spy needs ptrace rights over the agent (root, or
``kernel.yama.ptrace_scope = 0``); the error says so when they are missing.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Unavailable

PROFILERS = ("py-spy", "pyinstrument")
#: Samples per second; py-spy's default, a good balance of detail and overhead.
RATE = 100


class ProfilerMissing(Unavailable):
    """The requested profiler is not installed."""


def check_available(profiler: str) -> None:
    """Raise :class:`ProfilerMissing` with the install hint when ``profiler`` is not there."""
    if profiler == "py-spy" and shutil.which("py-spy") is None:
        raise ProfilerMissing("py-spy is not installed: pip install -e '.[bench]' (or py-spy)")
    if profiler == "pyinstrument" and importlib.util.find_spec("pyinstrument") is None:
        raise ProfilerMissing(
            "pyinstrument is not installed: pip install -e '.[bench]' (or pyinstrument)"
        )
    if profiler not in PROFILERS:
        raise ValueError(f"unknown profiler {profiler!r}; choose from {', '.join(PROFILERS)}")


def pyinstrument_args(output: Path) -> list[str]:
    """Interpreter arguments that run the following ``-m module`` under pyinstrument."""
    return ["-m", "pyinstrument", "--renderer", "html", "--outfile", str(output)]


@dataclass
class PySpyRun:
    process: subprocess.Popen[bytes]
    output: Path
    log: Path


def start_py_spy(pid: int, seconds: float, stem: Path) -> PySpyRun:
    """Start sampling ``pid`` for ``seconds``; files go next to ``stem``."""
    binary = shutil.which("py-spy")
    if binary is None:
        raise ProfilerMissing("py-spy is not installed: pip install -e '.[bench]'")
    output = stem.with_name(stem.name + "-py-spy.txt")
    log = stem.with_name(stem.name + "-py-spy.log")
    with log.open("wb") as err:
        process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return PySpyRun(process, output, log)


def finish_py_spy(run: PySpyRun, timeout: float = 30.0) -> str:
    """Wait for py-spy, write the summary; returns a line naming the files."""
    try:
        run.process.wait(timeout)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait(5)
    if run.process.returncode != 0 or not run.output.exists():
        tail = run.log.read_text(errors="replace")[-1500:]
        return f"py-spy failed (exit {run.process.returncode}): {tail.strip()}"
    summary = run.output.with_suffix(".top.txt")
    summary.write_text(summarize(run.output))
    return f"{run.output} (collapsed stacks, open in speedscope), summary {summary}"


def summarize(collapsed: Path, top: int = 30) -> str:
    """The functions with the most samples, inclusive and own, from collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        # "function (file:line)" -> "function (file)": aggregate the lines of a function.
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return "no samples (was the agent idle, or py-spy unable to read it?)\n"
    out = [f"{total} samples at {RATE} Hz (busy time only)", "", "inclusive:"]
    out += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(top)]
    out += ["", "own:"]
    out += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(out) + "\n"


def _function(frame: str) -> str:
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0] if where else ""
    return f"{name} ({path})" if path else name
