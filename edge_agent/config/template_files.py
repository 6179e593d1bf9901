"""Device template files: what one holds, where they are found, and checking one alone.

A template (``configs/templates/<name>.yaml``, or a user's ``templates_dir``) describes a
device model once: its register map as poll groups (the same shape as a device's), the
device-level defaults it needs (byte order, gaps, timeout), its ``device_type``, the
metrics role it can play (the energy counter and power of a meter, the state of a
machine), and the manual it was written from. A device in the plant file then says
``template: eastron-sdm630`` (:mod:`edge_agent.config.templates` expands it).

A template is checked alone, before any device uses it, and each problem is reported
once with the template file's own ``file:line``: thirty meters that share a broken
template give one error, not thirty. Each tag may name the simulator ``quantity`` that
serves it (:mod:`simulators.templates`); the agent ignores it.

Nothing is cached: every load of a plant reads its templates again, so a reload sees a
changed template file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import ErrorDetails

from edge_agent.bundled import templates_dir as bundled_templates_dir
from edge_agent.config.base import Duration, Interval, Name, Strict
from edge_agent.config.checks.common import Finding, Loc, format_path
from edge_agent.config.checks.modbus import check_modbus_device
from edge_agent.config.document import read_document
from edge_agent.config.metrics import CounterTag, PowerTag, StateFromTag
from edge_agent.config.modbus import ByteOrder, ModbusDeviceConfig, ModbusTag
from edge_agent.config.reading import DEFAULT_LIMITS, LoadLimits, read_plant_file
from edge_agent.config.source_map import SourceMap
from edge_agent.errors import ConfigError
from edge_agent.metrics.utilization import STATE_NAMES

#: Turns one pydantic error into words (the loader's, so templates read like plant files).
Describe = Callable[[ErrorDetails], str]

SUFFIX = ".yaml"


class TemplateSource(Strict):
    """The manual a template was written from: a register map is only as good as it."""

    document: str = Field(min_length=1, description="Title of the manual.")
    publisher: str = Field(min_length=1)
    version: str = Field(min_length=1)
    date: str = Field(min_length=1)
    note: str = Field(min_length=1, description="How it was written, what is mapped.")


class TemplateDefaults(Strict):
    """Device-level settings the register map needs; the plant's device may override each."""

    byte_order: ByteOrder | None = None
    timeout: Duration | None = Field(default=None, gt=0, le=60)
    inter_frame_delay: Duration | None = Field(default=None, ge=0, le=1)
    max_registers_per_read: int | None = Field(default=None, ge=1, le=125)
    max_bits_per_read: int | None = Field(default=None, ge=1, le=2000)
    max_gap: int | None = Field(default=None, ge=0, le=124)


class TemplateTag(ModbusTag):
    """A tag of a template; ``quantity`` says which simulator value serves it."""

    quantity: str | None = Field(
        default=None, description="Simulator quantity behind this tag (simulators/templates.py)."
    )


class TemplateGroup(Strict):
    name: Name = "default"
    interval: Interval
    tags: list[TemplateTag] = Field(min_length=1)


class MeterRole(Strict):
    """What ``metrics.meters`` takes from the template when an entry gives neither."""

    counter: CounterTag | None = None
    power: PowerTag | None = None

    @model_validator(mode="after")
    def _has_a_source(self) -> MeterRole:
        if self.counter is None and self.power is None:
            raise ValueError("a meter role needs a counter, a power tag, or both")
        return self


class MachineRole(Strict):
    """What ``metrics.machines`` takes from the template when an entry gives no state."""

    state: StateFromTag


class TemplateRoles(Strict):
    meter: MeterRole | None = None
    machine: MachineRole | None = None


class DeviceTemplate(Strict):
    """One template file."""

    template: Name = Field(description="The name devices use; the file is <name>.yaml.")
    title: str = Field(min_length=1)
    driver: Literal["modbus"]
    source: TemplateSource
    device_type: str = ""
    defaults: TemplateDefaults = TemplateDefaults()
    poll_groups: list[TemplateGroup] = Field(min_length=1)
    roles: TemplateRoles = TemplateRoles()
    simulator: dict[str, Any] = Field(
        default_factory=dict, description="Model parameters for simulators/templates.py."
    )

    def tags(self) -> list[tuple[str, TemplateTag]]:
        """(group name, tag) for every tag, in file order."""
        return [(group.name, tag) for group in self.poll_groups for tag in group.tags]


@dataclass(slots=True)
class LoadedTemplate:
    """A template file read and checked: its model when valid, its problems when not."""

    name: str
    path: Path
    #: Plain data as written (what devices copy), with the line of every key.
    data: dict[str, Any] = field(default_factory=dict)
    source: SourceMap = field(default_factory=lambda: SourceMap(""))
    model: DeviceTemplate | None = None
    #: ``file:line: path: message``, ready to print.
    problems: list[str] = field(default_factory=list)
    #: Values in the file (aliases expanded): what each device using it adds to a plant.
    values: int = 0

    def line_of(self, path: Loc) -> int:
        return self.source.line_of(path)


def library(user_dir: Path | None = None) -> dict[str, Path]:
    """Template name -> file: the bundled ones, then ``user_dir``'s, which win."""
    found: dict[str, Path] = {}
    for directory in (bundled_templates_dir(), user_dir):
        if directory is None or not is_directory(directory):
            continue
        for path in sorted(directory.glob("*" + SUFFIX)):
            found[path.name[: -len(SUFFIX)]] = path
    return dict(sorted(found.items()))


def is_directory(path: Path) -> bool:
    """False for a path that is no directory, cannot be looked at, or cannot be a path."""
    try:
        return path.is_dir()
    except (OSError, ValueError):  # ValueError: a NUL character in the name
        return False


def unknown_template(name: str, known: Mapping[str, Path]) -> str:
    """The words for a template name nobody has: a did-you-mean and the list."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    available = ", ".join(known) or "none"
    return f"unknown template {name!r}{hint}; available: {available}"


def load_template(
    path: Path, name: str, describe: Describe, limits: LoadLimits = DEFAULT_LIMITS
) -> LoadedTemplate:
    """Read ``path`` and check it alone, within the plant file's ``limits``; never raises
    for a bad file (see ``problems``)."""
    file = str(path)
    loaded = LoadedTemplate(name, path, source=SourceMap(file))
    try:
        text = read_plant_file(path, limits)
        # No environment: a template describes a device model, the same everywhere.
        document = read_document(text, file, None, limits)
    except ConfigError as exc:
        loaded.problems = list(exc.problems)
        return loaded
    if document.empty:
        loaded.problems = [f"{file}:1: the template file is empty"]
        return loaded
    loaded.source = document.source
    data = document.data
    problems = list(document.problems)
    if not isinstance(data, dict):
        loaded.problems = [f"{file}:1: a template is a mapping (template:, title:, poll_groups:)"]
        return loaded
    loaded.data = data
    loaded.values = document.values
    findings: list[Finding] = []
    try:
        model = DeviceTemplate.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            at = _path(error["loc"])
            if loaded.source.written_at(at) not in document.reported:  # else said already
                findings.append((at, describe(error)))
    else:
        findings += _template_rules(model, name)
        if not findings and not problems:
            loaded.model = model
    problems += [(loaded.line_of(path), f"{format_path(path)}: {msg}") for path, msg in findings]
    problems.sort(key=lambda p: p[0])
    loaded.problems = [f"{file}:{line}: {message}" for line, message in problems]
    return loaded


def _path(loc: tuple[str | int, ...]) -> Loc:
    return tuple(part for part in loc if part != "[key]")


def plain_groups(template: LoadedTemplate) -> list[dict[str, Any]]:
    """The template's poll groups as a device's plain data (``quantity`` left out)."""
    groups = template.data.get("poll_groups")
    result = []
    for group in groups if isinstance(groups, list) else []:
        copied = dict(group)
        copied["tags"] = [
            {k: v for k, v in tag.items() if k != "quantity"} for tag in group.get("tags", [])
        ]
        result.append(copied)
    return result


def _template_rules(model: DeviceTemplate, name: str) -> list[Finding]:
    """What pydantic cannot see: the name, the map as a device, the roles' tags."""
    found: list[Finding] = []
    if model.template != name:
        found.append((("template",), f"{model.template!r} differs from the file name {name!r}"))
    device = ModbusDeviceConfig.model_validate(
        {
            "name": "template",
            "driver": "modbus",
            "connection": {"transport": "tcp", "host": "template"},
            **model.defaults.model_dump(exclude_none=True),
            "poll_groups": [
                {**g.model_dump(exclude={"tags"}), "tags": [_agent_tag(t) for t in g.tags]}
                for g in model.poll_groups
            ],
        }
    )
    # The device's own rules (overlaps, duplicate names, bits, lengths), at the
    # template's own paths: devices[0].poll_groups[...] -> poll_groups[...].
    found += [
        (path[2:], message.replace("devices[0].", ""))
        for path, message in check_modbus_device(0, device)
    ]
    tags = {tag.name: tag for _, tag in model.tags()}
    meter = model.roles.meter
    if meter is not None:
        for key, ref in (("counter", meter.counter), ("power", meter.power)):
            if ref is not None:
                found += _numeric(("roles", "meter", key), ref, tags)
    machine = model.roles.machine
    if machine is not None:
        found += _state(("roles", "machine", "state"), machine.state, tags)
    return found


def _agent_tag(tag: TemplateTag) -> dict[str, Any]:
    return tag.model_dump(exclude={"quantity"}, exclude_defaults=True)


def _lookup(path: Loc, name: str, tags: Mapping[str, TemplateTag]) -> list[Finding]:
    if name in tags:
        return []
    close = difflib.get_close_matches(name, list(tags), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return [(path, f"the template has no tag {name!r}{hint}")]


def _numeric(
    path: Loc, ref: CounterTag | PowerTag, tags: Mapping[str, TemplateTag]
) -> list[Finding]:
    name = ref.tag
    missing = _lookup((*path, "tag"), name, tags)
    if missing:
        return missing
    tag = tags[name]
    if tag.enum is not None or tag.type in ("bool", "string"):
        return [((*path, "tag"), f"tag {name!r} is not a number")]
    # The role's unit is what the metrics compute with: a tag in Wh read as kWh would
    # count a thousand times the energy, and nothing downstream could tell.
    if tag.unit and tag.unit != ref.unit:
        return [((*path, "unit"), f"{ref.unit!r}, but tag {name!r} is in {tag.unit!r}")]
    return []


def _state(path: Loc, state: StateFromTag, tags: Mapping[str, TemplateTag]) -> list[Finding]:
    missing = _lookup((*path, "tag"), state.tag, tags)
    if missing:
        return missing
    enum = tags[state.tag].enum
    if enum is None:
        return [((*path, "tag"), f"tag {state.tag!r} has no enum map; a state tag needs one")]
    unmapped = [
        label for label in enum.values() if label not in state.map and label not in STATE_NAMES
    ]
    if unmapped:
        return [((*path, "map"), f"enum labels without a state: {', '.join(unmapped)}")]
    return []
