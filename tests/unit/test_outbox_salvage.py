"""A damaged outbox file is detected at start, moved aside, and every readable row kept.

The oracle is SQLite's own ``dbstat`` table read from an intact copy of the file:
it says on which leaf page each row lives, so a test knows exactly which rows a
given truncation or overwritten page must leave readable.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox.codec import decode_body
from edge_agent.outbox.ranges import Delivered
from edge_agent.outbox.store import OutboxStore

PAGE = 4096
ROWS = 3000


def batch(i: int) -> SampleBatch:
    return SampleBatch(
        device=f"dev-{i % 3}",
        group="g",
        timestamp_ns=1_795_000_000_000_000_000 + i,
        names=("a", "b", "state"),
        values=[float(i), i, "run" if i % 2 else "idle"],
        qualities=[Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN],
        reasons=["", "", "unknown enum"],
    )


def build(path: Path, rows: int = ROWS, *, close: bool = True) -> OutboxStore:
    store = OutboxStore(path, "interval")
    store.open(["a"])
    store.flush([(i, i, batch(i - 1)) for i in range(1, rows + 1)], [], 0, [])
    if close:
        store.close()
    return store


def leaf_pages(path: Path) -> dict[int, list[int]]:
    """page number -> ids of the batches stored on that leaf page (intact file)."""
    db = sqlite3.connect(path)
    try:
        assert db.execute(
            "SELECT count(*) FROM dbstat WHERE name = 'batches' AND pagetype = 'overflow'"
        ).fetchone() == (0,)
        leaves = db.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'batches' AND pagetype = 'leaf' "
            "ORDER BY path"
        ).fetchall()
        first = db.execute("SELECT min(id) FROM batches").fetchone()[0]
    finally:
        db.close()
    pages: dict[int, list[int]] = {}
    for page, cells in leaves:
        pages[page] = list(range(first, first + cells))
        first += cells
    return pages


def reopen(path: Path) -> tuple[OutboxStore, list[int]]:
    store = OutboxStore(path, "interval")
    state = store.open(["a"])
    assert state.recovery is not None
    ids = [row[0] for row in store.db.execute("SELECT id FROM batches ORDER BY id")]
    return store, ids


def check_bodies(store: OutboxStore) -> None:
    """Every salvaged row decodes to exactly the batch that was written."""
    rows, _ = store.read(1, 1 << 62, 1 << 30, 1 << 62)
    for row_id, got in rows:
        want = batch(row_id - 1)
        assert (got.device, got.timestamp_ns, got.values, got.qualities, got.reasons) == (
            want.device,
            want.timestamp_ns,
            want.values,
            want.qualities,
            want.reasons,
        )


@pytest.mark.parametrize("keep", [0.3, 0.55, 0.8, 0.999])
def test_truncated_file_keeps_every_row_before_the_cut(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "outbox.sqlite3"
    build(path)
    pages = leaf_pages(path)
    size = path.stat().st_size
    cut = int(size * keep)
    shutil.copy(path, tmp_path / "intact")
    with path.open("r+b") as handle:
        handle.truncate(cut)
    before_cut = {i for page, ids in pages.items() if page * PAGE <= cut for i in ids}
    assert before_cut, "the cut must leave some rows for the test to mean anything"

    store, ids = reopen(path)
    try:
        assert before_cut <= set(ids)
        check_bodies(store)
    finally:
        store.close()
    damaged = list(tmp_path.glob("outbox.sqlite3.damaged-*"))
    assert len(damaged) == 1
    assert damaged[0].stat().st_size == cut  # kept aside as it was


def test_an_overwritten_page_loses_only_its_own_rows(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    build(path)
    pages = leaf_pages(path)
    victim = sorted(pages)[len(pages) // 2]
    with path.open("r+b") as handle:
        handle.seek((victim - 1) * PAGE)
        handle.write(bytes(range(256)) * (PAGE // 256))
    store, ids = reopen(path)
    try:
        assert set(ids) == set(range(1, ROWS + 1)) - set(pages[victim])
        check_bodies(store)
    finally:
        store.close()


def test_a_destroyed_header_still_yields_every_row(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    build(path)
    with path.open("r+b") as handle:
        handle.write(b"\0" * 100)
    store, ids = reopen(path)
    try:
        assert ids == list(range(1, ROWS + 1))
    finally:
        store.close()


def test_rows_still_in_the_write_ahead_log_are_salvaged(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite3"
    build(live)  # checkpointed into the file on close
    pages = leaf_pages(live)
    store = OutboxStore(live, "interval")
    store.open(["a"])
    more = range(ROWS + 1, ROWS + 201)
    store.flush([(i, i, batch(i - 1)) for i in more], [], 0, [])
    # As after a crash: the last 200 rows are only in the log, not checkpointed.
    path = tmp_path / "outbox.sqlite3"
    shutil.copy(live, path)
    shutil.copy(live.with_name("live.sqlite3-wal"), path.with_name("outbox.sqlite3-wal"))
    store.close()
    victim = sorted(pages)[1]
    with path.open("r+b") as handle:
        handle.seek((victim - 1) * PAGE)
        handle.write(b"\xff" * PAGE)
    salvaged, ids = reopen(path)
    try:
        assert set(ids) == set(range(1, ROWS + 201)) - set(pages[victim])
        check_bodies(salvaged)
    finally:
        salvaged.close()


def test_a_lost_interior_page_hides_no_row(tmp_path: Path) -> None:
    """SQLite cannot walk past it; reading the pages one by one still finds every row."""
    path = tmp_path / "outbox.sqlite3"
    build(path)
    db = sqlite3.connect(path)
    (interior,) = db.execute(
        "SELECT pageno FROM dbstat WHERE name = 'batches' AND pagetype = 'internal'"
    ).fetchone()
    db.close()
    with path.open("r+b") as handle:
        handle.seek((interior - 1) * PAGE)
        handle.write(b"\0" * PAGE)
    store, ids = reopen(path)
    try:
        assert ids == list(range(1, ROWS + 1))
    finally:
        store.close()


def test_rows_delivered_before_the_damage_do_not_come_back(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    store = OutboxStore(path, "interval")
    store.open(["a"])
    store.db.execute("PRAGMA secure_delete=OFF")  # leave deleted rows on the free pages
    store.flush([(i, i, batch(i - 1)) for i in range(1, ROWS + 1)], [], 0, [])
    store.flush([], [("a", Delivered(400))], 400, [])  # delivered, so deleted
    store.close()
    with path.open("r+b") as handle:
        handle.write(b"\0" * 100)
    store, ids = reopen(path)
    try:
        assert ids == list(range(401, ROWS + 1))
        cursor = store.db.execute("SELECT delivered FROM cursors WHERE sink = 'a'").fetchone()
        assert cursor == (400,)
    finally:
        store.close()


def test_an_intact_file_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    build(path, rows=10)
    store = OutboxStore(path, "interval")
    state = store.open(["a"])
    store.close()
    assert state.recovery is None
    assert not list(tmp_path.glob("*.damaged-*"))


def test_decode_rejects_a_foreign_body() -> None:
    from edge_agent.outbox.codec import CodecError

    with pytest.raises(CodecError):
        decode_body(b"\x00garbage", "d", "g", ("a",), 0)
