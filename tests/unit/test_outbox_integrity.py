"""Damage SQLite does not report: a torn or altered write-ahead log, a bit flipped inside a
row, the pages of the stream table lost. Each is found, the intact batches are delivered
exactly, and what is lost is counted and said."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from edge_agent.config import OutboxConfig
from edge_agent.config.loader import parse_config
from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.outbox.codec import encode_body, encode_names
from edge_agent.outbox.store import OutboxStore
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, status_document, status_line
from edge_agent.service.telemetry import build_registry, render_metrics
from tests.outbox_files import (
    PAGE,
    batch,
    crash_copy,
    drain,
    flip_bit,
    float_offset,
    ids_sqlite_keeps,
    number,
    overwrite_page,
    pages_of,
    rows_by_page,
    wal_frames,
)

CONFIG = OutboxConfig(replay_rate=0, commit_interval=0)
COMMITS = 20
PER_COMMIT = 10


async def crashed_outbox(tmp_path: Path) -> Path:
    """An outbox of 200 batches in 20 commits, all still in the write-ahead log, as a
    kill -9 leaves it; sink ``a`` had confirmed the first 100, sink ``b`` none."""
    live = tmp_path / "live" / "outbox.sqlite3"
    outbox = Outbox(CONFIG, live, ["a", "b"])
    await outbox.start()
    for commit in range(COMMITS):
        for i in range(commit * PER_COMMIT, (commit + 1) * PER_COMMIT):
            outbox.append(batch(i))
        await outbox.flush()
        if commit == COMMITS // 2 - 1:
            view = outbox.view("a")
            got = await view.peek(1000)
            view.ack(got[-1].seq)
    path = tmp_path / "outbox.sqlite3"
    crash_copy(live, path)
    await outbox.close()
    return path


async def deliver(path: Path) -> tuple[Outbox, dict[str, list[int]], list[dict[str, object]]]:
    """Start an outbox on ``path``; every sink drains it. (outbox, sink -> batch numbers
    delivered, logs)"""
    outbox = Outbox(CONFIG, path, ["a", "b"])
    with capture_logs() as logs:
        try:
            await outbox.start()
            got = {sink: await drain(outbox.view(sink)) for sink in ("a", "b")}
        finally:
            await outbox.close()
    return outbox, got, logs


def said(logs: list[dict[str, object]], start: str) -> list[dict[str, object]]:
    return [e for e in logs if str(e["event"]).startswith(start)]


async def test_a_bit_flip_in_the_write_ahead_log_loses_nothing_silently(tmp_path: Path) -> None:
    """Issue 13, item 2: SQLite drops every frame after the first bad one, quick_check
    passes. The outbox notices (its high-water mark), salvages the frames after it and
    says what, if anything, is lost."""
    path = await crashed_outbox(tmp_path)
    wal = path.with_name(path.name + "-wal")
    frames = wal_frames(wal)
    third_commit = [i for i, f in enumerate(frames) if f.commit][2] + 1
    flip_bit(wal, frames[third_commit].offset + 16)  # the frame's checksum
    assert len(ids_sqlite_keeps(path)) < 40  # SQLite alone would lose 160+ batches

    outbox, got, logs = await deliver(path)
    assert sorted(got["a"]) == list(range(100, 200))
    assert sorted(got["b"]) == list(range(200))
    (error,) = said(logs, "outbox write-ahead log was damaged")
    assert error["lost_batches"] == 0
    assert outbox.lost_batches == 0


async def test_a_torn_write_ahead_log_counts_exactly_what_is_gone(tmp_path: Path) -> None:
    """A log cut in the middle (a torn write, a truncated copy): the batches whose every
    copy was after the cut are gone; they are counted, with their ids and per sink, in
    one error line, and everything before the cut is delivered."""
    path = await crashed_outbox(tmp_path)
    wal = path.with_name(path.name + "-wal")
    frames = wal_frames(wal)
    cut = frames[[i for i, f in enumerate(frames) if f.commit][12] + 1].offset + 100
    with wal.open("r+b") as handle:
        handle.truncate(cut)
    kept = ids_sqlite_keeps(path)

    outbox, got, logs = await deliver(path)
    delivered = set(got["b"])
    assert {i - 1 for i in kept} <= delivered  # ids are numbers + 1
    lost = set(range(200)) - delivered
    assert lost, "the test must cut away something"
    (error,) = said(logs, "outbox write-ahead log was damaged")
    assert error["lost_batches"] == len(lost) == outbox.lost_batches
    assert error["lost_ids"] == f"{min(lost) + 1}-{max(lost) + 1}"
    assert error["lost_per_sink"] == {"a": len(lost - set(range(100))), "b": len(lost)}
    assert set(got["a"]) == set(range(100, 200)) - lost
    assert outbox.lost_by_sink == error["lost_per_sink"]


async def test_a_bit_flip_inside_a_row_is_never_delivered(tmp_path: Path) -> None:
    """Issue 13, item 3: a flipped bit inside a body (a float's mantissa here) decodes
    fine and quick_check passes; the row's checksum catches it. The row goes to the dead
    letters, is counted and logged, and the others are delivered."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(CONFIG, path, ["a"])
    await outbox.start()
    for i in range(100):
        outbox.append(batch(i))
    await outbox.close()
    data = path.read_bytes()
    flip_bit(path, float_offset(data, batch(37).values[0]) + 3)  # type: ignore[arg-type]

    outbox = Outbox(CONFIG, path, ["a"])
    with capture_logs() as logs:
        try:
            await outbox.start()
            got = await drain(outbox.view("a"))  # number() checks every value
        finally:
            await outbox.close()
    assert sorted(got) == [i for i in range(100) if i != 37]
    assert outbox.corrupt_batches == 1
    (error,) = said(logs, "outbox rows damaged")
    assert error["rows"] == 1
    db = sqlite3.connect(path)
    letters = db.execute("SELECT error FROM dead_letters").fetchall()
    db.close()
    assert len(letters) == 1
    assert "checksum" in letters[0][0]


def old_format_file(path: Path) -> None:
    """An outbox as the agent before row checksums wrote it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        """
        PRAGMA journal_mode=WAL;
        CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE streams(
            id INTEGER PRIMARY KEY, device TEXT NOT NULL, grp TEXT NOT NULL, names BLOB NOT NULL);
        CREATE TABLE batches(
            id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, ts_ns INTEGER NOT NULL,
            stream INTEGER NOT NULL, samples INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE TABLE cursors(
            sink TEXT PRIMARY KEY, delivered INTEGER NOT NULL, ranges TEXT NOT NULL);
        CREATE TABLE dead_letters(
            id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, sink TEXT NOT NULL,
            status INTEGER NOT NULL, error TEXT NOT NULL, lines BLOB NOT NULL);
        INSERT INTO meta VALUES ('schema', '1'), ('codec', 'marshal-4/v1');
        INSERT INTO cursors VALUES ('a', 0, '');
        """
    )
    for i in range(3):
        b = batch(i)
        db.execute(
            "INSERT INTO streams VALUES (?, ?, ?, ?)",
            (i + 1, b.device, b.group, encode_names(b.names)),
        )
    db.executemany(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?)",
        [(i + 1, i, batch(i).timestamp_ns, i % 3 + 1, 3, encode_body(batch(i))) for i in range(30)],
    )
    db.close()


async def test_a_file_from_before_checksums_is_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    old_format_file(path)
    outbox = Outbox(CONFIG, path, ["a"])
    await outbox.start()
    try:
        for i in range(30, 40):
            outbox.append(batch(i))
        assert sorted(await drain(outbox.view("a"))) == list(range(40))
        assert outbox.corrupt_batches == 0
    finally:
        await outbox.close()


def many_streams_late(path: Path) -> None:
    """3,000 rows of three streams, then 40 more streams with long tag names: the stream
    table outgrows its first page, and its rows move to pages near the end of the file."""
    store = OutboxStore(path, "interval")
    store.open(["a"])
    store.flush([(i + 1, i, batch(i)) for i in range(3000)], [], 0, [])
    wide = [
        SampleBatch(
            device=f"late-{k}",
            group="g",
            timestamp_ns=k,
            names=tuple(f"a-rather-long-tag-name-{k}-{n}" for n in range(20)),
            values=[0.0] * 20,
            qualities=[Quality.GOOD] * 20,
            reasons=[""] * 20,
        )
        for k in range(40)
    ]
    store.flush([(3001 + k, 0, b) for k, b in enumerate(wide)], [], 0, [])
    store.close()


def test_rows_come_back_when_the_stream_table_is_lost(tmp_path: Path) -> None:
    """Issue 13, item 4: salvage needed the ``streams`` pages; losing them (a file cut in
    half) lost every batch although its rows were intact."""
    path = tmp_path / "outbox.sqlite3"
    many_streams_late(path)
    stream_pages = pages_of(path, "streams") + pages_of(path, "streams", "internal")
    first_row_page = min(pages_of(path, "batches"))
    assert min(pages_of(path, "streams")) > first_row_page
    for page in stream_pages:
        overwrite_page(path, page, b"\xa5")
    store = OutboxStore(path, "interval")
    store.open(["a"])
    try:
        rows, _ = store.read(1, 3000, 10_000, 1 << 40)
        assert [number(b) for _, b in rows] == list(range(3000))
    finally:
        store.close()


def test_a_file_cut_in_half_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    many_streams_late(path)
    cut = min(pages_of(path, "streams")) - 1  # the stream table's pages are all cut off
    before_cut = {
        i for page, ids in rows_by_page(path).items() if page <= cut for i in ids if i <= 3000
    }
    assert len(before_cut) > 500
    with path.open("r+b") as handle:
        handle.truncate(cut * PAGE)
    store = OutboxStore(path, "interval")
    state = store.open(["a"])
    try:
        assert state.recovery is not None
        rows, _ = store.read(1, 1 << 40, 10_000, 1 << 40)
        got = {row_id: batch for row_id, batch in rows if row_id <= 3000}
        assert set(got) == before_cut
        for row_id, back in got.items():
            assert number(back) == row_id - 1
    finally:
        store.close()


async def test_a_stream_row_altered_inside_is_taken_from_the_copy(tmp_path: Path) -> None:
    """A flipped bit in a tag name passes quick_check and would deliver every value of
    the stream under a wrong name: its checksum fails, the copy next to the file has it."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(CONFIG, path, ["a"])
    await outbox.start()
    for i in range(30):
        outbox.append(batch(i))
    await outbox.close()
    flip_bit(path, path.read_bytes().index(b"energy") + 2, 3)  # "energy" -> "enmrgy"
    outbox = Outbox(CONFIG, path, ["a"])
    with capture_logs() as logs:
        try:
            await outbox.start()
            got = await drain(outbox.view("a"))  # number() checks the names
        finally:
            await outbox.close()
    assert sorted(got) == list(range(30))
    (error,) = said(logs, "outbox stream row damaged")
    assert error["repaired_from_copy"] is True


async def test_a_missing_file_whose_mark_says_batches_were_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(CONFIG, path, ["a", "b"])
    await outbox.start()
    for i in range(30):
        outbox.append(batch(i))
    view = outbox.view("a")
    got = await view.peek(10)
    view.ack(got[-1].seq)
    await outbox.close()
    path.unlink()
    outbox, delivered, logs = await deliver(path)
    assert delivered == {"a": [], "b": []}
    (error,) = said(logs, "outbox file is missing")
    assert (error["lost_batches"], error["lost_ids"]) == (30, "1-30")
    assert error["lost_per_sink"] == {"a": 20, "b": 30}


PLANT = """
plant: {{name: p1}}
state_dir: {state}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - {{interval: 1s, tags: [{{name: v, address: 0}}]}}
sinks:
  - {{name: a, type: mqtt, host: 127.0.0.1}}
  - {{name: b, type: influxdb, url: "http://127.0.0.1:8086", org: o, bucket: b}}
"""


async def test_a_loss_is_on_the_status_document_and_the_metrics(tmp_path: Path) -> None:
    """What a damaged log cost is on /status (count, ids, per sink) and /metrics."""
    path = await crashed_outbox(tmp_path)
    wal = path.with_name(path.name + "-wal")
    frames = wal_frames(wal)
    with wal.open("r+b") as handle:
        handle.truncate(frames[[i for i, f in enumerate(frames) if f.commit][12] + 1].offset)
    state = tmp_path / "state"
    crash_copy(path, state / "outbox.sqlite3")
    agent = Agent(parse_config(PLANT.format(state=state), "plant.yaml", env={}))
    assert agent.outbox is not None
    with capture_logs():
        await agent.outbox.start()
    try:
        lost = agent.outbox.lost_batches
        assert lost > 0
        stats = ServiceStats()
        document = status_document(agent, stats)["outbox"]
        assert document["lost_batches"] == lost
        assert document["lost"]["sinks"] == agent.outbox.lost_by_sink
        assert document["lost"]["ids"].endswith("-200")
        body, _ = render_metrics(build_registry(agent, stats))
        samples = {
            (s.name, s.labels.get("sink")): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples
        }
        assert samples["edge_agent_outbox_lost_batches_total", None] == lost
        assert samples["edge_agent_outbox_sink_lost_batches_total", "b"] == lost
        assert (
            samples["edge_agent_outbox_sink_lost_batches_total", "a"]
            == (agent.outbox.lost_by_sink["a"])
        )
        assert "outbox lost" in status_line(agent, stats)
    finally:
        await agent.outbox.close()


def test_the_streams_copy_is_fsynced_only_when_a_record_was_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox syncs its side files about once a second; the streams copy changes only
    when a stream is new, so an fsync with nothing to flush is a system call saved."""
    from edge_agent.outbox import sidecar

    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(sidecar.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    copy = sidecar.StreamsFile(tmp_path / "outbox.db")
    copy.sync()  # nothing open, nothing written
    copy.append({1: ("press-1", "fast", b"a\0b")})
    copy.sync()
    copy.sync()  # nothing new since
    copy.append({2: ("press-1", "slow", b"c")})
    copy.sync()
    assert len(synced) == 2
    assert set(sidecar.read_streams(tmp_path / "outbox.db")) == {1, 2}
