"""The agent's side of safe writes: the one gate, its audit log, the sinks that carry
commands, and the devices the gate reaches through the agent's pollers.

The Agent holds one :class:`~edge_agent.writes.service.WriteService` for its life (a
plant with anything writable, or an MQTT sink with ``commands: true``, has one; a plant
that writes nothing and takes no commands has none). Every
:class:`~edge_agent.sinks.base.TakesCommands` sink is handed the gate and publishes
the audit records. On reload the gate follows the new policy and keeps its rate
windows and the ids it has seen; sinks that come with the reload get the gate too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import structlog

from edge_agent.config import MqttSinkConfig, PlantConfig, SparkplugSinkConfig
from edge_agent.config.writes import AuditFiles
from edge_agent.runtime.source_runner import DeviceState, SourceRunner
from edge_agent.sinks.base import Sink, TakesCommands
from edge_agent.writes.audit import AuditLog
from edge_agent.writes.local_socket import LocalCommandSocket, LocalSocketError, socket_path
from edge_agent.writes.policy import PlantWrites
from edge_agent.writes.ports import AuditStore
from edge_agent.writes.service import WriteService

log = structlog.get_logger("edge_agent.service")

#: Opens the audit log in a directory with its rotation settings.
AuditFactory = Callable[[Path, AuditFiles], AuditStore]


def open_audit_log(directory: Path, files: AuditFiles) -> AuditStore:
    """The audit log of :mod:`edge_agent.writes.audit` (``<state_dir>/audit``)."""
    return AuditLog(directory, files.max_bytes, files.keep)


def wants_gate(config: PlantConfig) -> bool:
    """Anything writable, or a sink that carries commands in (an MQTT sink with
    ``commands: true``, any Sparkplug sink: hosts may send a DCMD): every command that
    arrives, refused ones too, is audited, and the audit log is the gate's."""
    takes = any(
        (isinstance(s, MqttSinkConfig) and s.commands) or isinstance(s, SparkplugSinkConfig)
        for s in config.sinks
    )
    return takes or PlantWrites.of(config).anything_writable


class RunnerDevices:
    """:class:`~edge_agent.writes.service.DeviceAccess` over the agent's pollers (the list
    changes on reload: it is asked for each time)."""

    def __init__(self, sources: Callable[[], Sequence[SourceRunner]]) -> None:
        self._sources = sources

    def device(self, name: str) -> tuple[object, DeviceState] | None:
        for runner in self._sources():
            if runner.device == name:
                return runner.driver, runner.state
        return None


class WritesWiring:
    """Builds the gate when the plant needs one and keeps the command sinks on it."""

    def __init__(
        self,
        sources: Callable[[], Sequence[SourceRunner]],
        audit_factory: AuditFactory | None = None,
    ) -> None:
        self._devices = RunnerDevices(sources)
        self._audit_factory = audit_factory or open_audit_log
        self.service: WriteService | None = None
        self._sinks: list[TakesCommands] = []
        self._socket: LocalCommandSocket | None = None
        self._started = False

    def configure(self, config: PlantConfig, sinks: Iterable[Sink] = ()) -> None:
        """At start and on every reload: the gate follows ``config``; made the first time
        the plant needs one (then the sinks already running get it)."""
        policy = PlantWrites.of(config)
        if self.service is not None:
            self.service.update(policy)
            return
        if not wants_gate(config):
            return
        audit = self._audit_factory(config.state_dir / "audit", config.commands.audit)
        self.service = WriteService(policy, self._devices, audit)
        if self._started:  # made by a reload: the replay window's ids, as at a start
            self.service.start()
        for sink in sinks:
            self.connect(sink)

    def start(self) -> None:
        """Before the sinks take commands: the ids of the audit log's replay window."""
        self._started = True
        if self.service is not None:
            self.service.start()

    async def open_socket(self, config: PlantConfig) -> None:
        """The local socket ``edge-agent write`` talks to, when the plant has a gate and
        ``commands.socket`` is on; at start, and after a reload that made the first gate."""
        if self._socket is not None or self.service is None or not config.commands.socket:
            return
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        listener = LocalCommandSocket(
            socket_path(config.state_dir), self.service, group=config.commands.socket_group
        )
        try:
            await listener.start()
        except LocalSocketError:
            return  # start() said why; MQTT and the console still reach the gate
        self._socket = listener

    async def close_socket(self) -> None:
        """No new commands from the socket; those in flight finish (bounded)."""
        listener, self._socket = self._socket, None
        if listener is not None:
            await listener.close()

    def connect(self, sink: Sink) -> None:
        """Hand ``sink`` the gate, if it carries commands; it publishes the audit records."""
        if not isinstance(sink, TakesCommands) or sink in self._sinks:
            return
        sink.take_commands(self.service)
        if self.service is not None:
            self.service.add_listener(sink.publish_audit)
            self._sinks.append(sink)

    def disconnect(self, sink: Sink) -> None:
        """``sink`` stops: no more commands through it, no more audit records to it."""
        if not isinstance(sink, TakesCommands) or sink not in self._sinks:
            return
        self._sinks.remove(sink)
        sink.take_commands(None)
        if self.service is not None:
            self.service.remove_listener(sink.publish_audit)
