"""SinkRunner with a sink that holds (:class:`~edge_agent.sinks.base.Holding`): nothing is
sent while it holds, the runner shows why, does not spin, and resumes without a backoff
wait once the sink is ready. A scripted sink: our own protocol, no library mocked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from edge_agent.backoff import Backoff
from edge_agent.config.loader import parse_config
from edge_agent.errors import SinkError
from edge_agent.model import SampleBatch
from edge_agent.runtime.sink_runner import SinkRunner, SinkState
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, sink_status, status_line
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


PLANT = """
plant: {{name: p1}}
state_dir: {state}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - {{interval: 1s, tags: [{{name: v, address: 0}}]}}
"""


class FailingSink:
    """Connected, every send refused (a database that answers 400 to everything)."""

    name = "failing"
    connected = True

    async def start(self) -> None:
        return None

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        raise SinkError("refused")

    async def stop(self) -> None:
        return None


class HostWaitingSink(HoldingSink):
    """Connected to its broker while it holds (a Sparkplug sink waiting for its host)."""

    name = "scada"

    @property
    def connected(self) -> bool:
        return True


async def test_a_holding_sink_with_nothing_to_send_shows_holding_not_delivering(
    tmp_path: Path,
) -> None:
    """Review note on the Sparkplug delta: the runner learns that its sink holds only when
    it has something to send, so with an empty buffer a sink waiting for its primary host
    showed "delivering" (and one born again since, "holding"), and the systemd status line
    named only sinks not connected. The sink is asked directly; the line names a sink that
    holds or fails too."""
    holding, failing = HostWaitingSink(), FailingSink()
    holding_runner = SinkRunner(holding, MemoryBuffer(10))
    failing_buffer = MemoryBuffer(10)
    failing_runner = SinkRunner(failing, failing_buffer, backoff=Backoff(initial=30, cap=30))
    assert holding_runner.state is SinkState.DELIVERING  # nothing sent, nothing learned
    entry = sink_status(holding_runner)
    assert (entry["state"], entry["reason"]) == ("holding", "waiting for primary host scada")
    agent = Agent(parse_config(PLANT.format(state=tmp_path), "plant.yaml", env={}))
    agent.sinks += [holding_runner, failing_runner]
    stats = ServiceStats()
    failing_buffer.append(_batch(1))
    task = asyncio.create_task(failing_runner.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0)
            if failing_runner.state is SinkState.FAILING:
                break
        assert failing_runner.state is SinkState.FAILING
    finally:
        task.cancel()
        await asyncio.wait([task])
    line = status_line(agent, stats)
    assert "sink holding: scada" in line, line
    assert "sink failing: failing" in line, line
    assert "sink down" not in line, line
    holding.release()
    holding_runner.state = SinkState.HOLDING  # held before; ready since, nothing to send
    assert sink_status(holding_runner)["state"] == "delivering"
    assert "holding" not in status_line(agent, stats)


async def test_a_drain_does_not_wait_for_a_sink_that_holds() -> None:
    """A stop or a reload drains each runner for up to a few seconds; a sink that holds
    (its primary host offline) cannot deliver meanwhile, so the drain says so at once
    instead of stalling the stop (the batches stay in the durable outbox). Found by the
    plant-engineer trial: SIGTERM waited the whole drain timeout while the host was away."""
    sink = HoldingSink()
    buffer = MemoryBuffer(10)
    runner = SinkRunner(sink, buffer)
    buffer.append(_batch(0))
    task = asyncio.create_task(runner.run())
    try:
        await _settle()
        assert runner.state is SinkState.HOLDING
        async with asyncio.timeout(5):  # not the 30 s it was given
            assert not await runner.drain(within=30.0)
        assert len(buffer) == 1  # kept, not lost
        sink.release()
        assert await runner.drain(within=30.0)  # ready again: drained as before
    finally:
        task.cancel()
        await asyncio.wait([task])
