"""Reload in the running agent: only what changed restarts, and nothing buffered is lost.

The broker is down while the reload changes the sink (its keepalive), changes one
device, adds another and leaves the rest alone; when the broker comes back, every
batch collected before, during and after the reload must arrive, in order per device
and group: the changed sink's new runner reads the same outbox view (cursor and
backlog). An invalid file in between changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from edge_agent.config.loader import load_config
from edge_agent.model import SampleBatch
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.serve import serve_profile
from tests.mqtt_support import Subscriber
from tests.plant import demo_devices_text, demo_profile
from tests.servers import Mosquitto
from tests.service_support import wait_for

pytestmark = pytest.mark.integration

SubscriberFactory = Callable[..., Awaitable[Subscriber]]

KEEP = ("line-meter", "cnc-1")  # line gateway: untouched by the reload
CHANGED = "compressor-1"  # utility gateway: its interval changes
ADDED = "compressor-meter"  # utility gateway: added by the reload
#: The start of compressor-1's fast group in configs/demo-plant.yaml.
COMPRESSOR_FAST = (
    "        interval: {interval}\n        tags:\n          - {{name: state, table: input"
)


def _plant_file(
    path: Path,
    ports: dict[str, int],
    broker: Mosquitto,
    devices: tuple[str, ...],
    *,
    keepalive: int = 5,
    edits: dict[str, str] | None = None,
) -> Path:
    """The demo plant with ``devices`` only, a sink to ``broker``, and text ``edits``."""
    text = demo_devices_text(ports, devices, edits)
    text += (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {broker.port}, "
        f"keepalive: {keepalive}}}\n"
        "service: {drain_timeout: 15s}\n"
    )
    path.write_text(text)
    return path


async def test_reload_restarts_only_what_changed_and_loses_nothing(
    persistent_mosquitto: Mosquitto,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = persistent_mosquitto
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = _plant_file(tmp_path / "plant.yaml", ports, broker, (*KEEP, CHANGED))
        agent = Agent(load_config(path))
        collected: list[SampleBatch] = []
        agent.pipeline.add_consumer(collected.append)
        supervisor = Supervisor(agent, config_path=path)
        sub = await subscriber_factory(broker.port, "edge/demo-plant/+/data", persistent=True)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await sub.wait_until(lambda: len(sub.messages) >= 3, "first messages", within=15)
            kept_runners = {s.device: s for s in agent.sources if s.device in KEEP}
            old_sink = agent.sinks[0]
            broker.stop()
            await wait_for(
                lambda: len(old_sink.buffer) >= 5, 15, "a backlog while the broker is down"
            )

            # An invalid file: refused with its line, nothing changes.
            path.write_text(path.read_text().replace("unit_id: 2", "unit_idd: 2"))
            refused = await supervisor.reload()
            assert refused is not None
            assert not refused.applied
            assert any(
                p.startswith(f"{path}:") and "unknown key 'unit_idd'" in p for p in refused.problems
            ), refused.problems
            assert agent.sinks == [old_sink]
            assert supervisor.stats.reloads_refused == 1

            # A valid one: the sink and one device change, one is added.
            _plant_file(
                path,
                ports,
                broker,
                (*KEEP, CHANGED, ADDED),
                keepalive=6,
                edits={
                    COMPRESSOR_FAST.format(interval="1s"): COMPRESSOR_FAST.format(interval="2s")
                },
            )
            before = len(old_sink.buffer)
            # Sends on their way when the broker stopped may still be confirmed: mosquitto
            # answers what it took before it exits, and the old runner may read those
            # PUBACKs only now, during the reload (delivered, not lost).
            sent_before = old_sink.counters.batches_sent
            result = await supervisor.reload()
            assert result is not None
            assert result.applied, result.problems
            assert result.plan is not None
            assert result.plan.devices_changed == (CHANGED,)
            assert result.plan.devices_added == (ADDED,)
            assert result.plan.devices_restarted == ()
            assert result.plan.sinks_changed == ("broker",)
            assert [s.device for s in agent.sources] == [*KEEP, CHANGED, ADDED]
            # Untouched devices kept polling: the very same runners.
            assert all(agent.sources[i] is kept_runners[name] for i, name in enumerate(KEEP))
            [new_sink] = agent.sinks
            assert new_sink is not old_sink
            assert new_sink.buffer is old_sink.buffer, "the new runner reads the same outbox view"
            confirmed_meanwhile = old_sink.counters.batches_sent - sent_before
            assert len(new_sink.buffer) + confirmed_meanwhile >= before, "the backlog is kept"
            assert agent.config.sinks[0].keepalive == 6
            assert supervisor.stats.reloads_applied == 1
            await wait_for(
                lambda: any(b.device == ADDED for b in collected), 10, "the added device's polls"
            )

            broker.start()
            await sub.reconnect(within=10)
            await wait_for(lambda: len(new_sink.buffer) == 0, 30, "the backlog delivered")
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)
        emitted = [(b.device, b.group, b.timestamp_ns) for b in collected]
        await sub.wait_until(
            lambda: {_key(m.payload) for m in sub.messages} >= set(emitted),
            "every collected batch on the broker",
            within=15,
        )
        assert new_sink.buffer.dropped_batches == 0
        received = [_key(m.payload) for m in sub.messages]
        for device, group in {(d, g) for d, g, _ in emitted}:
            sent = [ts for d, g, ts in emitted if (d, g) == (device, group)]
            got = list(dict.fromkeys(ts for d, g, ts in received if (d, g) == (device, group)))
            assert got == sent, (device, group)


def _key(payload: bytes) -> tuple[str, str, int]:
    doc = json.loads(payload)
    return (doc["device"], doc["group"], doc["ts_ns"])


async def test_a_removed_sink_delivers_what_it_holds_before_it_stops(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = _plant_file(tmp_path / "plant.yaml", ports, mosquitto, KEEP)
        second = f"  - {{name: spare, type: mqtt, host: 127.0.0.1, port: {mosquitto.port}}}\n"
        with_spare = path.read_text().replace("service:", second + "service:")
        path.write_text(with_spare)
        agent = Agent(load_config(path))
        supervisor = Supervisor(agent, config_path=path)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(
                lambda: all(s.counters.batches_sent >= 2 for s in agent.sinks), 15, "deliveries"
            )
            spare = next(s for s in agent.sinks if s.sink.name == "spare")
            broker = next(s for s in agent.sinks if s.sink.name == "broker")
            path.write_text(with_spare.replace(second, ""))
            result = await supervisor.reload()
            assert result is not None
            assert result.applied, result.problems
            assert result.plan is not None
            assert result.plan.sinks_removed == ("spare",)
            assert result.plan.sinks_changed == ()
            assert agent.sinks == [broker]  # untouched: the same runner
            assert len(spare.buffer) == 0, "drained before it stopped"
            assert not spare.sink.connected
            sent = spare.counters.batches_sent
            await wait_for(lambda: broker.counters.batches_sent >= sent + 2, 10, "more batches")
            assert spare.counters.batches_sent == sent, "no batches for a removed sink"
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)


def _without_sinks(text: str) -> str:
    """``text`` (from :func:`_plant_file`) with its sinks section taken out."""
    head, _, rest = text.partition("sinks:\n")
    return head + rest.split("\n", 1)[1]


async def test_a_reload_that_adds_the_first_sink_opens_the_outbox(
    mosquitto: Mosquitto,
    subscriber_factory: SubscriberFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plant without sinks has no outbox; the reload that gives it one opens it, as a
    start would, and the new sink is fed from it."""
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = _plant_file(tmp_path / "plant.yaml", ports, mosquitto, KEEP[:1])
        with_sink = path.read_text()
        path.write_text(_without_sinks(with_sink))
        agent = Agent(load_config(path))
        assert agent.outbox is None
        assert not agent.sinks
        supervisor = Supervisor(agent, config_path=path)
        sub = await subscriber_factory(mosquitto.port, "edge/demo-plant/+/data")
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: agent.pipeline.batches_in >= 2, 15, "polls without a sink")
            path.write_text(with_sink)
            result = await supervisor.reload()
            assert result is not None
            assert result.applied, result.problems
            assert result.plan is not None
            assert result.plan.sinks_added == ("broker",)
            outbox = agent.outbox
            assert outbox is not None
            assert outbox.opened
            assert outbox.path == tmp_path / "state" / "outbox.sqlite3"
            [runner] = agent.sinks
            assert runner.buffer is outbox.view("broker")
            appended = outbox.appended_batches
            await sub.wait_until(lambda: len(sub.messages) >= 2, "the new sink's messages", 15)
            assert outbox.appended_batches > appended, "the pipeline writes to the new outbox"
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)
        assert not outbox.opened, "closed with the agent"


async def test_a_first_sink_whose_outbox_cannot_be_opened_is_refused(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGE_AGENT_STATE", str(tmp_path / "state"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        path = _plant_file(tmp_path / "plant.yaml", ports, mosquitto, KEEP[:1])
        with_sink = path.read_text() + f"outbox: {{path: {blocker / 'outbox.sqlite3'}}}\n"
        path.write_text(_without_sinks(with_sink))
        agent = Agent(load_config(path))
        before = agent.config
        supervisor = Supervisor(agent, config_path=path)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: agent.pipeline.batches_in >= 1, 15, "polls without a sink")
            path.write_text(with_sink)
            result = await supervisor.reload()
            assert result is not None
            assert not result.applied
            assert any("cannot open the outbox" in p for p in result.problems), result.problems
            assert agent.config is before
            assert agent.outbox is None
            assert not agent.sinks
            polled = agent.pipeline.batches_in
            await wait_for(lambda: agent.pipeline.batches_in > polled, 15, "still polling")
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)
