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

from edge_agent.config import MqttSinkConfig, PlantConfig, SinkConfig
from edge_agent.driver import Driver
from edge_agent.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.scheduler import DeviceState, SourceRunner
from edge_agent.sinks.base import Sink
from edge_agent.sinks.runner import SinkRunner

log = structlog.get_logger("edge_agent.service")

#: Seconds the sinks get to deliver what is buffered when the agent stops.
DEFAULT_DRAIN_SECONDS = 5.0


def build_sink(config: SinkConfig, plant: PlantConfig, outbox: Outbox | None = None) -> Sink:
    if isinstance(config, MqttSinkConfig):
        from edge_agent.sinks.mqtt import MqttSink  # lazy: paho is only needed with MQTT

        return MqttSink(config, plant.plant)
    from edge_agent.sinks.influxdb import InfluxSink  # lazy: influxdb-client likewise

    return InfluxSink(config, plant, dead_letters=outbox)


def outbox_path(config: PlantConfig) -> Path:
    return config.outbox.path or config.state_dir / "outbox.sqlite3"


def build_drivers(plant: PlantConfig) -> list[Driver]:
    from drivers.modbus import build_modbus_drivers  # lazy: protocol code stays out of core

    return list(build_modbus_drivers(plant.devices))


@dataclass
class Agent:
    """One plant's agent: owns its pollers and sinks for the life of one config."""

    config: PlantConfig
    drain_seconds: float = DEFAULT_DRAIN_SECONDS
    pipeline: Pipeline = field(default_factory=Pipeline)
    sources: list[SourceRunner] = field(default_factory=list)
    sinks: list[SinkRunner] = field(default_factory=list)
    #: The durable log every batch goes to once, read by each sink through its own view.
    outbox: Outbox | None = None
    started_at: float = field(default_factory=time.time)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.config.sinks:
            self.outbox = Outbox(
                self.config.outbox, outbox_path(self.config), [s.name for s in self.config.sinks]
            )
            self.pipeline.add_consumer(self.outbox.append)
        for sink_config in self.config.sinks:
            assert self.outbox is not None
            runner = SinkRunner(
                build_sink(sink_config, self.config, self.outbox),
                self.outbox.view(sink_config.name),
            )
            self.sinks.append(runner)
        for driver in build_drivers(self.config):
            self.sources.append(SourceRunner(driver, self.pipeline.emit))

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
            if self.outbox is not None:
                await self.outbox.start()
            await self._run_tasks()
        finally:
            # After the sinks stopped: what they did not deliver stays in the file.
            if self.outbox is not None:
                await self.outbox.close()
        log.info("agent stopped")

    async def _run_tasks(self) -> None:
        async with asyncio.TaskGroup() as outer:
            sink_tasks = [
                outer.create_task(runner.run(), name=f"sink:{runner.sink.name}")
                for runner in self.sinks
            ]
            source_tasks = [
                outer.create_task(runner.run(), name=f"source:{runner.device}")
                for runner in self.sources
            ]
            try:
                await self._stop.wait()
                log.info("agent stopping: polling stops, sinks drain")
            finally:
                # Also when a task failed or we were cancelled: stop in order, close sinks.
                await self._shutdown(source_tasks, sink_tasks)

    async def _shutdown(
        self, source_tasks: list[asyncio.Task[None]], sink_tasks: list[asyncio.Task[None]]
    ) -> None:
        await _cancel_all(source_tasks)
        drained = await asyncio.gather(*(r.drain(self.drain_seconds) for r in self.sinks))
        for runner, ok in zip(self.sinks, drained, strict=True):
            if not ok:
                log.warning(
                    "sink did not drain before stop; its batches stay in the outbox",
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
