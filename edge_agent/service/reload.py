"""Take a new plant file without a restart (SIGHUP, ``systemctl reload``): what changes.

This module decides (:func:`plan_reload`); :meth:`edge_agent.service.agent.Agent.reconfigure`
applies. Rules, in the order they are applied:

1. The new file is loaded and validated completely first, on a worker thread
   (:func:`load_for_reload`). If it is invalid, nothing changes: the agent keeps
   running the previous config and logs every problem with its ``file:line``.
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

The write gate follows the new file live (:mod:`edge_agent.service.writes_wiring`): the
``write:`` blocks, the console users allowed to write and ``commands:`` signatures,
key and max_age apply to the next command, and the rate windows and ids already seen
are kept. ``commands.audit`` (the log's files) and ``commands.socket`` /
``socket_group`` (the local socket) take effect at the next start.

``remote_config:`` follows the new file live as well: its keys verify the next
document, and the subscription moves to the sink it names (docs/REMOTE_CONFIG.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from drivers.registry import connection_key
from edge_agent.config import (
    DeviceConfig,
    InfluxSinkConfig,
    PlantConfig,
    SinkConfig,
    SparkplugSinkConfig,
)
from edge_agent.config.loader import load_config
from edge_agent.config.sparkplug import scan_rate_ms
from edge_agent.errors import ConfigError

#: Top-level sections this module applies live; any other difference waits for a restart.
#: ``templates_dir`` acts through the devices (templates are expanded, and read again, on
#: every load), which are compared one by one.
_LIVE_SECTIONS = frozenset(
    {
        "plant",
        "devices",
        "sinks",
        "logging",
        "service",
        "templates_dir",
        "commands",
        "remote_config",
    }
)
#: Settings of ``commands:`` that the gate does not take live.
_COMMANDS_AT_START = ("audit", "socket", "socket_group")


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
    #: The ``commands:`` section differs (the gate takes signatures, key, max_age live).
    commands_changed: bool = False
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
    later += [
        f"commands.{key}"
        for key in _COMMANDS_AT_START
        if getattr(old.commands, key) != getattr(new.commands, key)
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
        commands_changed=old.commands != new.commands,
        needs_restart=tuple(later),
    )


def _sink_inputs(sink: SinkConfig, plant: PlantConfig) -> object:
    """What a sink takes from the plant beyond its own section (it is restarted when that
    changes): the plant's identity, which MQTT renders into topics and InfluxDB into a
    tag, and for InfluxDB each device's type, labels and units (measurement and tags).
    The MQTT sink's device metadata is not among them: it is handed over live
    (:class:`~edge_agent.sinks.base.MetaPublisher`), without a reconnect."""
    if isinstance(sink, SparkplugSinkConfig):
        # The NBIRTH carries the plant's name, site and shortest poll interval; the bdSeq
        # file lives in state_dir. The devices come live (MetaPublisher: a DBIRTH).
        described = [d.describe() for d in plant.devices]
        return plant.plant, plant.state_dir, scan_rate_ms(described)
    if isinstance(sink, InfluxSinkConfig):
        described = [d.describe() for d in plant.devices]
        return plant.plant, [
            (d.name, d.device_type, d.labels, [(t.name, t.unit) for t in d.tags.values()])
            for d in described
        ]
    return plant.plant


@dataclass(slots=True)
class ReloadResult:
    applied: bool
    problems: list[str] = field(default_factory=list)
    plan: ReloadPlan | None = None


async def load_for_reload(
    path: Path | str, environ: Mapping[str, str] | None = None
) -> PlantConfig:
    """Load and validate ``path`` on a worker thread: no file, however large or hostile,
    holds up the event loop (collection goes on while it parses). Raises ConfigError.

    A thread of its own, gone when the parse is: reloads are rare, and the loop's default
    executor would keep an idle thread for the life of the agent.
    """
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="config-reload")
    loop = asyncio.get_running_loop()
    done = False
    try:
        config = await loop.run_in_executor(pool, load_config, path, environ)
        done = True
    except ConfigError:
        done = True
        raise
    finally:
        # Done (a result or ConfigError): the join is immediate. Cancelled (the agent is
        # stopping): the parse ends on its own, nobody waits for it.
        pool.shutdown(wait=done)
    return config


def connection_of(device: DeviceConfig) -> str:
    """Devices with the same key share a connection (and restart together)."""
    return connection_key(device)


def keep_running_devices(old: PlantConfig, new: PlantConfig, plan: ReloadPlan) -> PlantConfig:
    """``new`` with each device the reload leaves as it was given as the running model.

    A device the reload does not change keeps its runner, and the runner its model; the
    new file's model of it is equal but another object, with its own description
    (:func:`~edge_agent.config.catalog.described_once` keeps one per model) that sinks and
    metrics would build anew: twice the memory of every unchanged device for as long as
    it runs (about 0.8 kB a tag). Giving ``new`` the running model keeps one of each.
    """
    keep = {d.name: d for d in old.devices if d.name not in plan.devices_to_start}
    devices = [keep.get(d.name, d) for d in new.devices]
    if all(a is b for a, b in zip(devices, new.devices, strict=True)):
        return new
    return new.model_copy(update={"devices": devices})
