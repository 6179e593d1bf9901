"""Durable on-disk outbox between the pipeline and the sinks (see docs/OUTBOX.md)."""

from edge_agent.outbox.outbox import Outbox, OutboxError
from edge_agent.outbox.sink_view import SinkView

__all__ = ["Outbox", "OutboxError", "SinkView"]
