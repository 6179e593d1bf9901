"""Atomic persistence of the metric accumulators in the state directory.

The file is small JSON (last counter readings, open windows, machine states). It is
written to a temporary file in the same directory, flushed to disk, and renamed over
the old one, then the directory entry is synced: after a power cut the file is the
old version or the new one, never a torn mix. A file that cannot be read is moved
aside (``.corrupt``) and the agent starts fresh rather than refusing to start.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import structlog

from edge_agent.episodes import Episode

log = structlog.get_logger("edge_agent.metrics")

STATE_FILE = "metrics-state.json"


class StateStore:
    """Reads and atomically replaces one JSON state file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failing = Episode()

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "cannot read metrics state; starting fresh", path=str(self.path), error=str(exc)
            )
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            aside = self.path.with_suffix(".corrupt")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.warning(
                "metrics state is corrupt; moved aside, starting fresh",
                path=str(self.path),
                moved_to=str(aside),
                error=str(exc),
            )
            return None
        return data

    def save(self, data: dict[str, Any]) -> bool:
        """Replace the file with ``data``; False (logged once per outage) on failure."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            payload = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
            atomic_write(self.path, payload)
        except (OSError, ValueError) as exc:
            if self._failing.begin():
                log.error(
                    "cannot save metrics state; a restart would lose open windows",
                    path=str(self.path),
                    error=str(exc),
                )
            return False
        if self._failing.end():
            log.info("metrics state saved again", path=str(self.path))
        return True


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: after a power cut it is the old file or the new one.

    A temporary file in the same directory, flushed to disk, renamed over ``path``, then
    the directory synced so that the rename itself is durable. Every file the metrics
    keep in the state directory (state, baseline fits and windows, reports) is written so.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
