"""Load a plant YAML into a :class:`PlantConfig`, reporting every problem with file and line.

Why not ``yaml.safe_load``: it forgets where each value came from, silently keeps the
last of two duplicate keys, and cannot tell which scalar held a ``${VAR}``. We compose
the YAML node tree instead, build plain data from it while recording the line of
every key and list item, expand environment references on the way, and then map each
pydantic error location back to a line. All findings are reported at once, as
``plant.yaml:42: devices[3].poll_groups[0].tags[7].type: 'flaot32' is not one of ...``.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config.checks import check_partial, check_plant
from edge_agent.config.checks.common import Loc, format_path
from edge_agent.config.plant import PlantConfig
from edge_agent.errors import ConfigError
from edge_agent.redaction import is_secret_location

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: libyaml's composer when PyYAML was built with it: ten times faster on a 10,000-tag
#: plant (2 s instead of 20 s on a busy gateway) and half the peak memory; same marks.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


@dataclass
class SourceMap:
    """Line (1-based) of every key and list item of a loaded document."""

    file: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, path: Loc) -> int:
        """Line of ``path``, or of its nearest ancestor present in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1


class _Builder:
    """Turns a composed YAML node tree into plain data plus a :class:`SourceMap`."""

    def __init__(self, source: SourceMap, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.problems: list[tuple[int, str]] = []
        #: Values left empty by an unset variable: their own errors would only repeat it.
        self.unset_paths: set[Loc] = set()
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Loc) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, child in enumerate(node.value):
                self.source.lines[(*path, index)] = child.start_mark.line + 1
                items.append(self.build(child, (*path, index)))
            return items
        assert isinstance(node, yaml.ScalarNode)
        value = self._scalar(node)
        if isinstance(value, str) and "${" in value:
            expanded = self._expand(value, node.start_mark.line + 1, path)
            if not node.style and _ENV_REF.fullmatch(value):  # plain: None, or '' (libyaml)
                # A plain `qos: ${QOS:-1}` means what `qos: 1` would: resolve the type
                # the way YAML resolves a plain scalar. Quote it to keep a string.
                return _plain_scalar(expanded)
            return expanded
        return value

    def _scalar(self, node: yaml.Node) -> Any:
        """The value of a scalar (or key) node, holding on to nothing of the node tree.

        The constructor remembers every node it built (``constructed_objects``) and a
        string value is the node's own string: either would keep the whole tree (two
        marks per node, ~4 kB per tag of a large plant file) alive, or pin the memory
        it sat in, for as long as the config lives. Forgetting the node and interning
        strings (tag names, types and tables repeat thousands of times) lets the
        allocator reuse that memory; a 10,000-tag file then leaves ~15 MB less behind.
        """
        constructor = self._constructor
        value = constructor.construct_object(node, deep=True)
        constructor.constructed_objects.clear()
        if type(value) is str:
            value = sys.intern((value + " ")[:-1])  # a copy: the node's string is freed
        return value

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        seen_at: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merge_source(value_node, path))
                continue
            key = self._scalar(key_node)
            if key in seen_at:
                where = format_path((*path, key)) if isinstance(key, str | int) else str(key)
                self.problems.append(
                    (line, f"{where}: duplicate key {key!r} (first at line {seen_at[key]})")
                )
                continue
            seen_at[key] = line
            child_path = (*path, key) if isinstance(key, str | int) else path
            self.source.lines[child_path] = line
            result[key] = self.build(value_node, child_path)
        # YAML merge keys (<<: *defaults): explicit keys win over merged ones.
        return {**merged, **result}

    def _merge_source(self, node: yaml.Node, path: Loc) -> dict[Any, Any]:
        # Keys given explicitly keep their own line, even when the anchor is built later.
        known = dict(self.source.lines)
        try:
            return self._build_merge(node, path)
        finally:
            self.source.lines.update(known)

    def _build_merge(self, node: yaml.Node, path: Loc) -> dict[Any, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[Any, Any] = {}
        for source in reversed(sources):
            built = self.build(source, path)
            if not isinstance(built, dict):
                self.problems.append(
                    (node.start_mark.line + 1, f"{format_path(path)}: '<<' needs a mapping")
                )
                continue
            merged.update(built)
        return merged

    def _expand(self, text: str, line: int, path: Loc) -> str:
        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            value = self.env.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.unset_paths.add(path)
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


def _plain_scalar(text: str) -> Any:
    """``"1"`` -> 1, ``"true"`` -> True, ``"1.5"`` -> 1.5; anything else stays the string."""
    if not text:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _all_field_names() -> list[str]:
    """Every key the plant file may hold: fields of every model reachable from PlantConfig.

    Walking the annotations (through unions, lists, dicts, Annotated) covers the sections
    that live in their own modules (OPC UA, metrics, outbox, InfluxDB, service), so a typo
    anywhere gets its "did you mean".
    """
    names: set[str] = set()
    seen: set[type[BaseModel]] = set()
    pending: list[Any] = [PlantConfig]
    while pending:
        item = pending.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for info in item.model_fields.values():
                names.update(name for name in (info.alias,) if name)
                pending.append(info.annotation)
            names.update(item.model_fields)
        else:
            pending.extend(get_args(item))
    return sorted(names)


_FIELD_NAMES = _all_field_names()


def _document_path(loc: Sequence[str | int], data: Any) -> Loc:
    """Drop the discriminator tags pydantic inserts into ``loc`` (e.g. ``'modbus'``)."""
    path: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":
            continue
        if isinstance(current, list) and isinstance(part, int):
            path.append(part)
            current = current[part] if 0 <= part < len(current) else None
        elif isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, int) and str(part) in current:
            path.append(part)
            current = current[str(part)]
        elif last or not isinstance(current, dict):
            path.append(part)
            current = None
        # else: a discriminator tag; the data has no such key, skip it.
    return tuple(path)


def _allowed(expected: str) -> str:
    """``"'bool', 'int16' or 'string'"`` -> ``"bool, int16, string"``."""
    return ", ".join(p.strip().strip("'") for p in re.split(r",| or ", expected) if p.strip())


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    value = error.get("input")
    if kind == "literal_error":
        return f"{value!r} is not one of {_allowed(str(ctx.get('expected', '')))}"
    if kind == "union_tag_invalid":
        return f"{ctx.get('tag')!r} is not one of {_allowed(str(ctx.get('expected_tags', '')))}"
    if kind == "union_tag_not_found":
        return f"required field '{ctx.get('discriminator', '').strip(chr(39))}' is missing"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        close = difflib.get_close_matches(key, _FIELD_NAMES, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {key!r}{hint}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message[:1].lower() + message[1:]
    if (
        kind not in ("value_error", "string_pattern_mismatch")
        and not isinstance(value, dict | list)
        and not is_secret_location(error["loc"])  # never echo a password
    ):
        message += f" (got {value!r})"
    if kind == "string_pattern_mismatch":
        message = (
            f"{value!r} is not a valid name (letters, digits, '_', '-', '.'; no spaces or slashes)"
        )
    return message


def parse_config(
    text: str, file: str = "plant.yaml", env: Mapping[str, str] | None = None
) -> PlantConfig:
    """Validate YAML ``text``; raise :class:`ConfigError` listing every problem found."""
    source = SourceMap(file)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"{file}:{line}: YAML syntax: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}:1: YAML syntax: {exc}"]) from None
    if node is None:
        raise ConfigError([f"{file}:1: the file is empty"])
    builder = _Builder(source, os.environ if env is None else env)
    data = builder.build(node, ())
    # The node tree (a node and two marks per key and value) is the largest thing a
    # big plant file makes: let it go before validation builds the models beside it.
    del node
    problems = list(builder.problems)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the top level must be a mapping (plant:, devices:, ...)"])
    try:
        plant = PlantConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path = _document_path(error["loc"], data)
            if path in builder.unset_paths:
                continue
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path = (*path, str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
            problems.append((source.line_of(path), f"{format_path(path)}: {_message(error)}"))
        for path, message in check_partial(data):
            problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
    else:
        for path, message in check_plant(plant):
            problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
        if not problems:
            return plant
    problems.sort(key=lambda p: p[0])
    raise ConfigError([f"{file}:{line}: {message}" for line, message in problems])


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> PlantConfig:
    """Read and validate the plant file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"{path}: cannot read the file: {reason}"]) from None
    return parse_config(text, str(path), env)
