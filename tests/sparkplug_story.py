"""The conformance scenarios, run once, one after the other, on one real setup.

``edge-agent run -c plant.yaml`` as a process (as in production: the kill -9 scenario
needs a process to kill), two Modbus devices of the demo profile served by our
simulators, a real mosquitto behind :class:`~tests.sparkplug_wire.WireTap` (every packet
the node sends), a :class:`~tests.sparkplug_support.Recorder` (every message a host
receives) and a :class:`~tests.sparkplug_support.FakeHost` (the primary host).

The scenarios, in order (each a :class:`Phase` with its wall-clock span):

- ``waiting``: the node connects while the primary host is offline (and another host id
  says online): no birth.
- ``start``: the host comes online: NBIRTH, DBIRTHs, DDATA.
- ``rebirth``: the host sends NCMD ``Node Control/Rebirth``.
- ``device``: compressor-1's simulator stops, then starts again: DDEATH, then DBIRTH.
- ``broker``: mosquitto restarts: a new session, a new bdSeq.
- ``kill``: the agent is killed with -9: the broker delivers the Will; the agent starts
  again with the next bdSeq and re-sends what was not confirmed.
- ``stale``: an offline STATE older than the host's online one: ignored.
- ``host``: the host goes offline (NDEATH, DISCONNECT; a stale online STATE meanwhile is
  ignored), then online: births, then the stored data flagged historical.
- ``end``: the simulators stop answering, everything is delivered, SIGTERM: NDEATH and
  DISCONNECT.

One run, shared by every assertion (tests/sparkplug_assertions.py): a session is
expensive (the agent's start, the broker's restart) and each scenario leaves the state the
next starts from, as a plant's day does.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from simulators.modbus_server import UnitFault
from simulators.serve import Plant, serve_profile
from tests.outbox_plant import DEVICES, plant_yaml
from tests.plant import ROOT, demo_profile
from tests.servers import Mosquitto, children_of, free_port
from tests.sparkplug_support import Captured, FakeHost, Recorder, decode
from tests.sparkplug_wire import SUBSCRIBE, Packet, WireTap

GROUP = "Conformance"
NODE = "edge-1"
HOST = "scada-1"
#: press-1 gets a Sparkplug id of its own (the device_ids mapping); compressor-1 keeps its name.
DEVICE_IDS = {"press-1": "Line1-Press", "compressor-1": "compressor-1"}
INTERVAL_S = 0.2


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    start_ns: int
    end_ns: int


@dataclass
class Story:
    """Everything the scenarios left: the capture, the wire, and what the test did when."""

    delivered: list[Captured]
    packets: list[Packet]
    closed: dict[int, tuple[int, str]]
    phases: dict[str, Phase]
    host: FakeHost
    #: agent device -> reads its simulator answered (each is one good batch).
    served: dict[str, int]
    #: Wall clock (ns) of the kill -9, and of the stop/start of compressor-1's simulator.
    killed_ns: int = 0
    device_stopped_ns: int = 0
    device_started_ns: int = 0
    exit_codes: list[int] = field(default_factory=list)
    agent_log: str = ""


def sparkplug_sink(port: int) -> str:
    return (
        "  - name: spb\n"
        "    type: sparkplug\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
        "    client_id: conformance-edge-1\n"
        "    keepalive: 5\n"
        f"    group_id: {GROUP}\n"
        f"    edge_node_id: {NODE}\n"
        f"    primary_host: {HOST}\n"
        "    device_ids: {press-1: Line1-Press}\n"
    )


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


def _after(messages: list[Captured], since_ns: int, message_type: str) -> list[Captured]:
    return [m for m in messages if m.at_ns >= since_ns and m.message_type == message_type]


def _device_of(message: Captured) -> str:
    return message.levels[4] if len(message.levels) > 4 else ""


def _data_per_device(messages: list[Captured], since_ns: int, count: int) -> bool:
    data = _after(messages, since_ns, "DDATA")
    return all(sum(_device_of(m) == d for m in data) >= count for d in DEVICE_IDS.values())


def _born(messages: list[Captured], since_ns: int, devices: int = len(DEVICE_IDS)) -> bool:
    return bool(_after(messages, since_ns, "NBIRTH")) and (
        len({_device_of(m) for m in _after(messages, since_ns, "DBIRTH")}) >= devices
    )


class _Run:
    """The scenarios' moving parts; :func:`run_story` owns their lifetimes."""

    def __init__(self, broker: Mosquitto, tap: WireTap, plant: Plant, tmp: Path) -> None:
        self.broker, self.tap, self.plant = broker, tap, plant
        self.recorder = Recorder(broker.port)
        self.host = FakeHost(broker.port, HOST)
        self.config = tmp / "plant.yaml"
        self.log = tmp / "agent.log"
        self.agent: subprocess.Popen[bytes] | None = None
        self.phases: dict[str, Phase] = {}
        self.exit_codes: list[int] = []
        self.killed_ns = self.device_stopped_ns = self.device_started_ns = 0
        self.config.write_text(
            plant_yaml(
                plant,
                tmp / "state",
                interval=INTERVAL_S,
                sinks=sparkplug_sink(tap.port),
                outbox="{fsync: always}",
            )
        )

    async def wait(self, condition: object, what: str, within: float = 20.0) -> None:
        assert callable(condition)
        try:
            await self.recorder.wait_for(condition, what, within)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nagent log:\n{self._log_tail()}") from None

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def phase(self, name: str, start_ns: int) -> None:
        self.phases[name] = Phase(name, start_ns, time.time_ns())

    async def waiting(self) -> None:
        start = time.time_ns()
        self.recorder.start()
        self.agent = _start_agent(self.config, self.log)
        deadline = time.monotonic() + 20
        while not any(p.kind == SUBSCRIBE for p in self.tap.packets):
            assert self.agent.poll() is None, f"the agent exited:\n{self._log_tail()}"
            assert time.monotonic() < deadline, f"no SUBSCRIBE from the node:\n{self._log_tail()}"
            await asyncio.sleep(0.05)
        # Another host application says online: not ours (tck-id-...-phid-wait-id).
        FakeHost(self.broker.port, "other-host").publish_state(True, time.time_ns() // 10**6)
        await asyncio.sleep(1.5)
        self.phase("waiting", start)

    async def start(self) -> None:
        start = time.time_ns()
        self.host.online()
        await self.wait(lambda m: _born(m, start) and _data_per_device(m, start, 3), "births")
        self.phase("start", start)

    async def rebirth(self) -> None:
        start = time.time_ns()
        self.host.request_rebirth(GROUP, NODE)
        await self.wait(lambda m: _born(m, start) and _data_per_device(m, start, 2), "rebirth")
        self.phase("rebirth", start)

    async def device(self) -> None:
        start = time.time_ns()
        compressor = DEVICE_IDS["compressor-1"]
        self.device_stopped_ns = time.time_ns()
        await self.plant.stop_server("utility")
        await self.wait(
            lambda m: any(_device_of(x) == compressor for x in _after(m, start, "DDEATH")),
            "DDEATH of compressor-1",
        )
        await asyncio.sleep(3 * INTERVAL_S)
        back = time.time_ns()
        self.device_started_ns = back
        await self.plant.start_server("utility")
        await self.wait(
            lambda m: (
                any(_device_of(x) == compressor for x in _after(m, back, "DBIRTH"))
                and _data_per_device(m, back, 2)
            ),
            "DBIRTH of compressor-1 and its data",
        )
        self.phase("device", start)

    async def broker_restart(self) -> None:
        start = time.time_ns()
        self.broker.stop()
        self.host.lost()
        await asyncio.sleep(1.0)
        self.broker.start()
        self.host.online()  # a host reconnects with a new birth
        await self.wait(lambda m: _born(m, start) and _data_per_device(m, start, 2), "rebirth")
        self.phase("broker", start)

    async def kill(self) -> None:
        start = time.time_ns()
        assert self.agent is not None
        self.killed_ns = time.time_ns()
        self.agent.send_signal(signal.SIGKILL)
        self.exit_codes.append(await asyncio.to_thread(self.agent.wait, 10))
        await self.wait(lambda m: bool(_after(m, start, "NDEATH")), "the Will (NDEATH)")
        again = time.time_ns()
        self.agent = _start_agent(self.config, self.log)
        await self.wait(lambda m: _born(m, again) and _data_per_device(m, again, 2), "births")
        self.phase("kill", start)

    async def stale_offline(self) -> None:
        start = time.time_ns()
        last_online = max(ts for _, online, ts in self.host.published if online)
        self.host.publish_state(False, last_online - 1000)
        await asyncio.sleep(1.5)
        self.phase("stale", start)

    async def host_outage(self) -> None:
        start = time.time_ns()
        offline_ts = self.host.offline()
        await self.wait(lambda m: bool(_after(m, start, "NDEATH")), "NDEATH on host offline")
        await asyncio.sleep(1.0)
        self.host.publish_state(True, offline_ts - 500)  # an older online: ignored
        await asyncio.sleep(1.5)
        back = time.time_ns()
        self.host.online()
        await self.wait(lambda m: _born(m, back) and _data_per_device(m, back, 3), "births")
        self.phase("host", start)

    async def end(self) -> dict[str, int]:
        start = time.time_ns()
        for unit in DEVICES:
            self.plant.set_unit_fault(unit, UnitFault.DEVICE_BUSY)
        await asyncio.sleep(max(1.0, 3 * INTERVAL_S))
        served = {unit: self.plant.reads_served(unit) for unit in DEVICES}
        await self.wait(lambda m: _all_good_data_in(m, served), "every served read", 30)
        assert self.agent is not None
        self.agent.send_signal(signal.SIGTERM)
        self.exit_codes.append(await asyncio.to_thread(self.agent.wait, 30))
        await self.wait(lambda m: bool(_after(m, start, "NDEATH")), "NDEATH on shutdown")
        self.phase("end", start)
        return served

    def stop(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait(10)
        self.host.close()
        self.recorder.stop()


def good_samples(messages: list[Captured]) -> dict[str, list[tuple[int, bool]]]:
    """Sparkplug device id -> (metric timestamp ms, is_historical) of every DDATA whose
    values are all present (a good read), in arrival order (duplicates kept)."""
    out: dict[str, list[tuple[int, bool]]] = {d: [] for d in DEVICE_IDS.values()}
    for m in messages:
        if m.message_type != "DDATA":
            continue
        payload = decode(m.payload)
        if not payload.metrics or any(x.is_null for x in payload.metrics):
            continue
        first = payload.metrics[0]
        out.setdefault(_device_of(m), []).append((first.timestamp, first.is_historical))
    return out


def _all_good_data_in(messages: list[Captured], served: dict[str, int]) -> bool:
    samples = good_samples(messages)
    # At most the read in flight at the kill -9 is lost (never appended to the outbox).
    return all(len({t for t, _ in samples[DEVICE_IDS[d]]}) >= served[d] - 1 for d in DEVICES)


async def run_story(tmp: Path) -> Story:
    """Run every scenario; return the capture (raises if a scenario cannot proceed)."""
    broker = Mosquitto(
        port=free_port(),
        workdir=tmp / "mosquitto",
        # The recorder's persistent session keeps its subscription over the restart, and
        # the broker queues QoS 0 messages for it while it reconnects.
        extra_config=(
            f"persistence true\npersistence_location {tmp / 'mosquitto'}/\nuser root\n"
            "queue_qos0_messages true\nmax_queued_messages 0\n"
        ),
    )
    before = set(children_of(os.getpid()))
    broker.start()
    tap = WireTap(broker.port)
    await tap.start()
    run: _Run | None = None
    try:
        async with serve_profile(demo_profile()) as plant:
            run = _Run(broker, tap, plant, tmp)
            try:
                await run.waiting()
                await run.start()
                await run.rebirth()
                await run.device()
                await run.broker_restart()
                await run.kill()
                await run.stale_offline()
                await run.host_outage()
                served = await run.end()
                await asyncio.sleep(0.3)  # the last deliveries reach the recorder
            finally:
                run.stop()
    finally:
        await tap.close()
        broker.stop()
    assert set(children_of(os.getpid())) <= before, "the story left a process behind"
    return Story(
        delivered=run.recorder.snapshot(),
        packets=list(tap.packets),
        closed=dict(tap.closed),
        phases=run.phases,
        host=run.host,
        served=served,
        killed_ns=run.killed_ns,
        device_stopped_ns=run.device_stopped_ns,
        device_started_ns=run.device_started_ns,
        exit_codes=run.exit_codes,
        agent_log=run._log_tail(),
    )
