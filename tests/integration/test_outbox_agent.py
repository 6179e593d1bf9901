"""The outbox end to end: simulators -> agent -> real mosquitto and VictoriaMetrics.

Outage of both, disk budget overflow, a truncated outbox file at start (in-process
agent), and ``kill -9`` of the agent process (``python -m edge_agent run``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from edge_agent.config.loader import parse_config
from edge_agent.model import Quality, SampleBatch
from edge_agent.outbox.ranges import Delivered, parse_ranges
from edge_agent.service.agent import Agent
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.outbox_plant import (
    DEVICES,
    TOPIC_FILTER,
    duplicates,
    fast_retries,
    influx_sink,
    message_keys,
    mqtt_sink,
    plant_yaml,
    stop_serving,
    stored_points,
    wait_for,
)
from tests.plant import ROOT, demo_profile
from tests.servers import Mosquitto, VictoriaMetrics

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]


def _good(batches: list[SampleBatch]) -> dict[str, list[int]]:
    """device -> timestamps (ns) of the batches whose every value is good."""
    out: dict[str, list[int]] = {d: [] for d in DEVICES}
    for b in batches:
        if all(q is Quality.GOOD for q in b.qualities):
            out[b.device].append(b.timestamp_ns)
    return out


async def test_outage_of_broker_and_database_loses_nothing(
    persistent_mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
) -> None:
    """Both uplinks down for 5 s (the issue says 30 s; what is proved does not depend on
    the length: with live_batches: 4 nearly all of the outage is replayed from disk)."""
    broker, interval = persistent_mosquitto, 0.2
    async with serve_profile(demo_profile()) as plant:
        text = plant_yaml(
            plant,
            tmp_path / "state",
            interval=interval,
            sinks=mqtt_sink(broker.port) + influx_sink(victoria.url),
            outbox="{live_batches: 4, replay_rate: 400}",
        )
        agent = fast_retries(Agent(parse_config(text, "plant.yaml", env={}), drain_seconds=10))
        collected: list[SampleBatch] = []
        agent.pipeline.add_consumer(collected.append)
        sub = await subscriber_factory(broker.port, TOPIC_FILTER, persistent=True)
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await sub.wait_until(lambda: len(sub.messages) >= 4, "first messages", within=15)
            await wait_for(lambda: len(stored_points(victoria)) == 2, 15, "first points")
            broker.stop()
            victoria.stop()
            down_from = len(collected)
            await asyncio.sleep(5.0)
            assert len(collected) - down_from >= 20
            for runner in agent.sinks:
                assert len(runner.buffer) > 4, "the outage waits in the outbox"
            broker.start()
            victoria.start()
            await sub.reconnect(within=10)
            await wait_for(lambda: not any(len(r.buffer) for r in agent.sinks), 45, "backlog")
            served = await stop_serving(plant, interval)
            await wait_for(lambda: not any(len(r.buffer) for r in agent.sinks), 15, "the rest")
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)

    good = _good(collected)
    assert {d: len(t) for d, t in good.items()} == served  # every answered read, once
    assert agent.outbox is not None
    assert agent.outbox.dropped_batches == 0

    # VictoriaMetrics: each served read exactly once, at its original timestamp.
    stored = stored_points(victoria)
    for device in DEVICES:
        assert stored[device] == sorted(t // 1_000_000 for t in good[device]), device

    # MQTT (at least once): every good batch arrived; replays from disk are historical.
    def all_arrived() -> bool:
        keys = {(d, t) for d, t, _ in message_keys(sub.messages)}
        return all((d, t) in keys for d in DEVICES for t in good[d])

    await sub.wait_until(all_arrived, "every good batch on the broker", within=15)
    received = message_keys(sub.messages)
    for device in DEVICES:
        unique = {t for d, t, _ in received if d == device}
        assert unique == set(good[device]), device
    outage = {(b.device, b.timestamp_ns) for b in collected[down_from:]}
    historical = {(d, t) for d, t, h in received if h}
    assert historical, "the outage backlog was replayed from disk"
    assert historical <= outage
    mqtt_view = agent.outbox.view("broker")
    assert mqtt_view.replayed_batches >= len(historical)


async def test_disk_budget_overflow_drops_the_oldest_and_delivers_the_rest(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    interval = 0.01
    async with serve_profile(demo_profile()) as plant:
        text = plant_yaml(
            plant,
            tmp_path / "state",
            interval=interval,
            sinks=influx_sink(victoria.url),
            outbox="{max_bytes: 64KiB, live_batches: 50, replay_rate: 0}",
        )
        victoria.stop()  # the database is away at first
        agent = fast_retries(Agent(parse_config(text, "plant.yaml", env={}), drain_seconds=10))
        collected: list[SampleBatch] = []
        agent.pipeline.add_consumer(collected.append)
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            with capture_logs() as logs:
                assert agent.outbox is not None
                outbox = agent.outbox
                await wait_for(lambda: outbox.dropped_batches > 100, 30, "the budget to overflow")
                victoria.start()
                await wait_for(lambda: not len(agent.sinks[0].buffer), 30, "the rest delivered")
                await stop_serving(plant, interval)
                await wait_for(lambda: not len(agent.sinks[0].buffer), 15, "the last ones")
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 30)

    view = outbox.view("tsdb")
    dropped = view.dropped_batches
    assert dropped == outbox.dropped_batches
    assert view.dropped_samples == sum(len(b) for b in collected[:dropped])
    assert outbox.bytes <= 64 * 1024
    # Exactly the oldest were dropped; every other good batch arrived, once.
    kept = _good(collected[dropped:])
    stored = stored_points(victoria)
    for device in DEVICES:
        assert stored[device] == sorted(t // 1_000_000 for t in kept[device]), device
    full = [e for e in logs if e["event"].startswith("outbox full")]
    assert len(full) == 1, "logged once"
    assert full[0]["reason"] == "disk budget"


async def test_truncated_outbox_file_is_recovered_and_earlier_data_delivered(
    victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    interval = 0.01
    state = tmp_path / "state"
    async with serve_profile(demo_profile()) as plant:
        text = plant_yaml(plant, state, interval=interval, sinks=influx_sink(victoria.url))
        config = parse_config(text, "plant.yaml", env={})
        victoria.stop()  # first run: nothing is delivered, everything stays in the file
        agent = Agent(config, drain_seconds=0.5)
        task = asyncio.create_task(agent.run(), name="agent")
        await wait_for(lambda: len(agent.sinks[0].buffer) > 600, 30, "a backlog")
        agent.request_stop()
        await asyncio.wait_for(task, 30)

        path = state / "outbox.sqlite3"
        intact = tmp_path / "intact.sqlite3"
        shutil.copy(path, intact)
        before_cut = _rows_on_pages_before(intact, cut := path.stat().st_size * 6 // 10)
        assert len(before_cut) > 100
        with path.open("r+b") as handle:
            handle.truncate(cut)

        victoria.start()
        agent = fast_retries(Agent(config, drain_seconds=5))
        collected: list[SampleBatch] = []
        agent.pipeline.add_consumer(collected.append)
        with capture_logs() as logs:
            task = asyncio.create_task(agent.run(), name="agent")
            try:
                await wait_for(lambda: len(collected) > 20, 15, "new polls")
                await stop_serving(plant, interval)
                await wait_for(lambda: not len(agent.sinks[0].buffer), 30, "the backlog")
            finally:
                agent.request_stop()
                await asyncio.wait_for(task, 30)

    damaged = [e for e in logs if e["event"].startswith("outbox file was damaged")]
    assert len(damaged) == 1
    assert _size(damaged[0]["moved_to"]) == cut
    stored = stored_points(victoria)
    stored_keys = {(d, t) for d, stamps in stored.items() for t in stamps}
    # Everything that was on a page before the damage arrived, with its timestamp ...
    assert {(d, t // 1_000_000) for d, t in before_cut} <= stored_keys
    # ... and so did what the second run collected; nothing else (no garbage).
    new = {(d, t // 1_000_000) for d, ts in _good(collected).items() for t in ts}
    assert new <= stored_keys
    old = {(d, t // 1_000_000) for d, t in _all_rows(intact)}
    assert stored_keys <= old | new
    assert sum(duplicates(stamps) for stamps in stored.values()) == 0


def _size(path: str) -> int:
    return os.path.getsize(path)


def _rows_on_pages_before(path: Path, cut: int) -> set[tuple[str, int]]:
    """(device, ts_ns) of the batches whose leaf page lies wholly before byte ``cut``,
    by SQLite's own page map (dbstat) of the intact file."""
    db = sqlite3.connect(path)
    try:
        assert db.execute(
            "SELECT count(*) FROM dbstat WHERE name = 'batches' AND pagetype = 'overflow'"
        ).fetchone() == (0,)
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        leaves = db.execute(
            "SELECT pageno, ncell FROM dbstat WHERE name = 'batches' AND pagetype = 'leaf' "
            "ORDER BY path"
        ).fetchall()
        rows = db.execute(
            "SELECT b.id, s.device, b.ts_ns FROM batches b JOIN streams s ON s.id = b.stream "
            "ORDER BY b.id"
        ).fetchall()
    finally:
        db.close()
    out: set[tuple[str, int]] = set()
    position = 0
    for page, cells in leaves:
        if page * page_size <= cut:
            out.update((device, ts) for _, device, ts in rows[position : position + cells])
        position += cells
    return out


def _all_rows(path: Path) -> set[tuple[str, int]]:
    db = sqlite3.connect(path)
    try:
        return set(
            db.execute(
                "SELECT s.device, b.ts_ns FROM batches b JOIN streams s ON s.id = b.stream"
            ).fetchall()
        )
    finally:
        db.close()


# ---------------------------------------------------------------------- kill -9


def _start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


def _pending_at_kill(path: Path) -> dict[str, set[tuple[str, int]]]:
    """sink -> (device, ts_ns) of the rows it had not confirmed, read from the file as
    the killed agent left it (SQLite replays the committed log on open)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT b.id, s.device, b.ts_ns FROM batches b JOIN streams s ON s.id = b.stream"
        ).fetchall()
        cursors = db.execute("SELECT sink, delivered, ranges FROM cursors").fetchall()
    finally:
        db.close()
    pending = {}
    for sink, floor, ranges in cursors:
        done = Delivered(floor, parse_ranges(ranges))
        pending[sink] = {(device, ts) for row_id, device, ts in rows if row_id not in done}
    return pending


async def test_kill_9_of_the_agent_loses_nothing(
    persistent_mosquitto: Mosquitto,
    victoria: VictoriaMetrics,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
) -> None:
    broker, interval = persistent_mosquitto, 0.1
    async with serve_profile(demo_profile()) as plant:
        config = tmp_path / "plant.yaml"
        config.write_text(
            plant_yaml(
                plant,
                tmp_path / "state",
                interval=interval,
                sinks=mqtt_sink(broker.port) + influx_sink(victoria.url),
                outbox="{fsync: always}",
            )
        )
        log = tmp_path / "agent.log"
        sub = await subscriber_factory(broker.port, TOPIC_FILTER, persistent=True)
        first = _start_agent(config, log)
        try:
            await sub.wait_until(lambda: len(sub.messages) >= 10, "first messages", within=20)
            victoria.stop()  # the database is away: its batches pile up in the file
            await asyncio.sleep(2.0)
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        pending = _pending_at_kill(tmp_path / "state" / "outbox.sqlite3")
        assert len(pending["tsdb"]) >= 20

        victoria.start()
        second = _start_agent(config, log)
        try:

            def drained() -> bool:
                backlog = _pending_at_kill(tmp_path / "state" / "outbox.sqlite3")
                return not any(backlog.values())

            await sub.wait_until(lambda: len(sub.messages) >= 60, "new messages", within=20)
            served = await stop_serving(plant, interval)
            await wait_for(drained, 30, "both sinks to catch up")
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                assert second.wait(20) == 0, log.read_text()[-3000:]
            finally:
                if second.poll() is None:
                    second.kill()
                    second.wait(10)

    stored = stored_points(victoria)
    # Every batch in the file when the agent was killed reached the database ...
    stored_keys = {(d, t) for d, stamps in stored.items() for t in stamps}
    assert {(d, t // 1_000_000) for d, t in pending["tsdb"]} <= stored_keys
    # ... and of all reads the simulators answered, at most the one in flight at the
    # kill (per device) is missing: it was never appended.
    for device in DEVICES:
        missing = served[device] - len(set(stored[device]))
        assert 0 <= missing <= 1, (device, served[device], len(set(stored[device])))
    # InfluxDB writes are idempotent and the database was away at the kill: no duplicate.
    assert sum(duplicates(stamps) for stamps in stored.values()) == 0

    # MQTT is at least once: a duplicate is only a batch the broker had not confirmed.
    await sub.wait_until(
        lambda: {(d, t) for d, t, _ in message_keys(sub.messages)} >= pending["broker"],
        "the broker's unconfirmed batches",
        within=15,
    )
    keys = [(d, t) for d, t, _ in message_keys(sub.messages)]
    doubled = {k for k in keys if keys.count(k) > 1}
    assert doubled <= pending["broker"]
    for device in DEVICES:
        got = {t for d, t in keys if d == device}
        assert 0 <= served[device] - len(got) <= 1, device
    print(f"kill -9: {len(doubled)} batches delivered twice over MQTT (at least once)")
