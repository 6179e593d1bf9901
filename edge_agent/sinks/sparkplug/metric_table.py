"""The metrics of each Sparkplug device as born: names, aliases, datatypes, properties.

One :class:`DeviceTable` per Sparkplug device, built from the tag catalog
(:meth:`DeviceTable.from_device`) and extended by the batches it is shown
(:meth:`DeviceTable.admit`): a name it has not born yet (a metric batch's first window,
an event's first occurrence) or a value its datatype cannot carry (an OPC UA tag typed
by its first value) makes ``admit`` answer True, and the sink sends a new DBIRTH of the
device before the DDATA that needs it. Aliases come from one :class:`AliasAllocator` per
edge node, once per (device, name) for the life of the process, so a rebirth keeps them
(tck-id-payloads-alias-uniqueness).

Metric names (docs/SPARKPLUG.md, "Metric names and folders"): a tag's metric is its name;
a metric batch's are ``Edge Metrics/<Family>/<window>/<name>``
(``Edge Metrics/Energy/15m/kwh``), an event batch's ``Edge Metrics/Events/<event>/<name>``,
a report batch's single value ``Edge Metrics/Reports/<report>``: one folder no tag name
can equal (:data:`EDGE_METRICS`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from edge_agent.config.catalog import DeviceInfo
from edge_agent.metrics.contract import event_info, known_at_ns, metric_info, report_info
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug.datatypes import (
    INT_RANGE,
    PYTHON_TYPE,
    DataType,
    fits,
    tag_datatype,
    value_datatype,
)

#: Metric families (``family`` of a metric batch) -> their folder; any other family is
#: its name capitalised.
FAMILY_FOLDERS: Final = {
    "energy": "Energy",
    "demand": "Demand",
    "utilization": "Utilization",
    "oee": "OEE",
    "tariff": "Tariff",
    "carrier": "Carrier",
    "demand_guard": "Demand Guard",
    "baseline": "Baseline",
    "savings": "Savings",
}
#: The one folder that holds a unit's metric windows, events and reports on its device.
#: Its space keeps it apart from every tag: a tag name (config NAME_PATTERN) holds no
#: space and no ``/``, so no tag can ever be named like this folder, or stand beside one
#: of its subfolders, in any case (Sparkplug_6, Metric name: "a defined folder should
#: always remain a folder"; Ignition's tag paths do not tell case apart, and a meter's
#: counter is often a tag named ``energy``). The spec's own ``Node Control`` is spelled so.
EDGE_METRICS: Final = "Edge Metrics"
EVENTS_FOLDER: Final = f"{EDGE_METRICS}/Events"
REPORTS_FOLDER: Final = f"{EDGE_METRICS}/Reports"

#: The datatype a metric is born with while nothing tells its type (a tag typed by the
#: server whose first sample is bad, an event's ``end_s`` while the event runs). The
#: first value that says otherwise changes it, with a rebirth (docs/SPARKPLUG.md).
PLACEHOLDER: Final = DataType.String

#: Event sample names whose type is known before their first value.
_EVENT_TYPES: Final = {"start_s": DataType.Double, "end_s": DataType.Double}


def family_folder(family: str) -> str:
    """``energy`` -> ``Energy``, ``oee`` -> ``OEE``, ``water`` -> ``Water``."""
    return FAMILY_FOLDERS.get(family) or family[:1].upper() + family[1:]


@dataclass(frozen=True, slots=True)
class Naming:
    """How the samples of one kind of batch are named as metrics.

    ``prefix`` goes before each sample name; ``single`` (report batches) replaces the
    one sample's name altogether. ``window`` is set for metric batches, ``event`` for
    event batches.
    """

    prefix: str = ""
    single: str | None = None
    window: str | None = None
    event: bool = False

    def names(self, sample_names: Sequence[str]) -> tuple[str, ...]:
        if self.single is not None:
            return (self.single,) * len(sample_names)
        prefix = self.prefix
        return tuple(prefix + name for name in sample_names) if prefix else tuple(sample_names)


PLAIN: Final = Naming()


def naming(batch: SampleBatch) -> Naming:
    """The naming of ``batch`` (one truth test for a plain batch)."""
    if not batch.attributes:
        return PLAIN
    info = metric_info(batch)
    if info is not None:
        return Naming(
            f"{EDGE_METRICS}/{family_folder(info.family)}/{info.window}/", window=info.window
        )
    event = event_info(batch)
    if event is not None:
        return Naming(f"{EVENTS_FOLDER}/{event.event}/", event=True)
    report = report_info(batch)
    if report is not None:
        return Naming(single=f"{REPORTS_FOLDER}/{report.report}")
    return PLAIN


def known_time_ns(batch: SampleBatch) -> int:
    """When the values of ``batch`` became known (ns): for a metric batch, its ``as_of``
    when the producer says it is a running window's figure (the demand guard's live
    prediction, a baseline fit announced during the day), else its window END
    (:func:`~edge_agent.metrics.contract.known_at_ns`); the END of the reported period of
    a report batch; the batch time of any other.

    A metric batch's ``timestamp_ns`` is its window start (or, for the guard, its poll)
    and a report batch's the start of the day or shift it reports
    (edge_agent/metrics/contract.py, reports.py), yet a closed window's value does not
    exist before the period is over, and the timestamp alone cannot tell a running
    window's figure stamped at the very start (an announce at midnight, a poll on the
    block's first second) from a closed one. This is the time the DDATA of such a batch
    is stamped with (a payload is never stamped before its metrics), and the time
    compared with a device's birth to decide whether a batch is historical (a live 15 m
    window or daily report is not history because its period began before the birth).
    One truth test for an ordinary batch.
    """
    if not batch.attributes:
        return batch.timestamp_ns
    info = metric_info(batch)
    if info is not None:
        return known_at_ns(info, batch.timestamp_ns)
    if report_info(batch) is not None:
        return _report_end_ns(batch)
    return batch.timestamp_ns


def _report_end_ns(batch: SampleBatch) -> int:
    """The ``end_s`` of a report batch's JSON document (its attributes carry only the day
    and shift), to the millisecond; the batch time when the document does not say."""
    try:
        end_s = json.loads(str(batch.values[0]))["end_s"]
        if isinstance(end_s, bool) or not isinstance(end_s, int | float):
            return batch.timestamp_ns
        end_ns = round(end_s * 1000) * 1_000_000  # OverflowError, ValueError: inf, nan
    except (IndexError, KeyError, TypeError, ValueError, OverflowError):
        return batch.timestamp_ns
    return max(end_ns, batch.timestamp_ns)


class AliasAllocator:
    """Aliases for one edge node: unique across all its devices, stable for the process.

    Node metrics use the device ``""``. Aliases start at 1 and are never reused.
    """

    __slots__ = ("_aliases",)

    def __init__(self) -> None:
        self._aliases: dict[tuple[str, str], int] = {}

    def alias(self, device: str, name: str) -> int:
        key = (device, name)
        found = self._aliases.get(key)
        if found is None:
            found = self._aliases[key] = len(self._aliases) + 1
        return found

    def name_of(self, device: str, alias: int) -> str | None:
        """The metric of ``device`` that ``alias`` stands for (a DCMD may send only the
        alias, tck-id-payloads-alias-data-cmd-requirement); None if it is none of its.
        A scan: commands are rare, and the table is the one the births were made from."""
        for (owner, name), known in self._aliases.items():
            if known == alias:
                return name if owner == device else None
        return None


@dataclass(slots=True)
class MetricSlot:
    """One metric as born: the name and alias never change; the datatype may, by rebirth."""

    name: str
    alias: int
    datatype: DataType
    #: False while the datatype is the :data:`PLACEHOLDER` (nothing told the type yet).
    typed: bool
    #: True when the datatype comes from values rather than the catalog: such a metric's
    #: integers are range-checked on every batch (they might outgrow Int64).
    learned: bool
    unit: str = ""
    description: str = ""
    #: The metric window (``15m``, ``shift``), for metrics of metric batches.
    window: str | None = None


@dataclass(slots=True)
class Plan:
    """What one names tuple (one poll group's batches) means for this table."""

    slots: tuple[MetricSlot, ...]
    #: Python type of each value as the born datatypes expect it, NoneType for a slot
    #: whose datatype is the placeholder (so any first value is looked at).
    expected: tuple[type, ...]
    #: Positions of learned integer metrics (range-checked on every batch).
    learned_ints: tuple[int, ...]
    generation: int
    #: Per-plan data of the encoder (payloads.py), rebuilt with the plan.
    codec: object = None


#: Most plans a table keeps: one per poll group, and one per distinct subset of names of
#: OPC UA change batches (up to 2**tags of them), so the oldest goes beyond this.
MAX_PLANS: Final = 64

#: The key of a group's latest values in :attr:`DeviceTable.latest`: the batch's group
#: and naming (metric batches of several families share a window's group).
LatestKey = tuple[str, Naming]


#: A sample kept apart from its batch (:class:`Latest`): value, quality, reason, its
#: per-value time (None: the batch's), and its batch's (time, attributes, historical).
_Kept = tuple[Value, Quality, str, "int | None", tuple[int, dict[str, str], bool]]


@dataclass(slots=True)
class Latest:
    """The latest live values of one group, for births (:meth:`DeviceTable.see`).

    ``batch`` is the latest batch of the group. A polled group's batches all name the
    same tags, so each one replaces the last: one reference per batch. An OPC UA change
    batch names only the tags that changed; the samples of the previous batch that the
    new one does not carry move to ``older``, one small tuple per name (never a whole old
    batch kept alive for one value): at most one sample per tag in all.
    """

    batch: SampleBatch
    older: dict[str, _Kept] | None = None

    def take(self, batch: SampleBatch) -> None:
        """``batch`` is the group's newest (the live tap sees a group's batches in the
        order they were collected, and a driver hands over a tag's changes in order)."""
        old = self.batch
        self.batch = batch
        names = batch.names
        if old.names is names or old.names == names:
            return
        older = self.older if self.older is not None else {}
        fresh = set(names)
        origin = (old.timestamp_ns, old.attributes, old.historical)
        stamps: Sequence[int | None] = old.timestamps_ns or [None] * len(old.names)
        for name, value, quality, reason, stamp in zip(
            old.names, old.values, old.qualities, old.reasons, stamps, strict=True
        ):
            if name not in fresh:
                older[name] = (value, quality, reason, stamp, origin)
        if older:
            for name in names:
                older.pop(name, None)
        self.older = older or None

    def batches(self) -> Iterator[SampleBatch]:
        """The latest batch, and each older sample as a batch of its own."""
        batch = self.batch
        for name, (value, quality, reason, stamp, origin) in (self.older or {}).items():
            at, attributes, historical = origin
            yield SampleBatch(
                batch.device,
                batch.group,
                at,
                (name,),
                [value],
                [quality],
                [reason],
                None if stamp is None else [stamp],
                historical,
                attributes,
            )
        yield batch


@dataclass(slots=True)
class DeviceTable:
    """One Sparkplug device's metrics, in birth order, with the latest values seen live."""

    device_id: str
    allocator: AliasAllocator
    metrics: dict[str, MetricSlot] = field(default_factory=dict)
    #: Raised whenever a slot changes (a name added, a datatype set): plans are rebuilt.
    generation: int = 0
    #: Set when a name is added or a born datatype changes: a DBIRTH is due (admit()).
    _due: bool = False
    #: Aliases whose last live value went out with a quality other than GOOD (so the next
    #: GOOD one carries Quality 192 once): kept by the encoders.
    not_good: set[int] = field(default_factory=set)
    #: The latest live values of each group, for births (:meth:`see`): O(tags) in all.
    latest: dict[LatestKey, Latest] = field(default_factory=dict)
    #: Plans by (names, naming), at most :data:`MAX_PLANS` (the oldest made goes first).
    _plans: dict[tuple[Sequence[str], Naming], Plan] = field(default_factory=dict)

    @classmethod
    def from_device(
        cls, info: DeviceInfo, allocator: AliasAllocator, device_id: str | None = None
    ) -> DeviceTable:
        """The table of an agent device: every tag of the catalog, with its datatype."""
        table = cls(info.name if device_id is None else device_id, allocator)
        for tag in info.tags.values():
            datatype = tag_datatype(tag)
            table._add(
                tag.name,
                datatype,
                learned=datatype is None,
                unit=tag.unit,
                description=tag.description,
            )
        return table

    def _add(
        self,
        name: str,
        datatype: DataType | None,
        learned: bool,
        unit: str = "",
        description: str = "",
        window: str | None = None,
    ) -> MetricSlot:
        # Until a value tells the type: Double for a metric window's figure (they are
        # numbers; a window that opens uncertain and null would otherwise be born String
        # and born again at its first value), String for anything else.
        placeholder = PLACEHOLDER if window is None else DataType.Double
        slot = MetricSlot(
            name,
            self.allocator.alias(self.device_id, name),
            placeholder if datatype is None else datatype,
            typed=datatype is not None,
            learned=learned,
            unit=unit,
            description=description,
            window=window,
        )
        self.metrics[name] = slot
        self.generation += 1
        self._due = True
        return slot

    def plan(self, batch: SampleBatch) -> Plan:
        """The plan of ``batch``'s names (cached; rebuilt after any change of the table).

        Adds the names the table does not hold yet (see :meth:`admit`).
        """
        names = batch.names
        key = (names if isinstance(names, tuple) else tuple(names), naming(batch))
        plans = self._plans
        plan = plans.get(key)
        if plan is not None:
            if plan.generation == self.generation:
                return plan
        elif len(plans) >= MAX_PLANS:
            del plans[next(iter(plans))]
        plan = plans[key] = self._build(key)
        return plan

    def _build(self, key: tuple[Sequence[str], Naming]) -> Plan:
        names, how = key
        slots = []
        for sample_name, name in zip(names, how.names(names), strict=True):
            slot = self.metrics.get(name)
            if slot is None:
                known = _EVENT_TYPES.get(sample_name) if how.event else None
                slot = self._add(name, known, learned=known is None, window=how.window)
            slots.append(slot)
        expected = tuple(
            PYTHON_TYPE.get(slot.datatype, object) if slot.typed else type(None) for slot in slots
        )
        learned_ints = tuple(
            i
            for i, slot in enumerate(slots)
            if slot.learned and slot.typed and slot.datatype in INT_RANGE
        )
        return Plan(tuple(slots), expected, learned_ints, self.generation)

    def admit(self, batch: SampleBatch) -> bool:
        """Learn what ``batch`` tells; True when a DBIRTH is due before its DDATA.

        Due when the batch holds a name not born yet, or a value the born datatype cannot
        carry (the datatype then becomes the value's: :func:`value_datatype`), or the first
        value of a metric born with the placeholder datatype says another type. Values no
        datatype can carry change nothing: the encoder sends them as bad.
        """
        self._due = False
        plan = self.plan(batch)
        values = batch.values
        if tuple(map(type, values)) != plan.expected:
            self._learn(plan.slots, values)
        elif plan.learned_ints:  # right types; integers typed by value may outgrow theirs
            ints = plan.learned_ints
            self._learn([plan.slots[i] for i in ints], [values[i] for i in ints])
        due, self._due = self._due, False
        return due

    def _learn(self, slots: Sequence[MetricSlot], values: Sequence[Value]) -> None:
        for slot, value in zip(slots, values, strict=True):
            if value is None or (slot.typed and fits(slot.datatype, value)):
                continue
            datatype = value_datatype(value)
            if datatype is None:
                continue  # nothing can carry it: sent as bad, the datatype stays
            if slot.datatype is DataType.Float and datatype is DataType.Double:
                # A float32 tag's value beyond float32's range: the driver decoded a
                # float32, so the value is wrong, not the type. Sent as bad.
                continue
            if not slot.typed and (
                datatype == slot.datatype
                or (slot.datatype is DataType.Double and datatype is DataType.Int64)
            ):
                # The placeholder was right (or a window's Double carries this integer):
                # no rebirth needed.
                slot.typed = True
            else:
                slot.datatype, slot.typed, slot.learned = datatype, True, True
                self._due = True
            self.generation += 1

    def see(self, batch: SampleBatch) -> None:
        """Remember ``batch``'s values as the latest of its group, for births: one
        reference per batch of a polled group; a change batch that names other tags than
        the one before costs one step per name of the two (:class:`Latest`)."""
        if not batch.names:
            return  # a proof of life of a change-based group: no value
        key = (batch.group, naming(batch))
        entry = self.latest.get(key)
        if entry is None:
            self.latest[key] = Latest(batch)
        else:
            entry.take(batch)

    def latest_batches(self) -> Iterable[SampleBatch]:
        """The batches that hold the latest live values (a name may be in several, from
        different groups: the births take the newest by time)."""
        for entry in self.latest.values():
            yield from entry.batches()

    def forget(self) -> None:
        """Drop the latest values (a device whose values are no longer current)."""
        self.latest.clear()
