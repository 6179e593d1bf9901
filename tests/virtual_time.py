"""Virtual time for tests of code that sleeps: deterministic, and no real waiting.

A :class:`VirtualTime` gives a wall clock and a sleep to inject (``clock=vt.clock,
sleep=vt.sleep``). Sleepers wait on futures; :meth:`VirtualTime.run_for` lets every
task run until all are blocked, then moves time to the earliest wake-up and wakes that
sleeper, as a real loop would after that much time, until the given time has passed.
Sleeps run on a monotonic timeline, as ``asyncio.sleep`` does; :meth:`step` moves only
the wall clock (NTP). The same schedule gives the same result on a loaded CI machine
as on an idle one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

#: Rounds of ``asyncio.sleep(0)`` that let every ready task reach its next wait. Code
#: under test does no real I/O here, so a few rounds are plenty.
_SETTLE_ROUNDS = 20


class VirtualTime:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self._monotonic = 0.0
        self._wall_offset = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        """The wall clock (``time.time``)."""
        return self._monotonic + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wake = self._monotonic + max(0.0, seconds)
        heapq.heappush(self._sleepers, (wake, next(self._order), future))
        await future

    def step(self, seconds: float) -> None:
        """Step the wall clock (NTP) without moving the time sleepers wait for."""
        self._wall_offset += seconds

    async def run_for(self, seconds: float) -> None:
        """Run every task on virtual time until ``seconds`` have passed."""
        end = self._monotonic + seconds
        while True:
            for _ in range(_SETTLE_ROUNDS):
                await asyncio.sleep(0)
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a cancelled sleeper
            if not self._sleepers or self._sleepers[0][0] > end + 1e-9:
                self._monotonic = end
                return
            wake, _, future = heapq.heappop(self._sleepers)
            self._monotonic = max(self._monotonic, wake)
            future.set_result(None)
