"""Opening the outbox: a file that cannot be opened now is not a damaged file, a damaged
file is kept exactly as it was found, and what waits in memory is counted."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from edge_agent.config import OutboxConfig
from edge_agent.outbox import Outbox
from edge_agent.outbox import outbox as outbox_module
from edge_agent.outbox.store import OutboxStore
from tests.outbox_files import (
    batch,
    crash_copy,
    damaged_copies,
    drain,
    number,
    overwrite_page,
    pages_of,
    sha,
)

CONFIG = OutboxConfig(replay_rate=0)


class DiskFull:
    """``sqlite3.connect`` as on a full disk: SQLite cannot make the shared-memory index
    (SQLITE_FULL), as long as ``full`` is set."""

    def __init__(self) -> None:
        self.full = True
        self.refused = 0
        self._connect = sqlite3.connect

    def __call__(self, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if self.full:
            self.refused += 1
            error = sqlite3.OperationalError("database or disk is full")
            error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
            error.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
            raise error
        return self._connect(*args, **kwargs)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():
            await asyncio.sleep(0.01)


async def make_backlog(path: Path, count: int, sinks: tuple[str, ...] = ("a",)) -> None:
    outbox = Outbox(CONFIG, path, list(sinks))
    await outbox.start()
    for i in range(count):
        outbox.append(batch(i))
    await outbox.close()


async def test_a_full_disk_at_start_keeps_the_file_and_delivers_its_backlog_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 1: SQLITE_FULL at the start-up check is not damage. The agent
    starts, keeps new batches in memory, retries, and then sends the old backlog."""
    path = tmp_path / "outbox.sqlite3"
    await make_backlog(path, 50)
    before = sha(path)
    disk = DiskFull()
    monkeypatch.setattr(sqlite3, "connect", disk)
    monkeypatch.setattr(outbox_module, "WRITE_RETRY_S", 0.05)
    outbox = Outbox(CONFIG, path, ["a"])
    with capture_logs() as logs:
        try:
            await outbox.start()
            assert not damaged_copies(tmp_path)
            assert sha(path) == before
            assert outbox.write_failing
            view = outbox.view("a")
            for i in range(50, 60):
                outbox.append(batch(i))
            live = await view.peek(100)  # the live lane works without the file
            assert [number(p) for p in live] == list(range(50, 60))
            view.ack(live[-1].seq)
            await until(lambda: disk.refused >= 3)  # it keeps trying
            assert outbox.unwritten_batches == 10
            disk.full = False
            await until(lambda: not outbox.write_failing)
            assert outbox.unwritten_batches == 0
            assert sorted(await drain(view)) == list(range(50))
        finally:
            await outbox.close()
    assert not damaged_copies(tmp_path)
    assert not [e for e in logs if e["event"].startswith("outbox file was damaged")]
    cannot = [e for e in logs if e["event"].startswith("outbox file cannot be opened")]
    assert len(cannot) == 1, "said once"
    assert "full" in cannot[0]["error"]
    # Everything is in the file, nothing is pending: the live ones were confirmed too.
    outbox = Outbox(CONFIG, path, ["a"])
    await outbox.start()
    try:
        assert len(outbox.view("a")) == 0
        assert outbox.rows == 0  # delivered, so deleted
    finally:
        await outbox.close()


async def test_a_file_that_cannot_be_read_at_all_is_still_a_clear_error(tmp_path: Path) -> None:
    """A state directory that is not one (a file in its way) is a setup error, not a
    passing condition: start fails with one clear line, as before."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    outbox = Outbox(CONFIG, blocker / "state" / "outbox.sqlite3", ["a"])
    try:
        with pytest.raises(outbox_module.OutboxError, match="cannot open the outbox"):
            await outbox.start()
    finally:
        await outbox.close()


def test_a_damaged_file_is_moved_aside_exactly_as_it_was(tmp_path: Path) -> None:
    """Issue 13, item 5: the start-up check must not checkpoint the log into the file it
    then calls untouched: the kept file and log are byte for byte what was found."""
    live = tmp_path / "live" / "outbox.sqlite3"
    live.parent.mkdir()
    store = OutboxStore(live, "interval")
    store.open(["a"])
    store.flush([(i, i, batch(i)) for i in range(1, 2001)], [], 0, [])
    store.close()
    store = OutboxStore(live, "interval")
    store.open(["a"])
    store.flush([(i, i, batch(i)) for i in range(2001, 2201)], [], 0, [])
    path = tmp_path / "outbox.sqlite3"
    crash_copy(live, path)  # the last 200 rows are only in the log
    store.close()
    overwrite_page(path, pages_of(path, "batches")[3])
    found = {suffix: sha(path.with_name(path.name + suffix)) for suffix in ("", "-wal")}
    assert found["-wal"] is not None

    store = OutboxStore(path, "interval")
    state = store.open(["a"])
    store.close()
    assert state.recovery is not None
    (aside,) = tmp_path.glob("outbox.sqlite3.damaged-*[0-9]")
    assert sha(aside) == found[""]
    assert sha(aside.with_name(aside.name + "-wal")) == found["-wal"]


async def test_unwritten_batches_counts_what_waits_in_memory(tmp_path: Path) -> None:
    """Issue 13, item 5: while the file cannot be written, ``unwritten_batches`` says how
    many batches wait in memory (it read 0 with 1,800 waiting)."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(CONFIG, path, ["a"])
    await outbox.start()
    store = outbox._store
    try:
        # SQLite's own limit: the file may not grow, as on a full disk.
        await outbox._worker.call(store.db.execute, "PRAGMA max_page_count = 1")
        with capture_logs():
            for i in range(1800):
                outbox.append(batch(i))
            await until(lambda: outbox.write_failing)
            assert outbox.unwritten_batches == 1800
            await outbox._worker.call(store.db.execute, "PRAGMA max_page_count = 1073741823")
            await until(lambda: not outbox.write_failing)
        assert outbox.unwritten_batches == 0
        assert outbox.rows == 1800
    finally:
        await outbox.close()


async def test_a_sink_behind_its_live_lane_is_served_from_memory_while_the_file_is_full(
    tmp_path: Path,
) -> None:
    """Batches that fell out of a sink's live lane are read back from the file; while
    they cannot be written, that read must hand them out from memory, not fail the
    sink's runner (it raised the write's error) or skip them."""
    outbox = Outbox(OutboxConfig(replay_rate=0, live_batches=10), tmp_path / "o.sqlite3", ["a"])
    await outbox.start()
    store = outbox._store
    try:
        await outbox._worker.call(store.db.execute, "PRAGMA max_page_count = 1")
        with capture_logs():
            for i in range(100):
                outbox.append(batch(i))
            await until(lambda: outbox.write_failing)
            assert sorted(await drain(outbox.view("a"))) == list(range(100))
            await outbox._worker.call(store.db.execute, "PRAGMA max_page_count = 1073741823")
            await until(lambda: not outbox.write_failing)
    finally:
        await outbox.close()


def test_a_recovery_the_disk_cannot_hold_leaves_the_damaged_file_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The salvage is written to a new file first: if that fails (the disk full), the
    damaged file stays, untouched, for the next attempt; nothing is half moved."""
    from edge_agent.outbox import recovery
    from edge_agent.outbox.store import StoreUnavailable

    path = tmp_path / "outbox.sqlite3"
    store = OutboxStore(path, "interval")
    store.open(["a"])
    store.flush([(i, i, batch(i)) for i in range(1, 2001)], [], 0, [])
    store.close()
    overwrite_page(path, pages_of(path, "batches")[3])
    found = sha(path)
    disk = DiskFull()
    monkeypatch.setattr(recovery, "connect", disk)
    store = OutboxStore(path, "interval")
    with pytest.raises(StoreUnavailable):
        store.open(["a"])
    assert sha(path) == found
    assert sorted(p.name for p in tmp_path.iterdir() if "recovering" in p.name) == []
    disk.full = False
    state = store.open(["a"])
    store.close()
    assert state.recovery is not None
    assert state.recovery.batches > 1900
    (aside,) = damaged_copies(tmp_path)
    assert sha(aside) == found
