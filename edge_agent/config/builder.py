"""A composed YAML node tree as plain data, with the line of every key and list item.

Why not ``yaml.safe_load``: it forgets where each value came from, silently keeps the
last of two duplicate keys, and cannot tell which scalar held a ``${VAR}``. The
builder walks the node tree instead, records the line of every key and list item in
a :class:`SourceMap`, expands environment references, and collects what it finds
wrong as (line, message) instead of raising.

It expects a tree that :func:`~edge_agent.config.reading.scan_document` passed: no
cycles, bounded depth (it recurses once per level), lists and mappings as keys
already reported there.

An alias is built once: every later use of the same node is the same Python value,
not a copy, so aliases cost nothing however often they repeat, and the source map
remembers where the value was written (:attr:`SourceMap.origins`), so a problem in
an aliased or merged value still names the line it is written on.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from edge_agent.config.checks.common import Loc, format_path, short_repr

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
