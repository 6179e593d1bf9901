"""One sink's view of the outbox: the feed its runner reads, and the sink's cursor.

The view satisfies the sink runner's read-only :class:`edge_agent.sinks.base.Feed`
without importing it (the outbox sits below the sinks it feeds). It talks to the
log behind it only through :class:`SharedLog`, which
:class:`~edge_agent.outbox.outbox.Outbox` implements; the outbox in turn only calls
the view's public methods.

Two lanes per sink:

* **live**: the newest batches are kept in memory and sent first, as they are: at
  most ``live_batches`` batches and ``live_samples`` samples (whichever is reached
  first; the newest batch always stays). A short outage is therefore delivered in
  order from memory, and a long one costs bounded memory: the lane holds Python
  objects, 40-80 bytes per sample, so a count of batches alone would let large poll
  groups (500 values a batch) hold ~40 MB per 1,000 batches.
* **backlog**: anything older that the sink has not confirmed is read back from
  the file, marked ``historical``, and paced to ``replay_rate`` samples per second,
  so live data keeps flowing while a long backlog drains and a returning gateway
  does not flood a shared uplink.

A sink's cursor is a floor plus ranges (:class:`~edge_agent.outbox.ranges.Delivered`):
live batches confirmed while an older backlog is pending are recorded as a range,
so the backlog lane skips them (nothing sent twice without need) and nothing is
skipped. Cursors move only on :meth:`SinkView.ack`, i.e. after the sink confirmed
delivery (PUBACK, HTTP 2xx), or when the outbox gives batches up (disk budget, age,
a file that cannot be written).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from typing import Protocol

from edge_agent.config import OutboxConfig
from edge_agent.model import Pending
from edge_agent.outbox.ranges import Delivered


class SharedLog(Protocol):
    """What a view needs from the log every view reads (the outbox)."""

    @property
    def next_id(self) -> int:
        """The id the next appended batch gets: every id below it is taken."""
        ...

    async def started(self) -> None:
        """Return once the log is open and the cursors are loaded."""
        ...

    async def read(
        self, gap: tuple[int, int], limit: int, max_samples: int
    ) -> tuple[list[Pending], int]:
        """Stored batches with ids in ``gap`` (at most ``limit``, and beyond the first at
        most ``max_samples`` samples), and the last id examined: every id from
        ``gap[0]`` up to it was returned or holds nothing (any more)."""
        ...

    def cursor_moved(self) -> None:
        """A view's cursor is to be written (the view says which: :meth:`SinkView.take_cursor`)."""
        ...


class SinkView:
    """One sink's view of the outbox: the feed its runner drains (one log, many cursors)."""

    def __init__(self, log: SharedLog, name: str, config: OutboxConfig) -> None:
        self.name = name
        #: The sink's cursor: every id it is done with (delivered, or dropped).
        self.done = Delivered(0)
        self._log = log
        self._live: deque[Pending] = deque()
        #: Samples in ``_live``, kept up to date on every change of it (bounds memory).
        self._live_samples = 0
        self._live_limit = config.live_batches
        self._live_sample_limit = config.live_samples
        self._rate = config.replay_rate
        self._chunk_samples = self._rate if self._rate > 0 else 1 << 62
        self._wake = asyncio.Event()
        self._replay_ready_at = 0.0
        self._inflight: list[Pending] = []
        self._inflight_first: int | None = None
        self._inflight_backlog = False
        #: The cursor moved since it was last taken for writing.
        self._moved = False
        #: Set by :meth:`freeze`: ids from here on are not for this sink.
        self._end: int | None = None
        #: Batches (samples) of this sink the disk budget dropped before delivery.
        self.dropped_batches = 0
        self.dropped_samples = 0
        #: Batches (samples) delivered from the backlog (read back from disk).
        self.replayed_batches = 0
        self.replayed_samples = 0

    # ------------------------------------------------------------------ Feed

    async def peek(self, max_batches: int) -> list[Pending]:
        """Live batches first; else the next backlog chunk, paced to the replay rate."""
        await self._log.started()
        while True:
            if self._live:
                items = list(itertools.islice(self._live, max_batches))
                self._hand_out(items, items[0].seq, backlog=False)
                return items
            gap = self.done.first_gap(self._stop_at())
            if gap is not None:
                wait = self._replay_ready_at - time.monotonic()
                if wait > 0:
                    await self._sleep_unless_woken(wait)
                    continue
                items, examined = await self._log.read(gap, max_batches, self._chunk_samples)
                items = [p for p in items if p.seq not in self.done]  # dropped meanwhile
                if not items:
                    # Nothing stored there (any more): nothing to deliver either.
                    self.done.add(gap[0], examined)
                    self._cursor_moved()
                    continue
                if self._rate > 0:
                    samples = sum(len(p.batch) for p in items)
                    now = time.monotonic()
                    self._replay_ready_at = max(now, self._replay_ready_at) + samples / self._rate
                self._hand_out(items, gap[0], backlog=True)
                return items
            self._wake.clear()
            await self._wake.wait()

    def ack(self, seq: int) -> None:
        """Delivery of the batches handed out by the last peek, up to ``seq``, is confirmed."""
        first = self._inflight_first
        if first is None or seq < first:
            return
        delivered = [p for p in self._inflight if p.seq <= seq]
        self._inflight, self._inflight_first = [], None
        # From the first id the peek covered: a backlog read also covers ids that hold
        # nothing (any more) below its first row.
        self.done.add(first, seq)
        self._pop_live_upto(seq)
        if self._inflight_backlog:
            self.replayed_batches += len(delivered)
            self.replayed_samples += sum(len(p.batch) for p in delivered)
        self._cursor_moved()

    def __len__(self) -> int:
        """Batches this sink has not had confirmed yet (memory and disk)."""
        return self.done.pending(self._stop_at())

    @property
    def live(self) -> int:
        """Batches waiting in the live lane (memory)."""
        return len(self._live)

    @property
    def live_samples(self) -> int:
        """Samples waiting in the live lane (memory)."""
        return self._live_samples

    # ------------------------------------------------------------------ outbox side

    def freeze(self) -> None:
        """Batches appended from now on are not for this sink (it is being removed): what it
        has can be drained without chasing new data."""
        if self._end is None:
            self._end = self._log.next_id
            self._wake.set()

    def start_at_end(self) -> None:
        """Nothing in the log so far is for this sink (one added while the agent runs)."""
        self.done = Delivered(self._log.next_id - 1)
        self._cursor_moved()

    def wake(self) -> None:
        """Look again for something to hand out (the log has just opened)."""
        self._wake.set()

    def push(self, pending: Pending) -> None:
        """A batch was appended to the log: into the live lane, unless frozen."""
        if self._end is not None:
            return
        self._live.append(pending)
        self._live_samples += len(pending.batch)
        # The oldest are still on disk, still pending: they move to the backlog lane.
        # Bounded by samples too, as memory grows with them (large poll groups); the
        # newest batch stays even alone over the limit, so live data keeps flowing.
        while len(self._live) > 1 and (
            len(self._live) > self._live_limit or self._live_samples > self._live_sample_limit
        ):
            self._live_samples -= len(self._live.popleft().batch)
        self._wake.set()

    def drop_upto(self, upto: int, batches: int, samples: int) -> None:
        """The log deleted every id ``<= upto``; ``batches`` (``samples``) of them were still
        pending for this sink."""
        self.done.raise_floor(upto)
        self._pop_live_upto(upto)
        self.dropped_batches += batches
        self.dropped_samples += samples
        self._moved = True
        self._wake.set()

    def skip(self, first: int, last: int) -> None:
        """Ids that will never be stored (could not be written): nothing to replay."""
        self.done.add(first, last)
        self._live = deque(p for p in self._live if not first <= p.seq <= last)
        self._live_samples = sum(len(p.batch) for p in self._live)
        self._moved = True

    def take_cursor(self) -> Delivered | None:
        """A copy of the cursor to write, if it moved since it was last taken."""
        if not self._moved:
            return None
        self._moved = False
        return self.done.copy()

    def cursor_not_written(self) -> None:
        """The cursor last taken could not be written: the next commit takes it again."""
        self._moved = True

    # ------------------------------------------------------------------ internals

    def _cursor_moved(self) -> None:
        self._moved = True
        self._log.cursor_moved()

    def _stop_at(self) -> int:
        return self._log.next_id if self._end is None else self._end

    def _hand_out(self, items: list[Pending], first: int, *, backlog: bool) -> None:
        self._inflight = items
        self._inflight_first = first
        self._inflight_backlog = backlog

    async def _sleep_unless_woken(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _pop_live_upto(self, seq: int) -> None:
        while self._live and self._live[0].seq <= seq:
            self._live_samples -= len(self._live.popleft().batch)
