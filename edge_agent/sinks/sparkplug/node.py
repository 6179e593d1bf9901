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
- A device is born before its first DDATA of the session, and again before a DDATA that
  needs a metric or datatype its birth did not have
  [tck-id-message-flow-device-birth-publish-nbirth-wait,
  tck-id-operational-behavior-data-publish-dbirth].
- Device offline/online from the stream: a data batch whose samples are all bad for a
  connection reason kills the device (one DDEATH) [tck-id-operational-behavior-device-ddeath];
  further such batches are dropped and counted; the next batch with a value that is not
  bad brings a DBIRTH (current values), then its DDATA.
- Historical: a batch read back from the outbox as historical, or collected before its
  device's latest DBIRTH (a metric window: its end), goes out with ``is_historical``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from edge_agent.config.catalog import DeviceInfo
from edge_agent.metrics.contract import metric_info
from edge_agent.model import REASON_DECODE, REASON_SENTINEL, Quality, SampleBatch
from edge_agent.sinks.sparkplug.metric_table import AliasAllocator, DeviceTable
from edge_agent.sinks.sparkplug.payloads import (
    encode_data,
    encode_dbirth,
    encode_ddeath,
    encode_nbirth,
    encode_ndeath,
)
from edge_agent.sinks.sparkplug.topics import Topics

#: (topic, payload) of one message.
Message = tuple[str, bytes]

#: seq runs 0..255 and wraps.
SEQ_MODULO: Final = 256

#: Reasons of bad samples that say something about a value, not about the link to the
#: device: a batch bad only for these does not make the device dead.
_VALUE_REASONS: Final = frozenset({REASON_DECODE, REASON_SENTINEL})
#: Modbus exception codes that mean the device cannot be reached (gateway path
#: unavailable, gateway target failed to respond); the others are answers.
_LINK_EXCEPTIONS: Final = frozenset({"exception code 10", "exception code 11"})


def is_connection_loss(batch: SampleBatch) -> bool:
    """True when every sample of ``batch`` is bad for a reason that says the device is
    not reachable (timeout, disconnected, invalid response, ...), not one about a value."""
    if not batch.qualities or batch.qualities.count(Quality.BAD) != len(batch.qualities):
        return False
    for reason in set(batch.reasons):
        if reason in _VALUE_REASONS:
            return False
        if reason.startswith("exception code") and reason not in _LINK_EXCEPTIONS:
            return False
    return True


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
    historical_batches: int = 0


@dataclass(slots=True)
class _Device:
    table: DeviceTable
    #: An agent device (from the catalog) rather than a virtual one (plant totals ...).
    described: bool
    #: DBIRTH sent in the current session, no DDEATH since.
    born: bool = False
    #: The latest batch delivered said the device cannot be reached.
    dead: bool = False
    #: Time of its latest DBIRTH (ns): batches collected before are historical.
    birth_ns: int = 0


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
    _seq: int = 0

    # ------------------------------------------------------------------ devices

    def describe(self, devices: Iterable[DeviceInfo]) -> bool:
        """Take the plant's devices; True when something changed that
        :meth:`reconcile` must publish (a DBIRTH of a changed device, a DDEATH of a removed
        one). A new or changed device gets a new table (aliases kept by the allocator)."""
        wanted = {self.device_id(info.name): info for info in devices}
        for device_id, info in wanted.items():
            old = self._devices.get(device_id)
            fresh = DeviceTable.from_device(info, self.allocator, device_id)
            if old is not None and old.described and _same_metrics(old.table, fresh):
                continue
            if old is not None:
                # Keep what was seen live, where the new table still has every name.
                for batch in old.table.latest_batches():
                    if all(name in fresh.metrics for name in batch.names):
                        fresh.see(batch)
                old.table, old.described = fresh, True
            else:
                self._devices[device_id] = _Device(fresh, described=True)
            self._changed.add(device_id)
            self._removed.pop(device_id, None)
        for device_id in [d for d, dev in self._devices.items() if dev.described]:
            if device_id not in wanted:
                self._removed[device_id] = self._devices.pop(device_id)
                self._changed.discard(device_id)
        return bool(self._changed or self._removed)

    def see_live(self, batch: SampleBatch) -> None:
        """A batch as it was collected: the latest values for births. O(1)."""
        self._device(self.device_id(batch.device)).table.see(batch)

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
        that is not dead [tck-id-operational-behavior-data-commands-rebirth-action-1..3]."""
        self._seq = 0
        self._changed.clear()
        self._removed.clear()
        nbirth = encode_nbirth(
            bd_seq,
            self._next_seq(),
            now_ms(),
            self.allocator,
            self.info.scan_rate_ms,
            self.info.properties,
        )
        messages = [(self.topics.nbirth, nbirth)]
        self.counters.births += 1
        for device_id, device in self._devices.items():
            device.born = False
            if not device.dead:
                messages.append(self._dbirth(device_id, device))
        return messages

    def ndeath(self, bd_seq: int) -> Message:
        """The NDEATH of session ``bd_seq`` (the Will, or sent before a clean disconnect)."""
        return self.topics.ndeath, encode_ndeath(bd_seq, now_ms())

    def _dbirth(self, device_id: str, device: _Device) -> Message:
        device.born = True
        device.birth_ns = self.clock_ns()
        self.counters.device_births += 1
        table = device.table
        payload = encode_dbirth(
            table, table.latest_batches(), self._next_seq(), device.birth_ns // 1_000_000
        )
        return self.topics.device("DBIRTH", device_id), payload

    def _ddeath(self, device_id: str, device: _Device) -> Message:
        device.born = False
        self.counters.device_deaths += 1
        payload = encode_ddeath(self._next_seq(), now_ms())
        return self.topics.device("DDEATH", device_id), payload

    def deliver(self, batch: SampleBatch) -> list[Message]:
        """The messages that deliver ``batch``: [DBIRTH or DDEATH,] DDATA, or nothing
        (a dead device's batch, counted)."""
        device_id = self.device_id(batch.device)
        device = self._device(device_id)
        if is_connection_loss(batch):
            if device.dead:
                self.counters.dead_batches_skipped += 1
                return []
            device.dead = True
            return [self._ddeath(device_id, device)] if device.born else []
        device.dead = False
        messages = []
        learned = device.table.admit(batch)
        if learned or not device.born:
            messages.append(self._dbirth(device_id, device))
        historical = batch.historical or _collected_ns(batch) < device.birth_ns
        if historical:
            self.counters.historical_batches += 1
        payload = encode_data(device.table, batch, self._next_seq(), historical)
        messages.append((self.topics.device("DDATA", device_id), payload))
        return messages

    def reconcile(self) -> list[Message]:
        """What a reload changed, for a born session: a DBIRTH of each changed device that
        is born (or not dead), a DDEATH of each removed device that was born."""
        messages = []
        for device_id, device in self._removed.items():
            if device.born:
                messages.append(self._ddeath(device_id, device))
        for device_id in sorted(self._changed):
            changed = self._devices.get(device_id)
            if changed is not None and not changed.dead:
                messages.append(self._dbirth(device_id, changed))
        self._changed.clear()
        self._removed.clear()
        return messages

    @property
    def device_ids(self) -> Mapping[str, bool]:
        """Every Sparkplug device id -> whether it is born in the current session."""
        return {device_id: device.born for device_id, device in self._devices.items()}


def _collected_ns(batch: SampleBatch) -> int:
    """When ``batch`` was collected: a metric window's end, else the batch time."""
    info = metric_info(batch)
    if info is not None and info.bounds is not None:
        return info.bounds[1]
    return batch.timestamp_ns


def _same_metrics(old: DeviceTable, new: DeviceTable) -> bool:
    """Whether a reload left the catalog part of a device as it was born (a datatype
    learned from values, where the catalog has none, is no change)."""
    for slot in new.metrics.values():
        mine = old.metrics.get(slot.name)
        if mine is None or (mine.unit, mine.description) != (slot.unit, slot.description):
            return False
        if slot.typed and mine.datatype != slot.datatype:
            return False
    return True
