"""What the gate needs from around it: the agent's running devices and the audit log.

Protocols, so the gate's tests give it an in-memory device and log, and the agent its
source runners and :class:`edge_agent.writes.audit.AuditLog`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from edge_agent.runtime.source_runner import DeviceState


class DeviceAccess(Protocol):
    """How the gate reaches a running device (the agent implements it over its runners)."""

    def device(self, name: str) -> tuple[object, DeviceState] | None:
        """The device's driver and its state now; None when it is not running."""
        ...


class AuditStore(Protocol):
    """The audit log as the gate uses it (:class:`edge_agent.writes.audit.AuditLog`)."""

    def append(self, record: Mapping[str, object]) -> None:
        """One record, flushed and fsynced; OSError when it cannot be written."""
        ...

    def recent_ids(self, since_ns: int) -> dict[str, tuple[int, str]]:
        """Ids of the commands recorded since ``since_ns``: id -> (time ns, outcome)."""
        ...

    def ready(self) -> str:
        """Make the log's place if need be; why it cannot be written there, or ``""``."""
        ...


#: Called with every audit record (a sink's ``publish_audit``); must not raise.
AuditListener = Callable[[Mapping[str, object]], None]
