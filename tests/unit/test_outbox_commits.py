"""How often the outbox commits: one commit per poll tick, cursors riding along.

Commits are counted at the real store (every ``OutboxStore.flush`` is one SQLite
transaction) and what reached the file is read through a second connection, as
``edge-agent outbox status`` would.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import OutboxConfig
from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.outbox.store import FlushResult


def batch(i: int, device: str = "dev") -> SampleBatch:
    return SampleBatch(
        device=device,
        group="g",
        timestamp_ns=1_795_000_000_000_000_000 + i,
        names=("a", "b"),
        values=[float(i), 1.0],
        qualities=[Quality.GOOD, Quality.GOOD],
        reasons=["", ""],
    )


class Commits:
    """Counts the store's transactions and the rows each carried."""

    def __init__(self, outbox: Outbox) -> None:
        self.rows: list[int] = []
        self.cursors: list[int] = []
        store = outbox._store
        original = store.flush

        def counted(rows: Any, cursors: Any, *args: Any) -> FlushResult:
            self.rows.append(len(rows))
            self.cursors.append(len(cursors))
            return original(rows, cursors, *args)

        store.flush = counted  # type: ignore[method-assign]

    @property
    def with_rows(self) -> int:
        return sum(1 for n in self.rows if n)


def stored(path: Path) -> tuple[int, dict[str, int]]:
    """(rows, sink -> cursor floor) as committed to the file."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT count(*) FROM batches").fetchone()[0]
        cursors = dict(db.execute("SELECT sink, delivered FROM cursors").fetchall())
    finally:
        db.close()
    return rows, cursors


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Outbox] = []

    async def factory(sinks: tuple[str, ...] = ("a",), **config: Any) -> tuple[Outbox, Commits]:
        config.setdefault("replay_rate", 0)
        outbox = Outbox(OutboxConfig(**config), tmp_path / "outbox.sqlite3", list(sinks))
        await outbox.start()
        made.append(outbox)
        return outbox, Commits(outbox)

    yield factory
    for outbox in made:
        await outbox.close()


async def _tick(outbox: Outbox, devices: int, start: int = 0) -> None:
    """One poll tick: ``devices`` reads finishing 2 ms apart (40 ms from first to last)."""
    for i in range(devices):
        outbox.append(batch(start + i, device=f"dev-{i}"))
        await asyncio.sleep(0.002)


async def _until(condition: Callable[[], bool], within: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def test_the_batches_of_one_tick_share_one_commit(make: Callable[..., Any]) -> None:
    outbox, commits = await make(commit_interval=0.1)
    await _tick(outbox, 20)
    await _until(lambda: sum(commits.rows) == 20, 2.0)
    assert commits.with_rows == 1
    assert stored(outbox.path)[0] == 20


async def test_without_a_commit_window_each_wake_up_commits(make: Callable[..., Any]) -> None:
    outbox, commits = await make(commit_interval=0)
    await _tick(outbox, 20)
    await _until(lambda: sum(commits.rows) == 20, 2.0)
    assert commits.with_rows > 5  # today's behaviour, what the window saves


async def test_a_batch_is_on_disk_within_the_window(make: Callable[..., Any]) -> None:
    outbox, _ = await make(commit_interval=0.05)
    for i in range(5):
        outbox.append(batch(i))
        took = await _until(lambda i=i: stored(outbox.path)[0] == i + 1, 2.0)
        assert took < 0.05 + 0.15, took  # the window and a commit, not a second later
        await asyncio.sleep(0.2)


async def test_flush_commits_at_once(make: Callable[..., Any]) -> None:
    outbox, _ = await make(commit_interval=1.0)
    outbox.append(batch(0))
    await outbox.flush()
    assert stored(outbox.path)[0] == 1


async def test_a_cursor_move_alone_waits_for_fsync_interval(make: Callable[..., Any]) -> None:
    outbox, commits = await make(commit_interval=0.05, fsync_interval=0.5)
    outbox.append(batch(0))
    await outbox.flush()
    view = outbox.view("a")
    got = await view.peek(10)
    before = len(commits.rows)
    view.ack(got[-1].seq)
    await asyncio.sleep(0.25)
    assert len(commits.rows) == before  # no commit of its own right away
    assert stored(outbox.path)[1] == {"a": 0}
    took = await _until(lambda: stored(outbox.path)[1] == {"a": 1}, 2.0)
    assert took < 0.5, took  # written fsync_interval after it moved, not later
    assert len(commits.rows) == before + 1


async def test_a_cursor_move_rides_with_the_next_batches(make: Callable[..., Any]) -> None:
    outbox, commits = await make(commit_interval=0.05, fsync_interval=5.0)
    outbox.append(batch(0))
    await outbox.flush()
    view = outbox.view("a")
    view.ack((await view.peek(10))[-1].seq)
    before = len(commits.rows)
    await _tick(outbox, 3, start=1)
    await _until(lambda: stored(outbox.path)[0] >= 3, 2.0)
    assert commits.rows[before:] == [3]
    assert commits.cursors[before:] == [1]
    assert stored(outbox.path)[1] == {"a": 1}


async def test_without_a_commit_window_a_cursor_is_written_at_once(
    make: Callable[..., Any],
) -> None:
    outbox, _ = await make(commit_interval=0, fsync_interval=5.0)
    outbox.append(batch(0))
    await outbox.flush()
    view = outbox.view("a")
    view.ack((await view.peek(10))[-1].seq)
    assert await _until(lambda: stored(outbox.path)[1] == {"a": 1}, 2.0) < 0.5


async def test_close_writes_queued_batches_and_waiting_cursors(tmp_path: Path) -> None:
    config = OutboxConfig(commit_interval=1.0, fsync_interval=60.0, replay_rate=0)
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(config, path, ["a", "b"])
    await outbox.start()
    for i in range(3):
        outbox.append(batch(i))
    await outbox.flush()
    a = outbox.view("a")
    a.ack((await a.peek(10))[-1].seq)  # waits for fsync_interval (a minute)
    outbox.append(batch(3))  # waits for the commit window (a second)
    await outbox.close()
    assert stored(path) == (4, {"a": 3, "b": 0})

    again = Outbox(config, path, ["a", "b"])
    await again.start()
    try:
        assert (len(again.view("a")), len(again.view("b"))) == (1, 4)
    finally:
        await again.close()


async def test_the_writer_enforces_the_budget_on_its_own(make: Callable[..., Any]) -> None:
    outbox, _ = await make(commit_interval=0.05, max_bytes=64 * 1024)
    for tick in range(10):
        for i in range(100):
            outbox.append(batch(tick * 100 + i))
        await asyncio.sleep(0.08)  # no flush(): only the writer commits
    await _until(lambda: outbox.dropped_batches > 0, 3.0)
    assert outbox.bytes <= 64 * 1024


async def test_rows_of_a_failed_explicit_flush_are_committed_by_the_writer_soon(
    make: Callable[..., Any], tmp_path: Path
) -> None:
    """flush() (or a backlog read) that fails puts its rows back: the writer must be told,
    not find them at the next append or the 5 s housekeeping round."""
    outbox, _ = await make()
    store = outbox._store
    original = store.flush
    failures = [sqlite3.OperationalError("disk I/O error")]

    def fails_once(*args: Any) -> FlushResult:
        if failures:
            raise failures.pop()
        return original(*args)

    store.flush = fails_once  # type: ignore[method-assign]
    outbox.append(batch(1))
    with pytest.raises(sqlite3.OperationalError):
        await outbox.flush()  # before the writer's commit window ends
    deadline = time.monotonic() + 1.0
    while stored(tmp_path / "outbox.sqlite3")[0] < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert stored(tmp_path / "outbox.sqlite3")[0] == 1
