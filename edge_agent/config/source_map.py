"""Where each key and list item of a loaded plant file is written: its line.

Problems and warnings name a path (``devices[3].poll_groups[0].tags[7].type``); the
source map turns it into the line to show. It answers for every path the builder
recorded (a key, a list item) and, for any other path, with the line of its nearest
recorded ancestor.

Why not a dict of paths: a path tuple and a dict entry per key cost about 100 bytes
each, more than the plain data they describe (70 MB for a 100,000-tag plant). The
lines are kept instead in a tree shaped like the document, one record per list or
mapping: a list keeps its items' lines in an ``array('I')``; a mapping keeps a tuple of
its keys (one tuple shared by every mapping with the same keys) and its keys' lines
as a first line when they follow each other, as is usual in block style; records of
lists and mappings inside hang below. A tag then costs about 100 bytes of lines.

:attr:`SourceMap.lines` stays a dict of paths for what is added after the build (the
template expansion locates copied keys at the device's ``template:`` line); it wins
over the tree.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config.checks.common import Loc

#: (line or None, record of the value or None): what a record holds for one step.
Entry = tuple[int | None, "Record | None"]


class Keys:
    """The lines of a mapping whose keys all have one (no merge key, no odd key)."""

    __slots__ = ("keys", "kids", "lines")

    def __init__(self, keys: tuple[Any, ...], lines: int | array[int], kids: Any) -> None:
        self.keys = keys
        #: The first key's line when each key is on the line after the one before.
        self.lines = lines
        #: None, or the record of each key's value (None for a scalar) in key order.
        self.kids: tuple[Record | None, ...] | None = kids

    def entry(self, step: Any) -> Entry | None:
        try:
            index = self.keys.index(step)
        except ValueError:
            return None
        lines = self.lines
        line = lines + index if isinstance(lines, int) else lines[index]
        return line, (None if self.kids is None else self.kids[index])

    def entries(self) -> dict[Any, Entry]:
        return {key: self.entry(key) or (None, None) for key in self.keys}


class Items:
    """The lines of a list: its items' lines, and the records of its items."""

    __slots__ = ("kids", "lines")

    def __init__(self, lines: array[int], kids: list[Record | None] | None) -> None:
        self.lines = lines
        self.kids = kids

    def entry(self, step: Any) -> Entry | None:
        index = _index(step)
        if index is None or not 0 <= index < len(self.lines):
            return None
        return self.lines[index], (None if self.kids is None else self.kids[index])

    def entries(self) -> dict[Any, Entry]:
        return {i: self.entry(i) or (None, None) for i in range(len(self.lines))}


class Steps:
    """Any other mapping of steps to lines: a merge key's values (no line of their own),
    a key that is not a path step, a big mapping (a dict finds a key faster)."""

    __slots__ = ("steps",)

    def __init__(self, steps: dict[Any, Entry]) -> None:
        self.steps = steps

    def entry(self, step: Any) -> Entry | None:
        try:
            return self.steps.get(step)
        except TypeError:  # an unhashable step: no such key
            return None

    def entries(self) -> dict[Any, Entry]:
        return self.steps


Record = Keys | Items | Steps


def _index(step: Any) -> int | None:
    """A list index the way a dict of paths would match it (``True`` is 1, ``1.0`` is 1)."""
    if isinstance(step, int):
        return int(step)
    if isinstance(step, float) and step.is_integer():
        return int(step)
    return None


def combine(first: Record | None, later: Record | None) -> Record | None:
    """Both records as one; where both give a line, ``later``'s (it was written last)."""
    if first is None or later is None:
        return later if first is None else first
    steps = dict(first.entries())
    for step, (line, kid) in later.entries().items():
        old_line, old_kid = steps.get(step, (None, None))
        steps[step] = (old_line if line is None else line, combine(old_kid, kid))
    return Steps(steps)


@dataclass
class SourceMap:
    """Line (1-based) of every key and list item of a loaded document."""

    file: str
    #: Lines added after the build, by path; they win over :attr:`tree`.
    lines: dict[Loc, int] = field(default_factory=dict)
    #: Path of an alias (or merged key) -> path of the value it repeats, as first built.
    origins: dict[Loc, Loc] = field(default_factory=dict)
    #: The lines the builder recorded (see the module docstring).
    tree: Record | None = None

    def recorded(self, path: Loc) -> int | None:
        """The line recorded for exactly ``path``; None when there is none."""
        line = self.lines.get(path)
        if line is not None:
            return line
        return self._in_tree(path)[-1]

    def _in_tree(self, path: Loc) -> list[int | None]:
        """The tree's line for each prefix of ``path`` (index = its length)."""
        found: list[int | None] = [None] * (len(path) + 1)
        record = self.tree
        for end, step in enumerate(path, 1):
            entry = None if record is None else record.entry(step)
            if entry is None:
                break
            found[end], record = entry
        return found

    def line_of(self, path: Loc) -> int:
        """Line of ``path``, or of its nearest ancestor present in the file.

        Inside an alias the line is the one the value is written on (the anchor's); the
        alias itself (the exact path) is the line that uses it.
        """
        # Each redirect moves to a value built earlier: a chain of aliases, never a loop.
        for _ in range(len(self.origins) + 1):
            in_tree = self._in_tree(path)
            for end in range(len(path), -1, -1):
                prefix = path[:end]
                line = self.lines.get(prefix)
                if line is None:
                    line = in_tree[end]
                exact = end == len(path)
                if exact and line is not None:
                    return line
                origin = self.origins.get(prefix)
                if origin is not None:
                    path = (*origin, *path[end:])
                    break
                if not exact and line is not None:
                    return line
            else:
                return 1
        return 1

    def written_at(self, path: Loc) -> Loc:
        """The path ``path``'s value was built at (itself, unless it is inside an alias)."""
        for _ in range(len(self.origins) + 1):
            for end in range(len(path), -1, -1):
                origin = self.origins.get(path[:end])
                if origin is not None:
                    path = (*origin, *path[end:])
                    break
            else:
                return path
        return path
