"""``edge-agent check`` as a child process with a memory ceiling, measured on its own.

Used by the loader's limit and fuzz tests: the child runs under ``RLIMIT_AS`` (set in
``preexec_fn``), is reaped with ``os.wait4`` so that its own CPU time is known
(``RUSAGE_CHILDREN`` would mix in every earlier child), and is killed when it outlives
``timeout``. Its peak RSS is the ``VmHWM`` it reports itself as it exits: Linux
carries the parent's high-water mark into a child's ``ru_maxrss`` at fork and exec,
so from a 120 MB pytest that figure never reads below 120 MB.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
#: Address space of the child: ``check`` on the demo plant peaks at ~46 MB of it
#: (VmPeak), so 250 MB leaves the 200 MB a check may use and fails loudly beyond.
ADDRESS_SPACE = 250 * MiB
#: ``python -m edge_agent ARGS...`` that writes its VmHWM (kB) to the file named first.
_CHECK_REPORTING_PEAK = """\
import atexit, runpy, sys
from pathlib import Path

def peak(path=sys.argv[1]):
    status = Path("/proc/self/status").read_text()
    Path(path).write_text(status.split("VmHWM:")[1].split()[0])

atexit.register(peak)
sys.argv = ["edge-agent", *sys.argv[2:]]
runpy.run_module("edge_agent", run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True, slots=True)
class CheckRun:
    returncode: int
    stdout: str
    stderr: str
    #: User + system CPU seconds of the child: robust against a busy machine, unlike
    #: wall time, which also counts the time other processes held the cores.
    cpu_seconds: float
    wall_seconds: float
    #: VmHWM at exit; infinite when the child died before it could say.
    peak_rss_mb: float
    timed_out: bool


def run_check(
    path: Path, tmp_path: Path, *, timeout: float = 30.0, address_space: int = ADDRESS_SPACE
) -> CheckRun:
    """``edge-agent check -c path`` in a child process under an address-space limit
    (the edge_agent module run as ``python -m`` runs it, plus the VmHWM report)."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    out_file = tmp_path / f"{path.name}.stdout"
    err_file = tmp_path / f"{path.name}.stderr"
    peak_file = tmp_path / f"{path.name}.peak"
    env = dict(os.environ, PYTHONPATH=str(ROOT), EDGE_AGENT_STATE=str(tmp_path / "state"))
    started = time.perf_counter()
    with out_file.open("wb") as out, err_file.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHECK_REPORTING_PEAK, str(peak_file), "check", "-c", str(path)],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            preexec_fn=limit_memory,
        )
    timed_out = False
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            timed_out = True
            os.kill(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return CheckRun(
        returncode=proc.returncode,
        stdout=out_file.read_text(errors="replace"),
        stderr=err_file.read_text(errors="replace"),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        wall_seconds=wall,
        peak_rss_mb=int(peak_file.read_text()) / 1024 if peak_file.exists() else float("inf"),
        timed_out=timed_out,
    )
