"""Fault injection (issue 13, "Done when"): a full disk at start, a torn write-ahead log,
a bit flip in a row, the loss of any one page. In every case every intact batch is
delivered, exactly as it was appended, and every lost one is counted, per sink.

"Intact" is judged independently of the outbox's own salvage: a batch is intact if its
row is on a page (of the file, or a log frame of the current generation wholly before
a cut) that the fault did not touch, found by its distinct float value (marshal
stores it as 8 raw bytes inside the row).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge_agent.config import OutboxConfig
from edge_agent.outbox import Outbox
from edge_agent.outbox import outbox as outbox_module
from tests.outbox_files import (
    FRAME,
    PAGE,
    WAL_HEADER,
    batch,
    crash_copy,
    damaged_copies,
    drain,
    files_of,
    flip_bit,
    float_offset,
    number,
    overwrite_page,
    page_count,
    rows_by_page,
)

CONFIG = OutboxConfig(replay_rate=0, commit_interval=0)
SINKS = ("a", "b")


def marker(i: int) -> bytes:
    return struct.pack("<d", batch(i).values[0])  # type: ignore[arg-type]


def intact(path: Path, count: int, cut: int | None = None) -> set[int]:
    """Batch numbers whose row is in the file or in a whole log frame before ``cut``."""
    chunks = [path.read_bytes()]
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        data = wal.read_bytes()
        end = len(data) if cut is None else cut
        salts = data[16:24]
        for offset in range(WAL_HEADER, end - FRAME + 1, FRAME):
            if data[offset + 8 : offset + 16] == salts:
                chunks.append(data[offset + 24 : offset + FRAME])
    return {i for i in range(count) if any(marker(i) in chunk for chunk in chunks)}


async def deliver(path: Path) -> tuple[Outbox, dict[str, list[int]], list[dict[str, object]]]:
    outbox = Outbox(CONFIG, path, list(SINKS))
    with capture_logs() as logs:
        try:
            await outbox.start()
            got = {sink: await drain(outbox.view(sink)) for sink in SINKS}
        finally:
            await outbox.close()
    return outbox, got, logs


def check(
    outbox: Outbox, got: dict[str, list[int]], expected: set[int], count: int, a_done: int
) -> None:
    """``expected``: the intact batches; sink ``a`` had confirmed batches below ``a_done``."""
    for sink in SINKS:
        assert len(got[sink]) == len(set(got[sink])), f"{sink}: a batch delivered twice"
    assert set(got["b"]) == expected
    assert set(got["a"]) == {i for i in expected if i >= a_done}
    lost = set(range(count)) - expected
    assert outbox.lost_batches == len(lost)
    assert outbox.lost_by_sink.get("b", 0) == len(lost)
    assert outbox.lost_by_sink.get("a", 0) == len({i for i in lost if i >= a_done})


# ---------------------------------------------------------------------- a full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB file system of its own (tmpfs), unmounted after the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"x" * size)
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="No space left") as full:
        (folder / "probe").write_bytes(b"x")
    assert full.value.errno == errno.ENOSPC
    return filler


async def test_a_full_disk_at_start(small_disk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "WRITE_RETRY_S", 0.05)
    path = small_disk / "outbox.sqlite3"
    outbox = Outbox(CONFIG, path, list(SINKS))
    await outbox.start()
    for i in range(60):
        outbox.append(batch(i))
    view = outbox.view("a")
    got = await view.peek(20)
    view.ack(got[-1].seq)
    await outbox.close()
    before = {p.name: p.read_bytes() for p in files_of(path)}
    filler = fill(small_disk)

    outbox = Outbox(CONFIG, path, list(SINKS))
    with capture_logs() as logs:
        try:
            await outbox.start()  # the agent starts: it polls, batches wait in memory
            assert outbox.write_failing
            for i in range(60, 70):
                outbox.append(batch(i))
            live = await outbox.view("a").peek(100)
            assert [number(p) for p in live] == list(range(60, 70))
            outbox.view("a").ack(live[-1].seq)
            async with asyncio.timeout(10):
                while outbox.write_failures < 3:
                    await asyncio.sleep(0.01)
            assert outbox.unwritten_batches == 10
            # Untouched (SQLite's failed attempts may leave an empty log behind).
            after = {p.name: p.read_bytes() for p in files_of(path)}
            assert {name: data for name, data in after.items() if data} == before
            filler.unlink()  # space again: the old backlog and the new batches are delivered
            async with asyncio.timeout(10):
                while outbox.write_failing:
                    await asyncio.sleep(0.01)
            delivered = {sink: await drain(outbox.view(sink)) for sink in SINKS}
        finally:
            await outbox.close()
    assert not damaged_copies(small_disk)
    assert sorted(delivered["a"]) == list(range(20, 60))
    assert sorted(delivered["b"]) == list(range(70))
    assert outbox.lost_batches == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "outbox file cannot be opened (it is not damaged and is left as it is); "
        "batches wait in memory and opening is retried"
    ]


# ---------------------------------------------------------------------- the log


async def crashed(tmp_path: Path, commits: int = 20) -> Path:
    """Batches 0..199 in 20 commits, all in the log as a kill -9 leaves it; sink a had
    confirmed 0..99."""
    live = tmp_path / "live" / "outbox.sqlite3"
    outbox = Outbox(CONFIG, live, list(SINKS))
    await outbox.start()
    for commit in range(commits):
        for i in range(commit * 10, commit * 10 + 10):
            outbox.append(batch(i))
        await outbox.flush()
        if commit == commits // 2 - 1:
            view = outbox.view("a")
            got = await view.peek(1000)
            view.ack(got[-1].seq)
            await outbox.flush()
    path = tmp_path / "outbox.sqlite3"
    crash_copy(live, path)
    await outbox.close()
    return path


@pytest.mark.parametrize("at", [0.1, 0.33, 0.5, 0.72, 0.9, 0.999])
async def test_a_torn_write_ahead_log(tmp_path: Path, at: float) -> None:
    """The log ends mid-frame at a given share of its length (a torn write)."""
    path = await crashed(tmp_path)
    wal = path.with_name(path.name + "-wal")
    cut = int(wal.stat().st_size * at)
    with wal.open("r+b") as handle:
        handle.truncate(cut)
    expected = intact(path, 200, cut)
    outbox, got, logs = await deliver(path)
    check(outbox, got, expected, 200, a_done=100)
    if expected != set(range(200)):
        assert [e for e in logs if str(e["event"]).startswith("outbox write-ahead log")]


@pytest.mark.parametrize("row", [0, 55, 101, 150, 199])
async def test_a_bit_flip_in_a_row_of_the_log(tmp_path: Path, row: int) -> None:
    """A bit flipped in the first copy of a row in the log: SQLite drops that frame and
    every later one; the row's later copies (and every other row) are still intact."""
    path = await crashed(tmp_path)
    wal = path.with_name(path.name + "-wal")
    offset = float_offset(wal.read_bytes(), batch(row).values[0])  # type: ignore[arg-type]
    flip_bit(wal, offset + 2, 5)
    expected = intact(path, 200)
    outbox, got, _ = await deliver(path)
    check(outbox, got, expected, 200, a_done=100)


@pytest.mark.parametrize("row", [0, 77, 150, 299])
async def test_a_bit_flip_in_a_row_of_the_file(tmp_path: Path, row: int) -> None:
    path = tmp_path / "outbox.sqlite3"
    await clean_file(path)
    flip_bit(path, float_offset(path.read_bytes(), batch(row).values[0]) + 6, 1)  # type: ignore[arg-type]
    outbox, got, _ = await deliver(path)
    assert set(got["b"]) == set(range(300)) - {row}  # never delivered altered
    assert outbox.corrupt_batches == 1
    assert set(got["a"]) == set(range(50, 300)) - {row}


# ---------------------------------------------------------------------- any one page


async def clean_file(path: Path) -> None:
    """300 batches in a file stopped cleanly (nothing in a log); sink a had confirmed
    0..49, sink b nothing."""
    outbox = Outbox(CONFIG, path, list(SINKS))
    await outbox.start()
    for i in range(300):
        outbox.append(batch(i))
    view = outbox.view("a")
    got = await view.peek(50)
    view.ack(got[-1].seq)
    await outbox.close()


async def test_the_loss_of_any_one_page(tmp_path: Path) -> None:
    """Every page of the file in turn overwritten (with zeros, and with garbage): only
    the batches on that page are lost, and exactly they are counted."""
    intact_file = tmp_path / "intact" / "outbox.sqlite3"
    intact_file.parent.mkdir()
    await clean_file(intact_file)
    on_page = {page: {i - 1 for i in ids} for page, ids in rows_by_page(intact_file).items()}
    pages = page_count(intact_file)
    assert pages > 10
    for page in range(1, pages + 1):
        for fill_with in (b"\0", bytes(range(256))):
            work = tmp_path / f"page-{page}-{fill_with[-1]}" / "outbox.sqlite3"
            crash_copy(intact_file, work)
            overwrite_page(work, page, fill_with)
            expected = set(range(300)) - on_page.get(page, set())
            outbox, got, _ = await deliver(work)
            try:
                check(outbox, got, expected, 300, a_done=50)
            except AssertionError as exc:
                raise AssertionError(f"page {page} filled with {fill_with[:2]!r}: {exc}") from exc
            shutil.rmtree(work.parent)
    assert PAGE == 4096
