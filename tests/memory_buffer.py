"""A bounded in-memory feed for driving a sink runner without an outbox (tests, benchmarks).

Implements the runner's read-only :class:`~edge_agent.sinks.base.Feed` plus its own
``append``, which, unlike the outbox's, is for this one runner only.
"""

from __future__ import annotations

import asyncio
from collections import deque

from edge_agent.model import Pending, SampleBatch


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
