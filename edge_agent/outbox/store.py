"""The outbox's SQLite file. Every method runs on the outbox's one worker thread.

The file's layout is :mod:`edge_agent.outbox.schema`; a damaged file is handled at
open by :mod:`edge_agent.outbox.recovery`. Here: appending rows (group commits),
moving cursors, pruning what every sink has, dropping the oldest beyond the budget,
reading a backlog back.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from edge_agent.model import SampleBatch
from edge_agent.outbox.codec import (
    CODEC,
    CodecError,
    decode_body,
    decode_names,
    encode_body,
    encode_names,
)
from edge_agent.outbox.ranges import Delivered, parse_ranges
from edge_agent.outbox.recovery import Recovery, problem_of, recover
from edge_agent.outbox.schema import (
    ROW_OVERHEAD,
    SCHEMA,
    SCHEMA_VERSION,
    Fsync,
    Stream,
    configure,
    connect,
    write_cursors,
)

log = structlog.get_logger("edge_agent.outbox")

#: Oldest dead letters are deleted beyond this many rows.
DEAD_LETTER_LIMIT: Final = 10_000
#: Distinct tag-name sets of one device's group kept as streams (read groups have one,
#: or one per array shape); beyond, names are stored with each batch.
MAX_STREAMS_PER_GROUP: Final = 64

#: (id, appended at ns, batch): a row waiting to be written.
NewRow = tuple[int, int, SampleBatch]
#: (sink, what it is done with): a cursor to persist.
CursorRow = tuple[str, Delivered]
#: (at ns, sink, HTTP status, error, the refused lines).
DeadLetter = tuple[int, str, int, str, bytes]


@dataclass
class OpenState:
    next_id: int
    cursors: dict[str, Delivered]
    rows: int
    bytes: int
    oldest_at_ns: int | None
    dead_letters: int
    recovery: Recovery | None = None
    #: Sinks in the file but no longer configured -> their undelivered rows.
    forgotten: dict[str, int] = field(default_factory=dict)


@dataclass
class FlushResult:
    rows_added: int
    bytes_added: int
    rows_removed: int
    bytes_removed: int
    oldest_at_ns: int | None
    #: (id, why) of batches that could not be encoded.
    rejected: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class DropResult:
    upto: int
    rows: int
    samples: int
    bytes: int
    per_sink: dict[str, tuple[int, int]]
    oldest_at_ns: int | None


class OutboxStore:
    """The SQLite side of the outbox (one connection, used from one thread)."""

    def __init__(self, path: Path, fsync: Fsync) -> None:
        self.path = path
        self.fsync = fsync
        self._db: sqlite3.Connection | None = None
        self._streams: dict[tuple[str, str, tuple[str, ...]], int] = {}
        self._stream_of: dict[int, Stream] = {}
        #: Streams per (device, group), to cap them at MAX_STREAMS_PER_GROUP.
        self._group_streams: dict[tuple[str, str], int] = {}
        self._pruned_to = 0

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox store is not open")
        return self._db

    # ------------------------------------------------------------------ open / close

    def open(self, sinks: Sequence[str]) -> OpenState:
        """Open (creating, checking and if need be recovering the file); load the cursors."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        recovery: Recovery | None = None
        problem = problem_of(self.path)
        if problem is not None:
            self._db, recovery = recover(self.path, problem, self.fsync)
        else:
            self._db = configure(connect(self.path), self.fsync)
        db = self.db
        db.executescript(SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('codec', ?)",
            (str(SCHEMA_VERSION), CODEC),
        )
        for stream_id, device, group, names in db.execute(
            "SELECT id, device, grp, names FROM streams"
        ):
            with contextlib.suppress(CodecError):
                self._remember_stream(stream_id, (device, group, decode_names(names)))
        return self._load_state(sinks, recovery)

    def _load_state(self, sinks: Sequence[str], recovery: Recovery | None) -> OpenState:
        db = self.db
        stored = {
            sink: Delivered(delivered, parse_ranges(ranges))
            for sink, delivered, ranges in db.execute("SELECT sink, delivered, ranges FROM cursors")
        }
        max_id = db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0]
        highest = [max_id]
        for done in stored.values():
            highest.append(done.ranges[-1][1] if done.ranges else done.floor)
        next_id = max(highest) + 1
        forgotten: dict[str, int] = {}
        for sink in sorted(set(stored) - set(sinks)):
            done = stored.pop(sink)
            forgotten[sink] = db.execute(
                "SELECT count(*) FROM batches WHERE id > ?", (done.floor,)
            ).fetchone()[0]
            db.execute("DELETE FROM cursors WHERE sink = ?", (sink,))
        # A sink seen for the first time starts at the end: it is not sent what the
        # outbox holds for the others.
        cursors = {sink: stored.get(sink) or Delivered(next_id - 1) for sink in sinks}
        floor = min((d.floor for d in cursors.values()), default=next_id - 1)
        gaps = self._gaps(floor, next_id)
        for done in cursors.values():
            # Ids that no row holds (lost with a damaged page, or never committed before
            # a crash) are nothing to deliver.
            for lo, hi in gaps:
                done.add(lo, hi)
        self._persist_cursors(cursors.items())
        if cursors:
            self._prune(min(d.floor for d in cursors.values()))
        rows, size = db.execute(
            f"SELECT count(*), coalesce(sum(length(body)), 0) + count(*) * {ROW_OVERHEAD} "
            "FROM batches"
        ).fetchone()
        letters = db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        return OpenState(
            next_id=next_id,
            cursors=cursors,
            rows=rows,
            bytes=size,
            oldest_at_ns=self._oldest_at_ns(),
            dead_letters=letters,
            recovery=recovery,
            forgotten=forgotten,
        )

    def _gaps(self, floor: int, next_id: int) -> list[tuple[int, int]]:
        """Id ranges above ``floor`` and below ``next_id`` that hold no row."""
        gaps: list[tuple[int, int]] = []
        expected = floor + 1
        query = (
            "SELECT id, nxt FROM (SELECT id, lead(id) OVER (ORDER BY id) AS nxt "
            "FROM batches WHERE id > ?) WHERE nxt IS NULL OR nxt > id + 1"
        )
        first = self.db.execute("SELECT min(id) FROM batches WHERE id > ?", (floor,)).fetchone()[0]
        if first is None:
            return [(expected, next_id - 1)] if expected <= next_id - 1 else []
        if first > expected:
            gaps.append((expected, first - 1))
        for row_id, following in self.db.execute(query, (floor,)):
            end = (following if following is not None else next_id) - 1
            if end > row_id:
                gaps.append((row_id + 1, end))
        return gaps

    def close(self) -> None:
        """Checkpoint the log into the file and close (a clean file for the next start)."""
        if self._db is None:
            return
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self._db = None

    # ------------------------------------------------------------------ writes

    def flush(
        self,
        rows: Sequence[NewRow],
        cursors: Sequence[CursorRow],
        prune_to: int,
        letters: Sequence[DeadLetter],
        forget: Sequence[str] = (),
    ) -> FlushResult:
        """One transaction: new rows, moved cursors, dead letters, cursors of removed sinks
        forgotten, delivered rows deleted."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            encoded = []
            rejected: list[tuple[int, str]] = []
            for row_id, at_ns, batch in rows:
                stream_id, inline = self._stream_id(batch)
                try:
                    body = encode_body(batch, inline_names=inline)
                except (TypeError, ValueError) as exc:
                    # A value no sample can hold (a driver bug): this batch cannot be
                    # stored, which must not stop every other batch from being stored.
                    rejected.append((row_id, f"{batch.device}/{batch.group}: {exc}"))
                    continue
                encoded.append((row_id, at_ns, batch.timestamp_ns, stream_id, len(batch), body))
            db.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)", encoded)
            self._persist_cursors(cursors)
            db.executemany("DELETE FROM cursors WHERE sink = ?", [(name,) for name in forget])
            if letters:
                db.executemany(
                    "INSERT INTO dead_letters (at_ns, sink, status, error, lines) "
                    "VALUES (?, ?, ?, ?, ?)",
                    letters,
                )
                db.execute(
                    "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
                    (DEAD_LETTER_LIMIT,),
                )
            removed_rows, removed_bytes = self._prune(prune_to)
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        added = sum(len(e[5]) for e in encoded) + ROW_OVERHEAD * len(encoded)
        return FlushResult(
            rows_added=len(encoded),
            bytes_added=added,
            rows_removed=removed_rows,
            bytes_removed=removed_bytes,
            oldest_at_ns=self._oldest_at_ns(),
            rejected=rejected,
        )

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("ROLLBACK")
        # Streams first seen in the failed transaction are not in the file.
        known = {row[0] for row in self.db.execute("SELECT id FROM streams")}
        for stream_id in [i for i in self._stream_of if i not in known]:
            device, group, names = self._stream_of.pop(stream_id)
            self._streams.pop((device, group, names), None)
            self._group_streams[device, group] -= 1

    def _stream_id(self, batch: SampleBatch) -> tuple[int, bool]:
        """The stream of ``batch``, and whether its names must go into its body."""
        names = batch.names if isinstance(batch.names, tuple) else tuple(batch.names)
        key = (batch.device, batch.group, names)
        stream_id = self._streams.get(key)
        if stream_id is not None:
            return stream_id, False
        if self._group_streams.get((batch.device, batch.group), 0) < MAX_STREAMS_PER_GROUP:
            return self._new_stream(key), False
        # One more set of names of a group that has many: the names travel in the body,
        # under the group's stream without names (made even beyond the cap: just one).
        bare = (batch.device, batch.group, ())
        return self._streams.get(bare) or self._new_stream(bare), True

    def _new_stream(self, stream: Stream) -> int:
        device, group, names = stream
        cursor = self.db.execute(
            "INSERT INTO streams (device, grp, names) VALUES (?, ?, ?)",
            (device, group, encode_names(names)),
        )
        stream_id = int(cursor.lastrowid or 0)
        self._remember_stream(stream_id, stream)
        return stream_id

    def _remember_stream(self, stream_id: int, stream: Stream) -> None:
        self._stream_of[stream_id] = stream
        self._streams[stream] = stream_id
        group = (stream[0], stream[1])
        self._group_streams[group] = self._group_streams.get(group, 0) + 1

    def _persist_cursors(self, cursors: Iterable[CursorRow]) -> None:
        write_cursors(self.db, cursors)

    def _prune(self, upto: int) -> tuple[int, int]:
        """Delete rows every sink has delivered; (rows, bytes) removed."""
        if upto <= self._pruned_to:
            return 0, 0
        rows, size = self.db.execute(
            f"SELECT count(*), coalesce(sum(length(body)), 0) + count(*) * {ROW_OVERHEAD} "
            "FROM batches WHERE id <= ?",
            (upto,),
        ).fetchone()
        if rows:
            self.db.execute("DELETE FROM batches WHERE id <= ?", (upto,))
        self._pruned_to = upto
        return int(rows), int(size)

    def _oldest_at_ns(self) -> int | None:
        row = self.db.execute("SELECT at_ns FROM batches ORDER BY id LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    def drop_oldest(
        self, bytes_to_free: int, older_than_ns: int, cursors: Sequence[CursorRow]
    ) -> DropResult | None:
        """Delete the oldest rows: enough to free ``bytes_to_free``, and all appended before
        ``older_than_ns``. Counts per sink what it had not yet been delivered."""
        db = self.db
        upto = None
        rows = samples = freed = 0
        for row_id, at_ns, length, count in db.execute(
            "SELECT id, at_ns, length(body), samples FROM batches ORDER BY id"
        ):
            if freed >= bytes_to_free and at_ns >= older_than_ns:
                break
            upto = row_id
            rows += 1
            samples += count
            freed += length + ROW_OVERHEAD
        if upto is None:
            return None
        per_sink: dict[str, tuple[int, int]] = {}
        for sink, done in cursors:
            if done.floor >= upto:
                continue
            # What this sink had not been delivered: (floor, upto] minus its ranges.
            lost_rows, lost_samples = self._count(done.floor + 1, upto)
            for lo, hi in done.ranges:
                if lo > upto:
                    break
                count, total = self._count(lo, min(hi, upto))
                lost_rows -= count
                lost_samples -= total
            per_sink[sink] = (lost_rows, lost_samples)
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM batches WHERE id <= ?", (upto,))
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._pruned_to = max(self._pruned_to, upto)
        return DropResult(
            upto=upto,
            rows=rows,
            samples=samples,
            bytes=freed,
            per_sink=per_sink,
            oldest_at_ns=self._oldest_at_ns(),
        )

    def _count(self, lo: int, hi: int) -> tuple[int, int]:
        count, total = self.db.execute(
            "SELECT count(*), coalesce(sum(samples), 0) FROM batches WHERE id BETWEEN ? AND ?",
            (lo, hi),
        ).fetchone()
        return int(count), int(total)

    def sync(self) -> None:
        """Make every commit so far durable (fsync of the log) under the 'interval' policy."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing written since the last checkpoint removed it
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ reads

    def read(
        self, lo: int, hi: int, limit: int, max_samples: int
    ) -> tuple[list[tuple[int, SampleBatch]], int]:
        """Stored batches with ids in ``[lo, hi]``, oldest first, marked historical.

        At most ``limit`` rows and (beyond the first) ``max_samples`` samples. Also
        returns the last id examined: every id from ``lo`` up to it was either returned
        or holds nothing (any more). A row that does not decode is moved to the dead
        letters and skipped.
        """
        out: list[tuple[int, SampleBatch]] = []
        samples = 0
        examined = hi
        broken: list[tuple[int, str]] = []
        rows = self.db.execute(
            "SELECT id, ts_ns, stream, samples, body FROM batches "
            "WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?",
            (lo, hi, limit),
        ).fetchall()
        if len(rows) == limit:
            examined = rows[-1][0]
        for row_id, ts_ns, stream_id, count, body in rows:
            if out and samples + count > max_samples:
                examined = row_id - 1
                break
            stream = self._stream_of.get(stream_id)
            try:
                if stream is None:
                    raise CodecError(f"stream {stream_id} unknown")
                batch = decode_body(body, stream[0], stream[1], stream[2], ts_ns, historical=True)
            except CodecError as exc:
                broken.append((row_id, str(exc)))
                continue
            out.append((row_id, batch))
            samples += count
        if broken:
            self._bury(broken)
        return out, examined

    def _bury(self, broken: list[tuple[int, str]]) -> None:
        db = self.db
        now = time.time_ns()
        db.execute("BEGIN IMMEDIATE")
        try:
            for row_id, error in broken:
                body = db.execute("SELECT body FROM batches WHERE id = ?", (row_id,)).fetchone()
                db.execute(
                    "INSERT INTO dead_letters (at_ns, sink, status, error, lines) "
                    "VALUES (?, '', 0, ?, ?)",
                    (now, f"outbox row {row_id} not readable: {error}", body[0] if body else b""),
                )
                db.execute("DELETE FROM batches WHERE id = ?", (row_id,))
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        log.error("outbox rows not readable; moved to the dead letters", rows=len(broken))
