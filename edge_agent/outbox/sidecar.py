"""Two small files next to the outbox file, for what SQLite cannot tell about itself.

* ``<file>-mark``, the **high-water mark**: the highest batch id committed and the
  cursors as of that commit, rewritten after every commit that changes them and synced
  with the log (every commit with ``fsync: always``; with the log's periodic sync with
  ``interval``). SQLite ends its log at the first frame whose checksum fails and
  drops every later commit without a word; ``quick_check`` then passes. At start, a
  file holding fewer batches than its mark says were committed has lost some, and the
  outbox salvages and counts them (:mod:`edge_agent.outbox.recovery`). Two slots,
  written in turn, so that a write torn by a power cut leaves the previous mark.
* ``<file>-streams``, a **copy of the stream table** (device, group and tag names of
  each stream id), appended when a commit makes a stream. A batch row names its
  stream by id; without this copy, a lost page of the ``streams`` table made every
  batch of its streams unreadable although their own pages were intact.

Both are written after the commit they describe, so a crash in between leaves them
behind the file, never ahead of it (which would report a loss that did not happen).
Neither is needed to read the outbox: a missing or unreadable one (a file from an
older agent) only means that this protection is missing until it is written again.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import structlog

from edge_agent.outbox.ranges import Delivered, parse_ranges

log = structlog.get_logger("edge_agent.outbox")

MARK_SUFFIX: Final = "-mark"
STREAMS_SUFFIX: Final = "-streams"

_MAGIC: Final = b"EAOMARK1"
#: magic, sequence number, payload length, payload CRC-32.
_SLOT_HEAD: Final = struct.Struct(">8sQII")
_SLOT: Final = 4096
#: length, CRC-32 of a record of the streams copy.
_RECORD_HEAD: Final = struct.Struct(">II")
_MAX_RECORD: Final = 16 * 1024 * 1024

#: stream id -> (device, group, encoded names): a stream as the file stores it.
StoredStreams = dict[int, tuple[str, str, bytes]]


@dataclass
class Mark:
    """What the outbox had committed when the mark was written."""

    last_id: int
    cursors: dict[str, Delivered] = field(default_factory=dict)


def mark_path(path: Path) -> Path:
    return path.with_name(path.name + MARK_SUFFIX)


def streams_path(path: Path) -> Path:
    return path.with_name(path.name + STREAMS_SUFFIX)


def read_mark(path: Path) -> Mark | None:
    """The newest intact mark of the outbox at ``path``; None if there is none."""
    try:
        data = mark_path(path).read_bytes()
    except OSError:
        return None
    slots = _slots(data)
    return max(slots, key=lambda slot: slot[0])[1] if slots else None


def _slots(data: bytes) -> list[tuple[int, Mark]]:
    """(sequence number, mark) of each intact slot."""
    found = []
    for start in (0, _SLOT):
        slot = data[start : start + _SLOT]
        if len(slot) < _SLOT_HEAD.size:
            continue
        magic, seq, length, crc = _SLOT_HEAD.unpack_from(slot)
        payload = slot[_SLOT_HEAD.size : _SLOT_HEAD.size + length]
        if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            continue
        try:
            found.append((seq, _decode_mark(payload)))
        except (ValueError, TypeError, KeyError):
            continue
    return found


def _decode_mark(payload: bytes) -> Mark:
    data = json.loads(payload)
    cursors = {
        str(sink): Delivered(int(floor), parse_ranges(str(ranges)))
        for sink, (floor, ranges) in data["cursors"].items()
    }
    return Mark(int(data["last"]), cursors)


def _encode_mark(mark: Mark) -> bytes:
    cursors = {sink: [done.floor, done.text()] for sink, done in mark.cursors.items()}
    payload = json.dumps({"last": mark.last_id, "cursors": cursors}).encode()
    if len(payload) > _SLOT - _SLOT_HEAD.size:
        # Many sinks with many ranges: the floors alone still bound every loss count
        # (ranges only spare resends).
        floors = {sink: [done.floor, ""] for sink, done in mark.cursors.items()}
        payload = json.dumps({"last": mark.last_id, "cursors": floors}).encode()
    return payload


class MarkFile:
    """The high-water mark, written in place (two fixed slots: no file growth, so it can
    still be written on a full disk once made)."""

    def __init__(self, path: Path) -> None:
        self.path = mark_path(path)
        self._fd: int | None = None
        self._seq = 0
        self._last: bytes | None = None

    def write(self, mark: Mark) -> bool:
        """Write ``mark`` (not synced); False if nothing changed since the last write."""
        payload = _encode_mark(mark)
        if payload == self._last:
            return False
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            # Numbered on from the marks already there, or a stale slot would win.
            self._seq = max((seq for seq, _ in _slots(os.pread(self._fd, 2 * _SLOT, 0))), default=0)
            if os.fstat(self._fd).st_size < 2 * _SLOT:
                os.pwrite(self._fd, bytes(2 * _SLOT), 0)
        self._seq += 1
        head = _SLOT_HEAD.pack(_MAGIC, self._seq, len(payload), zlib.crc32(payload))
        slot = (head + payload).ljust(_SLOT, b"\0")
        os.pwrite(self._fd, slot, (self._seq % 2) * _SLOT)
        self._last = payload
        return True

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self._last = None


def read_streams(path: Path) -> StoredStreams:
    """The streams copy of the outbox at ``path``: every intact record up to the first
    damaged one (later records of the same id replace earlier ones)."""
    try:
        data = streams_path(path).read_bytes()
    except OSError:
        return {}
    streams: StoredStreams = {}
    offset = 0
    while offset + _RECORD_HEAD.size <= len(data):
        length, crc = _RECORD_HEAD.unpack_from(data, offset)
        start = offset + _RECORD_HEAD.size
        payload = data[start : start + length]
        if length > _MAX_RECORD or len(payload) != length or zlib.crc32(payload) != crc:
            break
        try:
            stream_id, device, group, names = marshal.loads(payload)
        except (EOFError, ValueError, TypeError):
            break
        if (
            isinstance(stream_id, int)
            and isinstance(device, str)
            and isinstance(group, str)
            and isinstance(names, bytes)
        ):
            streams[stream_id] = (device, group, names)
        offset = start + length
    return streams


def _record(stream_id: int, device: str, group: str, names: bytes) -> bytes:
    payload = marshal.dumps((stream_id, device, group, names), 4)
    return _RECORD_HEAD.pack(len(payload), zlib.crc32(payload)) + payload


class StreamsFile:
    """The copy of the stream table: appended to, rewritten whole when it disagrees
    with the file at start."""

    def __init__(self, path: Path) -> None:
        self.path = streams_path(path)
        self._handle: int | None = None
        #: Records written since the last fsync: the table changes when a stream is
        #: new, so most periodic syncs have nothing to flush and skip the system call.
        self._unsynced = False

    def rewrite(self, streams: Mapping[int, tuple[str, str, bytes]]) -> None:
        """Replace the copy by ``streams`` (atomically: a new file renamed over it)."""
        self.close()
        scratch = self.path.with_name(self.path.name + ".new")
        data = b"".join(_record(i, d, g, n) for i, (d, g, n) in sorted(streams.items()))
        fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(scratch, self.path)

    def append(self, streams: Mapping[int, tuple[str, str, bytes]]) -> None:
        if not streams:
            return
        if self._handle is None:
            self._handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._handle, b"".join(_record(i, d, g, n) for i, (d, g, n) in streams.items()))
        self._unsynced = True

    def sync(self) -> None:
        if self._handle is not None and self._unsynced:
            os.fsync(self._handle)
            self._unsynced = False

    def close(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                os.close(self._handle)
            self._handle = None


def remove_sidecars(path: Path) -> None:
    for sidecar in (mark_path(path), streams_path(path)):
        with contextlib.suppress(FileNotFoundError):
            sidecar.unlink()


class Sidecars:
    """Both files, as the store writes them after its commits. A failure to write them is
    logged once and never fails the commit it follows (which is in the file already):
    only this protection is missing until they can be written again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mark = MarkFile(path)
        self._copy = StreamsFile(path)
        self._failing = False

    def committed(self, mark: Mark, fresh: StoredStreams, *, sync: bool) -> None:
        """A commit made ``fresh`` streams and left the outbox at ``mark``."""

        def write() -> None:
            self._copy.append(fresh)
            if self._mark.write(mark) and sync:
                self._mark.sync()
                self._copy.sync()

        self._try(write)

    def rewrite_streams(self, streams: StoredStreams) -> None:
        self._try(lambda: self._copy.rewrite(streams))

    def sync(self) -> None:
        """After the log's sync: the mark must not reach the disk ahead of its commits."""
        self._try(self._mark.sync)
        self._try(self._copy.sync)

    def close(self) -> None:
        self._try(self._mark.sync)
        self._mark.close()
        self._copy.close()

    def _try(self, action: Callable[[], None]) -> None:
        try:
            action()
        except OSError as exc:
            if not self._failing:
                self._failing = True
                log.warning(
                    "outbox sidecar files cannot be written: damage to the log or the stream "
                    "table may go unnoticed or unrepaired until they can",
                    path=str(self.path),
                    error=f"{type(exc).__name__}: {exc}",
                )
            return
        self._failing = False
