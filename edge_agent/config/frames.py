"""The lists and mappings the builder (:mod:`.builder`) has open, one frame each, and
what a mapping's frame writes into the source map's records.

A frame knows its path and the line it starts on; a mapping's frame also knows whether
a key or a value comes next and what that value means (``mode``): a value at the key's
path, a value beside an odd key (``None:``, ``1.5:``) built at the mapping's own
path, a skipped value (under a duplicate key or a list used as a key), or the value
of a merge key.
"""

from __future__ import annotations

from array import array
from typing import Any

from edge_agent.config.checks.common import Loc
from edge_agent.config.replay import Recorded
from edge_agent.config.source_map import Entry, Keys, Record, Steps, combine

#: A mapping with more keys than this keeps them in a dict (a lookup per key).
_FEW_KEYS = 32

#: libyaml's events, taken by ``type()`` for speed (types-PyYAML's base Event declares
#: none of ``anchor``, ``tag``, ``value``, and a mark that may be None).
Event = Any


class Built:
    """An anchored list or mapping as first built."""

    __slots__ = ("line", "path", "value")

    def __init__(self, value: Any, path: Loc, line: int) -> None:
        self.value, self.path, self.line = value, path, line


class Frame:
    """A list or mapping being built (or skipped): what its next event means."""

    __slots__ = ("anchor", "line", "path")

    def __init__(self, path: Loc, line: int, anchor: str | None) -> None:
        self.path, self.line, self.anchor = path, line, anchor


class Skip(Frame):
    """Events nobody builds here: a list or mapping as a key, the value of a key that
    is skipped, or an anchored value used again (already built)."""

    __slots__ = ("depth", "of_key", "reuse")

    def __init__(self, reuse: Built | None = None, of_key: bool = False) -> None:
        super().__init__((), 0, None)
        self.depth = 1
        self.reuse = reuse
        #: A key is skipped (its value comes next), not a value.
        self.of_key = of_key


class Seq(Frame):
    __slots__ = ("items", "kids", "lines")

    def __init__(self, path: Loc, line: int, anchor: str | None) -> None:
        super().__init__(path, line, anchor)
        self.items: list[Any] = []
        self.lines = array("I")
        self.kids: list[Record | None] | None = None


#: What the value after a key means.
PATH, BESIDE, SKIP, MERGE, MERGE_KEY = range(5)


class Map(Frame):
    __slots__ = (
        "at_key",
        "key",
        "keys",
        "kids",
        "line_list",
        "merged",
        "merged_from",
        "mode",
        "result",
        "seen_at",
        "steps",
    )

    def __init__(self, path: Loc, line: int, anchor: str | None) -> None:
        super().__init__(path, line, anchor)
        self.result: dict[Any, Any] = {}
        self.seen_at: dict[Any, int] = {}
        self.merged: dict[Any, Any] = {}
        self.merged_from: dict[Any, Loc] = {}
        self.at_key = True
        self.mode = PATH
        self.key: Any = None
        #: Lines of the keys, in order; once something else is written here (a merge,
        #: a key that is no path step), ``steps`` takes over.
        self.keys: list[Any] = []
        self.line_list: list[int] = []
        self.kids: list[Record | None] | None = None
        self.steps: Steps | None = None


class MergeList(Frame):
    """``<<: [*a, *b]``: the events, kept until the end, then built last to first."""

    __slots__ = ("building", "depth", "events", "index", "kids", "starts")

    def __init__(self, path: Loc, line: int, events: Recorded | None = None) -> None:
        """``events``: a merged list's (``<<: *list``), whole, else the list's events are
        kept as they come (:meth:`~edge_agent.config.builder.Builder.feed`)."""
        super().__init__(path, line, None)
        self.depth = 1
        self.events = Recorded() if events is None else events
        #: Where each item's events start; the last item's end where the events end
        #: (a merged list's own end is one before).
        self.starts: list[int] = []
        self.kids: dict[Any, Entry] = {}
        #: The items are being built; ``index``: the one being built.
        self.building = False
        self.index = 0


def child_path(frame: Map) -> Loc:
    """The path of the value after the mapping's current key."""
    return (*frame.path, frame.key) if frame.mode == PATH else frame.path


def as_steps(frame: Map) -> Steps:
    """The mapping's lines as a dict of steps, from now on."""
    if frame.steps is None:
        kids = frame.kids
        frame.steps = Steps(
            {
                key: (frame.line_list[i], None if kids is None else kids[i])
                for i, key in enumerate(frame.keys)
            }
        )
        frame.keys, frame.line_list, frame.kids = [], [], None
    return frame.steps


def write(steps: Steps, step: Any, line: int | None, kid: Record | None) -> None:
    """Write ``step``'s line and record; what is already there stays where these are None."""
    old = steps.steps.get(step)
    if old is None:
        steps.steps[step] = (line, kid)
        return
    old_line, old_kid = old
    steps.steps[step] = (old_line if line is None else line, combine(old_kid, kid))


def is_path_key(key: Any) -> bool:
    """Keys that can be part of a :data:`Loc` (``True`` is an int, but not a path step)."""
    return isinstance(key, str | int) and not isinstance(key, bool)


def map_record(frame: Map, key_tuples: dict[tuple[Any, ...], tuple[Any, ...]]) -> Record | None:
    """The lines of a finished mapping as a record; ``key_tuples``: keys tuples shared
    by the records of mappings with the same keys."""
    if frame.steps is not None:
        return frame.steps
    keys = frame.keys
    if not keys:
        return None
    lines = frame.line_list
    first = lines[0]
    kids = None if frame.kids is None else tuple(frame.kids)
    if len(keys) > _FEW_KEYS:
        return Steps(
            {key: (lines[i], None if kids is None else kids[i]) for i, key in enumerate(keys)}
        )
    shared = tuple(keys)
    shared = key_tuples.setdefault(shared, shared)
    if lines[-1] - first == len(lines) - 1 and all(
        line == first + i for i, line in enumerate(lines)
    ):
        return Keys(shared, first, kids)
    return Keys(shared, array("I", lines), kids)
