"""What one Sparkplug edge node publishes, decided without I/O: births, data, deaths.

:class:`EdgeNode` holds the devices (one :class:`~.metric_table.DeviceTable` each, aliases
from one allocator for the life of the process), which of them are born in the current
MQTT session, which are dead, and the message sequence number. The sink
(:mod:`.sink`) does the I/O: it asks for the births of a new session
(:meth:`EdgeNode.births`), for the messages of each batch it delivers
(:meth:`EdgeNode.deliver`) and for what a reload changed (:meth:`EdgeNode.reconcile`),
publishes them in order, and confirms them with one fence.

Rules (docs/SPARKPLUG.md, "Session and delivery"):

- seq: NBIRTH 0, then +1 for every message of the session (DBIRTH, DDATA, DDEATH),
  255 wraps to 0 [tck-id-payloads-sequence-num-zero-nbirth,
  tck-id-payloads-sequence-num-incrementing]; NDEATH has none [tck-id-payloads-ndeath-seq].
  A number is taken only by a message that was encoded: no gap when one cannot be.
- A device is born before its first DDATA of the session, and again before a DDATA that
  needs a metric or datatype its birth did not have
  [tck-id-message-flow-device-birth-publish-nbirth-wait,
  tck-id-operational-behavior-data-publish-dbirth]. A birth first learns the datatypes
  the latest live values tell (an OPC UA tag), so it carries them typed and good.
- A reload (:meth:`EdgeNode.describe`) only records what changed: the DBIRTH of a changed
  device and the DDEATH of a removed one go out before the next message of the node
  (every :meth:`EdgeNode.deliver` starts with :meth:`EdgeNode.reconcile`), so no DDATA
  ever uses an alias or a datatype its device was not born with. Batches of a removed
  device still in the outbox are dropped (counted), never a device again.
- Device offline/online (:mod:`.reach`): dead (one DDEATH) only when every poll group's
  latest *live* batch is all bad for a connection reason
  [tck-id-operational-behavior-device-ddeath]; further such batches are dropped and
  counted; the next live batch of a group that answers brings a DBIRTH (current values),
  then its DDATA. A batch replayed from the backlog (``historical``) never changes
  whether a device is dead: it goes out as historical DDATA. A metric, event or report
  batch or a replayed batch of a dead device goes out inside a short birth: DBIRTH,
  DDATA, DDEATH (one wrap per send).
- Historical: a batch read back from the outbox as historical, or one no newer than what
  its device's latest DBIRTH carried for its poll group (the time its values became known,
  :func:`~.metric_table.known_time_ns`: a poll's time, a window's or report's end), goes
  out with ``is_historical``: the host already holds something at least as current. A
  poll that started before the birth and answered after it is the current value.
- A batch that cannot be encoded goes out with every sample BAD ("not encodable"),
  counted; it never stops the batches after it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import structlog

from edge_agent.config.catalog import DeviceInfo
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug.datatypes import fits
from edge_agent.sinks.sparkplug.metric_table import (
    AliasAllocator,
    DeviceTable,
    Naming,
    known_time_ns,
    naming,
)
from edge_agent.sinks.sparkplug.payloads import (
    encode_data,
    encode_dbirth,
    encode_ddeath,
    encode_nbirth,
    encode_ndeath,
)
from edge_agent.sinks.sparkplug.reach import Reach, is_poll_batch
from edge_agent.sinks.sparkplug.topics import Topics

log = structlog.get_logger("edge_agent.sink.sparkplug")

#: (topic, payload) of one message.
Message = tuple[str, bytes]

#: seq runs 0..255 and wraps.
SEQ_MODULO: Final = 256

#: Reason of the samples of a batch the encoder failed on (a bug, or a value no check
#: foresaw): the batch goes out with every sample BAD, never blocks the ones after it.
REASON_NOT_ENCODABLE: Final = "not encodable"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the NBIRTH says about the node besides bdSeq and Rebirth."""

    #: ``Node Control/Scan Rate``: the plant's shortest poll interval, ms.
    scan_rate_ms: int
    #: ``Properties/<key>`` strings: agent version, plant, site.
    properties: Mapping[str, str]


@dataclass(slots=True)
class NodeCounters:
    """Counted for /metrics and the status (docs/SPARKPLUG.md)."""

    births: int = 0
    device_births: int = 0
    device_deaths: int = 0
    #: Batches of a dead device that were not sent (its DDEATH says it).
    dead_batches_skipped: int = 0
    #: Batches of a device a reload removed, still in the outbox: not sent.
    removed_batches_dropped: int = 0
    #: Batches (or births) the encoder failed on: sent with every sample BAD.
    unencodable_batches: int = 0
    historical_batches: int = 0


#: A device's catalog part as described: (name, datatype, typed, unit, description) per tag.
Catalog = tuple[tuple[object, ...], ...]


@dataclass(slots=True)
class _Device:
    table: DeviceTable
    #: An agent device (from the catalog) rather than a virtual one (plant totals ...).
    described: bool
    catalog: Catalog = ()
    reach: Reach = field(default_factory=Reach)
    #: DBIRTH sent in the current session, no DDEATH since.
    born: bool = False
    #: Every poll group said the device cannot be reached (:mod:`.reach`).
    dead: bool = False
    #: What its latest DBIRTH carried: (group, naming) -> the newest time (ns) its values
    #: became known; a batch of that group no newer is history to the host.
    carried: dict[tuple[str, Naming], int] = field(default_factory=dict)


@dataclass(slots=True)
class EdgeNode:
    """The Sparkplug state of one edge node (see the module docstring)."""

    topics: Topics
    info: NodeInfo
    #: Agent device name (or metric unit) -> Sparkplug device id.
    device_id: Callable[[str], str]
    clock_ns: Callable[[], int] = time.time_ns
    allocator: AliasAllocator = field(default_factory=AliasAllocator)
    counters: NodeCounters = field(default_factory=NodeCounters)
    _devices: dict[str, _Device] = field(default_factory=dict)
    #: Sparkplug device ids whose DBIRTH (changed by a reload) or DDEATH (removed) is due.
    _changed: set[str] = field(default_factory=set)
    _removed: dict[str, _Device] = field(default_factory=dict)
    #: Device ids a reload removed: their batches still in the outbox are dropped.
    _gone: set[str] = field(default_factory=set)
    #: (device id, exception type) already logged as not encodable.
    _unencodable_logged: set[tuple[str, str]] = field(default_factory=set)
    #: Dead devices born for a batch of their own: their DDEATH is due (:meth:`settle`).
    _dying: set[str] = field(default_factory=set)
    _seq: int = 0

    # ------------------------------------------------------------------ devices

    def describe(self, devices: Iterable[DeviceInfo]) -> bool:
        """Take the plant's devices; True when something changed that
        :meth:`reconcile` must publish (a DBIRTH of a changed device, a DDEATH of a removed
        one). A new or changed device gets a new table (aliases kept by the allocator); a
        change is a tag added, removed or changed (type, unit, description)."""
        wanted = {self.device_id(info.name): info for info in devices}
        for device_id, info in wanted.items():
            fresh = DeviceTable.from_device(info, self.allocator, device_id)
            catalog = _catalog(fresh)
            groups = {tag.group for tag in info.tags.values()}
            self._gone.discard(device_id)
            self._removed.pop(device_id, None)
            old = self._devices.get(device_id)
            if old is not None and old.described and old.catalog == catalog:
                old.reach.regroup(groups)
                continue
            if old is not None:
                _carry_live(old.table, fresh)
                old.table, old.described, old.catalog = fresh, True, catalog
                old.reach.regroup(groups)
            else:
                self._devices[device_id] = _Device(fresh, True, catalog, Reach(groups))
            self._changed.add(device_id)
        for device_id in [d for d, dev in self._devices.items() if dev.described]:
            if device_id not in wanted:
                self._removed[device_id] = self._devices.pop(device_id)
                self._changed.discard(device_id)
                self._gone.add(device_id)
        return bool(self._changed or self._removed)

    def see_live(self, batch: SampleBatch) -> None:
        """A batch as it was collected: the latest values for births. O(1)."""
        device_id = self.device_id(batch.device)
        if device_id not in self._gone:
            self._device(device_id).table.see(batch)

    def _device(self, device_id: str) -> _Device:
        device = self._devices.get(device_id)
        if device is None:
            # A unit of the metrics that is no agent device (plant totals, a line): a
            # Sparkplug device of its own, born with its first batch.
            device = self._devices[device_id] = _Device(
                DeviceTable(device_id, self.allocator), described=False
            )
        return device

    # ------------------------------------------------------------------ messages

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (seq + 1) % SEQ_MODULO
        return seq

    def births(self, bd_seq: int) -> list[Message]:
        """A new session (or a rebirth): NBIRTH with seq 0, then the DBIRTH of every device
        that is not dead [tck-id-operational-behavior-data-commands-rebirth-action-1..3].

        In a rebirth, a device a reload removed meanwhile and still born in this session
        gets its DDEATH first (it will not be born again)."""
        messages = [
            self._ddeath(device_id, device)
            for device_id, device in self._removed.items()
            if device.born
        ]
        self._changed.clear()
        self._removed.clear()
        self._seq = 0
        nbirth = encode_nbirth(
            bd_seq,
            self._seq,
            now_ms(),
            self.allocator,
            self.info.scan_rate_ms,
            self.info.properties,
        )
        self._next_seq()
        messages.append((self.topics.nbirth, nbirth))
        self.counters.births += 1
        for device_id, device in self._devices.items():
            device.born = False
            if not device.dead:
                messages += self._dbirth(device_id, device)
        return messages

    def end_session(self) -> None:
        """The MQTT session ended: its NDEATH (sent or the Will) ended every device too."""
        for device in self._devices.values():
            device.born = False
        self._removed.clear()
        self._dying.clear()

    def ndeath(self, bd_seq: int) -> Message:
        """The NDEATH of session ``bd_seq`` (the Will, or sent before a clean disconnect)."""
        return self.topics.ndeath, encode_ndeath(bd_seq, now_ms())

    def _dbirth(self, device_id: str, device: _Device) -> list[Message]:
        """The DBIRTH of ``device`` (none for a device with no metric yet: a virtual one
        seen only in empty batches)."""
        table = device.table
        latest = list(table.latest_batches())
        for batch in latest:
            table.admit(batch)  # learn what the live values tell (OPC UA types) first
        if not table.metrics:
            return []
        birth_ns = self.clock_ns()
        payload = self._encode_birth(device_id, table, latest, birth_ns // 1_000_000)
        device.born = True
        carried: dict[tuple[str, Naming], int] = {}
        for batch in latest:
            key = (batch.group, naming(batch))
            carried[key] = max(carried.get(key, 0), known_time_ns(batch))
        device.carried = carried
        self.counters.device_births += 1
        self._next_seq()
        return [(self.topics.device("DBIRTH", device_id), payload)]

    def _encode_birth(
        self, device_id: str, table: DeviceTable, latest: list[SampleBatch], stamp_ms: int
    ) -> bytes:
        try:
            return encode_dbirth(table, latest, self._seq, stamp_ms)
        except Exception as exc:  # noqa: BLE001 - any encoder failure: the birth goes out, values BAD
            self._unencodable(device_id, exc)
            bad = [_not_encodable(batch, exc) for batch in latest]
            return encode_dbirth(table, bad, self._seq, stamp_ms)

    def _ddeath(self, device_id: str, device: _Device) -> Message:
        device.born = False
        self.counters.device_deaths += 1
        payload = encode_ddeath(self._next_seq(), now_ms())
        return self.topics.device("DDEATH", device_id), payload

    def deliver(self, batch: SampleBatch, *, settle: bool = True) -> list[Message]:
        """The messages that deliver ``batch``: what a reload changed first, then
        [DBIRTH or DDEATH,] DDATA, or nothing (a dead or removed device's batch, counted).

        A batch of a dead device that still goes out (a metric window, event or report, a
        batch replayed from the backlog) is wrapped in a short birth: DBIRTH, DDATA,
        DDEATH. With ``settle`` False the DDEATH waits for :meth:`settle`, so that the
        batches of one send share one wrap (a replayed backlog of a dead device does not
        make it flap at the replay rate); the caller must call :meth:`settle` before
        publishing."""
        messages = self.reconcile()
        device_id = self.device_id(batch.device)
        if device_id in self._gone:
            self.counters.removed_batches_dropped += 1
            return messages
        device = self._device(device_id)
        if is_poll_batch(batch) and not batch.historical:
            # Only live batches say whether a device answers now: the outbox replays its
            # backlog beside the live lane, out of time order (an outage an hour old
            # must not kill a device that answers).
            device.reach.record(batch)
            if device.reach.dead:
                if device.dead:
                    self.counters.dead_batches_skipped += 1
                    return messages
                device.dead = True
                if device.born:
                    messages.append(self._ddeath(device_id, device))
                return messages
            device.dead = False
        if not batch.names:
            return messages
        messages += self._data(device_id, device, batch)
        if device.dead and device.born:
            # A metric window, event, report or replayed batch of a device that cannot be
            # reached: born for it, dead again at once (or at the end of the send).
            self._dying.add(device_id)
            if settle:
                messages += self.settle()
        return messages

    def settle(self) -> list[Message]:
        """The DDEATH of each dead device born for a batch of its own since the last call
        (see :meth:`deliver`)."""
        messages = []
        for device_id in sorted(self._dying):
            device = self._devices.get(device_id)
            if device is not None and device.dead and device.born:
                messages.append(self._ddeath(device_id, device))
        self._dying.clear()
        return messages

    def _data(self, device_id: str, device: _Device, batch: SampleBatch) -> list[Message]:
        messages = []
        learned = device.table.admit(batch)
        if learned or not device.born:
            messages += self._dbirth(device_id, device)
        historical = batch.historical or known_time_ns(batch) <= device.carried.get(
            (batch.group, naming(batch)), -1
        )
        try:
            payload = encode_data(device.table, batch, self._seq, historical)
        except Exception as exc:  # noqa: BLE001 - any encoder failure: the batch goes out BAD
            self._unencodable(device_id, exc)
            payload = encode_data(device.table, _not_encodable(batch, exc), self._seq, historical)
        if historical:
            self.counters.historical_batches += 1
        self._next_seq()
        messages.append((self.topics.device("DDATA", device_id), payload))
        return messages

    def _unencodable(self, device_id: str, exc: Exception) -> None:
        self.counters.unencodable_batches += 1
        key = (device_id, type(exc).__name__)
        if key not in self._unencodable_logged:
            self._unencodable_logged.add(key)
            log.error(
                "sparkplug: values could not be encoded; sent as bad (logged once per "
                "device and error)",
                device=device_id,
                reason=REASON_NOT_ENCODABLE,
                exc_info=exc,
            )

    def reconcile(self) -> list[Message]:
        """What a reload changed, for a born session: a DBIRTH of each changed device that
        is not dead, a DDEATH of each removed device that was born."""
        if not (self._changed or self._removed):
            return []
        messages = []
        for device_id, device in self._removed.items():
            if device.born:
                messages.append(self._ddeath(device_id, device))
        for device_id in sorted(self._changed):
            changed = self._devices.get(device_id)
            if changed is not None and not changed.dead:
                messages += self._dbirth(device_id, changed)
        self._changed.clear()
        self._removed.clear()
        return messages

    @property
    def device_ids(self) -> Mapping[str, bool]:
        """Every Sparkplug device id -> whether it is born in the current session."""
        return {device_id: device.born for device_id, device in self._devices.items()}


def _not_encodable(batch: SampleBatch, exc: Exception) -> SampleBatch:
    """``batch`` with every sample BAD, the reason naming the encoder's error."""
    n = len(batch.names)
    return dataclasses.replace(
        batch,
        values=[None] * n,
        qualities=[Quality.BAD] * n,
        reasons=[f"{REASON_NOT_ENCODABLE} ({type(exc).__name__})"] * n,
    )


def _catalog(table: DeviceTable) -> Catalog:
    """What a reload compares: the catalog's metrics (a datatype the catalog leaves to
    the values stays the placeholder here, so learning one is no change)."""
    return tuple(
        (slot.name, slot.datatype, slot.typed, slot.unit, slot.description)
        for slot in table.metrics.values()
    )


def _carry_live(old: DeviceTable, fresh: DeviceTable) -> None:
    """Keep the live batches a reload does not make wrong: every metric window, event and
    report, and a poll batch whose names the new table still has, with values that fit
    their (possibly new) datatypes."""
    for batch in old.latest_batches():
        if not is_poll_batch(batch) or _fits(fresh, batch.names, batch.values):
            fresh.see(batch)


def _fits(table: DeviceTable, names: Sequence[str], values: Sequence[Value]) -> bool:
    for name, value in zip(names, values, strict=True):
        slot = table.metrics.get(name)
        if slot is None:
            return False
        if value is not None and slot.typed and not fits(slot.datatype, value):
            return False
    return True
