"""What the outbox tells an operator: the log lines of opening it, of damage found at
start, and of the disk budget. One place for their wording (docs/OUTBOX.md quotes it),
kept out of the loop side's logic."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import structlog

from edge_agent.config import OutboxConfig
from edge_agent.outbox.store import DropResult, OpenState

log = structlog.get_logger("edge_agent.outbox")


def log_cannot_open(path: Path, error: str, retry_s: float, max_in_memory: int) -> None:
    log.error(
        "outbox file cannot be opened (it is not damaged and is left as it is); "
        "batches wait in memory and opening is retried",
        path=str(path),
        error=error,
        retry_s=retry_s,
        max_batches_in_memory=max_in_memory,
    )


def log_opened(
    path: Path, state: OpenState, backlog: Mapping[str, int], fsync: str, waited: int | None
) -> None:
    """The file is open (``waited``: batches that waited in memory for it, if it could
    not be opened at start); what damage it had, and which sinks it forgot."""
    if state.recovery is not None:
        event, fields = state.recovery.report()
        log.error(event, path=str(path), **fields)
    for sink, rows in state.forgotten.items():
        log.warning(
            "sink no longer configured: its undelivered batches are forgotten",
            sink=sink,
            batches=rows,
        )
    log.info(
        "outbox open",
        path=str(path),
        rows=state.rows,
        bytes=state.bytes,
        backlog=dict(backlog),
        fsync=fsync,
        **({"waited_in_memory": waited} if waited is not None else {}),
    )


def log_dropping(result: DropResult, reason: str, config: OutboxConfig, low_water: float) -> None:
    """The first drop of an episode of the disk budget."""
    log.warning(
        "outbox full: dropping the oldest undelivered batches",
        reason=reason,
        policy=f"drop oldest down to {low_water:.0%} of max_bytes; drop anything older than "
        "max_age",
        max_bytes=config.max_bytes,
        max_age_s=config.max_age,
        dropped_batches=result.rows,
        dropped_samples=result.samples,
        per_sink={k: v[0] for k, v in result.per_sink.items()},
    )


def log_within_budget(stored_bytes: int, dropped_batches: int) -> None:
    """The end of an episode of the disk budget."""
    log.info("outbox back within its budget", bytes=stored_bytes, dropped_batches=dropped_batches)


def log_given_up(batches: int) -> None:
    log.error(
        "outbox still cannot write: the oldest unwritten batches are dropped", batches=batches
    )
