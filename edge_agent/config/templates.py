"""Expand ``template:`` devices of a plant file into plain devices, before validation.

The loader calls :func:`expand_templates` on the plain data the builder made, so the
models see an ordinary Modbus device: its tags and defaults copied from the template
file (:mod:`.template_files`), the device's own keys winning, then

- ``interval: 5s`` (every poll group of the template) or ``interval: {energy: 1m}``
  (by group) and ``overrides: {voltage_l1: {scale: 0.1}}`` (single tags; ``enabled:
  false`` leaves one out) applied to the copy; poll groups the device writes itself
  come first, the template's after them;
- a ``metrics.meters`` (or ``metrics.machines``) entry for such a device that gives
  neither counter nor power (neither state) gets the template's role.

Where problems are reported: a problem inside a template is reported once, at the
template file's own line, when the template is checked alone; the devices using a
broken template are left unexpanded and their missing poll groups go unreported.
What is copied from a template is located, in the plant file, at the device's
``template:`` line; an overridden tag at its override, an interval at its own line.
The data the builder made is never changed (aliases share it): devices, groups and
tags that change are copies.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter, ValidationError

from edge_agent.config.base import Interval
from edge_agent.config.checks.common import Loc, format_path
from edge_agent.config.metrics import EnergyUnit, PowerUnit
from edge_agent.config.modbus import TagOverride
from edge_agent.config.reading import DEFAULT_LIMITS, LoadLimits
from edge_agent.config.source_map import SourceMap
from edge_agent.config.template_files import (
    Describe,
    LoadedTemplate,
    is_directory,
    library,
    load_template,
    plain_groups,
    unknown_template,
)
from edge_agent.errors import ConfigError

__all__ = ["Expansion", "expand_templates", "user_templates_dir"]

_INTERVAL: TypeAdapter[float] = TypeAdapter(Interval)
#: The units a role's tag may be given in, by role key (a state has none).
_ROLE_UNITS: dict[str, tuple[str, ...]] = {
    "counter": get_args(EnergyUnit),
    "power": get_args(PowerUnit),
}


@dataclass(slots=True)
class Expansion:
    """The plant data with templates expanded, and what was found on the way."""

    data: Any
    #: (line in the plant file, ``path: message``).
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: Problems inside template files, each ``file:line: path: message``, once per file.
    template_problems: list[str] = field(default_factory=list)
    #: Paths (as written) whose validation error would only repeat a reported problem.
    reported: set[Loc] = field(default_factory=set)


def user_templates_dir(data: Mapping[str, Any], file: str) -> Path | None:
    """``templates_dir`` of the plant data, relative to the plant file's directory."""
    value = data.get("templates_dir")
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(file).parent / path


def expand_templates(
    data: Any,
    source: SourceMap,
    file: str,
    describe: Describe,
    limits: LoadLimits = DEFAULT_LIMITS,
    values: int = 0,
) -> Expansion:
    """Expand every device with ``template:`` in ``data`` (see the module docstring).

    ``values``: what the plant file itself holds. Each template device adds its
    template's values; past ``limits.max_values`` in all, :class:`ConfigError` (a
    thousand devices of a large template would otherwise cost what no plant file may).
    """
    result = Expansion(data)
    if not isinstance(data, dict) or not isinstance(data.get("devices"), list):
        return result
    user_dir = user_templates_dir(data, file)
    if user_dir is not None and not is_directory(user_dir):
        shown = str(user_dir) if str(user_dir).isprintable() else repr(str(user_dir))
        result.problems.append(
            (source.line_of(("templates_dir",)), f"templates_dir: {shown} is not a directory")
        )
    left = limits.max_values - values
    expander = _Expander(source, library(user_dir), describe, result, limits, left)
    devices = [expander.device(i, item) for i, item in enumerate(data["devices"])]
    result.data = {**data, "devices": devices}
    metrics = data.get("metrics")
    if isinstance(metrics, dict):
        result.data["metrics"] = expander.roles(metrics, devices)
    return result


class _Expander:
    def __init__(
        self,
        source: SourceMap,
        known: dict[str, Path],
        describe: Describe,
        result: Expansion,
        limits: LoadLimits,
        left: int,
    ) -> None:
        self.source = source
        self.limits = limits
        #: Values the expanded devices may still add (see :func:`expand_templates`).
        self.left = left
        self.known = known
        self.describe = describe
        self.result = result
        self._loaded: dict[str, LoadedTemplate] = {}
        #: Device name -> the template it uses (None: unknown or broken).
        self.by_device: dict[str, LoadedTemplate | None] = {}
        #: Device name -> (its path, its ``overrides:`` as written).
        self.overrides: dict[str, tuple[Loc, Any]] = {}

    def problem(self, path: Loc, message: str) -> None:
        self.result.problems.append((self.source.line_of(path), f"{format_path(path)}: {message}"))

    def skip(self, path: Loc) -> None:
        self.result.reported.add(self.source.written_at(path))

    def template(self, name: str) -> LoadedTemplate | None:
        """The template ``name``, read once per load; None when unknown."""
        if name not in self._loaded:
            path = self.known.get(name)
            if path is None:
                return None
            loaded = load_template(path, name, self.describe, self.limits)
            self._loaded[name] = loaded
            self.result.template_problems += loaded.problems
        return self._loaded[name]

    # ------------------------------------------------------------------ devices

    def device(self, index: int, item: Any) -> Any:
        base: Loc = ("devices", index)
        if not isinstance(item, dict):
            return item
        if "template" not in item:
            for key in ("interval", "overrides"):
                if key in item:
                    self.problem(
                        (*base, key),
                        f"only a device with template: has {key}; without one, "
                        "write it in the poll groups",
                    )
                    self.skip((*base, key))
            return item
        name = item["template"]
        if not isinstance(name, str):
            return item  # pydantic says what is wrong with it
        loaded = self.template(name)
        if isinstance(item.get("name"), str):
            self.by_device.setdefault(item["name"], loaded)
            self.overrides.setdefault(item["name"], (base, item.get("overrides")))
        valid = loaded.model if loaded is not None else None
        driver = item.get("driver")
        if valid is not None and driver is not None and driver != valid.driver:
            self.problem(
                (*base, "driver"),
                f"template {name!r} is for {valid.driver} devices, not {driver!r}",
            )
            self.skip((*base, "template"))
            self.skip((*base, "poll_groups"))
            return item
        if loaded is None:
            self.problem((*base, "template"), unknown_template(name, self.known))
        elif loaded.model is None:
            self.problem(
                (*base, "template"),
                f"template {name!r} has problems (listed at {loaded.path})",
            )
        if loaded is None or loaded.model is None:
            self.skip((*base, "poll_groups"))
            if "driver" not in item:  # the template would have given it
                self.skip(base)
            return item
        self.left -= loaded.values
        if self.left < 0:
            line = self.source.line_of((*base, "template"))
            raise ConfigError(
                [
                    f"{self.source.file}:{line}: {format_path((*base, 'template'))}: the "
                    f"templates expand the plant to more than {self.limits.max_values:,} "
                    "values (the limit)"
                ]
            )
        return self._expand(base, item, loaded)

    def _expand(self, base: Loc, item: dict[str, Any], loaded: LoadedTemplate) -> dict[str, Any]:
        at_template = self.source.line_of((*base, "template"))
        written = dict(loaded.data.get("defaults") or {})
        if loaded.data.get("device_type"):
            written["device_type"] = loaded.data["device_type"]
        written["driver"] = loaded.data["driver"]
        device = {**written, **item}
        for key in written:
            if key not in item:
                self.source.lines[(*base, key)] = at_template
        groups = plain_groups(loaded)
        self._intervals(base, item.get("interval"), groups)
        changed = self._overrides(base, item.get("overrides"), groups)
        own = item.get("poll_groups")
        if own is not None and not isinstance(own, list):
            return device  # pydantic says what is wrong with them
        own = own or []
        device["poll_groups"] = [*own, *groups]
        if "poll_groups" not in item:
            self.source.lines[(*base, "poll_groups")] = at_template
        for g, group in enumerate(groups):
            at = (*base, "poll_groups", len(own) + g)
            self.source.lines[at] = at_template
            if "_interval_at" in group:
                self.source.lines[(*at, "interval")] = group.pop("_interval_at")
            for t, tag in enumerate(group["tags"]):
                line = changed.get(id(tag))
                if line is not None:
                    self.source.lines[(*at, "tags", t)] = line
        return device

    def _intervals(self, base: Loc, interval: Any, groups: list[dict[str, Any]]) -> None:
        if interval is None:
            return
        if not isinstance(interval, dict):
            if _valid_interval(interval):
                line = self.source.line_of((*base, "interval"))
                for group in groups:
                    group["interval"], group["_interval_at"] = interval, line
            return
        by_name = {group.get("name", "default"): group for group in groups}
        for name, value in interval.items():
            path = (*base, "interval", name)
            if name not in by_name:
                self.problem(
                    path, f"the template has no poll group {name!r} (it has: {', '.join(by_name)})"
                )
            elif _valid_interval(value):
                by_name[name]["interval"] = value
                by_name[name]["_interval_at"] = self.source.line_of(path)

    def _overrides(self, base: Loc, overrides: Any, groups: list[dict[str, Any]]) -> dict[int, int]:
        """Apply ``overrides`` to ``groups``; id of each changed tag -> its override's line."""
        changed: dict[int, int] = {}
        if not isinstance(overrides, dict):
            return changed
        where = {
            tag.get("name"): (g, t)
            for g, group in enumerate(groups)
            for t, tag in enumerate(group["tags"])
        }
        disabled: set[tuple[int, int]] = set()
        for name, change in overrides.items():
            path = (*base, "overrides", name)
            if name not in where:
                self.problem(path, _no_such_tag(name, [n for n in where if isinstance(n, str)]))
                continue
            try:
                override = TagOverride.model_validate(change)
            except ValidationError:
                continue  # the device's model reports it at the override's own line
            g, t = where[name]
            if not override.enabled:
                disabled.add((g, t))
                continue
            relabel = _relabel_problem(groups[g]["tags"][t], override)
            if relabel:
                self.problem((*path, "unit"), relabel)
                continue
            tag = {**groups[g]["tags"][t]}
            tag.update((k, change[k]) for k in override.model_fields_set if k != "enabled")
            groups[g]["tags"][t] = tag
            changed[id(tag)] = self.source.line_of(path)
        for g, group in enumerate(groups):
            group["tags"] = [tag for t, tag in enumerate(group["tags"]) if (g, t) not in disabled]
        groups[:] = [group for group in groups if group["tags"]]
        return changed

    # ------------------------------------------------------------------ metrics roles

    def roles(self, metrics: dict[str, Any], devices: list[Any]) -> dict[str, Any]:
        """``metrics`` with the template's role filled into entries that give none."""
        result = dict(metrics)
        for section, role, sources in (
            ("meters", "meter", ("counter", "power")),
            ("machines", "machine", ("state", "state_from_power")),
        ):
            entries = metrics.get(section)
            if not isinstance(entries, list):
                continue
            result[section] = [
                self._role(("metrics", section, k), entry, role, sources)
                for k, entry in enumerate(entries)
            ]
        return result

    def _role(self, path: Loc, entry: Any, role: str, sources: tuple[str, ...]) -> Any:
        if not isinstance(entry, dict) or any(key in entry for key in sources):
            return entry
        device = entry.get("device")
        if not isinstance(device, str) or device not in self.by_device:
            return entry
        loaded = self.by_device[device]
        if loaded is None or loaded.model is None:
            self.skip(path)  # the template's problem is reported; this one would repeat it
            return entry
        roles = loaded.data.get("roles") or {}
        given = roles.get(role)
        if not isinstance(given, dict):
            self.problem(
                path,
                f"device {device!r} uses template {loaded.name!r}, which has no {role} role: "
                f"give {' or '.join(sources)}",
            )
            self.skip(path)
            return entry
        given = self._as_overridden(path, device, loaded.name, role, given, sources)
        if given is None:
            self.skip(path)
            return entry
        at = self.source.line_of(path)
        for key in given:
            self.source.lines[(*path, key)] = at
        return {**entry, **given}

    def _as_overridden(
        self,
        path: Loc,
        device: str,
        template: str,
        role: str,
        given: dict[str, Any],
        sources: tuple[str, ...],
    ) -> dict[str, Any] | None:
        """The role with the device's overrides of its tags applied; None when it cannot be.

        A role tag the device leaves out is an error, not a guess at another tag; a role
        tag given another unit takes it to the role, so the counter is never read as kWh
        when the device says MWh.
        """
        base, overrides = self.overrides[device]
        if not isinstance(overrides, dict):
            return given
        result = dict(given)
        for key, ref in given.items():
            tag = ref.get("tag") if isinstance(ref, dict) else None
            change = overrides.get(tag) if isinstance(tag, str) else None
            if not isinstance(tag, str) or not isinstance(change, dict):
                continue
            line = self.source.line_of((*base, "overrides", tag))
            reads = f"the {role} role of template {template!r} reads {tag!r} as its {key}"
            yourself = f"give {' or '.join(sources)} yourself"
            if change.get("enabled") is False:
                self.problem(
                    path,
                    f"{reads}, which device {device!r} leaves out (overrides, line {line}): "
                    f"keep the tag, or {yourself}",
                )
                return None
            unit, units = change.get("unit"), _ROLE_UNITS.get(key)
            if "unit" not in change or units is None or unit == ref.get("unit"):
                continue
            if unit not in units:
                self.problem(
                    path,
                    f"{reads} in {ref.get('unit')}, but device {device!r} gives it unit "
                    f"{unit!r} (overrides, line {line}): write a unit of {', '.join(units)}, "
                    f"or {yourself}",
                )
                return None
            result[key] = {**ref, "unit": unit}
        return result


def _valid_interval(value: Any) -> bool:
    """True when ``value`` is an interval (else the device's model reports it)."""
    try:
        _INTERVAL.validate_python(value)
    except ValidationError:
        return False
    return True


def _no_such_tag(name: Any, names: list[str]) -> str:
    close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"the template has no tag {name!r}{hint}"


#: Units that differ only by a prefix: the factor from the first to the second.
_PREFIXED: dict[tuple[str, str], float] = {
    (small, big): 1000.0
    for base in ("W", "var", "VA", "Wh", "varh", "VAh", "V", "A")
    for small, big in ((base, f"k{base}"), (f"k{base}", f"M{base}"), (f"m{base}", base))
}


def _relabel_problem(tag: dict[str, Any], override: TagOverride) -> str:
    """A unit override to another prefix of the same unit (W -> kW) that keeps the
    template's scale would relabel the number, not convert it: 2002.9 W shown as
    2002.9 kW, and a meter role counting 1000x too much. Say what scale converts it."""
    if "unit" not in override.model_fields_set or "scale" in override.model_fields_set:
        return ""
    have, want = tag.get("unit"), override.unit
    if not isinstance(have, str) or want is None or have == want:
        return ""
    factor = _PREFIXED.get((have, want))
    factor = 1 / factor if factor else _PREFIXED.get((want, have))
    if factor is None:
        return ""
    scale = tag.get("scale", 1.0)
    new_scale = float(scale) * factor if isinstance(scale, int | float) else factor
    return (
        f"unit {want!r} instead of the template's {have!r} does not convert the value (the "
        f"device sends {have}); write scale: {new_scale:g} with it to convert, or give the "
        f"template's scale ({scale}) explicitly if the template's unit is wrong"
    )
