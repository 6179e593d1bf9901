"""Helpers for tests that damage outbox files: batches with a known content, copies of a
file as a crash leaves it, SQLite's own page map, the frames of a write-ahead log, and a
sink that drains a view to the end."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path

from edge_agent.model import Pending, Quality, SampleBatch
from edge_agent.outbox import SinkView

BASE_NS = 1_795_000_000_000_000_000
PAGE = 4096
WAL_HEADER = 32
FRAME = 24 + PAGE


def batch(i: int) -> SampleBatch:
    """Batch ``i`` (its timestamp says which): three values, one of them a distinct float."""
    return SampleBatch(
        device=f"dev-{i % 3}",
        group="g",
        timestamp_ns=BASE_NS + i,
        names=("energy", "count", "state"),
        values=[42_949_600.54 + i, i, "run" if i % 2 else "idle"],
        qualities=[Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN],
        reasons=["", "", "unknown enum"],
    )


def number(item: Pending | SampleBatch) -> int:
    """Which :func:`batch` this is; fails if its content is not exactly that batch's."""
    got = item.batch if isinstance(item, Pending) else item
    i = got.timestamp_ns - BASE_NS
    want = batch(i)
    assert (got.device, got.group, got.names, got.values, got.qualities, got.reasons) == (
        want.device,
        want.group,
        want.names,
        want.values,
        want.qualities,
        want.reasons,
    ), f"batch {i} came back altered: {got.values}"
    return i


def files_of(path: Path) -> list[Path]:
    """The outbox file and every file next to it that belongs to it (log, sidecars)."""
    return sorted(p for p in path.parent.glob(path.name + "*") if not p.name.endswith("-shm"))


def damaged_copies(folder: Path) -> list[Path]:
    """What the outbox moved aside (or copied) as damaged in ``folder``."""
    return sorted(folder.glob("*.damaged-*"))


def crash_copy(source: Path, target: Path) -> None:
    """Copy the outbox at ``source`` as a crash (kill -9) would leave it: the file, its
    write-ahead log not checkpointed, the sidecars; not the shared-memory index."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for path in files_of(source):
        shutil.copy(path, target.with_name(target.name + path.name[len(source.name) :]))


def sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def pages_of(path: Path, table: str, kind: str = "leaf") -> list[int]:
    """Page numbers of ``table``'s pages of ``kind`` (leaf, internal, overflow) in an
    intact file, by SQLite's own page map."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [
            row[0]
            for row in db.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = ? ORDER BY path",
                (table, kind),
            )
        ]
    finally:
        db.close()


def rows_by_page(path: Path) -> dict[int, list[int]]:
    """Leaf page -> ids of the batches on it, in an intact file without overflow pages."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert db.execute(
            "SELECT count(*) FROM dbstat WHERE name = 'batches' AND pagetype = 'overflow'"
        ).fetchone() == (0,)
        leaves = db.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'batches' AND pagetype = 'leaf' "
            "ORDER BY path"
        ).fetchall()
        ids = [row[0] for row in db.execute("SELECT id FROM batches ORDER BY id")]
    finally:
        db.close()
    pages: dict[int, list[int]] = {}
    for page, cells in leaves:
        pages[page], ids = ids[:cells], ids[cells:]
    return pages


def page_count(path: Path) -> int:
    return path.stat().st_size // PAGE


def overwrite_page(path: Path, page: int, fill: bytes = b"\0") -> None:
    with path.open("r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(fill * (PAGE // len(fill)))


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ (1 << bit)]))


def float_offset(data: bytes, value: float, start: int = 0) -> int:
    """Where ``value`` is stored (marshal writes floats as 8 little-endian bytes)."""
    offset = data.find(struct.pack("<d", value), start)
    assert offset >= 0, f"{value} not found"
    return offset


@dataclass
class Frame:
    offset: int
    page: int
    commit: bool


def wal_frames(wal: Path) -> list[Frame]:
    """The frames of a write-ahead log, in order; ``commit``: the last frame of a commit."""
    data = wal.read_bytes()
    frames = []
    for offset in range(WAL_HEADER, len(data) - FRAME + 1, FRAME):
        page, size = struct.unpack_from(">II", data, offset)
        frames.append(Frame(offset, page, size != 0))
    return frames


def ids_sqlite_keeps(path: Path) -> set[int]:
    """Batch ids SQLite itself reads from a copy of the file (as it recovers the log)."""
    scratch = path.with_name("sqlite-view")
    scratch.mkdir()
    try:
        crash_copy(path, scratch / path.name)
        db = sqlite3.connect(scratch / path.name)
        try:
            return {row[0] for row in db.execute("SELECT id FROM batches")}
        finally:
            db.close()
    finally:
        shutil.rmtree(scratch)


async def drain(view: SinkView, within: float = 10.0) -> list[int]:
    """Deliver everything ``view`` has (a sink that is up); the batch numbers, checked."""
    got: list[int] = []
    async with asyncio.timeout(within):
        while len(view):
            try:
                async with asyncio.timeout(0.5):
                    items = await view.peek(500)
            except TimeoutError:
                continue  # what it counted was found to hold nothing: look again
            got += [number(p) for p in items]
            view.ack(items[-1].seq)
    return got
