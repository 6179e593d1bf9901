"""Load a plant YAML into a :class:`PlantConfig`, reporting every problem with file and line.

Four steps, each reporting in the same ``file:line: path: message`` form:
:mod:`.reading` reads the file within its limits and scans the YAML's shape (size,
encoding, nesting depth, alias expansion, cycles: :class:`LoadLimits`); libyaml
composes the node tree; :mod:`.builder` turns it into plain data, recording the line
of every key and list item and expanding environment references; pydantic and
:mod:`.checks` validate, and each error location is mapped back to a line. The
cross-checks run on every part that is valid even when others are not
(:mod:`.checks.parts`), and :mod:`.hints` turns the common mistakes into what to
write. All findings are reported at once, as
``plant.yaml:42: devices[3].poll_groups[0].tags[7].type: 'flaot32' is not one of ...``;
warnings (probably a mistake, maybe meant) as ``...: warning: ...``.

Nothing is shared between calls: a reload may load the file in a worker thread while
the event loop keeps polling.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config.base import FROM_YAML
from edge_agent.config.baseline import resolve_csv_paths
from edge_agent.config.carriers import carrier_hint
from edge_agent.config.checks import PlantParts, check_parts, metrics_warnings, write_warnings
from edge_agent.config.checks.common import Loc, format_path, short_repr
from edge_agent.config.checks.parts import document_path
from edge_agent.config.collector_pause import collector_paused
from edge_agent.config.document import read_document
from edge_agent.config.hints import (
    BOOLEAN_WORDS,
    address_hint,
    address_warnings,
    byte_order_hint,
    quote_hint,
    type_hint,
)
from edge_agent.config.plant import PlantConfig
from edge_agent.config.reading import (
    DEFAULT_LIMITS,
    LoadLimits,
    check_text_size,
    read_plant_file,
)
from edge_agent.config.source_map import SourceMap
from edge_agent.config.templates import expand_templates
from edge_agent.errors import ConfigError
from edge_agent.redaction import is_secret_location

__all__ = [
    "DEFAULT_LIMITS",
    "ConfigReport",
    "LoadLimits",
    "SourceMap",
    "inspect_config",
    "load_config",
    "load_report",
    "parse_config",
]


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


def _allowed(expected: str) -> str:
    """``"'bool', 'int16' or 'string'"`` -> ``"bool, int16, string"``."""
    return ", ".join(p.strip().strip("'") for p in re.split(r",| or ", expected) if p.strip())


def _message(error: ErrorDetails, written: str | None = None, table: Any = None) -> str:
    """The error in words; ``written``: the text of a boolean as written (``off``)."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    value = error.get("input")
    field = error["loc"][-1] if error["loc"] else ""
    if isinstance(value, bool) and written in BOOLEAN_WORDS and kind != "bool_type":
        return quote_hint(written)
    if kind == "literal_error":
        allowed = _allowed(str(ctx.get("expected", "")))
        hint = type_hint(value, allowed) if field == "type" else None
        if field == "byte_order":
            hint = byte_order_hint(value)
        if field == "carrier":
            hint = carrier_hint(value)
        if not hint and isinstance(value, str):  # a typo: 'flaot32', 'holdnig'
            close = difflib.get_close_matches(value, allowed.split(", "), n=1, cutoff=0.7)
            hint = f"did you mean {close[0]}?" if close else None
        return f"{short_repr(value)} is not one of {allowed}" + (f"; {hint}" if hint else "")
    if field == "address" and isinstance(value, int) and kind == "less_than_equal":
        hint = address_hint(value, table)
        if hint is not None:
            return f"{value} is past the last address 65535; {hint}"
    if kind == "union_tag_invalid":
        expected = _allowed(str(ctx.get("expected_tags", "")))
        return f"{short_repr(ctx.get('tag'))} is not one of {expected}"
    if kind == "union_tag_not_found":
        return f"required field '{ctx.get('discriminator', '').strip(chr(39))}' is missing"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        # group_id: 1, client_id: 2024: YAML reads them as numbers.
        if is_secret_location(error["loc"]):  # never echo a password
            return "read as a number where text is expected: write it in quotes"
        shown = written if written is not None else short_repr(value)
        return f'{shown} was read as a number where text is expected: write "{shown}" in quotes'
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


@dataclass(frozen=True)
class ConfigReport:
    """A valid plant and the warnings about it (``file:line: path: warning: ...``).

    A warning is something that is probably a mistake but may be meant (an address
    that looks like a register number): ``check`` shows it and still exits 0.
    """

    plant: PlantConfig
    warnings: list[str] = field(default_factory=list)
    source: SourceMap | None = None

    def line_of(self, path: Loc) -> int:
        return 1 if self.source is None else self.source.line_of(path)


#: Changes the document (plain dicts and lists, ``${VAR}`` expanded) before it is
#: validated: what a caller adds to any plant file (the demo's console listener).
Adjust = Callable[[dict[str, Any]], None]


def parse_config(
    text: str,
    file: str = "plant.yaml",
    env: Mapping[str, str] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
    adjust: Adjust | None = None,
) -> PlantConfig:
    """Validate YAML ``text``; raise :class:`ConfigError` listing every problem found."""
    return inspect_config(text, file, env, limits, adjust).plant


def inspect_config(
    text: str,
    file: str = "plant.yaml",
    env: Mapping[str, str] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
    adjust: Adjust | None = None,
) -> ConfigReport:
    """Validate YAML ``text``: the plant and its warnings, or :class:`ConfigError`
    listing every problem (with the warnings in :attr:`ConfigError.report`)."""
    with collector_paused():
        return _inspect(text, file, env, limits, adjust)


def _inspect(
    text: str,
    file: str,
    env: Mapping[str, str] | None,
    limits: LoadLimits,
    adjust: Adjust | None = None,
) -> ConfigReport:
    check_text_size(text, file, limits)
    document = read_document(text, file, os.environ if env is None else env, limits)
    if document.empty:
        raise ConfigError([f"{file}:1: the file is empty"])
    data, source, problems = document.data, document.source, document.problems
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the top level must be a mapping (plant:, devices:, ...)"])
    if adjust is not None:
        adjust(data)
    # Devices with `template:` become plain devices; problems inside a template file
    # come first, each once, with that file's own line.
    expansion = expand_templates(data, source, file, describe_error, limits, document.values)
    data, in_templates = expansion.data, expansion.template_problems
    resolve_csv_paths(data, file)  # baseline CSVs are relative to the plant file
    document.reported |= expansion.reported
    problems += expansion.problems
    try:
        plant = PlantConfig.model_validate(data, context=FROM_YAML)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            path = document_path(error["loc"], data)
            if source.written_at(path) in document.reported:
                continue
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                path = (*path, str(error.get("ctx", {}).get("discriminator", "")).strip("'"))
            written = document.bool_words.get(source.written_at(path))
            message = _message(error, written, _table_of(data, path))
            path, message = _at_named_key(data, path, message)
            problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
        # The cross-checks still run, on every part that is valid on its own.
        parts = PlantParts.of_data(data, FROM_YAML)
        valid: PlantConfig | None = None
    else:
        parts = PlantParts.of_plant(plant)
        valid = plant
    for path, message in check_parts(parts, source.line_of):
        problems.append((source.line_of(path), f"{format_path(path)}: {message}"))
    warnings = [
        (source.line_of(path), f"{format_path(path)}: warning: {message}")
        for path, message in [
            *address_warnings(data),
            *metrics_warnings(parts),
            *write_warnings(parts),
        ]
    ]
    warnings.sort(key=lambda p: p[0])
    if valid is not None and not problems and not in_templates:
        return ConfigReport(valid, [f"{file}:{line}: {m}" for line, m in warnings], source)
    problems.sort(key=lambda p: p[0])
    report = sorted(problems + warnings, key=lambda p: p[0])
    raise ConfigError(
        [*in_templates, *(f"{file}:{line}: {message}" for line, message in problems)],
        [*in_templates, *(f"{file}:{line}: {message}" for line, message in report)],
    )


#: ``counter.unit: ...``: a model's own rule naming the key it is about.
_KEY_PREFIX = re.compile(r"(?:^|(?<=; ))([a-z_]+(?:\.[a-z_]+)*): ")


def _at_named_key(data: dict[str, Any], path: Loc, message: str) -> tuple[Loc, str]:
    """A rule of a whole item that names its key (``counter.unit: diesel is counted in
    kg, t, not m3``) is put at that key's line, when the file has the key there."""
    match = _KEY_PREFIX.match(message)
    if match is None or _KEY_PREFIX.search(message, match.end()) is not None:
        return path, message  # none, or several keys' problems in one message
    keys = tuple(match.group(1).split("."))
    current = _value_at(data, path)
    for key in keys:
        if not isinstance(current, dict) or key not in current:
            return path, message
        current = current[key]
    return (*path, *keys), message[match.end() :]


def _value_at(data: dict[str, Any], path: Loc) -> Any:
    """The value at ``path``, as written; None where there is none."""
    current: Any = data
    for part in path:
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        elif isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current


def _table_of(data: dict[str, Any], path: Loc) -> Any:
    """The ``table:`` beside ``path`` (a tag's address), as written."""
    current = _value_at(data, path[:-1])
    return current.get("table") if isinstance(current, dict) else None


def load_report(
    path: Path | str, env: Mapping[str, str] | None = None, limits: LoadLimits = DEFAULT_LIMITS
) -> ConfigReport:
    """Read and validate the plant file at ``path``: the plant and its warnings."""
    path = Path(path)
    return inspect_config(read_plant_file(path, limits), str(path), env, limits)


def load_config(
    path: Path | str,
    env: Mapping[str, str] | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
    adjust: Adjust | None = None,
) -> PlantConfig:
    """Read and validate the plant file at ``path``."""
    path = Path(path)
    return parse_config(read_plant_file(path, limits), str(path), env, limits, adjust)
