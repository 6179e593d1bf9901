"""A damaged outbox file at start: checked, moved aside, and what can be read salvaged.

The agent must start even on a file that a power cut or a full SD card left broken:
the file is moved aside (kept for an operator), a new one is made, and every batch
:mod:`edge_agent.outbox.salvage` can still read goes into it, with the cursors found.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.outbox.codec import CodecError, decode_body, decode_names, encode_names
from edge_agent.outbox.ranges import Delivered, parse_ranges
from edge_agent.outbox.salvage import Salvaged, salvage
from edge_agent.outbox.schema import SCHEMA, Fsync, Stream, configure, connect, write_cursors


@dataclass
class Recovery:
    """What happened to a damaged file at start."""

    reason: str
    moved_to: Path
    batches: int
    first_id: int | None
    last_id: int | None
    sinks: list[str]
    pages_read: int
    undecodable: int


def problem_of(path: Path) -> str | None:
    """Why the existing file is unusable, or None if it is fine (or absent)."""
    if not path.exists():
        return None
    try:
        db = connect(path)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    try:
        result = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        db.close()
    if result != ["ok"]:
        return "; ".join(result)[:500]
    return None


def recover(path: Path, reason: str, fsync: Fsync) -> tuple[sqlite3.Connection, Recovery]:
    """Move the damaged file aside, salvage its rows into a fresh file at ``path``."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    with contextlib.suppress(FileNotFoundError):
        path.with_name(path.name + "-shm").unlink()
    found = salvage(aside)
    db = configure(connect(path), fsync)
    try:
        return db, _fill(db, found, reason, aside)
    except BaseException:
        db.close()
        raise


def _fill(db: sqlite3.Connection, found: Salvaged, reason: str, aside: Path) -> Recovery:
    db.executescript(SCHEMA)
    cursors = {
        sink: Delivered(delivered, parse_ranges(ranges))
        for sink, (delivered, ranges) in found.cursors.items()
    }
    # A row at or below every cursor was delivered (or dropped) and deleted since;
    # a copy of it on a free page is not data.
    floor = min((d.floor for d in cursors.values()), default=0)
    streams: dict[int, Stream] = {}
    for stream_id, (device, group, names) in found.streams.items():
        with contextlib.suppress(CodecError):
            streams[stream_id] = (device, group, decode_names(names))
    kept: list[tuple[int, int, int, int, int, bytes]] = []
    undecodable = 0
    for row_id in sorted(found.batches):
        if row_id <= floor:
            continue
        for at_ns, ts_ns, stream_id, samples, body in found.batches[row_id]:
            stream = streams.get(stream_id)
            if stream is None:
                continue
            try:
                decode_body(body, stream[0], stream[1], stream[2], ts_ns)
            except CodecError:
                continue
            kept.append((row_id, at_ns, ts_ns, stream_id, samples, body))
            break
        else:
            undecodable += 1
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO streams VALUES (?, ?, ?, ?)",
        [(i, d, g, encode_names(n)) for i, (d, g, n) in streams.items()],
    )
    db.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", kept)
    write_cursors(db, cursors.items())
    db.execute("COMMIT")
    return Recovery(
        reason=reason,
        moved_to=aside,
        batches=len(kept),
        first_id=kept[0][0] if kept else None,
        last_id=kept[-1][0] if kept else None,
        sinks=sorted(cursors),
        pages_read=found.pages_read,
        undecodable=undecodable,
    )
