"""The pipeline: every batch a poller emits passes through processors, then to its consumers.

Processors are plain callables over a batch (the structlog idea): they may return the
batch, a replacement, or extra batches (metrics). In the agent the one consumer is the
outbox, which keeps each batch once for every sink: batches are never mutated after
emission.

A batch without samples reaches the processors only: it has nothing to publish. A
subscription's proof of life is such a batch (``SampleBatch.alive``): the metrics hold
the subscription's last values up to its time, without one repeated value on the wire.

A processor is derived data: one that raises (a bug, or a value it did not expect)
costs its own output for that batch, never the collection. The batch it was given
flows on unchanged to the consumers, the failure is logged once with its traceback
and then quietly (counted in ``processor_errors``) until the processor works again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import structlog

from edge_agent.episodes import Episodes
from edge_agent.metrics.contract import event_info, metric_info, report_info
from edge_agent.model import SampleBatch, Value

log = structlog.get_logger("edge_agent.pipeline")

#: A processor sees each batch and returns the batches to pass on (usually ``[batch]``).
Processor = Callable[[SampleBatch], Iterable[SampleBatch]]
#: Where a batch goes after processing: in the agent, :meth:`Outbox.append`.
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
        #: Batches a processor raised on (they went on unprocessed).
        self.processor_errors = 0
        #: Processors whose last call raised: logged once, quiet until they work again.
        self._failing: Episodes[int] = Episodes()

    def add_processor(self, processor: Processor) -> None:
        self._processors.append(processor)

    def add_consumer(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def remove_consumer(self, consumer: Consumer) -> None:
        """Stop handing batches to ``consumer`` (a sink removed or replaced by a reload)."""
        self._consumers.remove(consumer)

    def emit(self, batch: SampleBatch) -> None:
        """Entry point for pollers; never blocks (the outbox absorbs outages)."""
        if batch.names:
            self.batches_in += 1
            self.samples_in += len(batch)
        batches: Sequence[SampleBatch] = (batch,)
        for processor in self._processors:
            batches = [out for b in batches for out in self._process(processor, b)]
        for out in batches:
            if not out.names:
                continue  # a proof of life, or nothing: for processors only
            self._remember(out)
            for consume in self._consumers:
                consume(out)

    def _process(self, processor: Processor, batch: SampleBatch) -> Sequence[SampleBatch]:
        """``processor(batch)``, or ``batch`` alone when the processor raises."""
        try:
            out = processor(batch)
            # A generator would raise only when iterated: materialise it in here.
            result = out if isinstance(out, list | tuple) else list(out)
        except Exception:
            self.processor_errors += 1
            key = id(processor)
            if self._failing.begin(key):
                log.exception(
                    "pipeline processor failed",
                    processor=_name(processor),
                    device=batch.device,
                    group=batch.group,
                    note="the batch goes on unprocessed; quiet until the processor works again",
                )
            return (batch,)
        if self._failing.end(id(processor)):
            log.info("pipeline processor works again", processor=_name(processor))
        return result

    def _remember(self, batch: SampleBatch) -> None:
        if not batch.historical:
            self.latest_batches[(batch.device, batch.group)] = batch

    def latest(self, device: str) -> dict[str, LatestValue]:
        """Latest value of every tag of ``device`` (for displays; not on the hot path)."""
        values: dict[str, LatestValue] = {}
        for (name, _group), batch in sorted(self.latest_batches.items()):
            if name != device or not _is_data(batch):
                continue  # metric windows and events are not tags (shown apart)
            for index, (tag, value, quality, reason) in enumerate(batch):
                values[tag] = LatestValue(value, quality.label, reason, batch.sample_time_ns(index))
        return values


def _is_data(batch: SampleBatch) -> bool:
    """Whether ``batch`` holds tag values: not a metric window, an event or a report."""
    return metric_info(batch) is None and event_info(batch) is None and report_info(batch) is None


def _name(processor: Processor) -> str:
    return getattr(processor, "__qualname__", type(processor).__qualname__)
