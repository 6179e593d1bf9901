"""Wiring: config -> drivers, pollers, pipeline, sink runners; start, run, stop.

Start order follows Telegraf: sinks first, pollers last; stop in reverse, so that
what was collected drains into the sinks before they close. Everything runs as named
tasks in one event loop; cancellation is never swallowed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from drivers.registry import build_drivers
from edge_agent.config import MqttSinkConfig, PlantConfig, SinkConfig
from edge_agent.metrics.processor import MetricsProcessor
from edge_agent.metrics.timer import run_metrics_timer
from edge_agent.outbox import Outbox, SinkView
from edge_agent.runtime.pipeline import Pipeline
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.runtime.source_runner import DeviceState, SourceRunner
from edge_agent.sinks.base import Sink

log = structlog.get_logger("edge_agent.service")


def build_sink(config: SinkConfig, plant: PlantConfig, outbox: Outbox | None = None) -> Sink:
    if isinstance(config, MqttSinkConfig):
        from edge_agent.sinks.mqtt import MqttSink  # lazy: paho is only needed with MQTT

        return MqttSink(config, plant.plant)
    from edge_agent.sinks.influxdb import InfluxSink  # lazy: influxdb-client likewise

    return InfluxSink(config, plant, dead_letters=outbox)


def outbox_path(config: PlantConfig) -> Path:
    return config.outbox.path or config.state_dir / "outbox.sqlite3"


def new_outbox(plant: PlantConfig) -> Outbox:
    """The plant's outbox with a view per configured sink; :meth:`Outbox.start` opens it."""
    return Outbox(plant.outbox, outbox_path(plant), [s.name for s in plant.sinks])


def build_metrics(plant: PlantConfig) -> MetricsProcessor | None:
    """The metrics processor of the plant's ``metrics:`` section, restored from state_dir."""
    if plant.metrics is None:
        return None
    from edge_agent.metrics.store import STATE_FILE, StateStore

    return MetricsProcessor(plant, store=StateStore(plant.state_dir / STATE_FILE))


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
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: asyncio.TaskGroup | None = None
    _running: dict[SourceRunner | SinkRunner, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics = build_metrics(self.config)
        if self.metrics is not None:
            self.pipeline.add_processor(self.metrics)
        if self.config.sinks:
            self.adopt_outbox(new_outbox(self.config))
        for sink_config in self.config.sinks:
            self.attach_sink(self.make_sink_runner(sink_config, self.config))
        for driver in build_drivers(self.config):
            self.attach_source(SourceRunner(driver, self.pipeline.emit))

    def make_sink_runner(self, sink_config: SinkConfig, plant: PlantConfig) -> SinkRunner:
        return SinkRunner(
            build_sink(sink_config, plant, self.outbox), self.make_buffer(sink_config)
        )

    def make_buffer(self, sink_config: SinkConfig) -> SinkView:
        """The buffer in front of one sink: its view of the outbox (the one place that
        decides what kind). A sink new to the outbox starts at the end of the log; a
        known one keeps its cursor and backlog."""
        if self.outbox is None:
            raise RuntimeError("the agent has no outbox: a plant with sinks makes one")
        return self.outbox.add_sink(sink_config.name)

    def adopt_outbox(self, outbox: Outbox) -> None:
        """Make ``outbox`` the pipeline's one storage consumer: every batch is written to it
        once, whatever the number of sinks, and each sink reads it through its view."""
        if self.outbox is not None:
            raise RuntimeError("the agent already has an outbox")
        self.outbox = outbox
        self.pipeline.add_consumer(outbox.append)

    # -- runners can come and go while the agent runs (edge_agent.service.reload)

    def attach_sink(self, runner: SinkRunner) -> None:
        """Add ``runner`` (its buffer is its outbox view) and start it if the agent is running.

        Not a pipeline consumer of its own: the outbox is, once for every sink.
        """
        self.sinks.append(runner)
        self._spawn(runner, f"sink:{runner.sink.name}")

    def attach_source(self, runner: SourceRunner) -> None:
        self.sources.append(runner)
        self._spawn(runner, f"source:{runner.device}")

    async def detach_source(self, runner: SourceRunner) -> None:
        """Stop polling ``runner``'s device (its driver closes) and forget it."""
        self.sources.remove(runner)
        task = self._running.pop(runner, None)
        if task is not None:
            await _cancel_all([task])

    async def halt_sink(self, runner: SinkRunner) -> None:
        """Stop ``runner`` delivering; batches still reach its view until it is frozen."""
        task = self._running.pop(runner, None)
        if task is not None:
            await _cancel_all([task])

    def replace_sink(self, old: SinkRunner, new: SinkRunner | None) -> None:
        """Swap ``old`` for ``new`` (or remove it) in the sink list, at once."""
        self.sinks.remove(old)
        if new is not None:
            self.attach_sink(new)

    def _spawn(self, runner: SourceRunner | SinkRunner, name: str) -> None:
        if self._tasks is not None:
            self._running[runner] = self._tasks.create_task(runner.run(), name=name)

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
            for sink in self.sinks:
                self._spawn(sink, f"sink:{sink.sink.name}")
            metrics_tasks = self._start_metrics(outer)
            for source in self.sources:
                self._spawn(source, f"source:{source.device}")
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
