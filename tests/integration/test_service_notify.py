"""sd_notify end to end: the supervised agent against simulators, a notify socket the test owns.

READY comes once the sinks and pollers are started, STATUS lines say what a person
needs, WATCHDOG pings flow while the agent makes progress, and stop while the event
loop is blocked (here by a processor that sleeps synchronously on every batch, as a
bug would), and resume when it recovers.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from edge_agent.model import SampleBatch
from edge_agent.service import supervisor as supervisor_module
from edge_agent.service.agent import Agent
from edge_agent.service.sdnotify import Notifier
from edge_agent.service.supervisor import Supervisor
from simulators.serve import serve_profile
from tests.plant import DEMO_PORTS, demo_config, demo_profile
from tests.servers import free_port
from tests.service_support import NotifyListener, wait_for

pytestmark = pytest.mark.integration

#: WatchdogSec of this test's "unit": pings every quarter, i.e. every 0.25 s.
WATCHDOG_S = 1.0
#: service.max_loop_lag: a stall longer than this withholds the ping.
MAX_LAG_S = 0.3
#: Each batch blocks the loop this long while the blockage lasts (~6 batches/s arrive).
BLOCK_PER_BATCH_S = 0.5
BLOCKAGE_S = 3.0


class LoopBlocker:
    """A processor that, once armed, blocks the event loop on every batch for a while.

    It reads the notify socket synchronously just before the first block and right
    after the last, so what it finds in between was sent while the loop was blocked.
    """

    def __init__(self, listener: NotifyListener) -> None:
        self.listener = listener
        self.armed = False
        self.started = 0.0
        self.ended = 0.0
        self.during: list[dict[str, str]] = []

    def __call__(self, batch: SampleBatch) -> list[SampleBatch]:
        if self.armed and not self.ended:
            if not self.started:
                self.listener.drain()
                self.started = time.monotonic()
            time.sleep(BLOCK_PER_BATCH_S)  # the bug being simulated: a blocking call
            if time.monotonic() - self.started >= BLOCKAGE_S:
                self.during = self.listener.drain()
                self.ended = time.monotonic()
        return [batch]


async def test_ready_status_and_watchdog_only_while_the_loop_makes_progress(
    tmp_path: Path,
) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        async with serve_profile(demo_profile()) as plant:
            ports = {name: plant.port(name) for name in plant.servers}
            config = demo_config(
                ports, tmp_path, extra_yaml=f"service: {{max_loop_lag: {MAX_LAG_S}s}}\n"
            )
            agent = Agent(config)
            blocker = LoopBlocker(listener)
            agent.pipeline.add_processor(blocker)
            notifier = Notifier(str(listener.path), watchdog_seconds=WATCHDOG_S)
            supervisor = Supervisor(agent, notifier=notifier)
            task = asyncio.create_task(supervisor.run(), name="supervisor")
            try:
                await wait_for(lambda: bool(listener.seen("READY")), 10, "READY=1")
                ready_at = listener.messages.index(listener.seen("READY")[0])
                assert agent.started.is_set()
                assert all("WATCHDOG" not in m for m in listener.messages[:ready_at])

                def online_and_pinging() -> bool:
                    statuses = [m["STATUS"] for m in listener.seen("STATUS")]
                    pings = [m for m in listener.messages[ready_at:] if "WATCHDOG" in m]
                    online = f"{len(config.devices)}/{len(config.devices)} devices online"
                    return any(s.startswith(online) for s in statuses) and (len(pings) >= 3)

                await wait_for(online_and_pinging, 15, "all devices online and watchdog pings")

                blocker.armed = True
                await wait_for(lambda: bool(blocker.ended), 20, "the blockage to end")
                assert blocker.ended - blocker.started >= BLOCKAGE_S
                assert [m for m in blocker.during if "WATCHDOG" in m] == [], blocker.during
                assert supervisor.stats.watchdog_withheld > 0

                listener.drain()
                after = len(listener.messages)

                def pinging_again() -> bool:
                    listener.drain()
                    return any("WATCHDOG" in m for m in listener.messages[after:])

                await wait_for(pinging_again, 10, "watchdog pings to resume")
            finally:
                supervisor.request_stop()
                await asyncio.wait_for(task, 20)
        stopping = listener.seen("STOPPING")
        assert stopping, listener.messages
        assert stopping[0]["STATUS"].startswith("stopping")
    finally:
        listener.close()


async def test_a_slow_outbox_open_asks_systemd_for_more_start_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the outbox checks the whole file (and salvages a damaged one); on slow flash
    that can outlast TimeoutStartSec, so the supervisor extends it and says why until
    READY. The slow open is simulated by delaying the real one."""
    monkeypatch.setattr(supervisor_module, "START_EXTEND_EVERY_S", 0.1)
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        ports = {name: free_port() for name in DEMO_PORTS}  # nothing answers: irrelevant here
        sink = f"sinks: [{{name: broker, type: mqtt, host: 127.0.0.1, port: {free_port()}}}]\n"
        agent = Agent(demo_config(ports, tmp_path, extra_yaml=sink))
        outbox = agent.outbox
        assert outbox is not None
        real_start = outbox.start

        async def slow_start() -> None:
            await asyncio.sleep(0.6)
            await real_start()

        monkeypatch.setattr(outbox, "start", slow_start)
        supervisor = Supervisor(agent, notifier=Notifier(str(listener.path)))
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: bool(listener.seen("READY")), 10, "READY=1")
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 20)
        ready_at = listener.messages.index(listener.seen("READY")[0])
        before = listener.messages[:ready_at]
        extensions = [m for m in before if "EXTEND_TIMEOUT_USEC" in m]
        assert len(extensions) >= 2, before
        assert all(m["EXTEND_TIMEOUT_USEC"] == "30000000" for m in extensions)
        assert extensions[0]["STATUS"] == (
            f"starting: opening the outbox {outbox.path} (checking it)"
        )
        after = listener.messages[ready_at:]
        assert all("EXTEND_TIMEOUT_USEC" not in m for m in after), "not once started"
    finally:
        listener.close()
