"""Outbox semantics against a real SQLite file: cursors, lanes, replay, budget, codec."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sqlite3
import struct
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from edge_agent.config import OutboxConfig
from edge_agent.model import Pending, Quality, SampleBatch
from edge_agent.outbox import Outbox
from edge_agent.outbox.codec import decode_body, encode_body
from edge_agent.outbox.ranges import Delivered

NAMES = ("a", "b", "c")


def batch(i: int, samples: int = 3) -> SampleBatch:
    names = NAMES if samples == 3 else tuple(f"t{k}" for k in range(samples))
    return SampleBatch(
        device="dev",
        group="g",
        timestamp_ns=1_795_000_000_000_000_000 + i,
        names=names,
        values=[float(i)] * samples,
        qualities=[Quality.GOOD] * samples,
        reasons=[""] * samples,
    )


def ids(items: list[Pending]) -> list[int]:
    return [p.batch.timestamp_ns - 1_795_000_000_000_000_000 for p in items]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Outbox] = []

    async def factory(sinks: tuple[str, ...] = ("a", "b"), **config: Any) -> Outbox:
        config.setdefault("replay_rate", 0)
        outbox = Outbox(OutboxConfig(**config), tmp_path / "outbox.sqlite3", list(sinks))
        await outbox.start()
        made.append(outbox)
        return outbox

    yield factory
    for outbox in made:
        await outbox.close()


async def test_each_sink_has_its_own_cursor(make: Callable[..., Any]) -> None:
    outbox = await make()
    for i in range(5):
        outbox.append(batch(i))
    a, b = outbox.view("a"), outbox.view("b")
    got = await a.peek(10)
    assert ids(got) == [0, 1, 2, 3, 4]
    a.ack(got[-1].seq)
    assert (len(a), len(b)) == (0, 5)  # b being "down" holds nothing of a back
    outbox.append(batch(5))
    assert ids(await a.peek(10)) == [5]
    assert ids(await b.peek(10)) == [0, 1, 2, 3, 4, 5]
    assert outbox.appended_batches == 6


async def test_partial_ack_and_retry_after_a_failed_send(make: Callable[..., Any]) -> None:
    outbox = await make(("a",))
    view = outbox.view("a")
    for i in range(4):
        outbox.append(batch(i))
    first = await view.peek(10)
    again = await view.peek(10)  # the send failed: the same batches come back
    assert ids(first) == ids(again) == [0, 1, 2, 3]
    view.ack(again[1].seq)
    assert ids(await view.peek(10)) == [2, 3]


async def test_restart_replays_undelivered_batches_marked_historical(
    make: Callable[..., Any],
) -> None:
    outbox = await make()
    for i in range(6):
        outbox.append(batch(i))
    a = outbox.view("a")
    got = await a.peek(4)
    a.ack(got[-1].seq)
    await outbox.close()

    outbox = await make()
    a, b = outbox.view("a"), outbox.view("b")
    assert (len(a), len(b)) == (2, 6)
    replay = await a.peek(10)
    assert ids(replay) == [4, 5]
    assert all(p.batch.historical for p in replay)
    assert replay[0].batch == dataclasses.replace(batch(4), historical=True)
    a.ack(replay[-1].seq)
    outbox.append(batch(6))
    live = await a.peek(10)
    assert ids(live) == [6]
    assert not live[0].batch.historical


async def test_live_flows_first_while_the_backlog_drains(make: Callable[..., Any]) -> None:
    outbox = await make(("a",), live_batches=2)
    view = outbox.view("a")
    for i in range(6):
        outbox.append(batch(i))  # 0..3 fall out of the live lane: backlog
    live = await view.peek(10)
    assert ids(live) == [4, 5]
    view.ack(live[-1].seq)
    backlog = await view.peek(3)
    assert ids(backlog) == [0, 1, 2]
    assert all(p.batch.historical for p in backlog)
    view.ack(backlog[-1].seq)
    outbox.append(batch(6))  # live again, ahead of the rest of the backlog
    assert ids(await view.peek(10)) == [6]
    view.ack((await view.peek(10))[-1].seq)
    rest = await view.peek(10)
    assert ids(rest) == [3]  # 4, 5 and 6 were delivered live: not sent again
    view.ack(rest[-1].seq)
    assert len(view) == 0
    assert view.done == Delivered(7)
    assert view.replayed_batches == 4


def assert_live_lane_consistent(view: Any, live_samples: int) -> None:
    """The running count is the lane's sum, and the lane is within its sample limit
    (only the newest batch may exceed it, alone)."""
    lane = list(view._live)
    assert view.live_samples == sum(len(p.batch) for p in lane)
    assert view.live_samples <= live_samples or len(lane) == 1


async def test_the_live_lane_is_bounded_by_samples_too(make: Callable[..., Any]) -> None:
    """Memory grows with samples, not batches: beyond live_samples the oldest move to the
    backlog lane (still on disk), and each batch is still delivered once, lanes in order."""
    outbox = await make(("a",), live_batches=1000, live_samples=10)
    view = outbox.view("a")
    for i in range(10):
        outbox.append(batch(i))  # 3 samples each: the newest 3 (9 samples) stay
    assert (view.live, view.live_samples) == (3, 9)
    live = await view.peek(100)
    assert ids(live) == [7, 8, 9]
    assert not any(p.batch.historical for p in live)
    view.ack(live[-1].seq)
    assert (view.live, view.live_samples) == (0, 0)
    backlog = await view.peek(100)
    assert ids(backlog) == list(range(7))
    assert all(p.batch.historical for p in backlog)
    view.ack(backlog[-1].seq)
    assert len(view) == 0
    outbox.append(batch(10, samples=25))  # alone over the limit: the newest always stays
    outbox.append(batch(11, samples=25))
    assert (view.live, view.live_samples) == (1, 25)
    assert ids(await view.peek(100)) == [11]
    view.ack((await view.peek(100))[-1].seq)
    rest = await view.peek(100)
    assert ids(rest) == [10]
    assert rest[0].batch.historical


async def test_the_live_sample_count_follows_a_batch_that_cannot_be_stored(
    make: Callable[..., Any],
) -> None:
    """A batch the file rejects leaves the live lane (it will never be replayed): the
    running count must drop with it, or the lane would shrink for good."""
    outbox = await make(("a",), live_samples=100)
    view = outbox.view("a")
    outbox.append(batch(0, samples=10))
    bad = batch(1, samples=10)
    bad.values[0] = object()  # type: ignore[call-overload]
    with capture_logs():
        outbox.append(bad)
        outbox.append(batch(2, samples=10))
        await outbox.flush()
    assert outbox.rejected_batches == 1  # counted; nothing waits to be written
    assert outbox.unwritten_batches == 0
    assert (view.live, view.live_samples) == (2, 20)
    assert_live_lane_consistent(view, 100)
    got = await view.peek(10)
    assert ids(got) == [0, 2]
    view.ack(got[-1].seq)
    assert (len(view), view.live_samples) == (0, 0)


def test_live_samples_is_validated() -> None:
    assert OutboxConfig().live_samples == 100_000
    assert OutboxConfig(live_samples=1).live_samples == 1
    for wrong in (0, -5, "many"):
        with pytest.raises(ValidationError, match="live_samples"):
            OutboxConfig(live_samples=wrong)


async def test_replay_is_paced_and_live_data_overtakes_the_wait(
    make: Callable[..., Any],
) -> None:
    outbox = await make(("a",), live_batches=1, replay_rate=20)
    view = outbox.view("a")
    for i in range(8):
        outbox.append(batch(i, samples=5))
    view.ack((await view.peek(10))[-1].seq)  # the live one
    chunk = await view.peek(100)
    assert ids(chunk) == [0, 1, 2, 3]  # one second's worth: 20 samples
    view.ack(chunk[-1].seq)
    waiting = asyncio.create_task(view.peek(100))  # the next chunk is due in 1 s
    await asyncio.sleep(0.05)
    assert not waiting.done()
    outbox.append(batch(8, samples=5))
    assert ids(await waiting) == [8]


async def test_disk_budget_drops_the_oldest_counts_and_logs_once(
    make: Callable[..., Any],
) -> None:
    outbox = await make(max_bytes="64KiB", live_batches=10)
    a, b = outbox.view("a"), outbox.view("b")
    for i in range(100):  # well within the budget; "a" takes them, "b" is down
        outbox.append(batch(i, samples=20))
    while len(a):
        a.ack((await a.peek(1000))[-1].seq)
    await outbox.flush()
    assert outbox.dropped_batches == 0
    with capture_logs() as logs:
        for i in range(100, 1200):
            outbox.append(batch(i, samples=20))
            if i % 100 == 99:
                await outbox.flush()
    dropped = b.dropped_batches
    for view in (a, b):
        assert_live_lane_consistent(view, OutboxConfig().live_samples)
    assert outbox.bytes <= 64 * 1024
    assert dropped > 100
    assert outbox.dropped_batches == dropped
    assert a.dropped_batches == dropped - 100  # "a" had the first 100 already
    assert b.dropped_samples == 20 * dropped
    assert len(a) == len(b) == 1200 - dropped
    left: list[int] = []
    while len(b):
        got = await b.peek(1000)
        b.ack(got[-1].seq)
        left += ids(got)
    assert sorted(left) == list(range(dropped, 1200))  # the oldest went, nothing else
    full = [entry for entry in logs if entry["event"].startswith("outbox full")]
    assert len(full) == 1


async def test_age_limit_drops_old_batches(tmp_path: Path) -> None:
    now = [1_000_000_000_000]
    outbox = Outbox(
        OutboxConfig(max_age="10s", replay_rate=0),
        tmp_path / "o.sqlite3",
        ["a"],
        clock_ns=lambda: now[0],
    )
    await outbox.start()
    try:
        for i in range(5):
            outbox.append(batch(i))
        await outbox.flush()
        now[0] += 11_000_000_000
        outbox.append(batch(5))
        await outbox.flush()
        view = outbox.view("a")
        assert view.dropped_batches == 5
        assert ids(await view.peek(10)) == [5]
    finally:
        await outbox.close()


async def test_a_new_sink_starts_at_the_end_and_a_removed_one_is_forgotten(
    make: Callable[..., Any],
) -> None:
    outbox = await make(("a",))
    for i in range(3):
        outbox.append(batch(i))
    await outbox.close()
    outbox = await make(("b",))
    assert len(outbox.view("b")) == 0
    assert outbox.rows == 0  # nothing is pending for anyone: pruned
    outbox.append(batch(3))
    assert ids(await outbox.view("b").peek(10)) == [3]


async def test_status_counts_per_sink(make: Callable[..., Any], tmp_path: Path) -> None:
    from edge_agent.outbox.status import read_status

    outbox = await make()
    for i in range(4):
        outbox.append(batch(i))
    a = outbox.view("a")
    a.ack((await a.peek(2))[-1].seq)
    await outbox.flush()
    status = read_status(tmp_path / "outbox.sqlite3")
    by_sink = {s.sink: s for s in status.sinks}
    assert (by_sink["a"].rows, by_sink["b"].rows) == (2, 4)
    assert by_sink["a"].oldest_ts_ns == batch(2).timestamp_ns
    assert by_sink["b"].oldest_ts_ns == batch(0).timestamp_ns
    assert by_sink["b"].bytes > by_sink["a"].bytes > 0


# ---------------------------------------------------------------------- exactly once


operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 6), st.integers(1, 5)),
        st.tuples(st.just("send"), st.sampled_from("ab"), st.integers(1, 5)),
        st.tuples(st.just("fail"), st.sampled_from("ab"), st.integers(1, 5)),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    live=st.integers(1, 4),
    live_samples=st.sampled_from([1, 4, 9, 100_000]),
)
def test_every_batch_is_delivered_once_to_every_sink(
    ops: list[tuple[Any, ...]], live: int, live_samples: int
) -> None:
    """Whatever the mix of appends (of 1-5 samples), confirmed and failed sends and
    restarts, and whichever limit (batches or samples) bounds the live lane: each sink gets
    every batch exactly once (confirmed deliveries), each lane in order, and the live lane
    stays within its limits."""
    asyncio.run(_scenario(ops, live, live_samples))


def _lane(got: list[Pending]) -> list[tuple[int, bool]]:
    return [(i, p.batch.historical) for i, p in zip(ids(got), got, strict=True)]


async def _scenario(ops: list[tuple[Any, ...]], live: int, live_samples: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "o.sqlite3"
        config = OutboxConfig(live_batches=live, live_samples=live_samples, replay_rate=0)
        outbox = Outbox(config, path, ["a", "b"])
        await outbox.start()
        appended = 0
        delivered: dict[str, list[tuple[int, bool]]] = {"a": [], "b": []}
        try:
            for op in ops:
                if op[0] == "append":
                    for _ in range(op[1]):
                        outbox.append(batch(appended, samples=op[2]))
                        appended += 1
                elif op[0] in ("send", "fail"):
                    view = outbox.view(op[1])
                    if not len(view):
                        continue
                    got = await view.peek(op[2])
                    if op[0] == "send":
                        view.ack(got[-1].seq)
                        delivered[op[1]] += _lane(got)
                else:
                    await outbox.close()
                    outbox = Outbox(config, path, ["a", "b"])
                    await outbox.start()
                for view in outbox.views:
                    assert view.live <= live
                    assert_live_lane_consistent(view, live_samples)
            for name in ("a", "b"):
                view = outbox.view(name)
                for _ in range(10 * appended + 1):  # bounded: a bug fails, not hangs
                    if not len(view):
                        break
                    got = await view.peek(3)
                    view.ack(got[-1].seq)
                    delivered[name] += _lane(got)
                    assert_live_lane_consistent(view, live_samples)
                assert view.live_samples == 0
        finally:
            await outbox.close()
        for name, got in delivered.items():
            assert sorted(i for i, _ in got) == list(range(appended)), name
            for historical in (False, True):
                lane = [i for i, h in got if h is historical]
                assert lane == sorted(lane), (name, historical)


# ---------------------------------------------------------------------- codec

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(), max_size=12),
)


@st.composite
def batches(draw: st.DrawFn) -> SampleBatch:
    n = draw(st.integers(0, 8))
    stamps = draw(st.none() | st.lists(st.integers(0, 1 << 63), min_size=n, max_size=n))
    return SampleBatch(
        device=draw(st.text(max_size=8)),
        group=draw(st.text(max_size=8)),
        timestamp_ns=draw(st.integers(0, 1 << 63)),
        names=tuple(draw(st.lists(st.text(max_size=6), min_size=n, max_size=n))),
        values=draw(st.lists(values, min_size=n, max_size=n)),
        qualities=draw(st.lists(st.sampled_from(Quality), min_size=n, max_size=n)),
        reasons=draw(st.lists(st.text(max_size=6), min_size=n, max_size=n)),
        timestamps_ns=stamps,
        historical=draw(st.booleans()),
        attributes=draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
    )


def _fields(b: SampleBatch) -> dict[str, Any]:
    return {name: getattr(b, name) for name in SampleBatch.__slots__}


def _same(a: object, b: object) -> bool:
    """Equal value and type; floats bit for bit (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # type: ignore[arg-type]
    return a == b


@given(original=batches())
def test_codec_round_trips_every_field_exactly(original: SampleBatch) -> None:
    body = encode_body(original)
    back = decode_body(
        body, original.device, original.group, tuple(original.names), original.timestamp_ns
    )
    assert all(_same(x, y) for x, y in zip(original.values, back.values, strict=True))
    assert [type(q) for q in back.qualities] == [Quality] * len(original)
    expected = {**_fields(original), "values": None}
    assert {**_fields(back), "values": None} == {**expected, "names": tuple(original.names)}
    assert decode_body(body, "d", "g", tuple(original.names), 0, historical=True).historical


def test_a_value_of_a_subclass_is_stored_as_its_plain_value() -> None:
    class Label(str):
        pass

    original = SampleBatch(
        "d", "g", 1, ("x", "y"), [Label("run"), Quality.BAD], [Quality.GOOD] * 2, ["", ""]
    )
    back = decode_body(encode_body(original), "d", "g", ("x", "y"), 1)
    assert back.values == ["run", 2]
    assert [type(v) for v in back.values] == [str, int]


def test_nan_survives_the_file(tmp_path: Path) -> None:
    async def run() -> SampleBatch:
        outbox = Outbox(OutboxConfig(), tmp_path / "n.sqlite3", ["a"])
        await outbox.start()
        nan = SampleBatch("d", "g", 1, ("x",), [math.nan], [Quality.BAD], ["not finite"])
        outbox.append(nan)
        await outbox.close()
        outbox = Outbox(OutboxConfig(), tmp_path / "n.sqlite3", ["a"])
        await outbox.start()
        try:
            (got,) = await outbox.view("a").peek(1)
        finally:
            await outbox.close()
        return got.batch

    back = asyncio.run(run())
    assert math.isnan(back.values[0])  # type: ignore[arg-type]
    assert back.reasons == ["not finite"]
    db = sqlite3.connect(tmp_path / "n.sqlite3")
    assert db.execute("SELECT value FROM meta WHERE key = 'codec'").fetchone() == ("marshal-4/v1",)
    db.close()


async def test_an_outbox_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    from edge_agent.outbox import OutboxError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    outbox = Outbox(OutboxConfig(), blocker / "state" / "outbox.sqlite3", ["a"])
    try:
        with pytest.raises(OutboxError, match="cannot open the outbox"):
            await outbox.start()
    finally:
        await outbox.close()


async def test_close_during_a_commit_loses_and_doubles_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    outbox = Outbox(OutboxConfig(fsync="always"), path, ["a"])
    await outbox.start()
    for i in range(20_000):
        outbox.append(batch(i))
    while outbox._pending:  # the writer has taken them and is committing
        await asyncio.sleep(0)
    for i in range(20_000, 30_000):
        outbox.append(batch(i))
    await outbox.close()  # cancels the writer in the middle of its commit
    outbox = Outbox(OutboxConfig(), path, ["a"])
    await outbox.start()
    try:
        assert len(outbox.view("a")) == 30_000
        assert outbox.rows == 30_000
    finally:
        await outbox.close()


async def test_sinks_come_and_go_while_running(make: Callable[..., Any], tmp_path: Path) -> None:
    """What a reload does: add a sink (it starts at the end), freeze one that is being
    removed (it drains what it has while new batches keep coming), then forget it."""
    outbox = await make(("a", "b"))
    for i in range(3):
        outbox.append(batch(i))
    c = outbox.add_sink("c")
    assert outbox.add_sink("a") is outbox.view("a")  # a changed sink keeps its view
    assert len(c) == 0
    b = outbox.view("b")
    b.freeze()
    outbox.append(batch(3))
    assert ids(await c.peek(10)) == [3]
    assert len(b) == 3  # not the new one
    got = await b.peek(10)
    assert ids(got) == [0, 1, 2]
    b.ack(got[-1].seq)
    assert len(b) == 0
    outbox.remove_sink("b")
    a = outbox.view("a")
    a.ack((await a.peek(10))[-1].seq)
    c.ack((await c.peek(10))[-1].seq)
    await outbox.flush()
    assert outbox.rows == 0  # nobody holds a row: b's cursor is gone
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    try:
        sinks = [row[0] for row in db.execute("SELECT sink FROM cursors ORDER BY sink")]
    finally:
        db.close()
    assert sinks == ["a", "c"]


async def test_a_sink_removed_and_added_again_before_a_commit_keeps_its_new_cursor(
    make: Callable[..., Any], tmp_path: Path
) -> None:
    """Two reloads in quick succession: the removal must not delete the new cursor."""
    outbox = await make(("a", "b"))
    for i in range(3):
        outbox.append(batch(i))
    await outbox.flush()
    outbox.view("b").freeze()
    outbox.remove_sink("b")
    again = outbox.add_sink("b")
    assert len(again) == 0  # back as a new sink: at the end of the log
    await outbox.flush()
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    try:
        cursors = dict(db.execute("SELECT sink, delivered FROM cursors"))
    finally:
        db.close()
    assert cursors == {"a": 0, "b": 3}
