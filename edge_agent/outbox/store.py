"""The outbox's SQLite file. Every method runs on the outbox's one worker thread.

The file's layout is :mod:`edge_agent.outbox.schema`; at open it is judged by
:mod:`edge_agent.outbox.check` and, if damaged, recovered by
:mod:`edge_agent.outbox.recovery`; the files kept next to it are
:mod:`edge_agent.outbox.sidecar`. Here: appending rows (group commits, each row with
its checksum), moving cursors, pruning what every sink has, dropping the oldest
beyond the budget, reading a backlog back (each row checked).
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
from edge_agent.outbox.check import (
    StoreUnavailable,
    file_signature,
    first_free_id,
    inspect,
    unavailable,
)
from edge_agent.outbox.codec import CODEC, CodecError, decode_body, encode_body, row_crc
from edge_agent.outbox.cursors import load_cursors, undelivered
from edge_agent.outbox.queued import NewRow
from edge_agent.outbox.ranges import Delivered
from edge_agent.outbox.recovery import Recovery, keep_log, recover_file, refill_from_log
from edge_agent.outbox.salvage import salvage
from edge_agent.outbox.schema import (
    ROW_OVERHEAD,
    SCHEMA,
    SCHEMA_VERSION,
    Fsync,
    configure,
    connect,
    upgrade,
    write_cursors,
)
from edge_agent.outbox.sidecar import Mark, Sidecars, StoredStreams, read_mark, read_streams
from edge_agent.outbox.streams import MAX_STREAMS_PER_GROUP, Streams

__all__ = [
    "MAX_STREAMS_PER_GROUP",
    "CursorRow",
    "DeadLetter",
    "DropResult",
    "FlushResult",
    "NewRow",
    "OpenState",
    "OutboxStore",
    "StoreUnavailable",
]

log = structlog.get_logger("edge_agent.outbox")

#: Oldest dead letters are deleted beyond this many rows.
DEAD_LETTER_LIMIT: Final = 10_000

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
        self._streams = Streams()
        self._pruned_to = 0
        #: The highest batch id committed, and every sink's cursor as committed: what
        #: the high-water mark says.
        self._last_id = 0
        self._cursors: dict[str, Delivered] = {}
        self._sidecars = Sidecars(path)
        #: (size, mtime) of the file and its log when quick_check last passed: a retry of
        #: an open that failed later (a read-only disk) need not read the file again.
        self._checked: tuple[object, ...] | None = None
        self._unreported: Recovery | None = None
        #: Rows that failed their checksum (or did not decode) when read back.
        self.corrupt_rows = 0

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("outbox store is not open")
        return self._db

    # ------------------------------------------------------------------ open / close

    def open(self, sinks: Sequence[str]) -> OpenState:
        """Open (creating, checking and if need be recovering the file); load the cursors.

        Raises :class:`StoreUnavailable` if the file cannot be opened now (a full or
        read-only disk, no permission): it is left as it is, to be opened later.
        """
        self._abandon()  # a retry starts clean
        try:
            return self._open(sinks)
        except BaseException as exc:
            self._abandon()
            if unavailable(exc):
                next_id = first_free_id(self.path)
                if next_id is not None:
                    reason = f"{type(exc).__name__}: {exc}"
                    raise StoreUnavailable(reason, next_id) from exc
            raise

    def _open(self, sinks: Sequence[str]) -> OpenState:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mark = read_mark(self.path)
        copy = read_streams(self.path)
        recovery: Recovery | None = None
        if self.path.exists():
            signature = file_signature(self.path)
            found = inspect(self.path, quick_check=signature != self._checked)
            if found.problem is not None:
                self._db, recovery = recover_file(
                    self.path, found.problem, self.fsync, sinks, mark, copy
                )
            elif mark is not None and mark.last_id > found.last_id:
                recovery = self._refill(sinks, mark, copy, found.last_id)
            else:
                self._checked = signature
        elif mark is not None and mark.last_id > 0:
            problem = f"the file is missing; batches up to id {mark.last_id} were committed"
            self._db, recovery = recover_file(
                self.path, problem, self.fsync, sinks, mark, copy, "missing"
            )
        # A recovery done by an attempt that failed after it (a disk full just then) is
        # reported by the one that succeeds: the next check finds nothing left to say.
        self._unreported = recovery = recovery or self._unreported
        if self._db is None:
            self._db = configure(connect(self.path), self.fsync)
        self._prepare()
        known = self._streams.load(self.db, copy)
        state = self._load_state(sinks, recovery)
        if known != copy:
            self._sidecars.rewrite_streams(known)
        self._sidecars.committed(Mark(self._last_id, self._cursors), {}, sync=True)
        self._unreported = None
        return state

    def _refill(self, sinks: Sequence[str], mark: Mark, copy: StoredStreams, have: int) -> Recovery:
        """SQLite dropped committed frames of the log: read them back (before anything
        writes over them) into the file, which is intact."""
        found = salvage(self.path, log_only=True)
        kept = keep_log(self.path)
        self._db = configure(connect(self.path), self.fsync)
        self._prepare()
        reason = (
            f"the file holds batches up to id {have}, its high-water mark says up to "
            f"{mark.last_id} were committed (a torn or altered write-ahead log, a power cut "
            "under fsync: interval, or an older copy of the file)"
        )
        return refill_from_log(self.db, found, reason, kept, sinks, mark, copy)

    def _prepare(self) -> None:
        db = self.db
        db.executescript(SCHEMA)
        upgrade(db)
        db.execute(
            "INSERT INTO meta VALUES ('schema', ?), ('codec', ?), ('last_id', "
            "(SELECT coalesce(max(id), 0) FROM batches)) ON CONFLICT(key) DO UPDATE SET "
            "value = CASE WHEN key = 'schema' THEN excluded.value ELSE value END",
            (str(SCHEMA_VERSION), CODEC),
        )
        self._last_id = int(
            db.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()[0]
        )

    def _abandon(self) -> None:
        """After a failed open: close what was opened, so that the next attempt starts clean."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._streams = Streams()
        self._cursors = {}
        self._pruned_to = 0
        self._sidecars.close()

    def _load_state(self, sinks: Sequence[str], recovery: Recovery | None) -> OpenState:
        db = self.db
        next_id, cursors, forgotten = load_cursors(db, sinks, self._last_id)
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

    def close(self) -> None:
        """Checkpoint the log into the file and close (a clean file for the next start)."""
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None
        self._sidecars.close()

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
                stream_id, inline = self._streams.id_for(db, batch)
                try:
                    body = encode_body(batch, inline_names=inline)
                except (TypeError, ValueError) as exc:
                    # A value no sample can hold (a driver bug): this batch cannot be
                    # stored, which must not stop every other batch from being stored.
                    rejected.append((row_id, f"{batch.device}/{batch.group}: {exc}"))
                    continue
                ts_ns, samples = batch.timestamp_ns, len(batch)
                crc = row_crc(row_id, at_ns, ts_ns, stream_id, samples, body)
                encoded.append((row_id, at_ns, ts_ns, stream_id, samples, body, crc))
            db.executemany("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?)", encoded)
            last_id = max([self._last_id, *(row[0] for row in encoded)])
            if last_id != self._last_id:
                db.execute("UPDATE meta SET value = ? WHERE key = 'last_id'", (str(last_id),))
            write_cursors(db, cursors)
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
        self._last_id = last_id
        self._committed(cursors, forget)
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
        self._streams.rolled_back(self.db)

    def _persist_cursors(self, cursors: Iterable[CursorRow]) -> None:
        """Cursors written outside a transaction of their own (at open)."""
        cursors = list(cursors)
        write_cursors(self.db, cursors)
        self._cursors.update((sink, done.copy()) for sink, done in cursors)

    def _committed(self, cursors: Iterable[CursorRow], forget: Iterable[str] = ()) -> None:
        """A transaction committed: the high-water mark and the streams copy follow it."""
        self._cursors.update((sink, done.copy()) for sink, done in cursors)
        for sink in forget:
            self._cursors.pop(sink, None)
        mark = Mark(self._last_id, self._cursors)
        self._sidecars.committed(mark, self._streams.committed(), sync=self.fsync == "always")

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
        per_sink = undelivered(db, cursors, upto)
        raised = []
        for sink, done in cursors:
            done = done.copy()
            done.raise_floor(upto)
            raised.append((sink, done))
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM batches WHERE id <= ?", (upto,))
            # With the rows: a loss counted after damage must not count dropped ones.
            write_cursors(db, raised)
            db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._committed(raised)
        self._pruned_to = max(self._pruned_to, upto)
        return DropResult(
            upto=upto,
            rows=rows,
            samples=samples,
            bytes=freed,
            per_sink=per_sink,
            oldest_at_ns=self._oldest_at_ns(),
        )

    def sync(self) -> None:
        """Make every commit so far durable (fsync of the log) under the 'interval' policy."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            pass  # nothing written since the last checkpoint removed it
        else:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        # After the log: the mark must not reach the disk ahead of the commits it names.
        self._sidecars.sync()

    # ------------------------------------------------------------------ reads

    def read(
        self, lo: int, hi: int, limit: int, max_samples: int
    ) -> tuple[list[tuple[int, SampleBatch]], int]:
        """Stored batches with ids in ``[lo, hi]``, oldest first, marked historical.

        At most ``limit`` rows and (beyond the first) ``max_samples`` samples. Also
        returns the last id examined: every id from ``lo`` up to it was either returned
        or holds nothing (any more). A row whose checksum fails, or that does not
        decode, is moved to the dead letters and skipped: it is never sent.
        """
        out: list[tuple[int, SampleBatch]] = []
        samples = 0
        examined = hi
        broken: list[tuple[int, str]] = []
        rows = self.db.execute(
            "SELECT id, at_ns, ts_ns, stream, samples, body, crc FROM batches "
            "WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?",
            (lo, hi, limit),
        ).fetchall()
        if len(rows) == limit:
            examined = rows[-1][0]
        for row_id, at_ns, ts_ns, stream_id, count, body, crc in rows:
            if out and samples + count > max_samples:
                examined = row_id - 1
                break
            stream = self._streams.get(stream_id)
            try:
                if crc is not None and crc != row_crc(row_id, at_ns, ts_ns, stream_id, count, body):
                    raise CodecError("checksum mismatch: the row was altered on disk")
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
        self.corrupt_rows += len(broken)
        log.error(
            "outbox rows damaged or unreadable: moved to the dead letters, never sent",
            rows=len(broken),
            ids=[row_id for row_id, _ in broken][:20],
            errors=sorted({error for _, error in broken})[:5],
        )
