"""The outbox file's layout, and how a connection to it is made.

One file, WAL mode:

* ``batches(id, at_ns, ts_ns, stream, samples, body, crc)``: one row per batch, ``id``
  increasing in append order (dense, except for a jump after a start without the
  file); ``at_ns`` is when it was appended (``max_age`` applies to it), ``ts_ns`` the
  batch's own timestamp, ``crc`` the row's checksum (:func:`~edge_agent.outbox.codec.row_crc`;
  NULL in rows written before checksums, which are read as before).
* ``streams(id, device, grp, names, crc)``: device, group and tag names, once per stream.
  A group gets at most ``store.MAX_STREAMS_PER_GROUP`` streams; a batch naming another set
  of tags (an OPC UA subscription hands over whichever tags changed) carries its
  names in its body, under its group's stream without names, so neither the table
  nor the memory that maps streams grows without bound.
* ``cursors(sink, delivered, ranges)``: per sink, every id ``<= delivered`` is done,
  and so is every id in ``ranges`` (``"lo-hi,lo-hi"``: live data delivered while a
  backlog below it was still draining).
* ``dead_letters``: points a server refused for good, kept for an operator.
* ``meta``: schema version, codec, and ``last_id``: the highest batch id committed,
  updated by every commit that adds rows (compared at start with the high-water mark
  kept outside the file, :mod:`edge_agent.outbox.sidecar`).

Rows delivered by every sink are deleted; so are the oldest rows beyond the disk
budget. Nothing is ever updated in place except cursors and ``last_id``.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Literal

from edge_agent.outbox.ranges import Delivered

#: 2: row and stream checksums (``crc`` columns), ``last_id`` in ``meta``.
SCHEMA_VERSION: Final = 2
#: Bytes a row costs beyond its body (rowid, columns, record header, cell pointer, page
#: slack): what the disk budget counts per row, so tiny batches are not under-counted.
ROW_OVERHEAD: Final = 48
#: The log (``-wal``) is truncated to this size after a checkpoint.
WAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streams(
    id INTEGER PRIMARY KEY, device TEXT NOT NULL, grp TEXT NOT NULL, names BLOB NOT NULL,
    crc INTEGER);
CREATE TABLE IF NOT EXISTS batches(
    id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
    stream INTEGER NOT NULL, samples INTEGER NOT NULL, body BLOB NOT NULL, crc INTEGER);
CREATE TABLE IF NOT EXISTS cursors(
    sink TEXT PRIMARY KEY, delivered INTEGER NOT NULL, ranges TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters(
    id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, sink TEXT NOT NULL,
    status INTEGER NOT NULL, error TEXT NOT NULL, lines BLOB NOT NULL);
"""

Fsync = Literal["always", "interval"]
#: (device, group, tag names): what a row of ``streams`` holds.
Stream = tuple[str, str, tuple[str, ...]]


def connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    # check_same_thread=False: the connection is made on the worker thread, but a
    # status read in tests may open its own; each connection stays on one thread.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def connect_readonly(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """A connection that writes nothing to the file or its log: closing it does not
    checkpoint (a read-write connection, the last to close, would copy the log into the
    file). ``immutable``: not even the shared-memory index is made, so it opens on a
    full disk, but it does not see the log."""
    flags = "mode=ro&immutable=1" if immutable else "mode=ro"
    uri = f"file:{urllib.parse.quote(str(path))}?{flags}"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def upgrade(db: sqlite3.Connection) -> None:
    """Bring a file made by an older agent to this schema (a new file has it already).
    Adding a column does not rewrite the rows: old rows read NULL, i.e. no checksum."""
    for table in ("streams", "batches"):
        columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if "crc" not in columns:
            db.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER")


def configure(db: sqlite3.Connection, fsync: Fsync) -> sqlite3.Connection:
    """``db`` set up for the agent's writes (WAL, the sync level of ``fsync``)."""
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit waits for fsync of the log. NORMAL: a commit is written to
    # the OS at once (a killed process loses nothing) and reaches the disk at the
    # next sync(), which the outbox calls every fsync_interval.
    db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'always' else 'NORMAL'}")
    db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    db.execute("PRAGMA cache_size=-8192")
    return db


def write_cursors(db: sqlite3.Connection, cursors: Iterable[tuple[str, Delivered]]) -> None:
    db.executemany(
        "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(sink) DO UPDATE SET "
        "delivered = excluded.delivered, ranges = excluded.ranges",
        [(sink, done.floor, done.text()) for sink, done in cursors],
    )
