"""The contract between the scheduler and a protocol driver (Modbus, OPC UA).

A driver only talks to its device: connect, read one poll group into a
:class:`~edge_agent.model.SampleBatch`, close. Intervals, alignment, timeouts,
backoff, device state and logging belong to :class:`~edge_agent.runtime.source_runner.SourceRunner`.
The core reaches drivers only through :mod:`drivers.registry`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True, slots=True)
class TagReading:
    """One tag read on demand (not by a poll): its value as a poll would have decoded it
    (engineering units, enum label), or None with the reason it is bad."""

    value: bool | int | float | str | None
    good: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """A write encoded for the device, not sent yet (a dry run stops here).

    ``expected`` is what a read of the tag should show once the device holds what is
    sent: the requested value through the encoding and back (a float32's rounding, a
    scaled integer's step), so the read-back compares like with like. ``sent`` says in
    words what goes on the wire (``holding 100-101 <- 40D0 0000 (function 16)``).
    ``payload`` is the driver's own (registers, a Variant); nobody else reads it.
    """

    tag: str
    requested: bool | int | float | str
    expected: bool | int | float | str
    sent: str
    payload: object


class WriteRefused(Exception):
    """The value cannot be written to the tag as configured (not representable in the
    tag's type, not one of its enum labels, a string too long, a read-only node);
    nothing was sent. The message says why, in words for the person who sent it."""


class WriteFailed(Exception):
    """The device answered the write with an error (Modbus exception code, OPC UA bad
    status): it did not take it. The message names the code and its meaning."""


class WriteOutcomeUnknown(Exception):
    """The write was sent and no valid answer came (timeout, garbled or mismatched
    reply, connection lost): the device may or may not have taken it. Never retried;
    the gate reads the tag back to find out."""


@runtime_checkable
class Writes(Protocol):
    """Optional: a driver that can write its device's tags (and call its methods).

    The driver writes whatever it is asked: the policy (which tags, which values, who,
    how often) is the gate's (:mod:`edge_agent.writes`). Every request shares the
    device's connection with the polls, one at a time, within the device's timeout.
    """

    async def prepare(self, tag: str, value: bool | int | float | str) -> PreparedWrite:
        """Encode ``value`` for ``tag`` (the inverse of the tag's decoding); raise
        :class:`WriteRefused` when it cannot be represented. May ask the device (an OPC
        UA node's DataType); raises DriverError when it cannot."""
        ...

    async def write(self, prepared: PreparedWrite) -> None:
        """Send it, once. Returns when the device confirmed; raises :class:`WriteFailed`
        or :class:`WriteOutcomeUnknown` (never retries)."""
        ...

    async def read_tag(self, tag: str) -> TagReading:
        """Read ``tag`` from the device now (the value before, the read-back, a
        condition). Raises DriverError when the device does not answer."""
        ...

    async def call(
        self, method: str, args: Mapping[str, bool | int | float | str]
    ) -> tuple[bool | int | float | str, ...]:
        """Call a configured method with its arguments (typed by the driver); its output
        arguments. Raises :class:`WriteRefused` (no such method, an argument that does
        not fit), :class:`WriteFailed` or :class:`WriteOutcomeUnknown`; a driver
        without methods raises WriteRefused."""
        ...
