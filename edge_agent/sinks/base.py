"""The contract every sink implements (MQTT now, InfluxDB later).

A sink only delivers: ``send`` returns once the far end has confirmed the batches
(PUBACK, HTTP 2xx) and raises :class:`~edge_agent.errors.SinkError` otherwise.
Buffering, retry, backoff and counters belong to
:class:`~edge_agent.runtime.sink_runner.SinkRunner`, so sinks stay small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edge_agent.model import SampleBatch


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None:
        """Begin connecting; never raises when the far end is unreachable (it reconnects)."""
        ...

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        """Deliver ``batches`` in order; return only after delivery is confirmed."""
        ...

    async def stop(self) -> None:
        """Close cleanly (e.g. publish the retained offline status); idempotent."""
        ...
