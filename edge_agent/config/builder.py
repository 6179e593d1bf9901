"""A YAML document as plain data, built straight from libyaml's events, with the line
of every key and list item.

Why not ``yaml.safe_load``: it forgets where each value came from, silently keeps the
last of two duplicate keys, and cannot tell which scalar held a ``${VAR}``. Why not a
node tree (``yaml.compose``): a node and two marks per key and value cost 3.7 kB per
tag, 366 MiB for a 100,000-tag plant, only to be thrown away. The builder takes the
events one at a time instead (:func:`~edge_agent.config.document.read_document` feeds
it, in the same pass as the shape scan), keeps no mark beyond the event at hand,
records lines in a compact :class:`~edge_agent.config.source_map.SourceMap`, expands
environment references (:mod:`.scalars`), and collects what it finds wrong as (line,
message) instead of raising.

It expects events the scan passed: no alias before its anchor or inside it, bounded
depth, lists and mappings as keys already reported there (they are skipped here).

An alias of a list or mapping is built once: every later use is the same Python
value, not a copy, so aliases cost nothing however often they repeat, and the source
map remembers where the value was written (:attr:`SourceMap.origins`), so a problem in
an aliased or merged value still names the line it is written on. An alias of a
scalar is read again where it is used. The line of an alias is its anchor's line.

Merge keys (``<<: *defaults``, ``<<: [*a, *b]``): explicit keys win over merged ones,
the first of a list over later ones; a list's items are built last to first, and the
items of a merged list (``<<: *list``) are built again at each merge, as they were
before the reader went one-pass (a problem in them is reported at each merge's path).

A value built away from its place (a merged list's items, a value under a key that
is skipped or in a merge list, first needed by a later alias) is built from its events
as recorded the first time through (:mod:`.replay`), never parsed again. Events built
again count against an ``allowance``: past it the builder raises :class:`Overbuilt`
(a small file may stand for millions of values, and the scan refuses it only at its
last line), and the caller measures the rest of the file before building more.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from edge_agent.config.checks.common import Loc, format_path, short_repr
from edge_agent.config.frames import (
    BESIDE,
    MERGE,
    MERGE_KEY,
    PATH,
    SKIP,
    Built,
    Event,
    Frame,
    Map,
    MergeList,
    Seq,
    Skip,
    as_steps,
    child_path,
    is_path_key,
    map_record,
    write,
)
from edge_agent.config.replay import Recorded, Recordings
from edge_agent.config.scalars import MERGE_TAG, SLOW, UNREADABLE, Scalars
from edge_agent.config.source_map import Items, Record, SourceMap, Steps

__all__ = ["Builder", "Overbuilt", "SourceMap"]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


class Overbuilt(Exception):
    """Values built again (aliases, merges) went past the builder's allowance."""


class Builder:
    """Turns libyaml's events (:meth:`feed`) into plain data plus a :class:`SourceMap`."""

    def __init__(
        self,
        source: SourceMap,
        env: Mapping[str, str] | None,
        allowance: Callable[[], int] | None = None,
    ) -> None:
        """``env`` None: the document reads no environment (a template), and says so.
        ``allowance``: how many events may be built again so far (asked each time the
        last answer is used up); None: no bound (the file is known to be in its limits)."""
        self.source = source
        self.scalars = Scalars(env)
        self.problems = self.scalars.problems
        self.reported = self.scalars.reported
        self.bool_words = self.scalars.bool_words
        self.data: Any = None
        self._stack: list[Frame] = []
        #: Anchor -> the list or mapping as first built.
        self._built: dict[str, Built] = {}
        #: Anchor of a scalar -> its event (read again at each alias).
        self._scalar_anchors: dict[str, Event] = {}
        #: Anchor of a list or mapping -> its tag and whether it is a list.
        self._collections: dict[str, tuple[str, bool]] = {}
        #: Keys tuples shared by the mappings' records.
        self._key_tuples: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        #: Anchor -> the events of its list or mapping (a mapping built where it is
        #: written needs none).
        self._recordings = Recordings()
        self._events = self._recordings.by_anchor
        self._allowance = allowance
        #: Events built again so far, and how many may be before asking again.
        self._again = 0
        self._allowed = 0 if allowance is not None else sys.maxsize

    # ------------------------------------------------------------------ events

    def feed(self, event: Event) -> None:
        """Take the next event of the document (each event once, in order)."""
        kind = type(event)
        if self._recordings.open:
            self._recordings.add(event, kind)
        anchor = getattr(event, "anchor", None)
        if anchor is None:
            self._feed(event)
        elif kind is yaml.ScalarEvent:
            self._scalar_anchors[anchor] = event
            self._feed(event)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            tag = event.tag or (_MAP_TAG if kind is yaml.MappingStartEvent else _SEQ_TAG)
            self._collections[anchor] = (tag, kind is yaml.SequenceStartEvent)
            self._feed(event)
            stack = self._stack
            if kind is yaml.SequenceStartEvent or not (
                stack and type(stack[-1]) is Map and stack[-1].anchor == anchor
            ):  # a list may be merged later; a mapping not built here is built later
                self._recordings.start(anchor, event)
        else:
            self._feed(event)

    def _feed(self, event: Event) -> None:
        """Take the next event, of the document or of a value built again."""
        kind = type(event)
        stack = self._stack
        if not stack:
            if kind in _VALUE_EVENTS:
                self._value(event, ())
            return
        top = stack[-1]
        if type(top) is Map:
            if top.at_key:
                self._key(top, event)
            elif top.mode == SKIP or top.mode == MERGE_KEY:
                self._skip(top, event)
            elif top.mode == MERGE:
                self._merge_value(top, event)
            else:
                self._value(event, child_path(top))
        elif type(top) is Seq:
            self._value(event, (*top.path, len(top.items)))
        elif type(top) is Skip:
            self._skipping(top, event)
        else:
            assert isinstance(top, MergeList)
            if top.building:
                self._value(event, (*top.path, "<<", top.index))
            else:
                self._buffer(top, event)

    def scalar(self, event: Event) -> None:
        """Take the next event, a scalar without an anchor: :meth:`feed`, faster for
        the everyday key or value (nine events in ten)."""
        if self._recordings.open:
            for events in self._recordings.open:
                events.append(event)
        stack = self._stack
        top = stack[-1] if stack else None
        kind = type(top)
        if kind is Map:
            assert isinstance(top, Map)
            if top.at_key:
                key = self.scalars.plain_key(event)
                if key is SLOW or key in top.seen_at or top.steps is not None:
                    self._key(top, event)
                    return
                line = event.start_mark.line + 1
                top.seen_at[key] = line
                top.key = key
                top.at_key = False
                top.mode = PATH
                top.keys.append(key)
                top.line_list.append(line)
                return
            if top.mode != PATH:
                self._feed(event)
                return
            value = self.scalars.plain(event)
            if value is SLOW:
                line = event.start_mark.line + 1
                value = self.scalars.value(event, line, (*top.path, top.key))
            top.result[top.key] = value
            top.at_key = True
            if top.steps is None and top.kids is not None:
                top.kids.append(None)
        elif kind is Seq:
            assert isinstance(top, Seq)
            line = event.start_mark.line + 1
            value = self.scalars.plain(event)
            if value is SLOW:
                value = self.scalars.value(event, line, (*top.path, len(top.items)))
            top.items.append(value)
            top.lines.append(line)
            if top.kids is not None:
                top.kids.append(None)
        else:
            self._feed(event)

    def _value(self, event: Event, path: Loc) -> None:
        """Start (or, for a scalar or an alias, build) the value at ``path``."""
        kind = type(event)
        line = event.start_mark.line + 1
        if kind is yaml.ScalarEvent:
            self._done(self.scalars.value(event, line, path), line, None, path)
        elif kind is yaml.AliasEvent:
            self._alias(event.anchor, path)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            anchor = event.anchor
            built = self._built.get(anchor) if anchor is not None else None
            if built is not None:  # read again (a value built away from its place)
                self.source.origins[path] = built.path
                self._stack.append(Skip(built))
            elif kind is yaml.MappingStartEvent:
                self._stack.append(Map(path, line, anchor))
            else:
                self._stack.append(Seq(path, line, anchor))
        elif isinstance(event, yaml.CollectionEndEvent):
            self._end(self._stack.pop())

    def _alias(self, anchor: str, path: Loc) -> None:
        scalar = self._scalar_anchors.get(anchor)
        if scalar is not None:  # a scalar is read again where it is used
            line = scalar.start_mark.line + 1
            self._done(self.scalars.value(scalar, line, path), line, None, path)
            return
        built = self._built.get(anchor)
        if built is not None:  # the value again, not a copy
            self.source.origins[path] = built.path
            self._done(built.value, built.line, None, built.path)
            return
        self._replay(self._events[anchor], 0, None)  # first built here, from its events

    def _replay(self, events: Recorded, start: int, stop: int | None) -> None:
        """Build recorded events (again), within the allowance."""
        for event in events.events(start, stop):
            self._again += 1
            if self._again > self._allowed:
                assert self._allowance is not None
                self._allowed = self._allowance()
                if self._again > self._allowed:
                    raise Overbuilt
            self._feed(event)

    def _end(self, frame: Frame) -> None:
        """A list or mapping is complete: give it to its parent."""
        record: Record | None
        value: Any
        if type(frame) is Map:
            value = self._map_value(frame)
            record = map_record(frame, self._key_tuples)
        else:
            assert isinstance(frame, Seq)
            value = frame.items
            record = Items(frame.lines, frame.kids)
        if frame.anchor is not None:
            self._built[frame.anchor] = Built(value, frame.path, frame.line)
        self._done(value, frame.line, record, frame.path)

    def _done(self, value: Any, line: int, record: Record | None, origin: Loc) -> None:
        """A value is built (``origin``: where it was built first); ``line``: its line."""
        stack = self._stack
        if not stack:
            self.data = value
            self.source.tree = record
            return
        top = stack[-1]
        if type(top) is Seq:
            top.items.append(value)
            top.lines.append(line)
            if record is not None:
                if top.kids is None:
                    top.kids = [None] * (len(top.items) - 1)
                top.kids.append(record)
            elif top.kids is not None:
                top.kids.append(None)
        elif type(top) is Map:
            self._map_child(top, value, line, record, origin)
        else:
            assert isinstance(top, MergeList)
            self._merge_item(top, value, record, origin)

    # ------------------------------------------------------------------ mappings

    def _key(self, frame: Map, event: Event) -> None:
        kind = type(event)
        if kind is yaml.MappingEndEvent:
            self._end(self._stack.pop())
            return
        frame.at_key = False
        if kind is yaml.AliasEvent:
            scalar = self._scalar_anchors.get(event.anchor)
            if scalar is None:  # a list or mapping as a key: reported by the scan
                tag, _ = self._collections[event.anchor]
                frame.mode = MERGE if tag == MERGE_TAG else SKIP
                return
            event = scalar
        elif kind is not yaml.ScalarEvent:  # a list or mapping as a key: skipped
            frame.mode = MERGE_KEY if event.tag == MERGE_TAG else SKIP
            self._stack.append(Skip(of_key=True))
            return
        line = event.start_mark.line + 1
        key = self.scalars.plain_key(event)
        if key is SLOW:
            tag = self.scalars.tag(event)
            if tag == MERGE_TAG:
                frame.mode = MERGE
                return
            key = self.scalars.key(event.value, tag, line, frame.path)
            if key is UNREADABLE:
                frame.mode = SKIP
                return
        seen_at = frame.seen_at
        if key in seen_at:
            path = frame.path
            where = format_path((*path, key)) if is_path_key(key) else format_path(path)
            self.problems.append(
                (line, f"{where}: duplicate key {short_repr(key)} (first at line {seen_at[key]})")
            )
            frame.mode = SKIP
            return
        seen_at[key] = line
        frame.key = key
        if type(key) is str or is_path_key(key):
            frame.mode = PATH
            if frame.steps is None:
                frame.keys.append(key)
                frame.line_list.append(line)
            else:
                write(frame.steps, key, line, None)
        else:  # None, True, 1.5, a date: pydantic says what is wrong with the key
            frame.mode = BESIDE

    def _map_child(
        self, frame: Map, value: Any, line: int, record: Record | None, origin: Loc
    ) -> None:
        mode = frame.mode
        frame.at_key = True
        if mode == PATH:
            frame.result[frame.key] = value
            if frame.steps is not None:
                write(frame.steps, frame.key, None, record)
            elif record is not None:
                if frame.kids is None:
                    frame.kids = [None] * (len(frame.keys) - 1)
                frame.kids.append(record)
            elif frame.kids is not None:
                frame.kids.append(None)
        elif mode == BESIDE:
            frame.result[frame.key] = value
            if record is not None:  # its lines are written at this mapping's path
                steps = as_steps(frame)
                for step, (step_line, kid) in record.entries().items():
                    write(steps, step, step_line, kid)
        elif mode == MERGE:
            self._merge(frame, value, line, origin, (*frame.path, "<<"))
            if record is not None:
                write(as_steps(frame), "<<", None, record)
        # SKIP, MERGE_KEY: a skipped value has nothing to give

    def _skip(self, frame: Map, event: Event) -> None:
        """The value of a key that is skipped, or what follows a list as a merge key."""
        if frame.mode == MERGE_KEY:  # `!!merge [a]: ...` after its key was skipped
            frame.mode = MERGE
            self._merge_value(frame, event)
            return
        if isinstance(event, yaml.CollectionStartEvent):
            self._stack.append(Skip())
        else:
            frame.at_key = True

    def _skipping(self, frame: Skip, event: Event) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            frame.depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            frame.depth -= 1
            if frame.depth == 0:
                self._stack.pop()
                if frame.reuse is not None:
                    built = frame.reuse
                    self._done(built.value, built.line, None, built.path)
                    return
                if not frame.of_key:  # the value is done: a key comes next
                    parent = self._stack[-1]
                    assert isinstance(parent, Map)
                    parent.at_key = True

    def _map_value(self, frame: Map) -> dict[Any, Any]:
        # Explicit keys win over merged ones, and a merged key's line is the line it
        # is written on in the merged mapping.
        result = frame.result
        if not frame.merged_from:
            return result
        origins = self.source.origins
        for key, origin in frame.merged_from.items():
            if key not in result and is_path_key(key):
                origins[(*frame.path, key)] = (*origin, key)
        return {**frame.merged, **result}

    # ------------------------------------------------------------------ merge keys

    def _merge_value(self, frame: Map, event: Event) -> None:
        """The value of ``<<``: a mapping, an alias, or a list of them."""
        where = (*frame.path, "<<")
        kind = type(event)
        if kind is yaml.SequenceStartEvent:
            self._stack.append(MergeList(frame.path, event.start_mark.line + 1))
            return
        if kind is yaml.AliasEvent and self._collections.get(event.anchor, ("", False))[1]:
            # `<<: *list`: its items are merged, each built again as a merge list's
            events = self._events[event.anchor]
            merge_list = MergeList(frame.path, events.line(0), events)
            merge_list.starts = events.item_starts()
            self._stack.append(merge_list)
            self._merge_items(merge_list, len(events) - 1)
            return
        self._value(event, where)

    def _buffer(self, frame: MergeList, event: Event) -> None:
        events = frame.events
        if frame.depth == 1:
            if isinstance(event, yaml.CollectionEndEvent):  # the list's own end
                self._merge_items(frame, len(events))
                return
            frame.starts.append(len(events))  # an item starts
        events.append(event)
        if isinstance(event, yaml.CollectionStartEvent):
            frame.depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            frame.depth -= 1

    def _merge_items(self, frame: MergeList, stop: int) -> None:
        """Build the list's items last to first (as PyYAML's merge does), then merge;
        the last item's events end at ``stop``."""
        events, starts = frame.events, frame.starts
        frame.events, frame.starts = Recorded(), []
        frame.building = True
        for index in range(len(starts) - 1, -1, -1):
            frame.index = index
            end = starts[index + 1] if index + 1 < len(starts) else stop
            self._replay(events, starts[index], end)
        self._stack.pop()
        parent = self._stack[-1]
        assert isinstance(parent, Map)
        parent.at_key = True
        if frame.kids:
            write(as_steps(parent), "<<", None, Steps(frame.kids))

    def _merge_item(self, frame: MergeList, value: Any, record: Record | None, origin: Loc) -> None:
        parent = self._stack[-2]
        assert isinstance(parent, Map)
        self._merge(parent, value, frame.line, origin, None)
        if record is not None:
            frame.kids[frame.index] = (None, record)

    def _merge(self, frame: Map, value: Any, line: int, origin: Loc, where: Loc | None) -> None:
        """Add a ``<<`` mapping to ``frame``'s merged keys; report anything else."""
        if not isinstance(value, dict):
            self.problems.append((line, f"{format_path(frame.path)}: '<<' needs a mapping"))
            return
        frame.merged.update(value)
        frame.merged_from.update(dict.fromkeys(value, origin))


_VALUE_EVENTS = (
    yaml.ScalarEvent,
    yaml.AliasEvent,
    yaml.MappingStartEvent,
    yaml.SequenceStartEvent,
)


# The interpreter's own limit is far above the scan's depth limit; replays (a value
# built away from its place) nest only as deep as aliases chain.
assert sys.getrecursionlimit() >= 100
