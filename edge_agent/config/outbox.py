"""The ``outbox:`` section of the plant file: the durable on-disk queue in front of the sinks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from edge_agent.config.base import Duration, Strict

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "kiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}


def parse_byte_size(value: Any) -> Any:
    """Accept ``1048576``, ``"512MB"``, ``"2GiB"``, ``"500 kB"``; return a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like '512MB' or '2GiB'")
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None or match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size (examples: 1048576, '512MB', '2GiB')")
        return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    return value


ByteSize = Annotated[int, BeforeValidator(parse_byte_size)]

#: Smallest disk budget accepted: below this the outbox would drop data all the time.
MIN_OUTBOX_BYTES = 64 * 1024


class OutboxConfig(Strict):
    """Durable queue between the pipeline and the sinks (SQLite in WAL mode, docs/OUTBOX.md).

    Every batch is written once; each sink has its own cursor, advanced only after
    confirmed delivery. Bounded by ``max_bytes`` and ``max_age``: beyond either,
    the oldest batches are dropped (and counted).
    """

    path: Path | None = Field(
        default=None,
        description="SQLite file of the outbox; default: <state_dir>/outbox.sqlite3.",
    )
    max_bytes: ByteSize = Field(
        default=1024**3,
        ge=MIN_OUTBOX_BYTES,
        description="Disk budget for undelivered batches (e.g. '2GiB'); the oldest are "
        "dropped beyond it.",
    )
    max_age: Duration = Field(
        default=7 * 86400.0,
        gt=0,
        description="Undelivered batches older than this are dropped (e.g. '7d').",
    )
    fsync: Literal["always", "interval"] = Field(
        default="interval",
        description="'always': every commit reaches the disk before it counts (survives "
        "power loss). 'interval': commits are written at once (survive kill -9) and "
        "flushed to the disk every fsync_interval (a power loss can cost that much).",
    )
    fsync_interval: Duration = Field(
        default=1.0,
        ge=0.01,
        le=60.0,
        description="With fsync 'interval': how often commits are flushed to the disk. Also "
        "the longest a sink's confirmed position waits to be written when no new batch "
        "comes to carry it (commit_interval > 0).",
    )
    commit_interval: Duration = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Batches appended within this window after the first share one commit "
        "(the devices of one poll tick finish their reads tens of ms apart); a kill -9 "
        "can cost the reads of the last window. 0 = commit as soon as the previous "
        "commit is done, and write every cursor move at once.",
    )
    replay_rate: int = Field(
        default=10_000,
        ge=0,
        description="Samples per second per sink replayed from a backlog while live data "
        "keeps flowing (10,000/s is about 350 kB/s of MQTT JSON); 0 = as fast as the sink "
        "takes them.",
    )
    live_batches: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Newest batches per sink held in memory and sent first; older "
        "undelivered batches are read back from disk and marked historical.",
    )
    live_samples: int = Field(
        default=100_000,
        ge=1,
        description="Newest samples per sink held in memory (with live_batches, whichever "
        "is reached first; the newest batch always stays). Bounds memory during an "
        "outage: a sample costs 40-80 bytes in memory, so the default is 4-8 MB, about "
        "10 s of a 10,000 values/s plant.",
    )
