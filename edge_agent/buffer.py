"""Bounded in-memory buffer between the pipeline and one sink.

The interface (:class:`BatchBuffer`) is what a sink runner sees: append, peek what is
pending, acknowledge once delivery is confirmed. Acknowledgement is by sequence
number, so batches dropped for overflow while others are in flight never make the
runner acknowledge the wrong ones. The agent uses the durable outbox's per-sink
view (:class:`edge_agent.outbox.SinkView`); :class:`MemoryBuffer` remains for
embedding a sink without a state directory, and for tests.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from edge_agent.model import SampleBatch


@dataclass(slots=True, frozen=True)
class Pending:
    """A buffered batch and its sequence number (monotonic per buffer)."""

    seq: int
    batch: SampleBatch


class BatchBuffer(Protocol):
    """What a sink runner needs from the buffer in front of its sink."""

    def append(self, batch: SampleBatch) -> None: ...

    async def peek(self, max_batches: int) -> list[Pending]:
        """Wait until at least one batch is pending; return up to ``max_batches`` in order."""
        ...

    def ack(self, seq: int) -> None:
        """Forget every batch with a sequence number ``<= seq`` (delivery confirmed)."""
        ...

    def __len__(self) -> int: ...

    @property
    def dropped_batches(self) -> int: ...


class MemoryBuffer:
    """Keeps at most ``capacity`` batches; on overflow the oldest is dropped and counted."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._items: deque[Pending] = deque()
        self._next_seq = 1
        self._dropped_batches = 0
        self._dropped_samples = 0
        self._nonempty = asyncio.Event()

    def append(self, batch: SampleBatch) -> None:
        if len(self._items) >= self._capacity:
            lost = self._items.popleft()
            self._dropped_batches += 1
            self._dropped_samples += len(lost.batch)
        self._items.append(Pending(self._next_seq, batch))
        self._next_seq += 1
        self._nonempty.set()

    async def peek(self, max_batches: int) -> list[Pending]:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        count = min(max_batches, len(self._items))
        return [self._items[i] for i in range(count)]

    def ack(self, seq: int) -> None:
        while self._items and self._items[0].seq <= seq:
            self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def dropped_batches(self) -> int:
        return self._dropped_batches

    @property
    def dropped_samples(self) -> int:
        return self._dropped_samples
