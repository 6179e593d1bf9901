"""Is the agent alive, rather than merely not dead? Evidence for the watchdog and /healthz.

A process can exist and still be useless: the event loop blocked by a bug (a
synchronous call that hangs, a processor that spins), or pollers that no longer
complete their polls. systemd's watchdog restarts the service when the keep-alive
pings stop, so the pings are sent only while:

* the event loop runs timers on time: :class:`LoopMonitor` measures how late a
  short periodic sleep wakes up (every task on the loop is that late, too); and
* every poller has finished a poll recently, measured against what its groups'
  intervals and read budgets allow: a poll that takes longer than its budget is
  impossible unless something is stuck, because the scheduler bounds every read.

A device being offline is *not* a liveness problem: an offline device's poller still
finishes its polls (they come back bad at once). Restarting the agent would not
bring the device back; health reports it instead (:mod:`edge_agent.service.health`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from edge_agent.runtime.source_runner import SourceRunner

#: Lags below this are noise (scheduling jitter) and are not kept.
NOISE_S = 0.02
#: How far back lag samples are kept; longer than any window anyone asks about.
KEEP_S = 120.0
#: Slack added to a poller's allowance: loop jitter, a slow first connect.
STALL_SLACK_S = 5.0


class LoopMonitor:
    """Measures event-loop lag: how late a sleep of ``period`` seconds wakes up."""

    def __init__(self, period: float = 0.25) -> None:
        self.period = period
        #: Most recent lag in seconds (for /metrics).
        self.last_lag = 0.0
        #: Largest lag ever seen (for /metrics).
        self.max_lag = 0.0
        self._samples: deque[tuple[float, float]] = deque()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.period
            await asyncio.sleep(self.period)
            self.record(loop.time() - expected)

    def record(self, lag: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        lag = max(0.0, lag)
        self.last_lag = lag
        self.max_lag = max(self.max_lag, lag)
        if lag >= NOISE_S:
            self._samples.append((now, lag))
        while self._samples and self._samples[0][0] < now - KEEP_S:
            self._samples.popleft()

    def worst_since(self, since: float) -> float:
        """Largest lag recorded at or after ``since`` (a time.monotonic() value)."""
        return max((lag for at, lag in self._samples if at >= since), default=0.0)


def stall_allowance(runner: SourceRunner) -> float:
    """Longest a healthy poller can go between two finished polls.

    A group polls every ``interval`` and each poll is cut off after the driver's
    read budget, so its fastest group finishes one at least every interval + budget;
    twice that, plus slack, is beyond doubt.
    """
    driver = runner.driver
    fastest = min(
        (group.interval + driver.read_budget(group.name) for group in driver.groups),
        default=0.0,
    )
    return 2.0 * fastest + STALL_SLACK_S


def stalled_pollers(runners: Iterable[SourceRunner], now: float | None = None) -> list[str]:
    """One line per poller that has not finished a poll within its allowance."""
    now = time.monotonic() if now is None else now
    found = []
    for runner in runners:
        last = runner.counters.last_progress_monotonic
        if not last:  # not started yet (just added by a reload)
            continue
        allowance = stall_allowance(runner)
        if now - last > allowance:
            found.append(
                f"device {runner.device}: no poll finished for {now - last:.0f} s "
                f"(allowed {allowance:.0f} s)"
            )
    return found


def liveness_problems(
    monitor: LoopMonitor,
    runners: Iterable[SourceRunner],
    *,
    max_lag: float,
    since: float,
    own_lag: float = 0.0,
    now: float | None = None,
) -> list[str]:
    """Why the agent is not making progress (empty when it is).

    ``since``: consider loop lag recorded from then on (the previous check);
    ``own_lag``: how late the caller itself woke up, which the monitor may not
    have recorded yet when both wake after the same blockage.
    """
    problems = []
    lag = max(own_lag, monitor.worst_since(since))
    if lag > max_lag:
        problems.append(f"event loop blocked for {lag:.1f} s (allowed {max_lag:g} s)")
    problems += stalled_pollers(runners, now)
    return problems
