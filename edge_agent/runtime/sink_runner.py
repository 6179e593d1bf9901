"""SinkRunner: moves batches from a feed to one sink, retrying until delivery is confirmed.

The runner owns what every sink would otherwise reimplement: batching, the retry
loop with jittered backoff, logging once per change of state, and counters. A sink
only has to deliver or raise :class:`~edge_agent.errors.SinkError`.

A runner may *linger*: wait a moment after the first batch is ready so the rest of
the poll tick joins it in one send. Twenty devices polled on the same second finish
their reads tens of ms apart; without it an HTTP sink makes one request per device
per tick, and each request costs far more than the lines in it (docs/BENCHMARKS.md).

A sink may *hold* (:class:`~edge_agent.sinks.base.Holding`: the Sparkplug sink while its
primary host is offline): the runner then sends nothing, shows why as the last error,
and waits for the sink to be ready again, with no backoff between: delivery resumes the
moment the sink's session is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from dataclasses import dataclass

import structlog

from edge_agent.backoff import Backoff
from edge_agent.errors import SinkError
from edge_agent.model import Pending, SampleBatch
from edge_agent.sinks.base import Feed, Holding, Lingering, Sink

log = structlog.get_logger("edge_agent.sink")

#: How often a backoff after a send failed for want of a connection looks whether the sink
#: is connected again (an MQTT sink that failed over to the next broker): the backlog
#: then goes out at once instead of at the end of a backoff grown during the outage.
RECONNECT_POLL_S = 0.05

#: Longest single wait for a holding sink before the runner looks again: its reason
#: (shown as ``last_error``) stays current within this, and a sink that became ready
#: without saying so is noticed.
HOLD_WAIT_S = 1.0


class SinkState(enum.Enum):
    """Where a sink's deliveries stand, as
    :class:`~edge_agent.runtime.source_runner.DeviceState` says it for a device.

    Draining is not a state: a drain (a stop, a reload; they can overlap) only stops
    the runner lingering, and meanwhile it delivers or fails as before.
    """

    #: No send failed since the last one that went through (or none was made yet).
    DELIVERING = "delivering"
    #: Sends fail: the batches stay in the feed and are retried with backoff.
    FAILING = "failing"
    #: The sink holds deliveries (:class:`~edge_agent.sinks.base.Holding`): nothing is
    #: sent until it is ready; ``last_error`` says why.
    HOLDING = "holding"


@dataclass(slots=True)
class SinkCounters:
    batches_sent: int = 0
    samples_sent: int = 0
    send_failures: int = 0
    last_error: str = ""
    last_success_monotonic: float = 0.0
    down_since_monotonic: float | None = None


class SinkRunner:
    """Drains ``buffer`` (the sink's feed) into ``sink`` in order.

    One runner per sink, so one slow or dead sink never holds back another. The runner
    only reads its feed: what goes into it is the outbox's business.
    """

    def __init__(
        self,
        sink: Sink,
        buffer: Feed,
        *,
        max_batches_per_send: int = 200,
        backoff: Backoff | None = None,
        linger: float | None = None,
    ) -> None:
        """``linger``: seconds to wait for more batches before a send that is not full;
        None takes the sink's own if it is :class:`~edge_agent.sinks.base.Lingering` (the
        InfluxDB sink's ``flush_interval``), else 0 (send at once: MQTT sends each batch
        as its own message anyway)."""
        self.sink = sink
        self.buffer = buffer
        self.max_batches_per_send = max_batches_per_send
        self.counters = SinkCounters()
        self._backoff = backoff or Backoff(initial=0.2, cap=15.0)
        self.state = SinkState.DELIVERING
        self._wake = asyncio.Event()
        if linger is None:
            linger = sink.linger if isinstance(sink, Lingering) else 0.0
        self.linger = linger
        #: Drains under way (a reload and a stop can overlap): no lingering while any is.
        self._draining = 0

    async def run(self) -> None:
        """Deliver forever; cancelled by the service on shutdown."""
        await self.sink.start()
        while True:
            pending = await self.buffer.peek(self.max_batches_per_send)
            if self._should_linger(pending):
                await self._pause(self.linger)
                # Peek again: the batches handed out are still the first pending ones,
                # now with whatever joined them (no ack in between).
                pending = await self.buffer.peek(self.max_batches_per_send)
            if self._holds():
                await self._hold()
                continue
            try:
                await self.sink.send([p.batch for p in pending])
            except SinkError as exc:
                if self._holds():
                    # The send failed because the sink lost what it holds for (its
                    # session): wait for it instead of backing off, no time lost after.
                    self._on_failure(exc)
                    continue
                self._on_failure(exc)
                delay = max(self._backoff.next_delay(), exc.retry_after or 0.0)
                # Not connected: retry when the sink is connected again, or after the delay.
                await self._pause(delay, reconnect=not self.sink.connected and not exc.retry_after)
                continue
            except Exception as exc:
                # A bug in a sink must not end delivery (nor the agent): keep the batches,
                # log the traceback once, and retry like any other failure.
                if self.state is SinkState.DELIVERING:
                    log.exception("unexpected sink error", sink=self.sink.name)
                self._on_failure(SinkError(f"{type(exc).__name__}: {exc}"))
                await self._pause(self._backoff.next_delay())
                continue
            self.buffer.ack(pending[-1].seq)
            self._on_success(pending[-1].batch, len(pending), sum(len(p.batch) for p in pending))

    async def _hold(self) -> None:
        """Wait (bounded) for a holding sink to be ready; say why it holds, once per reason."""
        sink = self.sink
        assert isinstance(sink, Holding)
        reason = sink.holding_reason
        changed = reason != self.counters.last_error
        self.counters.last_error = reason
        # Said again when the reason changes ("not connected" -> "waiting for the primary
        # host"): the log tells why nothing is sent.
        if self._enter(SinkState.HOLDING) or changed:
            log.info(
                "sink holds its deliveries; batches stay buffered",
                sink=self.sink.name,
                reason=reason,
                buffered=len(self.buffer),
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HOLD_WAIT_S):
                await sink.wait_ready()

    def _should_linger(self, pending: list[Pending]) -> bool:
        """Wait for company only when it can come and is worth waiting for: not when a full
        send is ready, not for a backlog (read from disk in full chunks), not while
        failing (the backoff already let batches gather), not while draining for a stop."""
        return (
            self.linger > 0
            and len(pending) < self.max_batches_per_send
            and not pending[-1].batch.historical
            and self.state is SinkState.DELIVERING
            and not self._draining
        )

    async def _pause(self, seconds: float, *, reconnect: bool = False) -> None:
        """Back off (or linger), unless :meth:`drain` wakes us: a stop should not wait it out.
        ``reconnect``: end the pause, too, as soon as the sink is connected."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while reconnect and not self.sink.connected and not self._wake.is_set():
                    await asyncio.sleep(RECONNECT_POLL_S)
                if not reconnect:
                    await self._wake.wait()

    async def drain(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the buffer to empty (graceful stop). True if it did.

        Cuts short a backoff or linger under way, and sends without lingering meanwhile. A
        sink that holds (:class:`~edge_agent.sinks.base.Holding`) is not waited for."""
        self._backoff.reset()
        self._draining += 1
        self._wake.set()
        try:
            deadline = time.monotonic() + within
            while len(self.buffer) and time.monotonic() < deadline:
                if self.state is SinkState.HOLDING and self._holds():
                    # A sink that holds (its primary host offline) cannot deliver now:
                    # waiting would only stall the stop; the outbox keeps the batches.
                    break
                await asyncio.sleep(0.02)
            return not len(self.buffer)
        finally:
            self._draining -= 1

    def standing(self) -> tuple[SinkState, str]:
        """Where the deliveries stand now, and why ("" while delivering), for the status.

        :attr:`state` changes only when the runner has something to send; a sink that may
        hold is asked directly, so with an empty buffer a Sparkplug sink waiting for its
        primary host shows holding, and one born again since shows delivering."""
        if isinstance(self.sink, Holding):
            reason = self.sink.holding_reason
            if reason:
                return SinkState.HOLDING, reason
            if self.state is SinkState.HOLDING:
                return SinkState.DELIVERING, ""  # ready: the next send goes out
        state = self.state
        return state, "" if state is SinkState.DELIVERING else self.counters.last_error

    def _holds(self) -> bool:
        return isinstance(self.sink, Holding) and bool(self.sink.holding_reason)

    def _enter(self, state: SinkState) -> bool:
        """Move to ``state`` (holding or failing); True when that is a change, to be said
        once. Delivery counts as down from the moment it stopped, whichever came first."""
        if self.state is state:
            return False
        if self.state is SinkState.DELIVERING:
            self.counters.down_since_monotonic = time.monotonic()
        self.state = state
        return True

    def _on_failure(self, exc: SinkError) -> None:
        self.counters.send_failures += 1
        self.counters.last_error = str(exc)
        if self._enter(SinkState.FAILING):
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
        if self.state is not SinkState.DELIVERING:
            self.state = SinkState.DELIVERING
            self.counters.down_since_monotonic = None
            log.info("sink delivering again", sink=self.sink.name, buffered=len(self.buffer))
