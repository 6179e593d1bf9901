"""SourceRunner behaviour against a scripted driver (our own Driver protocol, no library mocked)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from edge_agent.backoff import Backoff
from edge_agent.driver import GroupSpec
from edge_agent.errors import DriverConnectError, DriverError
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import DeviceState, SourceRunner, next_tick
from tests.virtual_time import VirtualTime

NAMES = ("a", "b")


@dataclass
class ScriptedDriver:
    """Answers each read with the next scripted outcome: a list of values, or an error."""

    script: deque[list[float] | DriverError] = field(default_factory=deque)
    read_seconds: float = 0.0
    connected: bool = True
    connect_fails: bool = False
    reads: int = 0
    connects: int = 0
    device: str = "dev"
    groups: Sequence[GroupSpec] = (GroupSpec("g", 0.05, NAMES),)
    #: The time a read takes passes on this clock (virtual time in the timing tests).
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def connect(self) -> None:
        self.connects += 1
        if self.connect_fails:
            raise DriverConnectError("disconnected", "refused")
        self.connected = True

    async def read(self, group: str) -> Sequence[SampleBatch]:
        self.reads += 1
        started_ns = round(self.clock() * 1e9)
        if self.read_seconds:
            await self.sleep(self.read_seconds)
        outcome = self.script.popleft() if self.script else [1.0, 2.0]
        if isinstance(outcome, DriverError):
            raise outcome
        qualities = [Quality.BAD if v != v else Quality.GOOD for v in outcome]
        reasons = ["sentinel" if q is Quality.BAD else "" for q in qualities]
        values: list[object] = [None if v != v else v for v in outcome]
        batch = SampleBatch("dev", group, started_ns, NAMES, values, qualities, reasons)  # type: ignore[arg-type]
        return (batch,)

    def read_budget(self, group: str) -> float:
        return 1.0

    async def close(self) -> None:
        self.connected = False


def _runner(driver: ScriptedDriver, sink: list[SampleBatch], **kw: object) -> SourceRunner:
    return SourceRunner(
        driver,
        sink.append,
        backoff=Backoff(initial=10.0, cap=10.0, minimum=10.0),
        **kw,  # type: ignore[arg-type]
    )


def test_next_tick_is_aligned_to_the_interval() -> None:
    assert next_tick(1000.2, 1.0) == 1001.0
    assert next_tick(1000.0, 1.0) == 1001.0
    assert next_tick(1000.26, 0.1) == pytest.approx(1000.3)
    assert next_tick(899.0, 900.0) == 900.0


async def test_failures_mark_samples_bad_with_reason_and_never_resend_stale_values() -> None:
    driver = ScriptedDriver(deque([[5.0, 6.0], DriverError("timeout"), [7.0, 8.0]]))
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    group = driver.groups[0]
    await runner.poll_once(group)
    assert runner.state is DeviceState.ONLINE
    await runner.poll_once(group)
    assert out[1].values == [None, None]
    assert out[1].qualities == [Quality.BAD, Quality.BAD]
    assert out[1].reasons == ["timeout", "timeout"]
    assert runner.state is DeviceState.DEGRADED
    await runner.poll_once(group)
    assert out[2].values == [7.0, 8.0]
    assert runner.state is DeviceState.ONLINE
    assert runner.counters.failures_by_reason["timeout"] == 1


async def test_partial_bad_batch_makes_device_degraded() -> None:
    driver = ScriptedDriver(deque([[1.0, float("nan")]]))
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    await runner.poll_once(driver.groups[0])
    assert runner.state is DeviceState.DEGRADED
    assert runner.state_reason == "sentinel"


async def test_consecutive_failures_take_device_offline_and_back_off_without_wire_traffic() -> None:
    driver = ScriptedDriver(deque([DriverError("timeout")] * 3))
    out: list[SampleBatch] = []
    runner = _runner(driver, out, offline_after=3)
    for _ in range(3):
        await runner.poll_once(driver.groups[0])
    assert runner.state is DeviceState.OFFLINE
    assert driver.reads == 3
    # During the backoff window polls are answered locally: bad, no read attempted.
    batch = await runner.poll_once(driver.groups[0])
    assert driver.reads == 3
    assert batch.qualities == [Quality.BAD, Quality.BAD]
    assert batch.reasons == ["timeout", "timeout"]


async def test_connect_failure_goes_offline_immediately() -> None:
    driver = ScriptedDriver(connected=False, connect_fails=True)
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    batch = await runner.poll_once(driver.groups[0])
    assert runner.state is DeviceState.OFFLINE
    assert batch.reasons == ["disconnected", "disconnected"]
    await runner.poll_once(driver.groups[0])
    assert driver.connects == 1  # second poll fell inside the backoff window


async def test_read_guard_timeout_marks_samples_bad() -> None:
    driver = ScriptedDriver(read_seconds=5.0)
    driver.read_budget = lambda group: 0.05  # type: ignore[method-assign]
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    batch = await runner.poll_once(driver.groups[0])
    assert batch.reasons == ["timeout", "timeout"]


async def test_overrun_skips_ticks_instead_of_piling_them_up() -> None:
    vt = VirtualTime()
    driver = ScriptedDriver(read_seconds=0.12, clock=vt.clock, sleep=vt.sleep)  # interval 0.05 s
    out: list[SampleBatch] = []
    runner = _runner(driver, out, clock=vt.clock, sleep=vt.sleep)
    task = asyncio.create_task(runner.run())
    await vt.run_for(0.6)
    task.cancel()
    await asyncio.wait([task])
    # Reads start at 0, 0.15, 0.30, 0.45 and 0.60 s (each takes 0.12 s and ends past the
    # next tick): never 12 back to back; each overrun skips the two ticks it missed.
    assert 2 <= driver.reads <= 6
    assert driver.reads == 5
    assert runner.counters.skipped_ticks >= driver.reads - 1
    assert runner.counters.skipped_ticks == 6
    assert not driver.connected  # the runner closes its driver on the way out


async def test_reads_start_on_interval_boundaries() -> None:
    vt = VirtualTime(start=1_000_000.037)  # started mid-interval
    driver = ScriptedDriver(
        groups=(GroupSpec("g", 0.1, NAMES),), read_seconds=0.004, clock=vt.clock, sleep=vt.sleep
    )
    starts: list[int] = []
    runner = SourceRunner(
        driver, lambda b: starts.append(b.timestamp_ns), clock=vt.clock, sleep=vt.sleep
    )
    task = asyncio.create_task(runner.run())
    await vt.run_for(0.55)
    task.cancel()
    await asyncio.wait([task])
    assert len(starts) >= 4
    assert len(starts) == 6  # at once, then at .1, .2, .3, .4 and .5
    # The first read happens at once (no waiting a whole interval for a first value) ...
    assert starts[0] == 1_000_000_037_000_000
    assert starts[1] - starts[0] < 100_000_000
    # ... the others on the boundary (to the microsecond), never mid-interval.
    offsets = [s % 100_000_000 for s in starts[1:]]
    assert all(o < 1_000 for o in offsets), offsets


async def test_offline_device_is_probed_by_one_group_at_a_time() -> None:
    groups = tuple(GroupSpec(f"g{i}", 0.05, NAMES) for i in range(3))
    driver = ScriptedDriver(
        deque([DriverError("timeout")] * 1000), read_seconds=0.03, groups=groups
    )
    out: list[SampleBatch] = []
    runner = SourceRunner(
        driver, out.append, offline_after=1, backoff=Backoff(initial=0.0, cap=0.0, minimum=0.0)
    )
    runner.state = DeviceState.OFFLINE
    await asyncio.gather(*(runner.poll_once(g) for g in groups))
    assert driver.reads == 1, "one probe; the other groups answered locally"
    assert len(out) == 3
    assert all(b.qualities == [Quality.BAD, Quality.BAD] for b in out)


async def test_a_subscription_is_reported_bad_before_it_probes_an_offline_device() -> None:
    """A change-based group's silence reads as "unchanged": when the device went offline
    through another group, its tags go bad at its next poll even when that poll is the
    one that probes, and stays bad for however long the probe takes (or succeeds)."""
    reader, watcher = GroupSpec("r", 0.05, NAMES), GroupSpec("s", 0.05, NAMES, change_based=True)
    driver = ScriptedDriver(deque([DriverConnectError("timeout", "no keepalive")]))
    driver.groups = (reader, watcher)
    out: list[SampleBatch] = []
    runner = SourceRunner(driver, out.append, backoff=Backoff(initial=0.0, cap=0.0, minimum=0.0))
    await runner.poll_once(reader)
    assert runner.state is DeviceState.OFFLINE
    await runner.poll_once(watcher)  # probes (and succeeds), but reports the outage first
    assert [(b.group, b.good_count) for b in out] == [("r", 0), ("s", 0), ("s", 2)]
    assert out[1].reasons == ["timeout", "timeout"]
    # A group that failed itself is reported once: the read group probes without a
    # batch of the subscription in front.
    driver.script.append(DriverConnectError("timeout"))
    await runner.poll_once(watcher)
    await runner.poll_once(reader)
    assert [(b.group, b.good_count) for b in out[3:]] == [("s", 0), ("r", 2)]


async def test_a_permanently_bad_tag_in_one_group_does_not_flap_the_device_state() -> None:
    groups = (GroupSpec("good", 0.05, NAMES), GroupSpec("holey", 0.05, NAMES))
    driver = ScriptedDriver(groups=groups)
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    transitions: list[DeviceState] = []
    for _ in range(5):
        driver.script.extend([[1.0, 2.0], [1.0, float("nan")]])
        for group in groups:
            await runner.poll_once(group)
            if not transitions or transitions[-1] is not runner.state:
                transitions.append(runner.state)
    assert transitions == [DeviceState.ONLINE, DeviceState.DEGRADED]


async def test_a_driver_bug_costs_only_this_device_its_samples() -> None:
    class Buggy(ScriptedDriver):
        async def read(self, group: str) -> Sequence[SampleBatch]:
            raise KeyError("oops")

    driver = Buggy()
    out: list[SampleBatch] = []
    runner = _runner(driver, out)
    batch = await runner.poll_once(driver.groups[0])
    assert batch.reasons == ["internal error", "internal error"]
    assert runner.counters.failures_by_reason["internal error"] == 1


async def test_wall_clock_stepping_back_does_not_stall_polling() -> None:
    vt = VirtualTime()
    driver = ScriptedDriver(groups=(GroupSpec("g", 0.05, NAMES),), clock=vt.clock, sleep=vt.sleep)
    out: list[SampleBatch] = []
    runner = SourceRunner(driver, out.append, clock=vt.clock, sleep=vt.sleep)
    task = asyncio.create_task(runner.run())
    await vt.run_for(0.11)
    # NTP steps the clock back an hour while the runner sleeps towards its next tick.
    vt.step(-3600.0)
    await vt.run_for(0.29)
    before = len(out)
    await vt.run_for(0.4)
    task.cancel()
    await asyncio.wait([task])
    assert len(out) > before + 3, "polling continued after the clock stepped back"
    assert len(out) - before == 8  # one read per 0.05 s tick, as before the step


async def test_a_cancellation_swallowed_by_a_library_still_stops_polling() -> None:
    inside_read = asyncio.Event()

    class Swallowing(ScriptedDriver):
        """Like asyncio.wait_for on 3.11 when cancel and response coincide (gh-86296)."""

        async def read(self, group: str) -> Sequence[SampleBatch]:
            inside_read.set()
            with contextlib.suppress(asyncio.CancelledError):  # returns instead of raising
                await asyncio.sleep(0.2)
            return await super().read(group)

    driver = Swallowing(groups=(GroupSpec("g", 0.01, NAMES),))
    runner = SourceRunner(driver, lambda b: None)
    task = asyncio.create_task(runner.run())
    await inside_read.wait()
    task.cancel()  # lands inside the read, which swallows it
    await asyncio.wait([task], timeout=2.0)
    assert task.done(), "the poll loop kept running after its cancellation was swallowed"


async def test_a_device_offline_for_its_connection_is_retried_once_a_neighbour_reconnected() -> (
    None
):
    """Item 13: devices behind one gateway share its connection; when one brings it back,
    the others are retried at their next tick instead of after their own backoff."""
    driver = ScriptedDriver(connected=False, connect_fails=True)
    out: list[SampleBatch] = []
    runner = _runner(driver, out)  # backoff: 10 s
    group = driver.groups[0]
    await runner.poll_once(group)
    assert runner.state is DeviceState.OFFLINE
    await runner.poll_once(group)
    assert driver.connects == 1, "backing off"
    driver.connected = True  # a neighbour on the same connection reconnected
    await runner.poll_once(group)
    assert runner.state is DeviceState.ONLINE
    assert (driver.connects, driver.reads) == (1, 1)


async def test_a_dead_unit_behind_a_working_connection_keeps_its_backoff() -> None:
    driver = ScriptedDriver(deque([DriverError("timeout")] * 3))
    out: list[SampleBatch] = []
    runner = _runner(driver, out, offline_after=3)
    for _ in range(5):
        await runner.poll_once(driver.groups[0])
    assert runner.state is DeviceState.OFFLINE
    assert driver.reads == 3, "the connection never went away: no early retry"


@dataclass
class ExplainingDriver(ScriptedDriver):
    def explain(self, batch: SampleBatch) -> str:
        return f"{batch.group}: b is at address 7"


@pytest.mark.parametrize(
    ("driver", "detail"),
    [(ScriptedDriver(), "group g: b bad"), (ExplainingDriver(), "g: b is at address 7")],
)
async def test_a_degraded_device_says_which_samples_are_bad_once(
    driver: ScriptedDriver, detail: str
) -> None:
    """Item 14: the log line of the change names the samples (the driver, if it can,
    says where they are and what the reason means)."""
    driver.script.extend([[1.0, float("nan")], [1.0, float("nan")]])
    runner = _runner(driver, [])
    with capture_logs() as logs:
        await runner.poll_once(driver.groups[0])
        await runner.poll_once(driver.groups[0])
    assert [(e["event"], e["reason"], e["detail"]) for e in logs] == [
        ("device degraded", "sentinel", detail)
    ]
