"""Run an :class:`~edge_agent.service.Agent` as a service: signals, systemd, health, status.

What ``edge-agent run`` does around the agent, all as tasks on its one event loop:

* SIGTERM / SIGINT: polling stops, sinks get ``service.drain_timeout`` to deliver,
  the process exits 0 (``STOPPING=1`` first, so ``systemctl status`` says so);
* SIGHUP (``systemctl reload``): :mod:`edge_agent.service.reload`, between ``RELOADING=1``
  and ``READY=1``;
* ``READY=1`` once the sinks and pollers are started, ``STATUS=`` whenever the
  one-line status changes, ``WATCHDOG=1`` only while the agent makes progress
  (:mod:`edge_agent.service.liveness`);
* the health and metrics endpoint (:mod:`edge_agent.service.health`), if configured;
* the retained status document on every MQTT sink every ``service.status_interval``;
* signed plant files from ``edge/{plant}/config/set`` (``remote_config:``), applied as a
  reload is (:meth:`Supervisor.apply_config`; :mod:`edge_agent.remote_config`).
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from edge_agent.config import PlantConfig
from edge_agent.config.service import ServiceConfig
from edge_agent.console.logring import LogRing
from edge_agent.errors import ConfigError, SinkError
from edge_agent.remote_config.apply import RemoteConfig
from edge_agent.remote_config.audit import ConfigAudit, config_audit_log
from edge_agent.remote_config.wiring import RemoteConfigChannel
from edge_agent.service.agent import Agent
from edge_agent.service.heap import resettle, settle
from edge_agent.service.liveness import LoopMonitor, liveness_problems
from edge_agent.service.reload import ReloadResult, load_for_reload
from edge_agent.service.sdnotify import Notifier
from edge_agent.service.status import (
    ServiceStats,
    encode_status,
    status_document,
    status_line,
)
from edge_agent.sinks.base import StatusPublisher

if TYPE_CHECKING:
    # aiohttp, prometheus_client and the console cost ~0.2 s to import: a plant without
    # service.health never pays it (_start_health imports it when there is a listener).
    from edge_agent.service.health import HealthServer

log = structlog.get_logger("edge_agent.service")

#: The first status document goes out this soon (or after one interval, if shorter):
#: late enough for the first polls to have finished, early enough to be useful.
FIRST_STATUS_DELAY_S = 5.0
#: How often the STATUS= line is recomputed (sent only when it changed).
STATUS_LINE_EVERY_S = 2.0
#: Pings per WatchdogSec: a transient stall then costs one ping, not the service.
PINGS_PER_WATCHDOG = 4
#: While the agent starts, systemd is asked this often for this much more time
#: (EXTEND_TIMEOUT_USEC): opening the outbox reads the whole file, and salvages a
#: damaged one, which on slow flash can outlast the unit's TimeoutStartSec.
START_EXTEND_EVERY_S = 10.0
START_EXTEND_S = 30.0


def monitor_period(max_loop_lag: float) -> float:
    """Lag samples often enough to notice a stall of ``max_loop_lag``, at most 1/s."""
    return min(1.0, max_loop_lag / 5)


class Supervisor:
    """Everything around one agent that makes it a well-behaved systemd service."""

    def __init__(
        self,
        agent: Agent,
        *,
        config_path: Path | str | None = None,
        notifier: Notifier | None = None,
        on_config: Callable[[PlantConfig], None] | None = None,
    ) -> None:
        self.agent = agent
        self.config_path = Path(config_path) if config_path is not None else None
        self.notifier = Notifier.from_environment() if notifier is None else notifier
        self.on_config = on_config
        max_lag = agent.config.service.max_loop_lag
        self.stats = ServiceStats(
            monitor=LoopMonitor(monitor_period(max_lag)), max_loop_lag=max_lag
        )
        self.health: HealthServer | None = None
        #: The last warnings and errors, for the web console's config page: kept here,
        #: so that a reload that makes the console anew does not forget them.
        self.log_ring = LogRing()
        self._reload_requested = asyncio.Event()
        self._status_sent = ""
        #: Signed plant files over MQTT (``remote_config:``), for a plant run from a file.
        self.remote = self._remote_config()

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        if not self.agent.stopping:
            self._status_sent = "stopping: polling stops, sinks deliver what is buffered"
            self.notifier.stopping(self._status_sent)
        self.agent.request_stop()

    def request_reload(self) -> None:
        self._reload_requested.set()

    async def run(self, duration: float | None = None) -> None:
        """Run until stopped (signal, :meth:`request_stop`, or ``duration`` seconds)."""
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
        }
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        timer = loop.call_later(duration, self.request_stop) if duration else None
        self.log_ring.install()
        try:
            async with asyncio.TaskGroup() as tasks:
                agent_task = tasks.create_task(self.agent.run(), name="agent")
                helpers = [tasks.create_task(self.stats.monitor.run(), name="loop-monitor")]
                started = tasks.create_task(self.agent.started.wait(), name="agent-started")
                extending = tasks.create_task(self._while_starting(), name="start-timeout")
                await asyncio.wait({agent_task, started}, return_when=asyncio.FIRST_COMPLETED)
                extending.cancel()
                if started.done() and not self.agent.stopping:
                    await self._start_health()
                    self.notifier.ready(status_line(self.agent, self.stats))
                    helpers += [
                        tasks.create_task(self._status_lines(), name="status-line"),
                        tasks.create_task(self._status_documents(), name="status-mqtt"),
                        tasks.create_task(self._reloads(), name="reload"),
                    ]
                    if self.remote is not None:
                        channel, remote = self.remote
                        helpers.append(tasks.create_task(channel.run(remote.handle), name="remote"))
                    if self.notifier.watchdog_seconds:
                        helpers.append(tasks.create_task(self._watchdog(), name="watchdog"))
                started.cancel()
                await asyncio.wait({agent_task})
                for helper in helpers:
                    helper.cancel()
        finally:
            if timer is not None:
                timer.cancel()
            for signum in handlers:
                loop.remove_signal_handler(signum)
            await self._stop_health()
            self.log_ring.remove()
            self.notifier.close()

    # ------------------------------------------------------------------ reload

    async def reload(self) -> ReloadResult | None:
        """Reload the config file now (what SIGHUP does); None if there is no file."""
        if self.config_path is None:
            log.warning("reload ignored: the agent was not started from a config file")
            return None
        log.info("config reload requested", file=str(self.config_path))
        # The file is read inside the lock a remote config document holds from reading
        # to writing the plant file: a reload never applies a file a document replaced.
        async with self.agent.reconfiguring:
            return await self._reloading(self._reload_file(self.config_path))

    async def apply_config(self, new: PlantConfig) -> ReloadResult:
        """Apply ``new`` (loaded and validated) as a reload does: remote configuration.
        The caller holds ``agent.reconfiguring`` (:class:`RemoteConfig` does)."""
        return await self._reloading(self.agent.reconfigure_held(new, on_config=self.on_config))

    async def _reloading(self, work: Awaitable[ReloadResult]) -> ReloadResult:
        """``work`` between systemd's RELOADING=1 and READY=1, counted for the status."""
        self.notifier.reloading()
        old_service = self.agent.config.service
        try:
            result = await work
        except Exception as exc:
            # A bug part-way through must not end data collection: say so loudly.
            log.exception("config reload failed part-way; check the running state")
            result = ReloadResult(False, [f"{type(exc).__name__}: {exc}"])
        self.stats.last_reload_wall = time.time()
        if result.applied:
            resettle()  # the replaced runners' cycles go, the new ones are frozen
            self.stats.reloads_applied += 1
            self.stats.last_reload_problems = []
            await self._apply_service(old_service, self.agent.config.service)
        else:
            self.stats.reloads_refused += 1
            self.stats.last_reload_problems = result.problems
        line = status_line(self.agent, self.stats)
        self._status_sent = line
        self.notifier.ready(line)  # ends systemd's "reloading" state
        return result

    def _remote_config(self) -> tuple[RemoteConfigChannel, RemoteConfig] | None:
        """The channel follows the sinks from now on (it subscribes when the plant file,
        now or after a reload, has ``remote_config:``); documents wait until the agent
        has started."""
        if self.config_path is None:
            return None
        channel = RemoteConfigChannel()
        agent = self.agent
        files = agent.config.commands.audit
        audit = ConfigAudit(config_audit_log(agent.config.state_dir, files.max_bytes, files.keep))
        remote = RemoteConfig(
            self.config_path,
            agent.config.state_dir,
            config=lambda: agent.config,
            device_states=agent.device_states,
            apply=self.apply_config,
            report=channel.report,
            lock=agent.reconfiguring,
            sink_connected=lambda: channel.connected,
            audit=audit,
        )
        channel.screen = remote.screen
        agent.follow_sinks(channel)
        return channel, remote

    async def _reload_file(self, path: Path | str) -> ReloadResult:
        """Parse ``path`` off the event loop, then apply it if it is valid."""
        try:
            new = await load_for_reload(path)
        except ConfigError as exc:
            log.error(
                "config reload refused: the file is invalid; the previous config keeps running",
                file=str(path),
                problems=exc.problems,
            )
            return ReloadResult(False, list(exc.problems))
        return await self.agent.reconfigure_held(new, on_config=self.on_config)

    async def _reloads(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            if self.agent.stopping:
                return
            await self.reload()

    async def _apply_service(self, old: ServiceConfig, new: ServiceConfig) -> None:
        self.stats.max_loop_lag = new.max_loop_lag
        self.stats.monitor.period = monitor_period(new.max_loop_lag)

        # The listener, its TLS and the console are made together: any change makes them
        # anew (the console's sessions and history start again).
        def listener(service: ServiceConfig) -> object:
            health = service.health
            return None if health is None else (health.listen, health.port, health.tls)

        moved = listener(old) != listener(new) or old.console != new.console
        if moved:
            await self._stop_health()
            await self._start_health()

    # ------------------------------------------------------------------ health endpoint

    async def _start_health(self) -> None:
        settings = self.agent.config.service.health
        if settings is None:
            return
        from edge_agent.service.health import HealthServer  # lazy: aiohttp, prometheus

        server = HealthServer(
            self.agent,
            self.stats,
            settings.listen,
            settings.port,
            console=self.agent.config.service.console,
            tls=settings.tls,
            config_path=self.config_path,
            logs=self.log_ring,
        )
        try:
            await server.start()
        except (OSError, ssl.SSLError) as exc:
            # Data collection matters more than its monitoring: keep running, say why.
            log.error(
                "health endpoint cannot listen; running without it",
                address=f"{settings.listen}:{settings.port}",
                error=str(exc),
            )
            return
        self.health = server

    async def _stop_health(self) -> None:
        server, self.health = self.health, None
        if server is not None:
            await server.stop()

    # ------------------------------------------------------------------ systemd

    async def _while_starting(self) -> None:
        """Ask systemd for more start time, and say why, until the agent has started."""
        while True:
            await asyncio.sleep(START_EXTEND_EVERY_S)
            outbox = self.agent.outbox
            doing = (
                f"starting: opening the outbox {outbox.path} (checking it)"
                if outbox is not None and not outbox.opened
                else "starting"
            )
            self.notifier.notify(extend_timeout_usec=int(START_EXTEND_S * 1e6), status=doing)

    async def _status_lines(self) -> None:
        while True:
            await asyncio.sleep(STATUS_LINE_EVERY_S)
            line = status_line(self.agent, self.stats)
            if line != self._status_sent:
                self._status_sent = line
                self.notifier.status(line)

    async def _watchdog(self) -> None:
        """Ping systemd at a quarter of WatchdogSec while the agent makes progress."""
        assert self.notifier.watchdog_seconds is not None
        period = self.notifier.watchdog_seconds / PINGS_PER_WATCHDOG
        loop = asyncio.get_running_loop()
        last_check = time.monotonic()
        withheld = False
        while True:
            expected = loop.time() + period
            await asyncio.sleep(period)
            own_lag = loop.time() - expected
            now = time.monotonic()
            problems = liveness_problems(
                self.stats.monitor,
                self.agent.sources,
                max_lag=self.stats.max_loop_lag,
                since=last_check,
                own_lag=own_lag,
                now=now,
            )
            last_check = now
            if problems:
                self.stats.watchdog_withheld += 1
                if not withheld:
                    withheld = True
                    log.error(
                        "watchdog ping withheld: the agent is not making progress; "
                        "systemd restarts it if this lasts",
                        problems=problems,
                    )
                continue
            self.notifier.watchdog()
            self.stats.watchdog_pings += 1
            if withheld:
                withheld = False
                log.info("watchdog pings resumed")

    # ------------------------------------------------------------------ MQTT status

    async def _status_documents(self) -> None:
        delay = FIRST_STATUS_DELAY_S
        while True:
            interval = self.agent.config.service.status_interval
            if interval <= 0:
                # Off; look again later, a reload may switch it on.
                await asyncio.sleep(FIRST_STATUS_DELAY_S)
                continue
            await asyncio.sleep(min(delay, interval))
            delay = interval
            if self.agent.stopping:
                return
            await self.publish_status()

    async def publish_status(self) -> int:
        """Publish the status document on every sink that carries one; return how many did."""
        payload = encode_status(status_document(self.agent, self.stats))
        published = 0
        for runner in list(self.agent.sinks):
            sink = runner.sink
            if not isinstance(sink, StatusPublisher):
                continue
            try:
                published += await sink.publish_status(payload)
            except SinkError as exc:
                # The sink runner already reports the sink's trouble; this is a detail.
                log.debug("status document not delivered", sink=runner.sink.name, error=str(exc))
        return published


async def serve(
    agent: Agent,
    *,
    config_path: Path | str | None = None,
    duration: float | None = None,
    on_config: Callable[[PlantConfig], None] | None = None,
) -> None:
    """Run ``agent`` as a service until SIGTERM/SIGINT, or for ``duration`` seconds.

    The agent is built: what it holds lives as long as the service, so the garbage
    collector leaves it alone from here on (:mod:`edge_agent.service.heap`)."""
    settle()
    await Supervisor(agent, config_path=config_path, on_config=on_config).run(duration)
