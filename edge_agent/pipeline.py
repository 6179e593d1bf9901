"""The pipeline: every batch a poller emits passes through processors, then fans out to sinks.

Processors are plain callables over a batch (the structlog idea): they may return the
batch, a replacement, or extra batches (metrics, in a later issue). Fan-out hands the
same batch object to every sink's buffer: batches are never mutated after emission.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge_agent.model import SampleBatch, Value

#: A processor sees each batch and returns the batches to pass on (usually ``[batch]``).
Processor = Callable[[SampleBatch], Iterable[SampleBatch]]
#: Where a batch goes after processing: a sink runner's ``submit``.
Consumer = Callable[[SampleBatch], None]


@dataclass(slots=True)
class LatestValue:
    """Last seen value of one tag, built on demand for the live display."""

    value: Value
    quality: str
    reason: str
    timestamp_ns: int


class Pipeline:
    def __init__(self) -> None:
        self._processors: list[Processor] = []
        self._consumers: list[Consumer] = []
        #: Last batch per (device, group): O(1) per batch, not per sample.
        self.latest_batches: dict[tuple[str, str], SampleBatch] = {}
        self.batches_in = 0
        self.samples_in = 0

    def add_processor(self, processor: Processor) -> None:
        self._processors.append(processor)

    def add_consumer(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop handing batches to ``consumer`` (a sink removed or replaced by a reload)."""
        self._consumers.remove(consumer)

    def emit(self, batch: SampleBatch) -> None:
        """Entry point for pollers; never blocks (sink buffers absorb outages)."""
        self.batches_in += 1
        self.samples_in += len(batch)
        batches = [batch]
        for processor in self._processors:
            batches = [out for b in batches for out in processor(b)]
        for out in batches:
            self._remember(out)
            for consume in self._consumers:
                consume(out)

    def _remember(self, batch: SampleBatch) -> None:
        if not batch.historical:
            self.latest_batches[(batch.device, batch.group)] = batch

    def latest(self, device: str) -> dict[str, LatestValue]:
        """Latest value of every tag of ``device`` (for displays; not on the hot path)."""
        values: dict[str, LatestValue] = {}
        for (name, group), batch in sorted(self.latest_batches.items()):
            if name != device or group.startswith("metrics:"):
                continue  # metric windows are not tags (the live view shows them apart)
            for index, (tag, value, quality, reason) in enumerate(batch):
                values[tag] = LatestValue(value, quality.label, reason, batch.sample_time_ns(index))
        return values
