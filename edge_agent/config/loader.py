"""Load a plant YAML into a :class:`PlantConfig`, reporting every problem with file and line.

Four steps, each reporting in the same ``file:line: path: message`` form:
:mod:`.reading` reads the file within its limits and scans the YAML's shape (size,
encoding, nesting depth, alias expansion, cycles: :class:`LoadLimits`); libyaml
composes the node tree; :mod:`.builder` turns it into plain data, recording the line
of every key and list item and expanding environment references; pydantic and
:mod:`.checks` validate, and each error location is mapped back to a line. All
findings are reported at once, as
``plant.yaml:42: devices[3].poll_groups[0].tags[7].type: 'flaot32' is not one of ...``.

Nothing is shared between calls: a reload may load the file in a worker thread while
the event loop keeps polling.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config.builder import Builder, SourceMap
from edge_agent.config.checks import check_partial, check_plant
from edge_agent.config.checks.common import Loc, format_path, short_repr
from edge_agent.config.plant import PlantConfig
from edge_agent.config.reading import (
    DEFAULT_LIMITS,
    YAML_LOADER,
    LoadLimits,
    check_text_size,
    read_plant_file,
    scan_document,
    yaml_problem,
)
from edge_agent.config.templates import expand_templates
from edge_agent.errors import ConfigError
from edge_agent.redaction import is_secret_location

__all__ = ["DEFAULT_LIMITS", "LoadLimits", "SourceMap", "load_config", "parse_config"]


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
        return f"{short_repr(value)} is not one of {_allowed(str(ctx.get('expected', '')))}"
    if kind == "union_tag_invalid":
        expected = _allowed(str(ctx.get("expected_tags", "")))
        return f"{short_repr(ctx.get('tag'))} is not one of {expected}"
    if kind == "union_tag_not_found":
        return f"required field '{ctx.get('discriminator', '').strip(chr(39))}' is missing"
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        if key in _FIELD_NAMES:
            return f"unknown key {key!r} (not allowed here)"
        close = difflib.get_close_matches(key, _FIELD_NAMES, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown key {short_repr(key)}{hint}"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message[:1].lower() + message[1:]
    if error["loc"][-1:] == ("[key]",):  # the key is wrong, not its value
        return f"key {short_repr(value)}: {message}"
    if (
        kind not in ("value_error", "string_pattern_mismatch")
        and not isinstance(value, dict | list)
        and not is_secret_location(error["loc"])  # never echo a password
    ):
        message += f" (got {short_repr(value)})"
    if kind == "string_pattern_mismatch":
        message = (
            f"{short_repr(value)} is not a valid name "
            "(letters, digits, '_', '-', '.'; no spaces or slashes)"
        )
    return message


#: How the loader words one validation error (template files are worded the same).
describe_error = _message


def parse_config(
    text: str,
    file: str = "plant.yaml",
    env: Mapping[str, str] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
) -> PlantConfig:
    """Validate YAML ``text``; raise :class:`ConfigError` listing every problem found."""
    check_text_size(text, file, limits)
    shape = scan_document(text, file, limits)
    try:
        node = yaml.compose(text, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(exc, file, text)]) from None
    if node is None:
        raise ConfigError([f"{file}:1: the file is empty"])
    source = SourceMap(file)
    builder = Builder(source, os.environ if env is None else env, shape.anchored)
    data = builder.document(node)
    # The node tree (a node and two marks per key and value) is the largest thing a
    # big plant file makes: let it go before validation builds the models beside it.
    del node
    problems = shape.problems + builder.problems
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the top level must be a mapping (plant:, devices:, ...)"])
    # Devices with `template:` become plain devices; problems inside a template file
    # come first, each once, with that file's own line.
    expansion = expand_templates(data, source, file, describe_error, limits, shape.values)
    data, in_templates = expansion.data, expansion.template_problems
    builder.reported |= expansion.reported
    problems += expansion.problems
    try:
        plant = PlantConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path = _document_path(error["loc"], data)
            if source.written_at(path) in builder.reported:
                continue
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path = (*path, str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
            problems.append((source.line_of(path), f"{format_path(path)}: {_message(error)}"))
        for path, message in check_partial(data):
            problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
    else:
        for path, message in check_plant(plant):
            problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
        if not problems and not in_templates:
            return plant
    problems.sort(key=lambda p: p[0])
    raise ConfigError([*in_templates, *(f"{file}:{line}: {message}" for line, message in problems)])


def load_config(
    path: Path | str, env: Mapping[str, str] | None = None, limits: LoadLimits = DEFAULT_LIMITS
) -> PlantConfig:
    """Read and validate the plant file at ``path``."""
    path = Path(path)
    return parse_config(read_plant_file(path, limits), str(path), env, limits)
