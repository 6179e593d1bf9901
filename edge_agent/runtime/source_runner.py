"""SourceRunner: polls one device's groups on wall-clock-aligned ticks.

What the runner guarantees, so that drivers do not have to:

* each poll group reads once at start, then at multiples of its interval since the
  epoch (1 s -> .000 of every second); a read that overruns skips the ticks it missed
  and counts them, never piles them up;
* every read is bounded by a guard timeout; a failed, timed-out or refused read
  produces a batch whose samples are bad with a reason; a stale value is never re-sent
  as good;
* after ``offline_after`` consecutive failures the device is offline and is retried
  with jittered, capped exponential backoff; ticks in between produce bad batches
  without touching the wire, so a dead unit on a shared gateway does not cost the
  other units a timeout every tick;
* a device that went offline because its connection was down is retried at its next
  tick once the driver reports the connection up again: on a shared gateway or bus,
  the first device to reconnect brings its neighbours back with it, not each after
  its own backoff;
* errors are logged once per change of state, not on every poll.

One runner per device, each with its own tasks: one dead or slow device never
delays the devices on other connections.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog

from edge_agent.backoff import Backoff
from edge_agent.driver import Driver, ExplainsBadSamples, GroupSpec
from edge_agent.errors import DriverConnectError, DriverError
from edge_agent.histogram import Histogram
from edge_agent.model import (
    REASON_DISCONNECTED,
    REASON_INTERNAL,
    REASON_TIMEOUT,
    Quality,
    SampleBatch,
)

log = structlog.get_logger("edge_agent.scheduler")

#: Where batches go next (the pipeline). Must not block.
Emit = Callable[[SampleBatch], None]
#: Wall clock in seconds; injectable for tests.
Clock = Callable[[], float]
#: Waits a number of seconds of the clock's time (asyncio.sleep; a virtual one in tests).
Sleep = Callable[[float], Awaitable[None]]


class DeviceState(enum.Enum):
    CONNECTING = "connecting"
    ONLINE = "online"
    DEGRADED = "degraded"
    OFFLINE = "offline"


#: Changes of state each device remembers (with their reason and detail) for the console.
STATE_CHANGES_KEPT = 50


class StateChange(NamedTuple):
    """A device's change of state, as the console lists it (its words in each language)."""

    wall: float
    state: str
    previous: str
    reason: str
    detail: str

    @property
    def text(self) -> str:
        """In English, as the log says it."""
        if not self.reason:
            return f"{self.state} (was {self.previous})"
        return f"{self.state}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class DeviceCounters:
    polls: int = 0
    good_polls: int = 0
    failed_polls: int = 0
    skipped_ticks: int = 0
    failures_by_reason: Counter[str] = field(default_factory=Counter)
    last_read_seconds: float = 0.0
    state_since: float = 0.0
    #: Timestamp (ns since the epoch) of the last poll whose every sample was good.
    last_good_ns: int = 0
    #: Duration of the reads that went to the device (not those answered locally).
    read_seconds: Histogram = field(default_factory=Histogram)
    #: time.monotonic() of the last finished poll (or of the start): the watchdog's
    #: evidence that this poller is not stuck, whatever the device's health.
    last_progress_monotonic: float = 0.0
    #: time.monotonic() of the last change of state: how long a device has been offline.
    state_since_monotonic: float = field(default_factory=time.monotonic)
    #: The last changes of state, for the console.
    changes: deque[StateChange] = field(default_factory=lambda: deque(maxlen=STATE_CHANGES_KEPT))


def next_tick(now: float, interval: float) -> float:
    """The first multiple of ``interval`` (seconds since the epoch) strictly after ``now``."""
    return (math.floor(now / interval) + 1) * interval


def _listed(names: Sequence[str], shown: int = 10) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _raise_if_cancel_was_swallowed() -> None:
    """Honour a cancellation that a library swallowed.

    On Python 3.11 ``asyncio.wait_for`` (asyncua uses it for every request) returns
    the result instead of raising when the cancellation and the response arrive
    together (gh-86296). The task's pending cancel count still shows the request,
    so the poll loop stops anyway instead of polling on after the agent stopped.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class SourceRunner:
    def __init__(
        self,
        driver: Driver,
        emit: Emit,
        *,
        offline_after: int = 3,
        backoff: Backoff | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.driver = driver
        self.emit = emit
        self.offline_after = offline_after
        self.counters = DeviceCounters()
        self.state = DeviceState.CONNECTING
        self.state_reason = ""
        # An offline unit behind a shared gateway costs every neighbour a timeout per
        # probe, so the first retry waits at least a second and retries spread out.
        self._backoff = backoff or Backoff(initial=2.0, cap=60.0, minimum=1.0)
        self._clock = clock
        self._sleep = sleep
        self._consecutive_failures = 0
        self._retry_at = 0.0
        #: Offline while the connection was down: retry as soon as it is up again.
        self._waiting_for_connection = False
        self._probing = False
        #: Per poll group: "" when its last read was all good, else the first bad reason.
        self._group_health: dict[str, str] = {}
        #: Change-based groups not yet reported bad since the device went offline.
        self._unreported: set[str] = set()
        self._connect_lock = asyncio.Lock()

    @property
    def device(self) -> str:
        return self.driver.device

    async def run(self) -> None:
        """Poll every group until cancelled; closes the driver on the way out."""
        self.counters.last_progress_monotonic = time.monotonic()
        try:
            async with asyncio.TaskGroup() as tasks:
                for group in self.driver.groups:
                    tasks.create_task(
                        self._poll_loop(group), name=f"poll:{self.device}:{group.name}"
                    )
        finally:
            await self.driver.close()

    async def _poll_loop(self, group: GroupSpec) -> None:
        # Read once right away: a 1 h group must not wait up to an hour for its first
        # value after a (re)start. Then read on the aligned ticks.
        await self.poll_once(group)
        _raise_if_cancel_was_swallowed()
        tick = next_tick(self._clock(), group.interval)
        while True:
            delay = tick - self._clock()
            if delay > group.interval:
                # The wall clock stepped back (NTP, a gateway booting without RTC):
                # realign instead of sleeping through the step.
                tick = next_tick(self._clock(), group.interval)
                delay = tick - self._clock()
            if delay > 0:
                await self._sleep(delay)
            await self.poll_once(group)
            _raise_if_cancel_was_swallowed()
            now = self._clock()
            following = tick + group.interval
            if now >= following:
                # Overrun: skip the ticks we missed instead of running them back to back.
                upcoming = next_tick(now, group.interval)
                self.counters.skipped_ticks += round((upcoming - following) / group.interval)
                following = upcoming
            tick = following

    async def poll_once(self, group: GroupSpec) -> SampleBatch:
        """One scheduled read of ``group``: emits its batch, and returns it.

        A driver may answer a read with a list of batches (a subscription hands over
        every change since the last read, a tag at most once per batch): each is
        emitted, the last is returned, and an empty list (nothing changed) emits
        nothing and returns an empty batch.
        """
        started = self._clock()
        started_ns = int(started * 1e9)
        self.counters.polls += 1
        if (started < self._retry_at and not self._connection_is_back()) or self._probing:
            # Offline and not yet due, or another group is already probing the device:
            # answer locally, without wire traffic.
            return self._answer_locally(group, started_ns)
        # While offline, one group at a time probes the device; the others answer locally.
        self._probing = self.state is DeviceState.OFFLINE
        if self._probing and group.name in self._unreported:
            # A subscription's silence reads as "unchanged": its tags go bad now, not
            # after a probe that may take the whole read budget (or hide the outage).
            self._answer_locally(group, started_ns, count=False)
        failed: SampleBatch | None = None  # set on failure; else the driver's ``batches``
        batches: Sequence[SampleBatch] = ()
        try:
            async with asyncio.timeout(self.driver.read_budget(group.name)):
                if not self.driver.connected:
                    await self._connect()
                result = await self.driver.read(group.name)
        except TimeoutError:
            failed = self._failed(
                group, started_ns, DriverError(REASON_TIMEOUT, "read guard expired")
            )
        except DriverError as exc:
            failed = self._failed(group, started_ns, exc)
        except Exception as exc:
            # A bug in a driver (or a library error it does not map) must cost this
            # device its samples, never the whole agent: every other device keeps
            # flowing. The traceback is logged once, not on every poll.
            if self.state_reason != REASON_INTERNAL:
                log.exception("unexpected driver error", device=self.device, group=group.name)
            failed = self._failed(
                group, started_ns, DriverError(REASON_INTERNAL, f"{type(exc).__name__}: {exc}")
            )
        else:
            batches = result
            self._succeeded(group.name, batches)
        finally:
            self._probing = False
        self.counters.last_read_seconds = self._clock() - started
        self.counters.read_seconds.observe(max(0.0, self.counters.last_read_seconds))
        self.counters.last_progress_monotonic = time.monotonic()
        if failed is None:
            for each in batches:
                self.emit(each)
            # Nothing changed since the last read of a subscription: an empty batch.
            return (
                batches[-1]
                if batches
                else SampleBatch(self.device, group.name, started_ns, (), [], [], [])
            )
        self.emit(failed)
        return failed

    def _answer_locally(self, group: GroupSpec, started_ns: int, count: bool = True) -> SampleBatch:
        reason = self.state_reason or REASON_DISCONNECTED
        batch = SampleBatch.all_bad(self.device, group.name, started_ns, group.names, reason)
        if count:  # not when the same poll goes on to probe: that probe is counted
            self.counters.failed_polls += 1
            self.counters.failures_by_reason[reason] += 1
            self.counters.last_progress_monotonic = time.monotonic()
        self._unreported.discard(group.name)
        self.emit(batch)
        return batch

    def _connection_is_back(self) -> bool:
        """Someone else (a neighbour on the same connection) brought it back."""
        return self._waiting_for_connection and self.driver.connected

    async def _connect(self) -> None:
        async with self._connect_lock:
            if not self.driver.connected:
                await self.driver.connect()

    def _failed(self, group: GroupSpec, started_ns: int, exc: DriverError) -> SampleBatch:
        self.counters.failed_polls += 1
        self.counters.failures_by_reason[exc.reason] += 1
        self._consecutive_failures += 1
        self._group_health[group.name] = exc.reason
        if isinstance(exc, DriverConnectError) or self._consecutive_failures >= self.offline_after:
            delay = self._backoff.next_delay()
            self._retry_at = self._clock() + delay
            self._waiting_for_connection = not self.driver.connected
            self._set_state(
                DeviceState.OFFLINE, exc.reason, detail=exc.detail, retry_in=round(delay, 2)
            )
        elif self.state is not DeviceState.CONNECTING:
            self._set_state(DeviceState.DEGRADED, exc.reason, detail=exc.detail)
        else:
            self.state_reason = exc.reason
        self._unreported.discard(group.name)  # this batch reports it
        return SampleBatch.all_bad(self.device, group.name, started_ns, group.names, exc.reason)

    def _succeeded(self, group: str, batches: Sequence[SampleBatch]) -> None:
        self._consecutive_failures = 0
        self._retry_at = 0.0
        self._waiting_for_connection = False
        self._backoff.reset()
        # Every poll of every device passes here: count at C speed, and only walk the
        # samples when some are not good.
        bad: list[str] = []
        for batch in batches:
            if batch.good_count != len(batch):
                bad += [
                    r
                    for q, r in zip(batch.qualities, batch.reasons, strict=True)
                    if q is not Quality.GOOD
                ]
        if bad:
            self.counters.failures_by_reason.update(bad)
        else:
            self.counters.good_polls += 1
            if batches:
                self.counters.last_good_ns = batches[-1].timestamp_ns
        self._group_health[group] = bad[0] if bad else ""
        # The device is as healthy as its least healthy group: deciding from whichever
        # group finished last would flip the state (and the log) every tick.
        worst = next((reason for reason in self._group_health.values() if reason), "")
        if not worst:
            self._set_state(DeviceState.ONLINE, "")
        elif (self.state, self.state_reason) != (DeviceState.DEGRADED, worst):
            self._set_state(DeviceState.DEGRADED, worst, detail=self._explain(batches))

    def _explain(self, batches: Sequence[SampleBatch]) -> str:
        """Which samples are bad and why, for the one log line of a change of state."""
        lines = []
        for batch in batches:
            if batch.good_count == len(batch):
                continue
            if isinstance(self.driver, ExplainsBadSamples):
                lines.append(self.driver.explain(batch))
            else:
                bad = [name for name, _, quality, _ in batch if quality is not Quality.GOOD]
                lines.append(f"group {batch.group}: {_listed(bad)} bad")
        return "; ".join(lines)

    def _set_state(self, state: DeviceState, reason: str, **details: object) -> None:
        if state is self.state and reason == self.state_reason:
            return
        previous = self.state
        if state is DeviceState.OFFLINE and previous is not DeviceState.OFFLINE:
            self._unreported = {g.name for g in self.driver.groups if g.change_based}
        self.state = state
        self.state_reason = reason
        self.counters.state_since = self._clock()
        self.counters.state_since_monotonic = time.monotonic()
        event = f"device {state.value}"
        detail = details.get("detail")
        self.counters.changes.append(
            StateChange(
                self.counters.state_since,
                state.value,
                previous.value,
                reason,
                str(detail) if detail else "",
            )
        )
        if state is DeviceState.ONLINE:
            log.info(event, device=self.device, previous=previous.value)
        elif state is DeviceState.OFFLINE or previous is DeviceState.ONLINE:
            log.warning(
                event, device=self.device, reason=reason, previous=previous.value, **details
            )
        else:
            log.info(event, device=self.device, reason=reason, previous=previous.value, **details)
