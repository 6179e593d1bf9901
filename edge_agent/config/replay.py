"""Events kept to be built later, in little memory: :class:`Recorded`.

The builder (:mod:`.builder`) builds most of a file as its events come, but some
values are built later, or again: the items of a merge list (``<<: [...]``, built last
to first), the items of a merged list (``<<: *list``, built again at each merge), an
anchored value first needed by an alias after it was skipped where it is written.
Their events are kept for that, once, and never read again from the text
(:class:`Recordings`: the events of every anchored list, and of an anchored mapping
not built where it is written). The work to build any alias or merge is then what
the shape scan counted for it (an alias counts as the whole value it stands for)
before the builder saw it.

A libyaml event and its two marks cost about 300 bytes; most of a plant file is plain
scalars (``address: 12``) and lists and mappings with no anchor or tag, which are kept
here as their text (or a shared marker) and their line: about 12 bytes an event, plus
the text of a scalar not seen before. A 1,000-tag plant under one merge list then holds
about what it holds without one. Any other event is kept as it came.

An event given back (:meth:`Recorded.events`) has the kind, anchor, tag, value, style
and start line of the one recorded: all the builder reads. Its marks give the start
line only (column and index 0), so it must not go to the shape scan or to a syntax
error's message: those see only the events of the pass over the text.
"""

from __future__ import annotations

import functools
import sys
from array import array
from collections.abc import Iterator
from typing import Any

import yaml

#: A plain scalar's ``implicit`` and ``style`` as libyaml gives them.
_PLAIN = (True, False)
_PLAIN_STYLE = ""


class _Marker:
    """A list or mapping's start or end with no anchor or tag, kept as a shared object."""

    __slots__ = ("flow_style", "kind")

    def __init__(self, kind: type, flow_style: bool | None) -> None:
        self.kind, self.flow_style = kind, flow_style


_STARTS = {
    (kind, flow): _Marker(kind, flow)
    for kind in (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    for flow in (True, False, None)
}
_ENDS = {kind: _Marker(kind, None) for kind in (yaml.MappingEndEvent, yaml.SequenceEndEvent)}
_STARTERS = (yaml.MappingStartEvent, yaml.SequenceStartEvent)


class Recorded:
    """Events in the order they came: :meth:`append` them, read them back with
    :meth:`events`."""

    __slots__ = ("entries", "lines", "starts")

    def __init__(self) -> None:
        #: A plain scalar's text (str), a :class:`_Marker`, or the event itself.
        self.entries: list[Any] = []
        #: The 0-based line each event starts on.
        self.lines = array("I")
        self.starts: list[int] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, event: Any) -> None:  # Any: libyaml's events, taken by type()
        kind = type(event)
        entry: Any = event
        if kind is yaml.ScalarEvent:
            if (
                event.anchor is None
                and event.tag is None
                and event.style == _PLAIN_STYLE
                and event.implicit == _PLAIN
            ):
                entry = sys.intern(event.value)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            entry = _ENDS[kind]
        elif kind in _STARTERS and event.anchor is None and event.tag is None and event.implicit:
            entry = _STARTS.get((kind, event.flow_style), event)
        self.entries.append(entry)
        self.lines.append(event.start_mark.line)

    def item_starts(self) -> list[int]:
        """Where each item of the recorded list starts (its own start and end are the
        first and the last event); worked out once."""
        if self.starts is None:
            starts, depth = [], 0
            entries = self.entries
            for index in range(1, len(entries) - 1):
                if depth == 0:
                    starts.append(index)
                entry = entries[index]
                kind = entry.kind if type(entry) is _Marker else type(entry)
                if kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                    depth += 1
                elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                    depth -= 1
            self.starts = starts
        return self.starts

    def line(self, index: int) -> int:
        """The 1-based line of the event at ``index``."""
        return self.lines[index] + 1

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """The events from ``start`` to ``stop`` (the end), as events again."""
        entries, lines = self.entries, self.lines
        scalar = yaml.ScalarEvent
        for index in range(start, len(entries) if stop is None else stop):
            entry = entries[index]
            kind = type(entry)
            if kind is str:
                mark = _mark(lines[index])
                yield scalar(None, None, _PLAIN, entry, mark, mark, _PLAIN_STYLE)
            elif kind is _Marker:
                mark = _mark(lines[index])
                if entry.kind in _STARTERS:
                    yield entry.kind(None, None, True, mark, mark, flow_style=entry.flow_style)
                else:
                    yield entry.kind(mark, mark)
            else:
                yield entry


@functools.lru_cache(maxsize=4096)
def _mark(line: int) -> yaml.Mark:
    """A mark at the start of ``line`` (shared: nothing changes a mark)."""
    return yaml.Mark("", 0, line, 0, None, 0)


class Recordings:
    """The events of anchored lists and mappings, recorded as the document's events
    come (:meth:`start` at the anchored one's start, then :meth:`add` each event)."""

    __slots__ = ("by_anchor", "depths", "open")

    def __init__(self) -> None:
        self.by_anchor: dict[str, Recorded] = {}
        #: Recordings not finished yet, innermost last, and how many lists and
        #: mappings each has open.
        self.open: list[Recorded] = []
        self.depths: list[int] = []

    def start(self, anchor: str, event: Any) -> None:
        """Record from ``event``, the start of the list or mapping ``anchor`` names."""
        events = Recorded()
        events.append(event)
        self.by_anchor[anchor] = events
        self.open.append(events)
        self.depths.append(1)

    def add(self, event: Any, kind: type) -> None:
        """Add ``event`` (of type ``kind``) to every recording not finished yet."""
        step = (kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent) - (
            kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent
        )
        depths = self.depths
        for index, events in enumerate(self.open):
            events.append(event)
            depths[index] += step
        if depths[-1] == 0:  # the innermost one ends here
            self.open.pop()
            depths.pop()
