"""The console's memory of recent samples: a bounded ring of batches per poll group.

Fed by the pipeline as one more consumer, it keeps each batch as a :class:`Kept`: the
batch's lists copied into tuples and bytes by C code (about 4 µs for 500 values), with
no Python work per value while nobody looks. Tuples of numbers and text, and bytes,
are not tracked by Python's garbage collector: kept as the batch's lists, ten thousand
tags' history made every full collection walk millions of slots (37 ms against 1 ms,
and full collections come often while the ring turns over). The values are picked out
only when a page asks for a tag's history.

The bounds are the console's settings: ``history`` seconds and ``history_points``
batches per group, whichever is reached first, and ``history_memory`` for the plant
(:func:`points_within`).

Metric batches (windows the metrics publish) are kept apart, by day, for the energy
page: a day of 15-minute blocks is 96 batches per meter. A demand guard's batch (one per
poll, live) is kept as the newest per meter only: kept like the others it would push a
day's blocks out of their group in 25 minutes. Event batches are kept apart too, the
newest :data:`EVENTS_KEPT` (for the energy and plant pages; nothing survives a restart).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from edge_agent.metrics.contract import event_info, metric_info
from edge_agent.model import Quality, SampleBatch, Value

#: Metric batches kept per (device, group): a day of 1-minute windows and then some.
METRIC_BATCHES_KEPT = 1_500
#: Event batches kept (a start and an end each): the console shows today's recent ones.
EVENTS_KEPT = 200
#: The metric family that is live (a batch per poll), kept as the newest per device only.
LIVE_FAMILY = "demand_guard"
#: What one kept value costs at most: a float (24 bytes), its slots in the value and
#: reason tuples, its quality byte, and its share of the entry
#: (tests/unit/test_console_server.py measures it).
BYTES_PER_VALUE = 50


class Kept:
    """One poll's values as the ring keeps them (see the module's docstring)."""

    __slots__ = (
        "group",
        "names",
        "qualities",
        "reasons",
        "timestamp_ns",
        "timestamps_ns",
        "values",
    )

    def __init__(self, batch: SampleBatch) -> None:
        self.group = batch.group
        self.timestamp_ns = batch.timestamp_ns
        self.names = batch.names
        self.values: tuple[Value, ...] = tuple(batch.values)
        self.qualities = bytes(batch.qualities)
        self.reasons: tuple[str, ...] = tuple(batch.reasons)
        self.timestamps_ns = None if batch.timestamps_ns is None else tuple(batch.timestamps_ns)

    def __len__(self) -> int:
        return len(self.names)

    def quality(self, index: int) -> Quality:
        return Quality(self.qualities[index])

    def sample_time_ns(self, index: int) -> int:
        if self.timestamps_ns is not None:
            return self.timestamps_ns[index]
        return self.timestamp_ns


def points_within(memory: int, tags: int, most: int) -> int:
    """Points per tag that keep ``tags`` tags' history within ``memory`` bytes."""
    return max(2, min(most, memory // (BYTES_PER_VALUE * max(1, tags))))


NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class TagPoint:
    """One kept sample of one tag."""

    timestamp_ns: int
    value: Value
    quality: Quality
    reason: str


class LiveRing:
    """Recent batches per (device, group), bounded in time and in count."""

    def __init__(
        self,
        history_s: float,
        max_points: int,
        change_groups: Set[tuple[str, str]] = frozenset(),
    ) -> None:
        self.history_ns = int(history_s * NS)
        self.max_points = max_points
        #: (device, group) of the groups that report changes only (OPC UA subscriptions).
        self.change_groups = change_groups
        self._groups: dict[tuple[str, str], deque[Kept]] = {}
        #: Per change-only group, tag -> where its last value is, for the batches that
        #: have left the ring: a steady value was reported once, long ago, and still holds.
        self._held: dict[tuple[str, str], dict[str, tuple[Kept, int]]] = {}
        self._metrics: dict[tuple[str, str], deque[SampleBatch]] = {}
        #: The newest live (demand guard) batch per device.
        self._live_metrics: dict[str, SampleBatch] = {}
        self._events: deque[SampleBatch] = deque(maxlen=EVENTS_KEPT)
        #: Per names tuple (shared by a group's batches): tag -> index.
        self._indexes: dict[int, tuple[Sequence[str], dict[str, int]]] = {}

    def append(self, batch: SampleBatch) -> None:
        """The pipeline's consumer: keep ``batch``; O(1), nothing per value."""
        if batch.historical:
            return  # replayed from a backlog: not what is happening now
        key = (batch.device, batch.group)
        if batch.attributes and self._kept_apart(key, batch):
            return
        ring = self._groups.get(key)
        if ring is None:
            ring = self._groups[key] = deque(maxlen=self.max_points)
        changes_only = key in self.change_groups
        if changes_only and len(ring) == ring.maxlen:
            self._hold(key, ring[0])  # about to fall off the full ring
        ring.append(Kept(batch))
        # Time bound: drop what fell out of the window (at most one or two per append).
        horizon = batch.timestamp_ns - self.history_ns
        while ring[0].timestamp_ns < horizon:
            dropped = ring.popleft()
            if changes_only:
                self._hold(key, dropped)

    def _kept_apart(self, key: tuple[str, str], batch: SampleBatch) -> bool:
        """A metric or event batch is kept apart from the poll groups (True)."""
        info = metric_info(batch)
        if info is not None:
            if info.family == LIVE_FAMILY:
                self._live_metrics[batch.device] = batch
                return True
            kept = self._metrics.get(key)
            if kept is None:
                kept = self._metrics[key] = deque(maxlen=METRIC_BATCHES_KEPT)
            kept.append(batch)
            return True
        if event_info(batch) is not None:
            self._events.append(batch)
            return True
        return False

    def _hold(self, key: tuple[str, str], kept: Kept) -> None:
        """A change-only batch leaves the ring: its values still hold until they change
        (work per changed value, for subscriptions only; a polled group's newest batch
        holds all its tags)."""
        held = self._held.setdefault(key, {})
        for index, tag in enumerate(kept.names):
            held[tag] = (kept, index)

    def resize(self, max_points: int, change_groups: Set[tuple[str, str]]) -> None:
        """New bounds after a reload changed the plant: every ring keeps its newest."""
        self.change_groups = change_groups
        if max_points == self.max_points:
            return
        self.max_points = max_points
        for key, ring in self._groups.items():
            if key in change_groups:
                for dropped in list(ring)[: max(0, len(ring) - max_points)]:
                    self._hold(key, dropped)
            self._groups[key] = deque(ring, maxlen=max_points)

    def forget_device(self, device: str) -> None:
        """A device removed by a reload: its history goes with it."""
        for store in (self._groups, self._metrics, self._held):
            for key in [k for k in store if k[0] == device]:
                del store[key]

    def keep_only(self, devices: set[str]) -> None:
        """Forget the poll groups of devices no longer polled (removed by a reload).

        Metric batches are kept: their devices are meters and machines, not pollers.
        """
        for key in [k for k in self._groups if k[0] not in devices]:
            del self._groups[key]
            self._held.pop(key, None)

    # -- reading (only when a page asks)

    def latest(
        self, device: str, groups: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[Kept, int]]:
        """The newest kept sample of every tag of ``groups`` (group -> its tag names).

        A polled group's last batch holds all its tags; a subscription's batches hold
        what changed, so its ring is walked back until every tag was seen, and what was
        not seen there comes from the values held since their batches left the ring.
        """
        found: dict[str, tuple[Kept, int]] = {}
        for group, names in groups.items():
            wanted = set(names)
            for batch in reversed(self._groups.get((device, group), ())):
                for index, tag in enumerate(batch.names):
                    if tag in wanted:
                        wanted.discard(tag)
                        found[tag] = (batch, index)
                if not wanted:
                    break
            held = self._held.get((device, group), {})
            for tag in wanted:
                if tag in held:
                    found[tag] = held[tag]
        return found

    def polls_since(self, device: str, since_ns: int) -> int:
        """Batches (polls) of ``device`` stamped at or after ``since_ns``."""
        count = 0
        for (name, _group), ring in self._groups.items():
            if name != device:
                continue
            for batch in reversed(ring):
                if batch.timestamp_ns < since_ns:
                    break
                count += 1
        return count

    def _samples(self, device: str, tag: str, most: int) -> Iterator[tuple[Kept, int]]:
        """Each kept batch of ``device`` holding ``tag``, with the tag's index in it;
        ``most`` > 0: at most about that many per group, evenly spaced, with the newest."""
        for (name, _group), ring in self._groups.items():
            if name != device or not ring:
                continue
            for kept in _thinned(ring, tag, most, self._index):
                index = self._index(kept.names).get(tag)
                if index is not None:
                    yield kept, index

    def history(self, device: str, tag: str, most: int = 0) -> list[TagPoint]:
        """The kept samples of one tag, oldest first; ``most`` > 0: at most about that
        many, evenly spaced (a sparkline needs no more), always with the newest."""
        points = [
            TagPoint(
                kept.sample_time_ns(index),
                kept.values[index],
                kept.quality(index),
                kept.reasons[index],
            )
            for kept, index in self._samples(device, tag, most)
        ]
        points.sort(key=lambda p: p.timestamp_ns)
        return points

    def series(self, device: str, tag: str, most: int = 0) -> list[list[float | None]]:
        """``[[unix seconds, number or None], ...]`` of one tag, oldest first, as charts
        take it: None where the sample was not good or not a finite number. ``most`` as
        in :meth:`history`. Made for every sparkline once a second: no object per point
        beyond the pair."""
        out: list[list[float | None]] = []
        good = int(Quality.GOOD)
        for kept, index in self._samples(device, tag, most):
            value = kept.values[index]
            number = (
                float(value)
                if kept.qualities[index] == good
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                else None
            )
            out.append([kept.sample_time_ns(index) / NS, number])
        out.sort(key=lambda point: point[0] or 0.0)
        return out

    def metric_batches(self, since_ns: int = 0) -> list[SampleBatch]:
        """Metric batches whose window starts (a live batch: made) at or after ``since_ns``,
        oldest first; of the live family, the newest per device only."""
        found = [
            batch
            for kept in (*self._metrics.values(), self._live_metrics.values())
            for batch in kept
            if batch.timestamp_ns >= since_ns
        ]
        found.sort(key=lambda b: b.timestamp_ns)
        return found

    def event_batches(self) -> list[SampleBatch]:
        """The newest :data:`EVENTS_KEPT` event batches, in the order they were made."""
        return list(self._events)

    @property
    def kept_values(self) -> int:
        """Values held now (for the console's own figures)."""
        return sum(len(b) for ring in self._groups.values() for b in ring)

    def _index(self, names: Sequence[str]) -> dict[str, int]:
        if type(names) is not tuple:  # a subscription's own list: not worth keeping
            return {name: i for i, name in enumerate(names)}
        cached = self._indexes.get(id(names))
        if cached is not None and cached[0] is names:
            return cached[1]
        index = {name: i for i, name in enumerate(names)}
        if len(self._indexes) > 10_000:
            self._indexes.clear()
        self._indexes[id(names)] = (names, index)
        return index


def _thinned(ring: deque[Kept], tag: str, most: int, index: Any) -> list[Kept]:
    """The kept batches holding ``tag`` (all of a poll group's do), at most about ``most``
    evenly spaced, always with the newest."""
    entries = list(ring)
    if entries and any(k.names is not entries[-1].names for k in entries):
        entries = [k for k in entries if tag in index(k.names)]
    if most > 0 and len(entries) > most:
        step = -(-len(entries) // most)
        entries = entries[::-1][::step][::-1]
    return entries
