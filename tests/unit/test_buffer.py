from __future__ import annotations

from edge_agent.model import SampleBatch
from tests.memory_buffer import MemoryBuffer


def _batch(i: int) -> SampleBatch:
    return SampleBatch.all_bad("dev", "g", i, ("a", "b"), "timeout")


async def test_overflow_drops_oldest_and_counts_it() -> None:
    buf = MemoryBuffer(capacity=3)
    for i in range(5):
        buf.append(_batch(i))
    pending = await buf.peek(10)
    assert [p.batch.timestamp_ns for p in pending] == [2, 3, 4]
    assert buf.dropped_batches == 2
    assert buf.dropped_samples == 4


async def test_ack_by_sequence_survives_overflow_during_delivery() -> None:
    buf = MemoryBuffer(capacity=2)
    buf.append(_batch(0))
    buf.append(_batch(1))
    in_flight = await buf.peek(2)
    buf.append(_batch(2))  # overflows: batch 0 dropped while "in flight"
    buf.ack(in_flight[-1].seq)
    remaining = await buf.peek(10)
    assert [p.batch.timestamp_ns for p in remaining] == [2]
