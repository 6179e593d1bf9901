"""SourceRunner with a driver that hands over changes (several batches, or none, per read)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_agent.driver import GroupSpec
from edge_agent.errors import DriverError
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import DeviceState, SourceRunner


def _batch(names: list[str], qualities: list[Quality]) -> SampleBatch:
    return SampleBatch(
        "dev",
        "g",
        1,
        names,
        [1.0 if q is Quality.GOOD else None for q in qualities],
        qualities,
        ["" if q is Quality.GOOD else "BadNodeIdUnknown" for q in qualities],
    )


@dataclass
class ChangesDriver:
    script: deque[list[SampleBatch] | DriverError] = field(default_factory=deque)
    connected: bool = True
    device: str = "dev"
    groups: Sequence[GroupSpec] = (GroupSpec("g", 0.1, ("a", "b")),)

    async def connect(self) -> None:
        self.connected = True

    async def read(self, group: str) -> Sequence[SampleBatch]:
        outcome = self.script.popleft()
        if isinstance(outcome, DriverError):
            raise outcome
        return outcome

    def read_budget(self, group: str) -> float:
        return 1.0

    async def close(self) -> None:
        self.connected = False


async def test_every_batch_of_a_read_is_emitted_in_order() -> None:
    first = _batch(["a", "b"], [Quality.GOOD, Quality.GOOD])
    second = _batch(["a"], [Quality.GOOD])
    driver = ChangesDriver(deque([[first, second]]))
    out: list[SampleBatch] = []
    runner = SourceRunner(driver, out.append)
    returned = await runner.poll_once(driver.groups[0])
    assert out == [first, second]
    assert returned is second
    assert runner.state is DeviceState.ONLINE
    assert runner.counters.good_polls == 1


async def test_nothing_changed_emits_nothing_and_is_a_good_poll() -> None:
    driver = ChangesDriver(deque([[]]))
    out: list[SampleBatch] = []
    runner = SourceRunner(driver, out.append)
    returned = await runner.poll_once(driver.groups[0])
    assert out == []
    assert len(returned) == 0
    assert runner.state is DeviceState.ONLINE
    # A quiet subscription is progress, not a stall: the watchdog and /metrics see the read.
    assert runner.counters.last_progress_monotonic > 0
    assert runner.counters.read_seconds.count == 1


async def test_a_bad_tag_in_any_batch_makes_the_device_degraded() -> None:
    good = _batch(["a"], [Quality.GOOD])
    bad = _batch(["b"], [Quality.BAD])
    driver = ChangesDriver(deque([[good, bad], DriverError("subscription watchdog")]))
    out: list[SampleBatch] = []
    runner = SourceRunner(driver, out.append)
    await runner.poll_once(driver.groups[0])
    assert runner.state is DeviceState.DEGRADED
    assert runner.state_reason == "BadNodeIdUnknown"
    assert runner.counters.failures_by_reason["BadNodeIdUnknown"] == 1
    # A failed read still yields one all-bad batch of every tag of the group.
    failed = await runner.poll_once(driver.groups[0])
    assert list(failed.names) == ["a", "b"]
    assert failed.reasons == ["subscription watchdog"] * 2
    assert out[-1] is failed
