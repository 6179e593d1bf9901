"""The contract between the scheduler and a protocol driver (Modbus, OPC UA).

A driver only talks to its device: connect, read one poll group into a
:class:`~edge_agent.model.SampleBatch`, close. Intervals, alignment, timeouts,
backoff, device state and logging belong to :class:`~edge_agent.runtime.source_runner.SourceRunner`.
The core reaches drivers only through :mod:`drivers.registry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from edge_agent.model import SampleBatch


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """What the scheduler needs to know about one poll group."""

    name: str
    interval: float
    #: Tag names in batch order; the same tuple object is reused by every batch.
    names: tuple[str, ...]
    #: True when a read hands over only what changed (a subscription): the group's
    #: silence means "unchanged", so the scheduler must report its tags bad itself
    #: when the device goes offline.
    change_based: bool = False


class Driver(Protocol):
    @property
    def device(self) -> str:
        """The device name, as batches carry it."""
        ...

    @property
    def groups(self) -> Sequence[GroupSpec]: ...

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> None:
        """Open (or join) the connection; raise DriverConnectError on failure."""
        ...

    async def read(self, group: str) -> Sequence[SampleBatch]:
        """Read one poll group: the batches it yields, in order.

        A snapshot driver (Modbus, OPC UA reads) returns one batch; tags the device
        refused (exception codes, holes) come back bad inside it. A driver that hands
        over changes (OPC UA subscriptions) may return several batches, or none when
        nothing changed. A failure of the whole read (timeout, connection lost) raises
        :class:`~edge_agent.errors.DriverError` with the reason bad samples carry.
        """
        ...

    def read_budget(self, group: str) -> float:
        """Upper bound in seconds for one ``read(group)``; the scheduler's guard timeout."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class ExplainsBadSamples(Protocol):
    """Optional: a driver that can say, in its own terms, why samples came out bad.

    The runner asks only when a device's state changes (it logs the answer once), so
    the cost does not matter; the answer never goes to a sink.
    """

    def explain(self, batch: SampleBatch) -> str:
        """One line: the bad samples of ``batch``, where they live on the device, and
        what their reasons mean (e.g. ``exception code 2 (illegal data address):
        holding 40-41 (flow, total)``)."""
        ...


@runtime_checkable
class ShowsRaw(Protocol):
    """Optional: a driver that can show what each value was decoded from.

    For ``edge-agent run --once``, where a person compares the decoded value with the
    device's registers. Recording is off until :meth:`record_raw` is called, so the
    agent's polling does not pay for it.
    """

    def record_raw(self, on: bool = True) -> None:
        """From now on, keep what every read decoded each tag from; ``on=False`` stops
        (the console stops it when nobody has looked at the device for a while)."""
        ...

    def raw(self, group: str) -> Sequence[str]:
        """Per tag of ``group``, in batch order: what the last read decoded it from
        (registers in hex, a bit, a node id); ``""`` where nothing was read."""
        ...
