"""SinkRunner with a sink that holds (:class:`~edge_agent.sinks.base.Holding`): nothing is
sent while it holds, the runner shows why, does not spin, and resumes without a backoff
wait once the sink is ready. A scripted sink: our own protocol, no library mocked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from edge_agent.backoff import Backoff
from edge_agent.errors import SinkError
from edge_agent.model import SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner, SinkState
from edge_agent.sinks.base import Holding
from tests.memory_buffer import MemoryBuffer


class HoldingSink:
    """Holds until :meth:`release`; ``fail_next`` makes one send fail and the sink hold
    again (a session lost during a send)."""

    name = "holding"

    def __init__(self) -> None:
        self.reason = "waiting for primary host scada"
        self._ready = asyncio.Event()
        self.delivered: list[SampleBatch] = []
        self.sends = 0
        self.reason_reads = 0
        self.fail_next = False

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def holding_reason(self) -> str:
        self.reason_reads += 1
        return "" if self._ready.is_set() else self.reason

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def release(self) -> None:
        self._ready.set()

    def hold(self) -> None:
        self._ready.clear()

    async def start(self) -> None:
        return None

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        self.sends += 1
        if self.fail_next:
            self.fail_next = False
            self.hold()
            raise SinkError("session lost")
        self.delivered.extend(batches)

    async def stop(self) -> None:
        return None


def _batch(i: int) -> SampleBatch:
    return SampleBatch.all_bad("dev", "g", i, ("a",), "timeout")


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_nothing_is_sent_while_the_sink_holds_and_all_of_it_after() -> None:
    sink = HoldingSink()
    assert isinstance(sink, Holding)
    buffer = MemoryBuffer(10)
    # A 30 s backoff: delivery after release must not wait for any of it.
    runner = SinkRunner(sink, buffer, backoff=Backoff(initial=30, cap=30, minimum=30))
    for i in range(3):
        buffer.append(_batch(i))
    task = asyncio.create_task(runner.run())
    try:
        await _settle()
        assert sink.sends == 0
        assert runner.state is SinkState.HOLDING
        assert runner.counters.last_error == "waiting for primary host scada"
        assert runner.counters.down_since_monotonic is not None
        reads = sink.reason_reads
        await _settle()
        assert sink.reason_reads == reads  # waiting, not spinning
        sink.release()
        assert await runner.drain(within=2.0)
        assert [b.timestamp_ns for b in sink.delivered] == [0, 1, 2]
        assert runner.state is SinkState.DELIVERING
        assert runner.counters.down_since_monotonic is None
        assert runner.counters.send_failures == 0
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_a_send_that_fails_because_the_sink_holds_again_waits_for_it_not_a_backoff() -> None:
    sink = HoldingSink()
    sink.release()
    sink.fail_next = True
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer, backoff=Backoff(initial=30, cap=30, minimum=30))
    buffer.append(_batch(0))
    task = asyncio.create_task(runner.run())
    try:
        await _settle()
        assert sink.sends == 1
        assert runner.counters.send_failures == 1
        assert runner.state is SinkState.HOLDING
        sink.release()
        # Not the 30 s backoff: the drain's 2 s are plenty.
        assert await runner.drain(within=2.0)
        assert [b.timestamp_ns for b in sink.delivered] == [0]
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_a_sink_that_does_not_hold_is_not_asked() -> None:
    """The JSON MQTT and InfluxDB sinks are not Holding: the runner never looks."""
    from tests.unit.test_sink_runner import FlakySink

    assert not isinstance(FlakySink(SinkError("x")), Holding)
