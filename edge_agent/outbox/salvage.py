"""Salvage rows from a damaged outbox file by reading its pages directly.

SQLite reaches a row by walking a b-tree from the table's root. In a truncated or
partly overwritten file one lost interior page hides every row below it, including
rows whose own pages are intact. This module does not walk the tree: it reads every
page of the file (and every frame of its write-ahead log) and decodes each *table
leaf* page on its own (file format: https://www.sqlite.org/fileformat2.html).
Every row on an intact leaf page (with its overflow chain, if it has one) comes
back, whatever happened to the pages around it.

Rows are recognised by the shape of their record, which differs per outbox table:
batches ``(NULL, int, int, int, int, blob[, crc])``, streams ``(NULL, text, text,
blob[, crc])``, cursors ``(text, int, text)``, meta ``(text, text)``. A page read from
the free list or an old log frame may hold rows that were deleted since; the caller
filters batches by the salvaged cursors (a deleted row was delivered, or dropped, for
every sink) and checks each copy against its checksum.

The log is read frame by frame whatever its checksums say: SQLite stops at the first
frame that fails them and drops every later commit, which is what a torn or altered
log costs; the frames after it are mostly intact. A log whose header is damaged is
still read, with the page size of the file and the salts most of its frames carry.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_HEADER_MAGIC = b"SQLite format 3\x00"
_DEFAULT_PAGE_SIZE = 4096
_LEAF_TABLE = 0x0D
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = 32
_FRAME_HEADER = 24
#: Overflow chains longer than this are damage, not data (a batch body is < 64 MiB).
_MAX_OVERFLOW_PAGES = 16_384

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")

Value = int | float | str | bytes | None
GetPage = Callable[[int], bytes | None]
_Copy = TypeVar("_Copy")
#: (at_ns, ts_ns, stream, samples, body, crc) of a ``batches`` row.
BatchCopy = tuple[int, int, int, int, bytes, int | None]
#: (device, group, encoded names, crc) of a ``streams`` row.
StreamCopy = tuple[str, str, bytes, int | None]


class DamagedRecord(ValueError):
    """A cell or record that does not decode: skipped."""


@dataclass
class Salvaged:
    """What could be read back. Batch rows: ``id -> [(at_ns, ts_ns, stream, samples, body,
    crc)]`` (every distinct copy found; the caller keeps the first one that checks out;
    ``crc`` is None in rows from before checksums). Streams likewise, ``id -> [(device,
    group, names, crc)]``."""

    batches: dict[int, list[BatchCopy]] = field(default_factory=dict)
    streams: dict[int, list[StreamCopy]] = field(default_factory=dict)
    #: sink -> (delivered, ranges): the highest cursor seen (cursors only move forward).
    cursors: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: The highest ``last_id`` found in ``meta`` (0 if none).
    last_id: int = 0
    pages_read: int = 0
    leaf_pages: int = 0
    cells_skipped: int = 0


def _varint(data: bytes | memoryview, offset: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = data[offset + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, offset + i + 1
    return (value << 8) | data[offset + 8], offset + 9


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


_INT_SIZES = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}


def parse_record(payload: bytes) -> list[Value]:
    """The column values of one record (the row format of every SQLite table)."""
    try:
        header_size, offset = _varint(payload, 0)
        if not 1 <= header_size <= len(payload):
            raise DamagedRecord("record header size out of range")
        types: list[int] = []
        while offset < header_size:
            serial, offset = _varint(payload, offset)
            types.append(serial)
        position = header_size
        values: list[Value] = []
        for serial in types:
            if serial == 0:
                values.append(None)
            elif serial in _INT_SIZES:
                size = _INT_SIZES[serial]
                values.append(
                    int.from_bytes(payload[position : position + size], "big", signed=True)
                )
                position += size
            elif serial == 7:
                values.append(_F64.unpack_from(payload, position)[0])
                position += 8
            elif serial in (8, 9):
                values.append(serial - 8)
            elif serial >= 12:
                size = (serial - 12) // 2
                chunk = payload[position : position + size]
                if len(chunk) != size:
                    raise DamagedRecord("record shorter than its header says")
                values.append(bytes(chunk) if serial % 2 == 0 else chunk.decode("utf-8"))
                position += size
            else:
                raise DamagedRecord(f"reserved serial type {serial}")
            if position > len(payload):
                raise DamagedRecord("record shorter than its header says")
        return values
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise DamagedRecord(str(exc)) from exc


def _leaf_cells(
    page: bytes, header_at: int, usable: int, get_page: GetPage
) -> Iterator[tuple[int, bytes]]:
    """(rowid, payload) of every cell of a table leaf page; damaged cells are skipped."""
    cells = _U16.unpack_from(page, header_at + 3)[0]
    pointers = header_at + 8
    max_local = usable - 35
    for index in range(cells):
        try:
            offset = _U16.unpack_from(page, pointers + 2 * index)[0]
            if not header_at + 8 <= offset < usable:
                raise DamagedRecord("cell pointer out of range")
            size, offset = _varint(page, offset)
            rowid, offset = _varint(page, offset)
            if size <= max_local:
                payload = page[offset : offset + size]
                if len(payload) != size:
                    raise DamagedRecord("cell runs past the page")
            else:
                payload = _with_overflow(page, offset, size, usable, get_page)
            yield _signed64(rowid), payload
        except (DamagedRecord, IndexError, struct.error):
            continue


def _with_overflow(page: bytes, offset: int, size: int, usable: int, get_page: GetPage) -> bytes:
    smallest = ((usable - 12) * 32 // 255) - 23
    local = smallest + (size - smallest) % (usable - 4)
    if local > usable - 35:
        local = smallest
    parts = [page[offset : offset + local]]
    have = local
    next_page = _U32.unpack_from(page, offset + local)[0]
    for _ in range(_MAX_OVERFLOW_PAGES):
        if have >= size:
            break
        if next_page == 0:
            raise DamagedRecord("overflow chain ends early")
        overflow = get_page(next_page)
        if overflow is None:
            raise DamagedRecord(f"overflow page {next_page} is missing")
        next_page = _U32.unpack_from(overflow, 0)[0]
        take = min(usable - 4, size - have)
        parts.append(overflow[4 : 4 + take])
        have += take
    if have < size:
        raise DamagedRecord("overflow chain too long")
    return b"".join(parts)


class _Pages:
    """Pages of the main file and the newest copy of each page in the log (WAL)."""

    def __init__(self, main: bytes | mmap.mmap, wal: bytes | mmap.mmap) -> None:
        self.main = main
        valid_header = main[:16] == _HEADER_MAGIC
        size = _U16.unpack_from(main, 16)[0] if valid_header else _DEFAULT_PAGE_SIZE
        self.page_size = 65536 if size == 1 else size or _DEFAULT_PAGE_SIZE
        if self.page_size < 512 or self.page_size & (self.page_size - 1):
            self.page_size = _DEFAULT_PAGE_SIZE
        self.usable = self.page_size - (main[20] if valid_header else 0)
        self.frames: dict[int, list[bytes]] = {}
        self._read_wal(wal)

    def _read_wal(self, wal: bytes | mmap.mmap) -> None:
        step = _FRAME_HEADER + self.page_size
        if len(wal) < _WAL_HEADER + step:
            return
        header_ok = (
            _U32.unpack_from(wal, 0)[0] in _WAL_MAGIC
            and _U32.unpack_from(wal, 8)[0] == self.page_size
        )
        starts = range(_WAL_HEADER, len(wal) - step + 1, step)
        if header_ok:
            salts = bytes(wal[16:24])
        else:
            # A damaged header: the salts of this log generation are those most frames carry.
            salts = Counter(bytes(wal[s + 8 : s + 16]) for s in starts).most_common(1)[0][0]
        for start in starts:
            # Frames of an older log generation carry other salts: they are not this log.
            if wal[start + 8 : start + 16] != salts:
                continue
            number = _U32.unpack_from(wal, start)[0]
            body = wal[start + _FRAME_HEADER : start + step]
            self.frames.setdefault(number, []).append(body)

    def page(self, number: int) -> bytes | None:
        copies = self.frames.get(number)
        if copies:
            return copies[-1]
        start = (number - 1) * self.page_size
        if number < 1 or start + self.page_size > len(self.main):
            return None
        return self.main[start : start + self.page_size]

    def every_copy(self, *, main: bool = True) -> Iterator[tuple[int, bytes]]:
        count = len(self.main) // self.page_size if main else 0
        for number in range(1, count + 1):
            start = (number - 1) * self.page_size
            yield number, self.main[start : start + self.page_size]
        for number, copies in self.frames.items():
            for body in copies:
                yield number, body


def salvage(path: Path, *, log_only: bool = False) -> Salvaged:
    """Every outbox row that can be read from the pages of ``path`` (and ``path``-wal);
    with ``log_only``, from the frames of the log only (the file itself is intact)."""
    with contextlib.ExitStack() as stack:
        main = _mapped(stack, path)
        wal = _mapped(stack, path.with_name(path.name + "-wal"))
        pages = _Pages(main, wal)
        found = Salvaged()
        for number, page in pages.every_copy(main=not log_only):
            found.pages_read += 1
            header_at = 100 if number == 1 else 0
            if len(page) <= header_at or page[header_at] != _LEAF_TABLE:
                continue
            found.leaf_pages += 1
            for rowid, payload in _leaf_cells(page, header_at, pages.usable, pages.page):
                try:
                    _classify(found, rowid, parse_record(payload))
                except DamagedRecord:
                    found.cells_skipped += 1
        return found


def _classify(found: Salvaged, rowid: int, row: list[Value]) -> None:
    if len(row) in (6, 7) and row[0] is None:
        at_ns, ts_ns, stream, samples, body, *rest = row[1:]
        crc = rest[0] if rest else None
        if (
            isinstance(at_ns, int)
            and isinstance(ts_ns, int)
            and isinstance(stream, int)
            and isinstance(samples, int)
            and isinstance(body, bytes)
            and (crc is None or isinstance(crc, int))
        ):
            _keep(found.batches, rowid, (at_ns, ts_ns, stream, samples, body, crc))
    elif len(row) in (4, 5) and row[0] is None:
        device, group, names, *rest = row[1:]
        crc = rest[0] if rest else None
        if (
            isinstance(device, str)
            and isinstance(group, str)
            and isinstance(names, bytes)
            and (crc is None or isinstance(crc, int))
        ):
            _keep(found.streams, rowid, (device, group, names, crc))
    elif len(row) == 3:
        sink, delivered, ranges = row
        if isinstance(sink, str) and isinstance(delivered, int) and isinstance(ranges, str):
            best = found.cursors.get(sink)
            if best is None or delivered > best[0]:
                found.cursors[sink] = (delivered, ranges)
    elif len(row) == 2 and row[0] == "last_id" and isinstance(row[1], str):
        with contextlib.suppress(ValueError):
            found.last_id = max(found.last_id, int(row[1]))


def _keep(copies_of: dict[int, list[_Copy]], rowid: int, copy: _Copy) -> None:
    copies = copies_of.setdefault(rowid, [])
    if copy not in copies:
        copies.append(copy)


def _mapped(stack: contextlib.ExitStack, path: Path) -> bytes | mmap.mmap:
    """The file memory-mapped (a large outbox is not copied onto the heap); b"" if absent."""
    try:
        handle = stack.enter_context(path.open("rb"))
    except FileNotFoundError:
        return b""
    if handle.seek(0, 2) == 0:
        return b""
    return stack.enter_context(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))
