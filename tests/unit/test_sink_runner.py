"""SinkRunner against a scripted sink (our own Sink protocol; no library mocked)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edge_agent.backoff import Backoff
from edge_agent.buffer import MemoryBuffer
from edge_agent.errors import SinkError
from edge_agent.model import SampleBatch
from edge_agent.sinks.runner import SinkRunner


class FlakySink:
    """Fails with ``error`` until ``healthy`` is set; records what it delivered."""

    name = "flaky"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.healthy = False
        self.delivered: list[SampleBatch] = []
        self.attempts = 0

    @property
    def connected(self) -> bool:
        return self.healthy

    async def start(self) -> None:
        return None

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        self.attempts += 1
        if not self.healthy:
            raise self.error
        self.delivered.extend(batches)

    async def stop(self) -> None:
        return None


def _batch(i: int) -> SampleBatch:
    return SampleBatch.all_bad("dev", "g", i, ("a",), "timeout")


async def _run_until_drained(sink: FlakySink) -> tuple[SinkRunner, bool]:
    runner = SinkRunner(sink, MemoryBuffer(10), backoff=Backoff(initial=30, cap=30, minimum=30))
    for i in range(3):
        runner.submit(_batch(i))
    task = asyncio.create_task(runner.run())
    while sink.attempts == 0:
        await asyncio.sleep(0.01)
    sink.healthy = True  # back, but the runner sleeps in a 30 s backoff
    drained = await runner.drain(within=2.0)
    task.cancel()
    await asyncio.wait([task])
    return runner, drained


async def test_drain_wakes_a_runner_sleeping_in_backoff() -> None:
    sink = FlakySink(SinkError("broker away"))
    runner, drained = await _run_until_drained(sink)
    assert drained
    assert [b.timestamp_ns for b in sink.delivered] == [0, 1, 2]
    assert runner.counters.send_failures == 1


async def test_a_sink_bug_keeps_the_batches_and_is_retried() -> None:
    sink = FlakySink(RuntimeError("bug"))
    runner, drained = await _run_until_drained(sink)
    assert drained
    assert [b.timestamp_ns for b in sink.delivered] == [0, 1, 2]
    assert "RuntimeError: bug" in runner.counters.last_error
