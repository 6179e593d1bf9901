"""SinkRunner: moves batches from a buffer to one sink, retrying until delivery is confirmed.

The runner owns what every sink would otherwise reimplement: batching, the retry
loop with jittered backoff, logging once per change of state, and counters. A sink
only has to deliver or raise :class:`~edge_agent.errors.SinkError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog

from edge_agent.backoff import Backoff
from edge_agent.buffer import BatchBuffer
from edge_agent.errors import SinkError
from edge_agent.model import SampleBatch
from edge_agent.sinks.base import Sink

log = structlog.get_logger("edge_agent.sink")


@dataclass(slots=True)
class SinkCounters:
    batches_sent: int = 0
    samples_sent: int = 0
    send_failures: int = 0
    last_error: str = ""
    last_success_monotonic: float = 0.0
    down_since_monotonic: float | None = None


class SinkRunner:
    """Drains ``buffer`` into ``sink`` in order.

    One runner per sink, so one slow or dead sink never holds back another.
    """

    def __init__(
        self,
        sink: Sink,
        buffer: BatchBuffer,
        *,
        max_batches_per_send: int = 200,
        backoff: Backoff | None = None,
    ) -> None:
        self.sink = sink
        self.buffer = buffer
        self.max_batches_per_send = max_batches_per_send
        self.counters = SinkCounters()
        self._backoff = backoff or Backoff(initial=0.2, cap=15.0)
        self._failing = False
        self._wake = asyncio.Event()

    def submit(self, batch: SampleBatch) -> None:
        """Queue a batch for this sink (never blocks; overflow policy is the buffer's).

        For a runner on its own buffer (a :class:`~edge_agent.buffer.MemoryBuffer`). In
        the agent the buffer is an outbox view, whose ``append`` writes to the log every
        sink reads: the agent never calls this, the outbox is the pipeline's consumer.
        """
        self.buffer.append(batch)

    async def run(self) -> None:
        """Deliver forever; cancelled by the service on shutdown."""
        await self.sink.start()
        while True:
            pending = await self.buffer.peek(self.max_batches_per_send)
            try:
                await self.sink.send([p.batch for p in pending])
            except SinkError as exc:
                self._on_failure(exc)
                await self._pause(max(self._backoff.next_delay(), exc.retry_after or 0.0))
                continue
            except Exception as exc:
                # A bug in a sink must not end delivery (nor the agent): keep the batches,
                # log the traceback once, and retry like any other failure.
                if not self._failing:
                    log.exception("unexpected sink error", sink=self.sink.name)
                self._on_failure(SinkError(f"{type(exc).__name__}: {exc}"))
                await self._pause(self._backoff.next_delay())
                continue
            self.buffer.ack(pending[-1].seq)
            self._on_success(pending[-1].batch, len(pending), sum(len(p.batch) for p in pending))

    async def _pause(self, seconds: float) -> None:
        """Back off, unless :meth:`drain` wakes us: a stop should not wait out a backoff."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def drain(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the buffer to empty (graceful stop). True if it did."""
        self._backoff.reset()
        self._wake.set()
        deadline = time.monotonic() + within
        while len(self.buffer) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not len(self.buffer)

    def _on_failure(self, exc: SinkError) -> None:
        self.counters.send_failures += 1
        self.counters.last_error = str(exc)
        if not self._failing:
            self._failing = True
            self.counters.down_since_monotonic = time.monotonic()
            log.warning(
                "sink delivery failing; batches stay buffered and are retried",
                sink=self.sink.name,
                error=str(exc),
                buffered=len(self.buffer),
            )

    def _on_success(self, last: SampleBatch, batches: int, samples: int) -> None:
        self.counters.batches_sent += batches
        self.counters.samples_sent += samples
        self.counters.last_success_monotonic = time.monotonic()
        self._backoff.reset()
        if self._failing:
            self._failing = False
            self.counters.down_since_monotonic = None
            log.info("sink delivering again", sink=self.sink.name, buffered=len(self.buffer))
