"""SinkRunner against a scripted sink (our own Sink protocol; no library mocked)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edge_agent.backoff import Backoff
from edge_agent.errors import SinkError
from edge_agent.model import SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner, SinkState
from tests.memory_buffer import MemoryBuffer


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
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer, backoff=Backoff(initial=30, cap=30, minimum=30))
    for i in range(3):
        buffer.append(_batch(i))
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


async def test_the_state_follows_the_sends() -> None:
    sink = FlakySink(SinkError("broker away"))
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer, backoff=Backoff(initial=0.01, cap=0.01, minimum=0.01))
    assert runner.state is SinkState.DELIVERING
    buffer.append(_batch(0))
    task = asyncio.create_task(runner.run())
    try:
        while sink.attempts < 2:
            await asyncio.sleep(0.005)
        assert runner.state is SinkState.FAILING
        assert runner.counters.down_since_monotonic is not None
        sink.healthy = True
        await _until_sent(sink, 1, within=1.0)
        assert runner.state is SinkState.DELIVERING
        assert runner.counters.down_since_monotonic is None
    finally:
        task.cancel()
        await asyncio.wait([task])


async def _tick(buffer: MemoryBuffer, batches: int, start: int = 0) -> None:
    """One poll tick's batches, arriving 2 ms apart."""
    for i in range(batches):
        buffer.append(_batch(start + i))
        await asyncio.sleep(0.002)


async def _until_sent(sink: FlakySink, count: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(sink.delivered) < count:
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_a_lingering_runner_sends_a_tick_in_one_send() -> None:
    sink = FlakySink(SinkError("down"))
    sink.healthy = True
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, linger=0.2)
    task = asyncio.create_task(runner.run())
    try:
        for tick in range(2):
            await _tick(buffer, 20, start=tick * 20)
            await _until_sent(sink, 20 * (tick + 1), within=1.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert sink.attempts == 2
    assert [b.timestamp_ns for b in sink.delivered] == list(range(40))


async def test_without_linger_the_runner_sends_at_once() -> None:
    sink = FlakySink(SinkError("down"))
    sink.healthy = True
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer)
    assert runner.linger == 0.0  # a sink without a linger attribute (MQTT)
    task = asyncio.create_task(runner.run())
    try:
        await _tick(buffer, 20)
        await _until_sent(sink, 20, within=1.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert sink.attempts > 5


async def test_a_full_send_does_not_linger() -> None:
    sink = FlakySink(SinkError("down"))
    sink.healthy = True
    buffer = MemoryBuffer(100)
    runner = SinkRunner(sink, buffer, max_batches_per_send=10, linger=30.0)
    for i in range(25):
        buffer.append(_batch(i))
    task = asyncio.create_task(runner.run())
    try:
        await _until_sent(sink, 20, within=1.0)  # two full sends, the last 5 linger
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert sink.attempts == 2


async def test_a_drain_does_not_wait_out_the_linger() -> None:
    sink = FlakySink(SinkError("down"))
    sink.healthy = True
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer, linger=30.0)
    buffer.append(_batch(0))
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.05)  # lingering now
        assert sink.attempts == 0
        start = asyncio.get_running_loop().time()
        assert await runner.drain(within=5.0)
        assert asyncio.get_running_loop().time() - start < 0.5
        buffer.append(_batch(1))  # a batch that comes as a stop begins
        assert await runner.drain(within=5.0)
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert [b.timestamp_ns for b in sink.delivered] == [0, 1]
