"""The Agent: one plant's runners, pipeline, outbox and sinks; start, run, reconfigure, stop.

Start order follows Telegraf: sinks first, pollers last; stop in reverse, so that
what was collected drains into the sinks before they close. Everything runs as named
tasks in one event loop; cancellation is never swallowed. The Agent is the one place
runners are made and ordered, at start and when a reload changes the plant
(:meth:`Agent.reconfigure`; what changes is decided by :mod:`edge_agent.service.reload`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from drivers.registry import build_drivers
from edge_agent.config import PlantConfig, TagCatalog
from edge_agent.driver import Driver
from edge_agent.errors import ConfigError
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.timer import run_metrics_timer
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.redaction import register_secrets, secret_values
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.sink_runner import SinkCounters, SinkRunner
from edge_agent.runtime.source_runner import DeviceCounters, DeviceState, SourceRunner
from edge_agent.service.parts import build_metrics, build_sink, new_outbox
from edge_agent.service.reload import (
    ReloadPlan,
    ReloadResult,
    keep_running_devices,
    plan_reload,
)
from edge_agent.service.writes_wiring import AuditFactory, WritesWiring
from edge_agent.sinks.base import LiveTap, MetaPublisher, Sink
from edge_agent.writes.service import WriteService

log = structlog.get_logger("edge_agent.service")


class SinkFollower(Protocol):
    """What rides a sink beside the data (remote configuration's topics): told the config
    and the sinks at :meth:`Agent.follow_sinks` and after every reload, and of each sink
    that stops."""

    def configure(self, config: PlantConfig, sinks: Sequence[Sink]) -> None: ...

    def disconnect(self, sink: Sink) -> None: ...


@dataclass
class Agent:
    """One plant's agent: owns its pollers and sinks for the life of one config."""

    config: PlantConfig
    #: Seconds the sinks get to deliver what is buffered on stop; None: the plant
    #: file's ``service.drain_timeout``.
    drain_seconds: float | None = None
    pipeline: Pipeline = field(default_factory=Pipeline)
    sources: list[SourceRunner] = field(default_factory=list)
    sinks: list[SinkRunner] = field(default_factory=list)
    #: The durable log every batch goes to once, read by each sink through its own view.
    outbox: Outbox | None = None
    started_at: float = field(default_factory=time.time)
    #: Set once every sink and poller has been started (sd_notify READY=1 waits for it).
    started: asyncio.Event = field(default_factory=asyncio.Event)
    #: Held while the set of runners changes (reload), so a stop never races a reload.
    reconfiguring: asyncio.Lock = field(default_factory=asyncio.Lock)
    metrics: MetricsProcessor | None = None
    #: Opens the audit log of the write gate; None: the real one in state_dir/audit.
    audit_factory: AuditFactory | None = None
    _writes: WritesWiring = field(init=False)
    _followers: list[SinkFollower] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: asyncio.TaskGroup | None = None
    _running: dict[SourceRunner | SinkRunner, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._writes = WritesWiring(lambda: self.sources, self.audit_factory)
        self._writes.configure(self.config)
        self.metrics = build_metrics(self.config)
        if self.metrics is not None:
            self.pipeline.add_processor(self.metrics)
        if self.config.sinks:
            self._adopt_outbox(new_outbox(self.config))
        for sink_config in self.config.sinks:
            self._add_sink(build_sink(sink_config, self.config, self.outbox))
        for driver in build_drivers(self.config):
            self._add_source(driver)

    # -- the one place runners are made, started and put in config order

    def _add_source(self, driver: Driver, carried: DeviceCounters | None = None) -> None:
        """Poll ``driver``'s device; ``carried``: the counters of the runner it replaces
        (per device name, Prometheus counters never go back)."""
        runner = SourceRunner(driver, self.pipeline.emit)
        if carried is not None:
            runner.counters = replace(
                carried, last_progress_monotonic=0.0, state_since_monotonic=time.monotonic()
            )
        self.sources.append(runner)
        self._spawn(runner, f"source:{runner.device}")

    def _add_sink(self, sink: Sink, carried: SinkCounters | None = None) -> None:
        """Deliver to ``sink`` from its view of the outbox.

        The outbox keeps one view per sink name, so a changed sink's new runner reads the
        very view the old one drained: its cursor, its backlog and a send that was not
        confirmed (sent again) carry over to the new destination without moving a batch.
        """
        if self.outbox is None:
            raise RuntimeError("the agent has no outbox: a plant with sinks makes one")
        runner = SinkRunner(sink, self.outbox.add_sink(sink.name))
        if isinstance(sink, LiveTap):
            # Beside the outbox: it sees each batch as collected, however far behind
            # its deliveries are (the Sparkplug births carry current values).
            self.pipeline.add_consumer(sink.see_live)
        if carried is not None:
            runner.counters = replace(carried, down_since_monotonic=None, last_error="")
        self._writes.connect(sink)
        self.sinks.append(runner)
        self._spawn(runner, f"sink:{sink.name}")

    def _in_config_order(self) -> None:
        """Status, /metrics and the stop order list runners as the plant file does."""
        devices = {d.name: i for i, d in enumerate(self.config.devices)}
        sinks = {s.name: i for i, s in enumerate(self.config.sinks)}
        self.sources.sort(key=lambda r: devices.get(r.device, len(devices)))
        self.sinks.sort(key=lambda r: sinks.get(r.sink.name, len(sinks)))

    def _adopt_outbox(self, outbox: Outbox) -> None:
        """Make ``outbox`` the pipeline's one storage consumer: every batch is written to it
        once, whatever the number of sinks, and each sink reads it through its view."""
        if self.outbox is not None:
            raise RuntimeError("the agent already has an outbox")
        self.outbox = outbox
        self.pipeline.add_consumer(outbox.append)

    async def _stop_runner(self, runner: SourceRunner | SinkRunner) -> None:
        task = self._running.pop(runner, None)
        if task is not None:
            await _cancel_all([task])

    def _spawn_all(self, runners: Sequence[SourceRunner] | Sequence[SinkRunner]) -> None:
        """Start every runner. A function of its own so that no loop variable of
        :meth:`_run_tasks` (which lives as long as the agent) holds the last runner
        after a reload has replaced it, with its driver, plan and buffers."""
        for runner in runners:
            if isinstance(runner, SourceRunner):
                self._spawn(runner, f"source:{runner.device}")
            else:
                self._spawn(runner, f"sink:{runner.sink.name}")

    def _spawn(self, runner: SourceRunner | SinkRunner, name: str) -> None:
        if self._tasks is not None:
            self._running[runner] = self._tasks.create_task(runner.run(), name=name)

    # -- reconfiguration (SIGHUP): see edge_agent.service.reload for the rules

    async def reconfigure(
        self, new: PlantConfig, *, on_config: Callable[[PlantConfig], None] | None = None
    ) -> ReloadResult:
        """Move from the running config to ``new`` (valid), restarting only what changed.

        Everything that can fail is built before anything running is touched, so the
        change is applied fully or not at all; nothing buffered is thrown away.
        """
        async with self.reconfiguring:
            return await self.reconfigure_held(new, on_config=on_config)

    async def reconfigure_held(
        self, new: PlantConfig, *, on_config: Callable[[PlantConfig], None] | None = None
    ) -> ReloadResult:
        """:meth:`reconfigure` for a caller that holds :attr:`reconfiguring`: one that
        reads the plant file and writes it back around the change (a SIGHUP reload,
        a remote config document), so that no other change comes in between."""
        assert self.reconfiguring.locked(), "hold agent.reconfiguring"
        if self.stopping:
            return ReloadResult(False, ["the agent is stopping"])
        old = self.config
        register_secrets(secret_values(new))  # before anything about ``new`` is logged
        plan = plan_reload(old, new)
        new = keep_running_devices(old, new, plan)
        try:
            sinks, drivers, made = self._prepare(plan, new)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the reload is refused
            # Nothing has been touched yet: refuse, keep running the previous config.
            problems = exc.problems if isinstance(exc, ConfigError) else [f"{exc}"]
            log.error(
                "config reload refused: the new config cannot be built; "
                "the previous config keeps running",
                problems=problems,
                error_type=type(exc).__name__,
            )
            return ReloadResult(False, list(problems), plan)
        if made is not None:
            try:
                await made.start()
            except OutboxError as exc:
                await made.close()
                log.error(
                    "config reload refused: the new sinks need the outbox, which cannot "
                    "be opened; the previous config keeps running",
                    error=str(exc),
                )
                return ReloadResult(False, [str(exc)], plan)
            # Its settings are the new file's: nothing about it waits for a restart.
            plan = replace(
                plan, needs_restart=tuple(n for n in plan.needs_restart if n != "outbox")
            )
        if on_config is not None:
            # First, so that what follows is logged at the new levels, new secrets redacted.
            on_config(new)
        await self._apply(new, plan, sinks, drivers, made)
        if plan.unchanged:
            log.info("config reloaded: nothing changed")
        else:
            log.info("config reloaded", **plan.describe())
        if plan.needs_restart:
            log.warning(
                "some changes take effect only at the next start",
                settings=list(plan.needs_restart),
            )
        return ReloadResult(True, [], plan)

    def _prepare(
        self, plan: ReloadPlan, new: PlantConfig
    ) -> tuple[dict[str, Sink], list[Driver], Outbox | None]:
        """The new sinks and drivers, and the outbox of a plant's first sink: all that can
        fail (TLS files, read plans), built before anything running is touched."""
        configs = {s.name: s for s in new.sinks}
        made = new_outbox(new) if self.outbox is None and plan.sinks_added else None
        sinks = {
            name: build_sink(configs[name], new, self.outbox or made)
            for name in (*plan.sinks_added, *plan.sinks_changed)
        }
        starting = set(plan.devices_to_start)
        devices = [d for d in new.devices if d.name in starting]
        return sinks, build_drivers(new, devices) if devices else [], made

    async def _apply(
        self,
        new: PlantConfig,
        plan: ReloadPlan,
        sinks: dict[str, Sink],
        drivers: list[Driver],
        made: Outbox | None,
    ) -> None:
        # Pollers first (as on stop), so nothing new is collected for a sink in transition.
        stopping = set(plan.devices_to_stop)
        carried_devices: dict[str, DeviceCounters] = {}
        for source in [r for r in self.sources if r.device in stopping]:
            carried_devices[source.device] = source.counters
            self.sources.remove(source)
            await self._stop_runner(source)
        if made is not None:
            self._adopt_outbox(made)
        for runner in [r for r in self.sinks if r.sink.name in plan.sinks_removed]:
            await self._remove_sink(runner, new.service.drain_timeout)
        for runner in [r for r in self.sinks if r.sink.name in plan.sinks_changed]:
            await self._stop_runner(runner)  # an unconfirmed send stays in its view: re-sent
            await runner.sink.stop()  # before the new one connects: its "offline" comes first
            self._untap(runner.sink)
            self.sinks.remove(runner)
            self._add_sink(sinks[runner.sink.name], carried=runner.counters)
        for name in plan.sinks_added:
            self._add_sink(sinks[name])
        for driver in drivers:
            self._add_source(driver, carried=carried_devices.get(driver.device))
        self.config = new
        self._writes.configure(new, [r.sink for r in self.sinks])
        for follower in self._followers:
            follower.configure(new, [r.sink for r in self.sinks])
        if self._tasks is not None:  # running: the reload may have made the first gate
            await self._writes.open_socket(new)
        self._in_config_order()
        # The sinks that publish device metadata take it live: changed devices are
        # published again and removed ones cleared, without a reconnect.
        devices = TagCatalog.of(new.devices).devices.values()
        for runner in self.sinks:
            if isinstance(runner.sink, MetaPublisher):
                runner.sink.describe_devices(devices)

    def follow_sinks(self, follower: SinkFollower) -> None:
        """Keep ``follower`` told of the sinks (now, after each reload, at each stop)."""
        self._followers.append(follower)
        follower.configure(self.config, [r.sink for r in self.sinks])

    def _untap(self, sink: Sink) -> None:
        self._writes.disconnect(sink)
        for follower in self._followers:
            follower.disconnect(sink)
        if isinstance(sink, LiveTap):
            self.pipeline.remove_consumer(sink.see_live)

    async def _remove_sink(self, runner: SinkRunner, within: float) -> None:
        name = runner.sink.name
        self.sinks.remove(runner)
        self._untap(runner.sink)
        if self.outbox is not None:
            self.outbox.view(name).freeze()  # no new batches for it from now on
        drained = await runner.drain(within)
        await self._stop_runner(runner)
        await runner.sink.stop()
        if not drained:
            log.warning(
                "removed sink could not deliver everything it had buffered before it was stopped",
                sink=name,
                undelivered_batches=len(runner.buffer),
            )
        if self.outbox is not None:
            self.outbox.remove_sink(name)  # its cursor goes: it no longer holds rows in the file

    # -- lifecycle

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT via :func:`run_agent`)."""
        log.info(
            "agent starting",
            plant=self.config.plant.name,
            devices=len(self.sources),
            sinks=[s.sink.name for s in self.sinks] or "none",
        )
        try:
            if self.outbox is not None and not self.outbox.opened:
                await self.outbox.start()  # before the sinks: they read from it
            self._writes.start()  # the ids already handled, before a sink takes a command
            await self._writes.open_socket(self.config)
            await self._run_tasks()
        finally:
            # After the sinks stopped, also when a task failed or we were cancelled: what
            # they did not deliver stays in the file and is sent after the next start.
            if self.outbox is not None:
                await self.outbox.close()
        log.info("agent stopped")

    async def _run_tasks(self) -> None:
        async with asyncio.TaskGroup() as outer:
            self._tasks = outer
            self._spawn_all(self.sinks)
            metrics_tasks = self._start_metrics(outer)
            self._spawn_all(self.sources)
            try:
                await asyncio.sleep(0)  # every runner takes its first step (sinks start)
                self.started.set()
                await self._stop.wait()
                log.info("agent stopping: polling stops, sinks drain")
            finally:
                # Also when a task failed or we were cancelled: stop in order, close sinks.
                async with self.reconfiguring:
                    self._tasks = None
                    await self._shutdown(
                        [self._running.pop(s) for s in self.sources if s in self._running],
                        [self._running.pop(s) for s in self.sinks if s in self._running],
                        metrics_tasks,
                    )

    def _start_metrics(self, group: asyncio.TaskGroup) -> list[asyncio.Task[None]]:
        """The task that closes metric windows on time (none without a metrics section)."""
        if self.metrics is None or self.config.metrics is None:
            return []
        timer = run_metrics_timer(
            self.metrics, self.pipeline.emit, save_interval=self.config.metrics.save_interval
        )
        return [group.create_task(timer, name="metrics")]

    async def _shutdown(
        self,
        source_tasks: list[asyncio.Task[None]],
        sink_tasks: list[asyncio.Task[None]],
        metrics_tasks: Sequence[asyncio.Task[None]] = (),
    ) -> None:
        await self._writes.close_socket()  # no new commands while polling stops
        await _cancel_all(source_tasks)
        # After the pollers (their last samples are in), before the sinks drain and the
        # outbox closes: every window it closed is in the outbox, and it saves the open
        # ones, which continue after a restart.
        await _cancel_all(metrics_tasks)
        within = (
            self.config.service.drain_timeout if self.drain_seconds is None else self.drain_seconds
        )
        drained = await asyncio.gather(*(r.drain(within) for r in self.sinks))
        for runner, ok in zip(self.sinks, drained, strict=True):
            if not ok:
                log.warning(
                    "sink did not drain before stop; its batches stay in the outbox "
                    "and are sent after the next start",
                    sink=runner.sink.name,
                    buffered=len(runner.buffer),
                )
        await _cancel_all(sink_tasks)
        for runner in self.sinks:
            await runner.sink.stop()

    @property
    def writes(self) -> WriteService | None:
        """The one gate every write command goes through (the local socket, the console);
        None when the plant writes nothing and no sink takes commands."""
        return self._writes.service

    def device_states(self) -> dict[str, DeviceState]:
        return {s.device: s.state for s in self.sources}


async def _cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait for them; a cancellation of the caller still propagates.

    A task still running a moment after its cancel had the cancellation swallowed by
    a library (see scheduler._raise_if_cancel_was_swallowed): cancel it again.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


async def run_agent(agent: Agent, duration: float | None = None) -> None:
    """Run ``agent`` with SIGTERM/SIGINT wired to a graceful stop, optionally for ``duration`` s."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, agent.request_stop)
    timer = loop.call_later(duration, agent.request_stop) if duration else None
    try:
        await agent.run()
    finally:
        if timer is not None:
            timer.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
