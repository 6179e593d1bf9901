"""Child processes of a benchmark run, and what the OS says they cost.

Every server, the agent, the subscriber and the floor client run as separate
processes of the real interpreter (``sys.executable``, never a shim script, so that
``/proc/PID`` is the Python process itself). CPU time comes from
``/proc/PID/stat`` (user + system, the OS's own accounting, the figure the issue
asks for), peak memory from ``VmHWM`` in ``/proc/PID/status``, the machine's busy
time from ``/proc/stat``: the last shows when something outside the run (another
test suite on the same two cores) contaminates the figures.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def child_env() -> dict[str, str]:
    """The environment of every child: this checkout first on the import path."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python(*args: str) -> list[str]:
    """A command line running this interpreter."""
    return [sys.executable, *args]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (its own threads, not its children).

    In clock ticks (10 ms here): exact enough over a minute, too coarse for a smoke run
    of a few seconds; :class:`CpuSample` adds the scheduler's nanosecond account.
    """
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    # After the ")": state is field 3 of the man page, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu_ns(pid: int) -> dict[int, int]:
    """On-CPU nanoseconds (user + system) of each live thread of ``pid``, from schedstat."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
    return out


@dataclass(frozen=True, slots=True)
class CpuSample:
    """CPU time of one process at one moment, two ways: clock ticks and scheduler ns."""

    stat_s: float
    threads_ns: dict[int, int]

    @classmethod
    def of(cls, pid: int) -> CpuSample:
        return cls(cpu_seconds(pid), thread_cpu_ns(pid))

    def seconds_since(self, before: CpuSample) -> float:
        """CPU seconds between two samples, at nanosecond resolution.

        Per thread, so that a thread born in between counts in full; a thread that
        ended in between is missing, which :meth:`ticks_since` would show as a gap.
        """
        ns = sum(n - before.threads_ns.get(tid, 0) for tid, n in self.threads_ns.items())
        return ns / 1e9

    def ticks_since(self, before: CpuSample) -> float:
        """The same from ``/proc/PID/stat`` (user + system, whole process, tick resolution)."""
        return self.stat_s - before.stat_s


def memory_kib(pid: int) -> dict[str, int]:
    """``VmHWM`` (peak resident set) and ``VmRSS`` of ``pid``, in KiB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    total = sum(ticks)
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def machine_info() -> dict[str, object]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_revision() -> str:
    """Commit of the checkout, with ``+dirty`` when it has uncommitted changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


@dataclass
class Child:
    """A child process whose stderr goes to a log file and whose stdout lines are queued.

    Stopped with SIGTERM (every child here stops gracefully on it: the agent drains
    its sinks, the subscriber and the floor client write their records), then
    SIGKILL if it does not exit in time.
    """

    name: str
    argv: Sequence[str]
    log_dir: Path
    process: subprocess.Popen[str] = field(init=False)
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue, init=False)
    _reader: threading.Thread = field(init=False)

    def start(self) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{self.name}.log").open("w") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                cwd=ROOT,
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        # A reader thread: the child never blocks on a full pipe, and the harness can
        # wait for a line with a timeout without select() juggling.
        self._reader = threading.Thread(target=self._read, name=f"read-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_line(self, prefix: str, timeout: float) -> str:
        """The next stdout line starting with ``prefix``; raises if the child ends first."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(
                    f"{self.name}: no {prefix!r} line after {timeout:.0f} s{self.tail()}"
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.process.wait(5)
                raise BenchError(
                    f"{self.name} exited with code {self.process.returncode}{self.tail()}"
                )
            if line.startswith(prefix):
                return line

    def tail(self, chars: int = 3000) -> str:
        """The end of the child's stderr log, for error messages."""
        try:
            text = (self.log_dir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return f"\n--- {self.name} stderr (end) ---\n{text[-chars:]}" if text.strip() else ""

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


class BenchError(RuntimeError):
    """A run that cannot produce honest figures (a child died, nothing arrived...)."""


class Unavailable(BenchError):
    """Something the run needs is not here (a profiler, a piece of the agent)."""


class NotMerged(Unavailable):
    """The scenario or pipeline stage needs code that is not on this branch yet."""
