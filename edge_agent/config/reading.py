"""Reading a plant file safely: its size, its encoding, and the shape of its YAML.

Everything a broken or hostile file could use to crash, hang or exhaust the loader is
refused here, before a YAML node tree is built, each as one ``file:line: message``:

- a file larger than :attr:`LoadLimits.max_bytes` (never read past the limit);
- bytes that are not UTF-8 (line and column, not a byte offset);
- lists and mappings nested deeper than :attr:`LoadLimits.max_depth`: libyaml's
  composer recurses in C and the process dies of a segmentation fault at about
  100,000 levels; the builder recurses in Python and raised RecursionError at 500;
- more than :attr:`LoadLimits.max_values` values once aliases are expanded: a 300-byte
  "billion laughs" file stands for 387 million strings;
- an alias used inside the value it names (``x: &r [*r]``, a cycle), an alias with no
  anchor before it, an anchor defined twice, a second document.

The scan reads libyaml's event stream (a loop with a stack, no recursion), counting as
it goes, so a limit is hit after at most that many events: within milliseconds and a
few megabytes. It also finds a list or mapping used as a mapping key, which Python
cannot hash; those are reported, not fatal, so the rest of the file is still checked.

Nothing here keeps state between calls: a reload may run it in a worker thread.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge_agent.config.syntax import syntax_message
from edge_agent.errors import ConfigError

#: libyaml's parser when PyYAML was built with it: ten times faster on a 10,000-tag
#: plant (2 s instead of 20 s on a busy gateway) and half the peak memory; same marks.
YAML_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)
#: libyaml reports a reader error's position in bytes of the UTF-8 text; PyYAML in
#: characters.
_OFFSETS_IN_BYTES = YAML_LOADER is not yaml.SafeLoader
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """Bounds on what one plant file may cost to load. The defaults, measured on the
    bench's generated plant (``python -m bench.bench_config``), leave a 100,000-tag
    plant room to spare: 8.9 MiB, 1.1 million values, 8 levels deep."""

    #: Size of the file. Room for 100,000 tags with a description and a unit each.
    max_bytes: int = 32 * MiB
    #: Lists and mappings inside each other (aliases count at the depth they are used).
    max_depth: int = 64
    #: Scalars, lists and mappings, every alias counted as the whole value it stands
    #: for: what building the document and validating it cost.
    max_values: int = 2_000_000


DEFAULT_LIMITS = LoadLimits()


@dataclass(frozen=True, slots=True)
class DocumentShape:
    """What the scan measured, and what it found wrong without stopping."""

    values: int
    depth: int
    #: (line, message): lists and mappings used as mapping keys.
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Where (``Mark.index``) each list or mapping that has an anchor starts: the only
    #: ones an alias can repeat.
    anchored: frozenset[int] = frozenset()


def read_plant_file(path: Path, limits: LoadLimits = DEFAULT_LIMITS) -> str:
    """The text of ``path``; :class:`ConfigError` if it cannot be read, is too large
    or is not UTF-8."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > limits.max_bytes:
                raise _too_large(str(path), limits, size)
            # A pipe or a file still growing says nothing true in fstat: read one byte
            # past the limit to know.
            data = file.read(limits.max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"{path}: cannot read the file: {reason}"]) from None
    if len(data) > limits.max_bytes:
        raise _too_large(str(path), limits)
    return decode(data, str(path))


def check_text_size(text: str, file: str, limits: LoadLimits) -> None:
    """The size limit for text already in memory (a str is never longer in characters
    than in UTF-8 bytes, so this never refuses a text that fits)."""
    if len(text) > limits.max_bytes:
        raise _too_large(file, limits)


def _too_large(file: str, limits: LoadLimits, size: int | None = None) -> ConfigError:
    limit = f"{limits.max_bytes / MiB:g} MiB"
    what = f"the file is {size / MiB:.1f} MiB" if size is not None else "the file is"
    return ConfigError([f"{file}: {what}, larger than the {limit} a plant file may be"])


def decode(data: bytes, file: str) -> str:
    """``data`` as UTF-8; an invalid byte is reported by line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ConfigError([f"{file}:1: the file is UTF-16; save it as UTF-8"]) from None
        line, column = _line_and_column(data, exc.start)
        raise ConfigError(
            [
                f"{file}:{line}: invalid UTF-8 at column {column} "
                f"(byte 0x{data[exc.start]:02x}); save the file as UTF-8"
            ]
        ) from None


def _line_and_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of byte ``offset``, lines as editors count
    them (``\\n``; a ``\\r\\n`` file counts the same)."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


def yaml_problem(exc: yaml.YAMLError, file: str, text: str) -> str:
    """One ``file:line: ...`` line for an error of libyaml's reader, scanner or parser."""
    if isinstance(exc, yaml.reader.ReaderError):
        data = text.encode("utf-8", errors="surrogatepass")
        offset = exc.position
        if not _OFFSETS_IN_BYTES:
            offset = len(text[:offset].encode("utf-8", errors="surrogatepass"))
        line, column = _line_and_column(data, offset)
        if isinstance(exc.character, int):
            return (
                f"{file}:{line}: control character U+{exc.character:04X} at column {column}; "
                "YAML does not allow it"
            )
        return f"{file}:{line}: column {column}: {exc.reason}"
    if isinstance(exc, yaml.MarkedYAMLError):
        better = syntax_message(exc, text)
        if better is not None:
            return f"{file}:{better[0]}: YAML syntax: {better[1]}"
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return f"{file}:{line}: YAML syntax: {exc.problem or exc.context or 'invalid YAML'}"
    return f"{file}:1: YAML syntax: {exc}"


@dataclass(slots=True)
class _Open:
    """A list or mapping whose end the scan has not reached yet."""

    anchor: str | None
    is_mapping: bool
    line: int
    #: Values inside it so far, itself included, aliases counted in full.
    values: int = 1
    #: Levels of lists and mappings from it down, itself included.
    height: int = 1
    #: For a mapping: the next value is a key.
    at_key: bool = True


@dataclass(frozen=True, slots=True)
class _Anchored:
    values: int
    height: int
    line: int
    kind: str  # "list", "mapping" or "value"


def scan_document(text: str, file: str, limits: LoadLimits = DEFAULT_LIMITS) -> DocumentShape:
    """Measure ``text`` from libyaml's events; :class:`ConfigError` on the first limit
    or alias fault. A YAML syntax error is reported as the composer would."""
    scan = ShapeScan(file, limits)
    try:
        for event in yaml.parse(text, Loader=YAML_LOADER):
            scan.feed(event)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc, file, text)]) from None
    return scan.shape()


class ShapeScan:
    """The shape of one document, measured one event at a time (:meth:`feed` raises
    :class:`ConfigError` at the first limit or alias fault)."""

    def __init__(self, file: str, limits: LoadLimits = DEFAULT_LIMITS) -> None:
        self.file = file
        self.limits = limits
        self.anchors: dict[str, _Anchored] = {}
        self.open_anchors: dict[str, int] = {}
        self.stack: list[_Open] = []
        self.problems: list[tuple[int, str]] = []
        self.anchored: set[int] = set()
        self.total = self.aliased = self.deepest = 0
        #: Documents started: 0 for an empty file.
        self.documents = 0

    def shape(self) -> DocumentShape:
        return DocumentShape(self.total, self.deepest, self.problems, frozenset(self.anchored))

    def _fail(self, line: int, message: str) -> ConfigError:
        return ConfigError([f"{self.file}:{line}: {message}"])

    def _define(self, anchor: str, line: int) -> None:
        anchors = self.anchors
        first = anchors[anchor].line if anchor in anchors else self.open_anchors.get(anchor)
        if first is not None:
            raise self._fail(
                line,
                f"anchor &{anchor} is defined again (first at line {first}); give it another name",
            )

    def _add(self, values: int, height: int) -> None:
        """A finished child (scalar, alias or collection) of the innermost open one."""
        if self.stack:
            parent = self.stack[-1]
            parent.values += values
            if height >= parent.height:
                parent.height = height + 1
            if parent.is_mapping:
                parent.at_key = not parent.at_key

    def _at_key(self) -> bool:
        stack = self.stack
        return bool(stack) and stack[-1].is_mapping and stack[-1].at_key

    def scalar(self, event: yaml.ScalarEvent) -> None:
        """:meth:`feed` for a scalar without an anchor (nine events in ten), faster."""
        self.total += 1
        stack = self.stack
        if stack:
            parent = stack[-1]
            parent.values += 1
            if parent.is_mapping:
                parent.at_key = not parent.at_key
        if self.total > self.limits.max_values:
            self._over(event)

    def feed(self, event: Any) -> None:  # Any: libyaml's events, taken by type()
        kind = type(event)
        if kind is yaml.ScalarEvent:
            self.total += 1
            if event.anchor is not None:
                self._define(event.anchor, _line(event))
                self.anchors[event.anchor] = _Anchored(1, 0, _line(event), "value")
            stack = self.stack
            if stack:  # _add(1, 0), inline: most events are scalars
                parent = stack[-1]
                parent.values += 1
                if parent.is_mapping:
                    parent.at_key = not parent.at_key
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            self._start(event, kind is yaml.MappingStartEvent)
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            done = self.stack.pop()
            if done.anchor is not None:
                del self.open_anchors[done.anchor]
                what = "mapping" if done.is_mapping else "list"
                self.anchors[done.anchor] = _Anchored(done.values, done.height, done.line, what)
            self._add(done.values, done.height)
            return  # counted at its start
        elif kind is yaml.AliasEvent:
            self._alias(event)
        elif kind is yaml.DocumentStartEvent:
            self.documents += 1
            if self.documents > 1:
                raise self._fail(
                    _line(event), "a second YAML document starts here; a plant file is one document"
                )
            return
        else:
            return
        if self.total > self.limits.max_values:
            self._over(event)

    def _over(self, event: yaml.Event) -> None:
        """More values than the limit, counted up to ``event``."""
        limit = self.limits.max_values
        if self.aliased * 2 > self.total:
            message = f"aliases expand the file to more than {limit:,} values"
        else:
            message = f"the file holds more than {limit:,} values"
        raise self._fail(_line(event), message + " (the limit)")

    def _start(self, event: Any, is_mapping: bool) -> None:
        line = _line(event)
        stack = self.stack
        if len(stack) + 1 > self.limits.max_depth:
            raise self._fail(line, _too_deep(self.limits))
        if self._at_key():
            self.problems.append((line, f"a {'mapping' if is_mapping else 'list'} cannot be a key"))
        anchor = event.anchor
        if anchor is not None:
            self._define(anchor, line)
            self.open_anchors[anchor] = line
            self.anchored.add(_index(event))
        stack.append(_Open(anchor, is_mapping, line))
        if len(stack) > self.deepest:
            self.deepest = len(stack)
        self.total += 1

    def _alias(self, event: Any) -> None:
        line = _line(event)
        name = str(event.anchor)
        if name in self.open_anchors:
            raise self._fail(
                line,
                f"alias *{name} is used inside the value it names "
                f"(&{name}, line {self.open_anchors[name]})",
            )
        target = self.anchors.get(name)
        if target is None:
            raise self._fail(line, f"alias *{name} has no anchor &{name} before it")
        if target.kind != "value" and self._at_key():
            self.problems.append(
                (line, f"alias *{name} stands for a {target.kind}, which cannot be a key")
            )
        depth = len(self.stack) + target.height
        if depth > self.limits.max_depth:
            raise self._fail(line, _too_deep(self.limits))
        self.deepest = max(self.deepest, depth)
        self.total += target.values
        self.aliased += target.values
        self._add(target.values, target.height)


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _index(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.index if mark is not None else -1


def _too_deep(limits: LoadLimits) -> str:
    return f"lists and mappings nested more than {limits.max_depth} deep (the limit)"
