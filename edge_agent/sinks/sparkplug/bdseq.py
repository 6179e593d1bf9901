"""The birth/death sequence number (bdSeq), persisted so that no two sessions share one.

A host pairs an NBIRTH with the NDEATH (the MQTT Will) that ends it by the bdSeq
metric both carry [tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq,
tck-id-message-flow-edge-node-birth-publish-nbirth-payload-bdSeq]. A Will can arrive
after the next session's NBIRTH; if that session reused the number, the late Will
would mark the new session dead. So the value of every CONNECT is written to
``state_dir/sparkplug-<sink>.json`` (atomic replace, fsync'ed, the directory too)
before the CONNECT goes out: after a restart or a kill -9 the next value is always a
new one. Values run 0..255 and wrap (the spec's range).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import structlog

from edge_agent.metrics.store import atomic_write

log = structlog.get_logger("edge_agent.sink.sparkplug")

#: bdSeq values are 0..255; after 255 comes 0.
BDSEQ_MODULO: Final = 256


def bdseq_path(state_dir: Path, sink_name: str) -> Path:
    return state_dir / f"sparkplug-{sink_name}.json"


class BdSeqStore:
    """The last bdSeq used, on disk. :meth:`advance` before every CONNECT."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: The value of the latest :meth:`advance` (the current session's), None before.
        self.current: int | None = None

    def _last(self) -> int | None:
        """The value stored, or None when there is none (first start) or it is unreadable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            value = json.loads(text)["bdSeq"]
        except (ValueError, KeyError, TypeError) as exc:
            # Written atomically, so only a hand edit gets here. Starting again at 0 may
            # repeat a value an old Will still carries: say so.
            log.warning(
                "sparkplug bdSeq file unreadable; starting again at 0",
                path=str(self.path),
                error=str(exc),
            )
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 256:
            log.warning("sparkplug bdSeq file holds no 0-255 value", path=str(self.path))
            return None
        return value

    def advance(self) -> int:
        """The next value (0 on the very first start), durably stored before it is returned.

        Raises OSError when it cannot be stored: a CONNECT must not go out with a value
        a restart could hand out again."""
        last = self.current if self.current is not None else self._last()
        value = 0 if last is None else (last + 1) % BDSEQ_MODULO
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"bdSeq": value}).encode("ascii") + b"\n")
        self.current = value
        return value
