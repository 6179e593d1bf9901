"""A damaged outbox at start: what can be read is salvaged, what is lost is counted.

Two kinds of damage (found by :mod:`edge_agent.outbox.check`):

* **the file** (SQLite finds it corrupt: truncated, a sector overwritten, a destroyed
  header): every row :mod:`edge_agent.outbox.salvage` can read, from the file's pages
  and its log's frames, goes into a new file, written next to it first; only then is
  the damaged file (and its log) moved aside, exactly as it was found, for an
  operator. A failure on the way (a full disk) leaves it where it was, to try again.
* **the log** (the file holds fewer batches than its high-water mark says were
  committed: SQLite dropped the commits after a torn or altered frame): the file is
  intact and stays; the rows of the frames after the bad one are read back into it,
  and a copy of the damaged log is kept.

Either way, a row comes back only if its checksum holds (rows from before checksums:
if it decodes), and the batches that were committed and are neither back nor done
with by every sink are the loss: counted per sink, with their ids, and said.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.outbox.codec import (
    CodecError,
    decode_body,
    decode_names,
    encode_names,
    row_crc,
    stream_crc,
)
from edge_agent.outbox.ranges import Delivered, Span, parse_ranges
from edge_agent.outbox.salvage import Salvaged, salvage
from edge_agent.outbox.schema import SCHEMA, Fsync, Stream, configure, connect, write_cursors
from edge_agent.outbox.sidecar import Mark, StoredStreams

#: A ``batches`` row as inserted: (id, at_ns, ts_ns, stream, samples, body, crc).
Row = tuple[int, int, int, int, int, bytes, int | None]


@dataclass
class Loss:
    """Committed batches that could not be read back and that a sink had not confirmed."""

    count: int = 0
    first: int | None = None
    last: int | None = None
    #: sink -> how many of them it had not confirmed.
    per_sink: dict[str, int] = field(default_factory=dict)

    @property
    def ids(self) -> str:
        return f"{self.first}-{self.last}" if self.count else "none"

    def added_to(self, per_sink: dict[str, int]) -> dict[str, int]:
        """``per_sink`` counts with this loss added."""
        return {
            s: per_sink.get(s, 0) + self.per_sink.get(s, 0) for s in {*per_sink, *self.per_sink}
        }

    def fields(self) -> dict[str, object]:
        return {"lost_batches": self.count, "lost_ids": self.ids, "lost_per_sink": self.per_sink}


@dataclass
class Recovery:
    """What happened to a damaged file (or log) at start."""

    #: "file" (moved aside, salvaged into a new file), "log" (frames read back) or
    #: "missing" (no file, but a mark saying batches were committed).
    kind: str
    reason: str
    #: Where the damaged file (kind "file") or a copy of the log (kind "log") is kept.
    moved_to: Path | None
    batches: int
    first_id: int | None
    last_id: int | None
    sinks: list[str]
    pages_read: int
    #: Rows found whose every copy failed its checksum (or did not decode).
    undecodable: int
    lost: Loss = field(default_factory=Loss)

    def report(self) -> tuple[str, dict[str, object]]:
        """The error line to log: its message and fields."""
        if self.kind == "log":
            event = "outbox write-ahead log was damaged: readable frames salvaged into the file"
        elif self.kind == "missing":
            event = "outbox file is missing although batches were committed: they are lost"
        else:
            event = (
                "outbox file was damaged: moved aside, readable batches salvaged into a new file"
            )
        return event, {
            "problem": self.reason,
            "moved_to": str(self.moved_to) if self.moved_to else "nothing to move",
            "salvaged_batches": self.batches,
            "ids": f"{self.first_id}-{self.last_id}" if self.batches else "none",
            "cursors_found": self.sinks or "none (everything salvaged is sent again)",
            "undecodable": self.undecodable,
            **self.lost.fields(),
        }


def recover_file(
    path: Path,
    reason: str,
    fsync: Fsync,
    sinks: Sequence[str],
    mark: Mark | None,
    copy: StoredStreams,
    kind: str = "file",
) -> tuple[sqlite3.Connection, Recovery]:
    """Salvage the damaged file at ``path`` into a new one, then move it aside."""
    found = salvage(path)
    cursors = _cursors(found, mark)
    streams = usable_streams(found, copy)
    floor = min((d.floor for d in cursors.values()), default=0)
    kept, undecodable = usable_rows(found, streams, above=floor)
    last_id = max([found.last_id, mark.last_id if mark else 0, *(row[0] for row in kept[-1:])])
    scratch = path.with_name(path.name + ".recovering")
    for leftover in (scratch, scratch.with_name(scratch.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    new = connect(scratch)
    try:
        new.executescript(SCHEMA)
        new.execute("BEGIN IMMEDIATE")
        insert(new, streams, kept, cursors, last_id)
        new.execute("COMMIT")
    except BaseException:
        new.close()
        for leftover in (scratch, scratch.with_name(scratch.name + "-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()  # a full disk: give the space back, try again later
        raise
    new.close()
    # Only now, with the salvaged rows safe in the new file, is the damaged one moved.
    aside = None
    if path.exists():
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal"):
            source = path.with_name(path.name + suffix)
            if source.exists() and (source.stat().st_size or not suffix):
                source.rename(aside.with_name(aside.name + suffix))
    for suffix in ("-wal", "-shm"):  # an empty log (the check's connection made it)
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()
    os.replace(scratch, path)
    db = configure(connect(path), fsync)
    present = [row[0] for row in kept]
    return db, Recovery(
        kind=kind,
        reason=reason,
        moved_to=aside,
        batches=len(kept),
        first_id=kept[0][0] if kept else None,
        last_id=kept[-1][0] if kept else None,
        sinks=sorted(cursors),
        pages_read=found.pages_read,
        undecodable=undecodable,
        lost=count_loss(last_id, _configured(cursors, sinks), present),
    )


def keep_log(path: Path) -> Path | None:
    """A copy of the log of ``path`` next to it (before SQLite writes over its damaged
    end); None if it cannot be made (a full disk: the loss is still counted)."""
    wal = path.with_name(path.name + "-wal")
    kept = wal.with_name(f"{wal.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        shutil.copyfile(wal, kept)
    except OSError:
        with contextlib.suppress(OSError):
            kept.unlink()
        return None
    return kept


def refill_from_log(
    db: sqlite3.Connection,
    found: Salvaged,
    reason: str,
    kept_log: Path | None,
    sinks: Sequence[str],
    mark: Mark,
    copy: StoredStreams,
) -> Recovery:
    """Put the rows read from the log's frames (``found``) back into the intact file."""
    stored = {
        sink: Delivered(floor, parse_ranges(ranges))
        for sink, floor, ranges in db.execute("SELECT sink, delivered, ranges FROM cursors")
    }
    cursors = union(union(stored, _cursors(found, None)), mark.cursors)
    in_file: dict[int, tuple[str, str, bytes, int | None]] = {
        i: (d, g, n, c)
        for i, d, g, n, c in db.execute("SELECT id, device, grp, names, crc FROM streams")
    }
    streams = usable_streams(found, copy, in_file)
    have = db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0]
    floor = min((d.floor for d in cursors.values()), default=0)
    kept, undecodable = usable_rows(found, streams, above=max(floor, have))
    db.execute("BEGIN IMMEDIATE")
    try:
        insert(
            db, {i: s for i, s in streams.items() if i not in in_file}, kept, cursors, mark.last_id
        )
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    low = min(floor, have)
    present = [
        row[0] for row in db.execute("SELECT id FROM batches WHERE id > ? ORDER BY id", (low,))
    ]
    return Recovery(
        kind="log",
        reason=reason,
        moved_to=kept_log,
        batches=len(kept),
        first_id=kept[0][0] if kept else None,
        last_id=kept[-1][0] if kept else None,
        sinks=sorted(cursors),
        pages_read=found.pages_read,
        undecodable=undecodable,
        lost=count_loss(mark.last_id, _configured(cursors, sinks), present),
    )


def insert(
    db: sqlite3.Connection,
    streams: Mapping[int, Stream],
    rows: Iterable[Row],
    cursors: Mapping[str, Delivered],
    last_id: int,
) -> None:
    """Salvaged streams, rows, cursors and the last id into ``db`` (in its transaction)."""
    encoded = [(i, d, g, encode_names(n)) for i, (d, g, n) in streams.items()]
    db.executemany(
        "INSERT OR IGNORE INTO streams VALUES (?, ?, ?, ?, ?)",
        [(i, d, g, n, stream_crc(d, g, n)) for i, d, g, n in encoded],
    )
    db.executemany("INSERT OR IGNORE INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    write_cursors(db, cursors.items())
    db.execute(
        "INSERT INTO meta VALUES ('last_id', ?) ON CONFLICT(key) DO UPDATE SET value = "
        "max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
        (str(last_id),),
    )


def usable_streams(
    found: Salvaged,
    copy: StoredStreams,
    in_file: Mapping[int, tuple[str, str, bytes, int | None]] | None = None,
) -> dict[int, Stream]:
    """stream id -> stream, from the copy kept next to the file (only committed streams
    are in it), else from a row of the file or of salvaged pages whose checksum holds
    (or, from before checksums, that decodes)."""
    streams: dict[int, Stream] = {}
    for stream_id, (device, group, names) in copy.items():
        with contextlib.suppress(CodecError):
            streams[stream_id] = (device, group, decode_names(names))
    candidates: dict[int, list[tuple[str, str, bytes, int | None]]] = {}
    for stream_id, stored in (in_file or {}).items():
        candidates.setdefault(stream_id, []).append(stored)
    for stream_id, copies in found.streams.items():
        candidates.setdefault(stream_id, []).extend(copies)
    for stream_id, copies in candidates.items():
        if stream_id in streams:
            continue
        for device, group, names, crc in copies:
            if crc is not None and crc != stream_crc(device, group, names):
                continue
            try:
                streams[stream_id] = (device, group, decode_names(names))
            except CodecError:
                continue
            break
    return streams


def usable_rows(
    found: Salvaged, streams: Mapping[int, Stream], above: int
) -> tuple[list[Row], int]:
    """The first intact copy of every salvaged row with an id above ``above``, and how
    many rows had none."""
    kept: list[Row] = []
    undecodable = 0
    for row_id in sorted(found.batches):
        if row_id <= above:
            continue
        for at_ns, ts_ns, stream_id, samples, body, crc in found.batches[row_id]:
            if crc is not None and crc != row_crc(row_id, at_ns, ts_ns, stream_id, samples, body):
                continue
            stream = streams.get(stream_id)
            if stream is None:
                continue
            try:
                decode_body(body, stream[0], stream[1], stream[2], ts_ns)
            except CodecError:
                continue
            kept.append((row_id, at_ns, ts_ns, stream_id, samples, body, crc))
            break
        else:
            undecodable += 1
    return kept, undecodable


def union(a: Mapping[str, Delivered], b: Mapping[str, Delivered]) -> dict[str, Delivered]:
    """Per sink, every id either says is done (a cursor only ever grows)."""
    out = {sink: done.copy() for sink, done in a.items()}
    for sink, done in b.items():
        mine = out.setdefault(sink, done.copy())
        mine.raise_floor(done.floor)
        for lo, hi in done.ranges:
            mine.add(lo, hi)
    return out


def _cursors(found: Salvaged, mark: Mark | None) -> dict[str, Delivered]:
    salvaged = {
        sink: Delivered(floor, parse_ranges(ranges))
        for sink, (floor, ranges) in found.cursors.items()
    }
    return union(salvaged, mark.cursors) if mark else salvaged


def _configured(cursors: Mapping[str, Delivered], sinks: Sequence[str]) -> dict[str, Delivered]:
    return {sink: done for sink, done in cursors.items() if sink in sinks}


def count_loss(last_id: int, cursors: Mapping[str, Delivered], present: Sequence[int]) -> Loss:
    """The ids up to ``last_id`` that no row holds (``present``: sorted) and that a sink
    is not done with, per sink and together. Without any cursor, only the holes from the
    first row on are known to be lost."""
    if cursors:
        low = min(done.floor for done in cursors.values())
    elif present:
        low = present[0] - 1
    else:
        return Loss()
    holes: list[Span] = []
    previous = low
    for row_id in present:
        if row_id > previous + 1:
            holes.append((previous + 1, row_id - 1))
        previous = max(previous, row_id)
    if previous < last_id:
        holes.append((previous + 1, last_id))
    everyone = cursors or {"": Delivered(low)}
    lost_by_sink = {sink: _not_done(holes, done) for sink, done in everyone.items()}
    together = _merged(span for spans in lost_by_sink.values() for span in spans)
    return Loss(
        count=sum(hi - lo + 1 for lo, hi in together),
        first=together[0][0] if together else None,
        last=together[-1][1] if together else None,
        per_sink={
            sink: sum(hi - lo + 1 for lo, hi in spans)
            for sink, spans in lost_by_sink.items()
            if sink
        },
    )


def _merged(spans: Iterable[Span]) -> list[Span]:
    out: list[Span] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _not_done(spans: Iterable[Span], done: Delivered) -> list[Span]:
    """The parts of ``spans`` outside ``done``."""
    out: list[Span] = []
    for lo, hi in spans:
        lo = max(lo, done.floor + 1)
        for a, b in done.ranges:
            if lo > hi:
                break
            if b < lo or a > hi:
                continue
            if a > lo:
                out.append((lo, a - 1))
            lo = b + 1
        if lo <= hi:
            out.append((lo, hi))
    return out
