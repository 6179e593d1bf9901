"""Take a new plant file without a restart (SIGHUP, ``systemctl reload``).

Rules, in the order they are applied:

1. The new file is loaded and validated completely first. If it is invalid, nothing
   changes: the agent keeps running the previous config and logs every problem with
   its ``file:line``.
2. Everything that can fail while being built (sinks load their TLS files, drivers
   plan their reads) is built before anything running is touched, so a reload is
   applied fully or not at all.
3. Only what changed is restarted, compared model by model under the same name:
   a device whose config is equal keeps polling, a sink whose config is equal keeps
   its connection. Devices that share a connection (a Modbus gateway, a serial bus)
   are restarted together when one of them changes, is added or is removed, because
   they share one connection and one request queue.
4. Nothing buffered is thrown away. A changed sink's new runner reads the old
   runner's outbox view (same name, same cursor: its backlog goes to the new
   destination); a removed sink stops getting new batches and first gets
   ``service.drain_timeout`` to deliver what it holds, then its cursor is dropped.
   A reload that gives a plant its first sink opens the outbox then, as a start
   would (a sink the file already knows resumes its backlog); if the file cannot be
   opened, the reload is refused and the previous config keeps running.

Settings that cannot change under a running agent (``state_dir``, ``outbox``, and
sections this module does not know) are reported as "takes effect at the next start".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import structlog

from drivers.registry import build_drivers, connection_key
from edge_agent.config import DeviceConfig, InfluxSinkConfig, PlantConfig, SinkConfig
from edge_agent.config.loader import load_config
from edge_agent.driver import Driver
from edge_agent.errors import ConfigError
from edge_agent.outbox import Outbox, OutboxError
from edge_agent.redaction import register_secrets, secret_values
from edge_agent.runtime.sink_runner import SinkRunner
from edge_agent.runtime.source_runner import SourceRunner
from edge_agent.service.agent import Agent, build_sink, new_outbox
from edge_agent.sinks.base import Feed, Sink

log = structlog.get_logger("edge_agent.service")

_T = TypeVar("_T")

#: Top-level sections this module applies live; any other difference waits for a restart.
_LIVE_SECTIONS = frozenset({"plant", "devices", "sinks", "logging", "service"})


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What differs between two valid configs, by device and sink name."""

    devices_added: tuple[str, ...] = ()
    devices_removed: tuple[str, ...] = ()
    devices_changed: tuple[str, ...] = ()
    #: Unchanged, but on a connection shared with a device that changed, came or went.
    devices_restarted: tuple[str, ...] = ()
    sinks_added: tuple[str, ...] = ()
    sinks_removed: tuple[str, ...] = ()
    sinks_changed: tuple[str, ...] = ()
    logging_changed: bool = False
    service_changed: bool = False
    #: Top-level settings that changed but only apply at the next start.
    needs_restart: tuple[str, ...] = ()

    @property
    def devices_to_stop(self) -> tuple[str, ...]:
        return (*self.devices_removed, *self.devices_changed, *self.devices_restarted)

    @property
    def devices_to_start(self) -> tuple[str, ...]:
        return (*self.devices_added, *self.devices_changed, *self.devices_restarted)

    @property
    def unchanged(self) -> bool:
        return self == ReloadPlan()

    def describe(self) -> dict[str, list[str] | bool]:
        """Non-empty parts, for the log line. Names only, never values (secrets)."""
        return {name: list(v) if isinstance(v, tuple) else v for name, v in _fields(self) if v}


def _fields(plan: ReloadPlan) -> list[tuple[str, tuple[str, ...] | bool]]:
    return [(name, getattr(plan, name)) for name in plan.__dataclass_fields__]


def connection_of(device: DeviceConfig) -> str:
    """Devices with the same key share a connection (and restart together)."""
    return connection_key(device)


def plan_reload(old: PlantConfig, new: PlantConfig) -> ReloadPlan:
    """Compare two valid configs; decide what has to stop, start and restart."""
    old_devices = {d.name: d for d in old.devices}
    new_devices = {d.name: d for d in new.devices}
    added = [n for n in new_devices if n not in old_devices]
    removed = [n for n in old_devices if n not in new_devices]
    changed = [n for n in new_devices if n in old_devices and new_devices[n] != old_devices[n]]
    touched = {connection_of(old_devices[n]) for n in (*removed, *changed)}
    touched |= {connection_of(new_devices[n]) for n in (*added, *changed)}
    neighbours = [
        n
        for n, d in new_devices.items()
        if n in old_devices
        and n not in changed
        and (connection_of(d) in touched or connection_of(old_devices[n]) in touched)
    ]

    old_sinks = {s.name: s for s in old.sinks}
    new_sinks = {s.name: s for s in new.sinks}
    sinks_changed = [
        n
        for n in new_sinks
        if n in old_sinks
        and (
            new_sinks[n] != old_sinks[n]
            or _sink_inputs(new_sinks[n], new) != _sink_inputs(old_sinks[n], old)
        )
    ]
    later = [
        name
        for name in type(new).model_fields
        if name not in _LIVE_SECTIONS and getattr(old, name) != getattr(new, name)
    ]
    if new.metrics is not None and old.plant != new.plant:
        # Sinks pick up a new plant name or site live; the metrics keep the time zone and
        # names their open windows were started with until the next start.
        later.append("plant (for the metrics)")
    return ReloadPlan(
        devices_added=tuple(added),
        devices_removed=tuple(removed),
        devices_changed=tuple(changed),
        devices_restarted=tuple(neighbours),
        sinks_added=tuple(n for n in new_sinks if n not in old_sinks),
        sinks_removed=tuple(n for n in old_sinks if n not in new_sinks),
        sinks_changed=tuple(sinks_changed),
        logging_changed=old.logging != new.logging,
        service_changed=old.service != new.service,
        needs_restart=tuple(later),
    )


def _sink_inputs(sink: SinkConfig, plant: PlantConfig) -> object:
    """What a sink takes from the plant beyond its own section (it is restarted when that
    changes): the plant's identity, which MQTT renders into topics and InfluxDB into a
    tag, and for InfluxDB each device's type and labels (measurement and tags)."""
    if isinstance(sink, InfluxSinkConfig):
        return plant.plant, [(d.name, d.device_type, d.labels) for d in plant.devices]
    return plant.plant


@dataclass(slots=True)
class ReloadResult:
    applied: bool
    problems: list[str] = field(default_factory=list)
    plan: ReloadPlan | None = None


async def reload_from_file(
    agent: Agent,
    path: Path | str,
    *,
    environ: Mapping[str, str] | None = None,
    on_config: Callable[[PlantConfig], None] | None = None,
) -> ReloadResult:
    """Load ``path``; apply it if valid, else keep the running config and say why."""
    try:
        new = load_config(path, environ)
    except ConfigError as exc:
        log.error(
            "config reload refused: the file is invalid; the previous config keeps running",
            file=str(path),
            problems=exc.problems,
        )
        return ReloadResult(False, list(exc.problems))
    return await apply_config(agent, new, on_config=on_config)


async def apply_config(
    agent: Agent,
    new: PlantConfig,
    *,
    on_config: Callable[[PlantConfig], None] | None = None,
) -> ReloadResult:
    """Move ``agent`` from its config to ``new`` (valid), restarting only what changed."""
    async with agent.reconfiguring:
        if agent.stopping:
            return ReloadResult(False, ["the agent is stopping"])
        old = agent.config
        register_secrets(secret_values(new))  # before anything about ``new`` is logged
        plan = plan_reload(old, new)
        try:
            prepared = _prepare(plan, new, agent.outbox)
        except Exception as exc:
            # Nothing has been touched yet: refuse, keep running the previous config.
            problems = exc.problems if isinstance(exc, ConfigError) else [f"{exc}"]
            log.error(
                "config reload refused: the new config cannot be built; "
                "the previous config keeps running",
                problems=problems,
                error_type=type(exc).__name__,
            )
            return ReloadResult(False, list(problems), plan)
        if prepared.outbox is not None:
            try:
                await prepared.outbox.start()
            except OutboxError as exc:
                await prepared.outbox.close()
                log.error(
                    "config reload refused: the new sinks need the outbox, which cannot be "
                    "opened; the previous config keeps running",
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
        await _apply(agent, old, new, plan, prepared)
        agent.config = new
    if plan.unchanged:
        log.info("config reloaded: nothing changed")
    else:
        log.info("config reloaded", **plan.describe())
    if plan.needs_restart:
        log.warning(
            "some changes take effect only at the next start", settings=list(plan.needs_restart)
        )
    return ReloadResult(True, [], plan)


@dataclass(slots=True)
class _Prepared:
    sinks: dict[str, Sink]
    drivers: list[Driver]
    #: The outbox made by this reload (the plant's first sink), not yet adopted.
    outbox: Outbox | None = None


def _prepare(plan: ReloadPlan, new: PlantConfig, outbox: Outbox | None) -> _Prepared:
    configs = {s.name: s for s in new.sinks}
    made = new_outbox(new) if outbox is None and plan.sinks_added else None
    sinks = {
        name: build_sink(configs[name], new, outbox or made)
        for name in (*plan.sinks_added, *plan.sinks_changed)
    }
    starting = set(plan.devices_to_start)
    devices = [d for d in new.devices if d.name in starting]
    # model_copy skips validation on purpose: the subset is part of a validated plant.
    drivers = build_drivers(new.model_copy(update={"devices": devices})) if devices else []
    return _Prepared(sinks, drivers, made)


async def _apply(
    agent: Agent, old: PlantConfig, new: PlantConfig, plan: ReloadPlan, prepared: _Prepared
) -> None:
    # Pollers first (as on stop), so nothing new is collected for a sink in transition.
    stopping = set(plan.devices_to_stop)
    kept_counters = {}
    for runner in [r for r in agent.sources if r.device in stopping]:
        kept_counters[runner.device] = runner.counters
        await agent.detach_source(runner)

    new_configs = {s.name: s for s in new.sinks}
    within = new.service.drain_timeout
    if prepared.outbox is not None:
        agent.adopt_outbox(prepared.outbox)
    for sink_runner in [r for r in agent.sinks if r.sink.name in plan.sinks_removed]:
        await _remove_sink(agent, sink_runner, within)
    for sink_runner in [r for r in agent.sinks if r.sink.name in plan.sinks_changed]:
        name = sink_runner.sink.name
        await agent.halt_sink(sink_runner)  # an unconfirmed send stays buffered: it is re-sent
        await sink_runner.sink.stop()  # before the new one connects: its "offline" comes first
        buffer = hand_over_buffer(sink_runner.buffer, new_configs[name], agent.make_buffer)
        successor = SinkRunner(prepared.sinks[name], buffer)
        # Counters are per sink name and keep counting (Prometheus counters never go back).
        successor.counters = replace(sink_runner.counters, down_since_monotonic=None, last_error="")
        agent.replace_sink(sink_runner, successor)
    for name in plan.sinks_added:
        agent.attach_sink(SinkRunner(prepared.sinks[name], agent.make_buffer(new_configs[name])))
    _order(agent.sinks, [s.name for s in new.sinks], lambda r: r.sink.name)

    for driver in prepared.drivers:
        source = SourceRunner(driver, agent.pipeline.emit)
        previous = kept_counters.get(driver.device)
        if previous is not None:
            source.counters = replace(
                previous, last_progress_monotonic=0.0, state_since_monotonic=time.monotonic()
            )
        agent.attach_source(source)
    _order(agent.sources, [d.name for d in new.devices], lambda r: r.device)


async def _remove_sink(agent: Agent, runner: SinkRunner, within: float) -> None:
    name = runner.sink.name
    agent.replace_sink(runner, None)
    outbox = agent.outbox
    if outbox is not None:
        outbox.view(name).freeze()  # no new batches for it from now on
    drained = await runner.drain(within)
    await agent.halt_sink(runner)
    await runner.sink.stop()
    if not drained:
        log.warning(
            "removed sink could not deliver everything it had buffered before it was stopped",
            sink=name,
            undelivered_batches=len(runner.buffer),
        )
    if outbox is not None:
        outbox.remove_sink(name)  # its cursor goes: it no longer holds rows in the file


def hand_over_buffer(
    old: Feed,
    new_config: SinkConfig,
    make_buffer: Callable[[SinkConfig], Feed],
) -> Feed:
    """The buffer a changed sink's new runner starts with: the old runner's, always.

    The outbox keeps one view per sink name, so ``make_buffer`` gives back the very
    view the old runner drained: its cursor and backlog, and a send that was not
    confirmed (sent again), carry over to the new destination without moving a batch,
    and batches appended meanwhile are in it too. Anything else would lose or double
    data, so it is an error.
    """
    new = make_buffer(new_config)
    if new is not old:
        raise RuntimeError(f"sink {new_config.name}: a reload must keep its outbox view")
    return new


def _order(items: list[_T], names: Sequence[str], name_of: Callable[[_T], str]) -> None:
    """Sort ``items`` in place into config order (status and metrics list them that way)."""
    rank = {name: i for i, name in enumerate(names)}
    items.sort(key=lambda item: rank.get(name_of(item), len(rank)))
