"""``edge-agent outbox status``: the backlog per sink, read from the outbox file.

Opens the file read-only, so it is safe while the agent runs (WAL mode lets a reader
see the last committed state without blocking the writer).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_agent.model import iso_utc_ms
from edge_agent.outbox.ranges import parse_ranges
from edge_agent.outbox.schema import ROW_OVERHEAD


@dataclass
class SinkStatus:
    sink: str
    #: Batches not yet confirmed by this sink, their bytes, the oldest batch timestamp.
    rows: int
    bytes: int
    oldest_ts_ns: int | None
    #: Everything up to this id is delivered (or dropped).
    delivered_upto: int


@dataclass
class OutboxStatus:
    path: str
    file_bytes: int
    rows: int
    bytes: int
    sinks: list[SinkStatus] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)


def read_status(path: Path) -> OutboxStatus:
    """Backlog per sink; raises ``sqlite3.Error`` if the file is not a readable outbox."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows, size = db.execute(
            f"SELECT count(*), coalesce(sum(length(body)), 0) + count(*) * {ROW_OVERHEAD} "
            "FROM batches"
        ).fetchone()
        status = OutboxStatus(
            path=str(path),
            file_bytes=sum(
                p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()
            ),
            rows=rows,
            bytes=size,
        )
        for sink, delivered, ranges in db.execute(
            "SELECT sink, delivered, ranges FROM cursors ORDER BY sink"
        ).fetchall():
            where = ["id > ?"]
            params: list[int] = [delivered]
            for lo, hi in parse_ranges(ranges):
                where.append("id NOT BETWEEN ? AND ?")
                params += [lo, hi]
            count, backlog_bytes, oldest = db.execute(
                f"SELECT count(*), coalesce(sum(length(body)), 0) + count(*) * {ROW_OVERHEAD}, "
                f"min(ts_ns) FROM batches WHERE {' AND '.join(where)}",
                params,
            ).fetchone()
            status.sinks.append(SinkStatus(sink, count, backlog_bytes, oldest, delivered))
        status.dead_letters = dict(
            db.execute("SELECT sink, count(*) FROM dead_letters GROUP BY sink ORDER BY sink")
        )
        return status
    finally:
        db.close()


def _size(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _age(ts_ns: int, now_ns: int) -> str:
    seconds = max(0, (now_ns - ts_ns) // 1_000_000_000)
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m ago"
    return f"{seconds // 86400}d ago"


def render_status(status: OutboxStatus, now_ns: int | None = None) -> str:
    now_ns = time.time_ns() if now_ns is None else now_ns
    lines = [
        f"outbox {status.path}: {_size(status.file_bytes)} on disk, "
        f"{status.rows} batches ({_size(status.bytes)}) stored"
    ]
    if not status.sinks:
        lines.append("no sink cursors yet")
    width = max([4, *(len(s.sink) for s in status.sinks)])
    lines.append(f"{'sink':<{width}}  {'backlog':>9}  {'bytes':>10}  oldest")
    for sink in status.sinks:
        oldest = (
            f"{iso_utc_ms(sink.oldest_ts_ns)} ({_age(sink.oldest_ts_ns, now_ns)})"
            if sink.oldest_ts_ns is not None
            else "-"
        )
        lines.append(f"{sink.sink:<{width}}  {sink.rows:>9}  {_size(sink.bytes):>10}  {oldest}")
    if status.dead_letters:
        total = sum(status.dead_letters.values())
        detail = ", ".join(f"{k or 'outbox'}: {v}" for k, v in status.dead_letters.items())
        lines.append(f"dead letters: {total} ({detail})")
    return "\n".join(lines)


def status_json(status: OutboxStatus) -> str:
    return json.dumps(asdict(status), indent=2, sort_keys=True)
