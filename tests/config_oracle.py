"""The loader's front end as it was before it read events straight (issue 20): the
shape scan, ``yaml.compose`` and a builder over the node tree. Kept only as the oracle
of tests/unit/test_config_document.py, which checks that the one-pass reader gives
the same data, problems and lines. Copied unchanged from edge_agent/config/builder.py
and reading.py at 5026c6e, but for the last function.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from edge_agent.config.checks.common import Loc, format_path, short_repr
from edge_agent.config.reading import (
    DEFAULT_LIMITS,
    YAML_LOADER,
    DocumentShape,
    LoadLimits,
    _too_deep,
    yaml_problem,
)
from edge_agent.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"
_YAML_TAG = "tag:yaml.org,2002:"
_STR_TAG = _YAML_TAG + "str"
_PLAIN_TYPES = {_YAML_TAG + name for name in ("bool", "int", "float")}
#: Constructors of the scalars a plant file is made of besides strings; each reads
#: only its node, so they can be called directly.
_PLAIN_CONSTRUCTORS = {
    tag: yaml.SafeLoader.yaml_constructors[tag] for tag in (*_PLAIN_TYPES, _YAML_TAG + "null")
}
#: Marks a key or value that could not be read (already reported).
_UNREADABLE = object()


@dataclass
class SourceMap:
    """Line (1-based) of every key and list item of a loaded document."""

    file: str
    lines: dict[Loc, int] = field(default_factory=dict)
    #: Path of an alias (or merged key) -> path of the value it repeats, as first built.
    origins: dict[Loc, Loc] = field(default_factory=dict)

    def line_of(self, path: Loc) -> int:
        """Line of ``path``, or of its nearest ancestor present in the file.

        Inside an alias the line is the one the value is written on (the anchor's); the
        alias itself (the exact path) is the line that uses it.
        """
        # Each redirect moves to a value built earlier: a chain of aliases, never a loop.
        for _ in range(len(self.origins) + 1):
            for end in range(len(path), -1, -1):
                prefix = path[:end]
                exact = end == len(path)
                if exact and prefix in self.lines:
                    return self.lines[prefix]
                origin = self.origins.get(prefix)
                if origin is not None:
                    path = (*origin, *path[end:])
                    break
                if not exact and prefix in self.lines:
                    return self.lines[prefix]
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


class Builder:
    """Turns a composed YAML node tree into plain data plus a :class:`SourceMap`."""

    def __init__(
        self,
        source: SourceMap,
        env: Mapping[str, str] | None,
        anchored: frozenset[int] = frozenset(),
    ) -> None:
        """``env`` None: the document reads no environment (a template), and says so."""
        self.source = source
        self.env = env
        self.problems: list[tuple[int, str]] = []
        #: Paths (as written, see :meth:`SourceMap.written_at`) of values whose problem
        #: is already reported (an unset variable, an unreadable scalar): a validation
        #: error there would only repeat it.
        self.reported: set[Loc] = set()
        self._constructor = yaml.SafeLoader("")
        #: Start (``Mark.index``) of every list or mapping with an anchor (from the scan).
        self._anchored = anchored
        #: Path -> the text of a value YAML read as a boolean though not written
        #: true/false (``off``, ``yes``): where a string was meant, the error says to quote it.
        self.bool_words: dict[Loc, str] = {}
        #: id of an anchored node -> (its value, the path it was built at).
        self._built: dict[int, tuple[Any, Loc]] = {}

    def document(self, root: yaml.Node) -> Any:
        """The whole document as plain data."""
        try:
            return self.build(root, ())
        finally:
            self._built.clear()  # the tree and its ids are about to go

    def build(self, node: yaml.Node, path: Loc) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar_value(node, path)
        anchored = node.start_mark.index in self._anchored
        if anchored:
            first = self._built.get(id(node))
            if first is not None:  # an alias: the value again, not a copy
                value, origin = first
                self.source.origins[path] = origin
                return value
        if isinstance(node, yaml.MappingNode):
            value = self._mapping(node, path)
        else:
            value = self._sequence(node, path)
        if anchored:
            self._built[id(node)] = (value, path)
        return value

    def _sequence(self, node: yaml.Node, path: Loc) -> list[Any]:
        items = []
        for index, child in enumerate(node.value):
            self.source.lines[(*path, index)] = child.start_mark.line + 1
            items.append(self.build(child, (*path, index)))
        return items

    def _scalar_value(self, node: yaml.ScalarNode, path: Loc) -> Any:
        value = self._scalar(node, path)
        if value is _UNREADABLE:
            self.reported.add(path)
            return None
        if type(value) is bool and node.value.lower() not in ("true", "false"):
            self.bool_words[path] = node.value
        if isinstance(value, str) and "${" in value:
            expanded = self._expand(value, node.start_mark.line + 1, path)
            if not node.style and _ENV_REF.fullmatch(value):  # plain: None, or '' (libyaml)
                # A plain `qos: ${QOS:-1}` means what `qos: 1` would: resolve the type
                # the way YAML resolves a plain scalar. Quote it to keep a string.
                return self._plain_scalar(expanded)
            return expanded
        return value

    def _scalar(self, node: yaml.Node, path: Loc) -> Any:
        """The value of a scalar (or key) node, holding on to nothing of the node tree.

        The constructor remembers every node it built (``constructed_objects``) and a
        string value is the node's own string: either would keep the whole tree (two
        marks per node, ~4 kB per tag of a large plant file) alive, or pin the memory
        it sat in, for as long as the config lives. Forgetting the node and interning
        strings (tag names, types and tables repeat thousands of times) lets the
        allocator reuse that memory; a 10,000-tag file then leaves ~15 MB less behind.
        """
        tag = node.tag
        if tag == _STR_TAG:  # most of a plant file: no constructor needed
            return sys.intern((node.value + " ")[:-1])  # a copy: the node's string is freed
        plain = _PLAIN_CONSTRUCTORS.get(tag)
        try:
            if plain is not None:  # int, float, bool, null: they read only their node
                return plain(self._constructor, node)
            value = self._construct(node)
        except yaml.constructor.ConstructorError as exc:
            self._unreadable(node, path, exc.problem or "cannot be read")
            return _UNREADABLE
        except (ValueError, AttributeError):
            # ValueError: int() of `!!int abc`, or of a number past Python's 4,300 digits.
            # AttributeError: PyYAML's timestamp constructor on a `!!timestamp` that is
            # not a date (it uses the failed match).
            self._unreadable(node, path, f"{short_repr(node.value)} cannot be read as {_tag(node)}")
            return _UNREADABLE
        if type(value) is str:
            value = sys.intern((value + " ")[:-1])
        return value

    def _construct(self, node: yaml.Node) -> Any:
        """What PyYAML makes of ``node`` (a timestamp, !!binary bytes...), forgetting it."""
        constructor = self._constructor
        try:
            return constructor.construct_object(node, deep=True)
        finally:
            constructor.constructed_objects.clear()
            constructor.recursive_objects.clear()  # left behind by a constructor that raised

    def _unreadable(self, node: yaml.Node, path: Loc, problem: str) -> None:
        if problem.startswith("could not determine a constructor for the tag"):
            problem = f"unknown tag {_tag(node)!r}"
        self.problems.append((node.start_mark.line + 1, f"{format_path(path)}: {problem}"))

    def _plain_scalar(self, text: str) -> Any:
        """``"1"`` -> 1, ``"true"`` -> True, ``"1.5"`` -> 1.5; anything else stays the string.

        Resolved as YAML resolves a plain scalar, without parsing ``text`` as YAML (it
        comes from the environment and may hold anything).
        """
        stripped = text.strip()
        # types-PyYAML leaves resolve() unannotated.
        tag = self._constructor.resolve(yaml.ScalarNode, stripped, (True, False))  # type: ignore[no-untyped-call]
        if not stripped or tag not in _PLAIN_TYPES:
            return text
        try:
            return _PLAIN_CONSTRUCTORS[tag](self._constructor, yaml.ScalarNode(tag, stripped))
        except ValueError:  # a number past Python's 4,300 digits: the string it is
            return text

    def _mapping(self, node: yaml.Node, path: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        merged_from: dict[Any, Loc] = {}
        seen_at: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, merged, merged_from)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # a list or mapping as a key: reported by the scan, at its own line
            key = self._scalar(key_node, path)
            if key is _UNREADABLE:
                continue
            if key in seen_at:
                where = format_path((*path, key)) if _is_path_key(key) else format_path(path)
                self.problems.append(
                    (
                        line,
                        f"{where}: duplicate key {short_repr(key)} (first at line {seen_at[key]})",
                    )
                )
                continue
            seen_at[key] = line
            if _is_path_key(key):
                child_path = (*path, key)
                self.source.lines[child_path] = line
            else:  # None, True, 1.5, a date: pydantic says what is wrong with the key
                child_path = path
            result[key] = self.build(value_node, child_path)
        # YAML merge keys (<<: *defaults): explicit keys win over merged ones, and a
        # merged key's line is the line it is written on in the merged mapping.
        for key, origin in merged_from.items():
            if key not in result and _is_path_key(key):
                self.source.origins[(*path, key)] = (*origin, key)
        return {**merged, **result}

    def _merge(
        self, node: yaml.Node, path: Loc, merged: dict[Any, Any], merged_from: dict[Any, Loc]
    ) -> None:
        """Add the mappings of a ``<<`` value to ``merged``; the first of a list wins."""
        if isinstance(node, yaml.SequenceNode):
            sources = [(child, (*path, "<<", index)) for index, child in enumerate(node.value)]
        else:
            sources = [(node, (*path, "<<"))]
        for source, where in reversed(sources):
            # A mapping written in place is built under "<<", apart from the keys beside
            # it; an alias is the value built where its anchor is.
            built = self.build(source, where)
            if not isinstance(built, dict):
                self.problems.append(
                    (node.start_mark.line + 1, f"{format_path(path)}: '<<' needs a mapping")
                )
                continue
            origin = self._built[id(source)][1] if id(source) in self._built else where
            merged.update(built)
            merged_from.update(dict.fromkeys(built, origin))

    def _expand(self, text: str, line: int, path: Loc) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if self.env is None:
                self.reported.add(path)
                self.problems.append(
                    (
                        line,
                        f"{format_path(path)}: a template does not read environment variables "
                        f"(${{{name}}}); write the value itself, the same for every device",
                    )
                )
                return ""
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.reported.add(path)
                self.problems.append(
                    (
                        line,
                        f"{format_path(path)}: environment variable {name} is not set "
                        f"(write ${{{name}:-default}} to give a default)",
                    )
                )
                return ""
            return value

        return _ENV_REF.sub(substitute, text)


def _is_path_key(key: Any) -> bool:
    """Keys that can be part of a :data:`Loc` (``True`` is an int, but not a path step)."""
    return isinstance(key, str | int) and not isinstance(key, bool)


def _tag(node: yaml.Node) -> str:
    """``tag:yaml.org,2002:int`` -> ``int``; a local tag stays as written (``!thing``)."""
    tag = str(node.tag)
    return tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


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


def old_scan_document(text: str, file: str, limits: LoadLimits = DEFAULT_LIMITS) -> DocumentShape:
    """Measure ``text`` from libyaml's events; :class:`ConfigError` on the first limit
    or alias fault. A YAML syntax error is reported as the composer would."""
    try:
        return _scan(text, file, limits)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc, file, text)]) from None


def _scan(text: str, file: str, limits: LoadLimits) -> DocumentShape:
    anchors: dict[str, _Anchored] = {}
    open_anchors: dict[str, int] = {}
    stack: list[_Open] = []
    problems: list[tuple[int, str]] = []
    anchored: set[int] = set()
    total = aliased = deepest = documents = 0

    def fail(line: int, message: str) -> ConfigError:
        return ConfigError([f"{file}:{line}: {message}"])

    def define(anchor: str, line: int) -> None:
        first = anchors[anchor].line if anchor in anchors else open_anchors.get(anchor)
        if first is not None:
            raise fail(
                line,
                f"anchor &{anchor} is defined again (first at line {first}); give it another name",
            )

    def add(values: int, height: int) -> None:
        """A finished child (scalar, alias or collection) of the innermost open one."""
        if stack:
            parent = stack[-1]
            parent.values += values
            parent.height = max(parent.height, height + 1)
            if parent.is_mapping:
                parent.at_key = not parent.at_key

    def at_key() -> bool:
        return bool(stack) and stack[-1].is_mapping and stack[-1].at_key

    for event in yaml.parse(text, Loader=YAML_LOADER):
        if isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                define(event.anchor, _line(event))
                anchors[event.anchor] = _Anchored(1, 0, _line(event), "value")
            add(1, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            line = _line(event)
            is_mapping = isinstance(event, yaml.MappingStartEvent)
            if len(stack) + 1 > limits.max_depth:
                raise fail(line, _too_deep(limits))
            if at_key():
                problems.append((line, f"a {'mapping' if is_mapping else 'list'} cannot be a key"))
            if event.anchor is not None:
                define(event.anchor, line)
                open_anchors[event.anchor] = line
                anchored.add(_index(event))
            stack.append(_Open(event.anchor, is_mapping, line))
            deepest = max(deepest, len(stack))
            total += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor is not None:
                del open_anchors[done.anchor]
                what = "mapping" if done.is_mapping else "list"
                anchors[done.anchor] = _Anchored(done.values, done.height, done.line, what)
            add(done.values, done.height)
            continue  # counted at its start
        elif isinstance(event, yaml.AliasEvent):
            line = _line(event)
            name = str(event.anchor)
            if name in open_anchors:
                raise fail(
                    line,
                    f"alias *{name} is used inside the value it names "
                    f"(&{name}, line {open_anchors[name]})",
                )
            target = anchors.get(name)
            if target is None:
                raise fail(line, f"alias *{name} has no anchor &{name} before it")
            if target.kind != "value" and at_key():
                problems.append(
                    (line, f"alias *{name} stands for a {target.kind}, which cannot be a key")
                )
            if len(stack) + target.height > limits.max_depth:
                raise fail(line, _too_deep(limits))
            deepest = max(deepest, len(stack) + target.height)
            total += target.values
            aliased += target.values
            add(target.values, target.height)
        elif isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise fail(
                    _line(event), "a second YAML document starts here; a plant file is one document"
                )
            continue
        else:
            continue
        if total > limits.max_values:
            if aliased * 2 > total:
                message = f"aliases expand the file to more than {limits.max_values:,} values"
            else:
                message = f"the file holds more than {limits.max_values:,} values"
            raise fail(_line(event), message + " (the limit)")
    return DocumentShape(total, deepest, problems, frozenset(anchored))


def _line(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else 1


def _index(event: yaml.Event) -> int:
    mark = event.start_mark
    return mark.index if mark is not None else -1


@dataclass
class OldDocument:
    data: Any
    source: SourceMap
    problems: list[tuple[int, str]]
    reported: set[Loc]
    bool_words: dict[Loc, str]
    values: int
    empty: bool


def old_read_document(
    text: str, file: str, env: Mapping[str, str] | None, limits: LoadLimits = DEFAULT_LIMITS
) -> OldDocument:
    """What loader._inspect did before its validation, as one function."""
    shape = old_scan_document(text, file, limits)
    try:
        node = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc, file, text)]) from None
    source = SourceMap(file)
    if node is None:
        return OldDocument(None, source, [], set(), {}, shape.values, True)
    builder = Builder(source, env, shape.anchored)
    data = builder.document(node)
    problems = shape.problems + builder.problems
    return OldDocument(
        data, source, problems, builder.reported, builder.bool_words, shape.values, False
    )
