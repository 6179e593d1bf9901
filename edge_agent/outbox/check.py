"""The start-up check: what the outbox file is, judged before anything is written to it.

Three outcomes, and the difference matters:

* **fine**: the file is opened and used;
* **damaged** (SQLite finds it corrupt, or it holds fewer batches than its high-water
  mark says were committed): it is recovered (:mod:`edge_agent.outbox.recovery`);
* **unavailable** (a full disk, a read-only file system, no permission, an I/O error):
  nothing is wrong with the file, it just cannot be opened now. It is left exactly as
  it is; the outbox keeps batches in memory and tries again (:class:`StoreUnavailable`).
  Taking this for damage once moved an intact backlog aside and abandoned it.

The check reads through a read-only connection: a read-write connection, the last to
close, checkpoints the log into the file, so the file kept aside as damaged would no
longer be the one that was found.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edge_agent.outbox.schema import connect_readonly
from edge_agent.outbox.sidecar import read_mark

#: SQLite's primary result codes that say "not now", not "broken".
_UNAVAILABLE_CODES: Final = frozenset(
    {
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_AUTH,
    }
)
_UNAVAILABLE_ERRNOS: Final = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ENOMEM,
        errno.EINTR,
    }
)
#: Ids of batches kept in memory while the file cannot be opened start this far above
#: the highest id known to be in it: the mark or a read of the file without its log
#: may lag behind it, by at most the commits of a few seconds.
ID_MARGIN: Final = 1 << 32


class StoreUnavailable(Exception):
    """The file cannot be opened now (not damage): try again later.

    ``next_id`` is an id above every id the file can hold, for the batches kept in
    memory meanwhile."""

    def __init__(self, reason: str, next_id: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.next_id = next_id


def unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says the file cannot be reached now, not that it is damaged."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None or code == sqlite3.SQLITE_IOERR_SHORT_READ:
            return False  # a short read is a truncated file
        return code & 0xFF in _UNAVAILABLE_CODES
    if isinstance(exc, OSError):
        return exc.errno in _UNAVAILABLE_ERRNOS
    return False


@dataclass
class Inspection:
    #: What SQLite found wrong with the file; None if nothing.
    problem: str | None
    #: The highest batch id committed, as the file (with its log) has it.
    last_id: int = 0


def inspect(path: Path, *, quick_check: bool = True) -> Inspection:
    """Judge the file at ``path`` (which exists) without writing to it. Raises the error
    if the file cannot be read now (:func:`unavailable`)."""
    db = connect_readonly(path)
    try:
        if quick_check:
            result = [row[0] for row in db.execute("PRAGMA quick_check")]
            if result != ["ok"]:
                return Inspection("; ".join(result)[:500])
        return Inspection(None, _last_id(db))
    except sqlite3.DatabaseError as exc:
        if unavailable(exc):
            raise
        return Inspection(str(exc))
    finally:
        db.close()


def _last_id(db: sqlite3.Connection, *, cursors: bool = False) -> int:
    """The highest batch id committed; with ``cursors``, or named by a cursor."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    last = 0
    if "meta" in tables:
        row = db.execute("SELECT value FROM meta WHERE key = 'last_id'").fetchone()
        if row is not None and str(row[0]).isdigit():
            last = int(row[0])
    if "batches" in tables:
        last = max(last, db.execute("SELECT coalesce(max(id), 0) FROM batches").fetchone()[0])
    if cursors and "cursors" in tables:
        for floor, ranges in db.execute("SELECT delivered, ranges FROM cursors"):
            last = max(last, floor, *(int(p) for p in ranges.replace(",", "-").split("-") if p))
    return int(last)


def first_free_id(path: Path) -> int | None:
    """An id above every id the file at ``path`` and its log can hold, found without
    writing anything (so on a full disk too): from the high-water mark, and from the
    file read as it is on disk. None if the file exists but nothing can be read."""
    known: int | None = None
    mark = read_mark(path)
    if mark is not None:
        known = max([mark.last_id, *(_highest(d.floor, d.ranges) for d in mark.cursors.values())])
    if path.exists():
        try:
            db = connect_readonly(path, immutable=True)
            try:
                known = max(known or 0, _last_id(db, cursors=True))
            finally:
                db.close()
        except sqlite3.Error:
            pass
        if known is None:
            return None
    return 1 if known is None else known + ID_MARGIN


def _highest(floor: int, ranges: list[tuple[int, int]]) -> int:
    return ranges[-1][1] if ranges else floor


def file_signature(path: Path) -> tuple[object, ...]:
    """Size and modification time of the file and its log: unchanged, a check that passed
    need not read the whole file again (a retry after a later failure)."""
    out: list[object] = []
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            stat = path.with_name(path.name + suffix).stat()
            out += [suffix, stat.st_size, stat.st_mtime_ns]
    return tuple(out)
