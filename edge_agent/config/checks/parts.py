"""The valid parts of a plant file, so that every cross-check runs in the same pass.

Pydantic rejects a plant file as a whole; the cross-field rules (:mod:`.checks`) need
validated models. Before, one schema error anywhere hid every cross-check, and the
user met them one layer per edit. Here each part is validated on its own (the plant
identity, each device, each sink, the metrics section), and inside a part what
failed is cut away until the rest validates:

- an unknown key is dropped (its error is reported; the rest of its item is fine);
- any other error drops the innermost list item holding it (a tag, a poll group, a
  meter, a shift), so the other tags of the device are still checked;
- a setting no cross-check reads (:data:`METRICS_SETTINGS`: the grid emission factor,
  the coal equivalent, ...) is dropped when it fails, so the part is checked with its
  default: a misspelt grid region does not hide a gap in a tariff;
- a part with any other error outside a list item (a device's connection, a sink's
  required field) is left out; a device then gets the rules of its valid tags only.

Dropped items are never guessed at (a bad ``type`` is not replaced by a default that
would produce findings of its own), and what was dropped is remembered
(:attr:`PlantParts.unchecked_tags` ...) so the rules say nothing about it: a metric
referring to a device that failed validation is not "no device named ...".

Paths inside a pruned part are translated back to the file's (:meth:`Pruner.original`),
so every finding names the line it is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from edge_agent.config.base import PlantIdentity
from edge_agent.config.checks.common import Loc
from edge_agent.config.metrics import MetricsConfig
from edge_agent.config.plant import DeviceConfig, PlantConfig, SinkConfig
from edge_agent.config.remote_config import RemoteConfigSettings
from edge_agent.config.service import ServiceConfig

#: Rounds of cutting per part: each round drops every item an error was in, and items
#: nest four deep at most (device, poll group, tag; metrics, machine, ...).
_MAX_ROUNDS = 12

_DEVICE: TypeAdapter[Any] = TypeAdapter(DeviceConfig)
_SINK: TypeAdapter[Any] = TypeAdapter(SinkConfig)
_METRICS: TypeAdapter[MetricsConfig] = TypeAdapter(MetricsConfig)
_IDENTITY: TypeAdapter[PlantIdentity] = TypeAdapter(PlantIdentity)
_SERVICE: TypeAdapter[ServiceConfig] = TypeAdapter(ServiceConfig)
_REMOTE: TypeAdapter[RemoteConfigSettings] = TypeAdapter(RemoteConfigSettings)

#: Settings of ``metrics:`` that no cross-check reads and whose default makes no finding
#: of its own: one that fails is cut and the rest of the section is checked. Not
#: ``windows`` or ``grace``: their defaults would make findings (a window "not
#: computed", a dwell "longer than grace") about a value the plant did not write.
METRICS_SETTINGS: Final = frozenset(
    ("metrics", key)
    for key in (
        "grid_emission_factor",
        "coal_equivalent",
        "min_coverage",
        "save_interval",
        "reports",
        "events",
    )
)


def document_path(loc: Sequence[str | int], data: Any) -> Loc:
    """Drop the discriminator tags pydantic inserts into ``loc`` (e.g. ``'modbus'``)."""
    path: list[str | int] = []
    current = data
    tagged = False  # the previous part was a tag: this one is a field (``identity.username``)
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":
            continue
        after_tag, tagged = tagged, False
        if isinstance(current, list) and isinstance(part, int):
            path.append(part)
            current = current[part] if 0 <= part < len(current) else None
        elif isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, int) and str(part) in current:
            path.append(part)
            current = current[str(part)]
        elif last and not after_tag and isinstance(current, dict) and _is_tag(current, part):
            break  # a rule of the whole item (a model validator): the item's own path
        elif last or not isinstance(current, dict):
            path.append(part)
            current = None
        else:  # a discriminator tag; the data has no such key, skip it.
            tagged = True
    return tuple(path)


#: The keys whose value pydantic puts into ``loc`` to say which model of a union it used.
_DISCRIMINATORS = ("type", "driver", "transport")


def _is_tag(item: dict[str, Any], part: str | int) -> bool:
    """``part`` is the discriminator tag of ``item`` (``sinks[0]`` with ``type: mqtt``)."""
    return any(item.get(key) == part for key in _DISCRIMINATORS)


class Pruner:
    """Validates parts of ``data`` with what failed cut away; remembers what it cut."""

    def __init__(self, data: dict[str, Any], context: dict[str, Any] | None = None) -> None:
        self.data = data
        self.context = context
        #: Paths (in the file's coordinates) of list items and keys cut away.
        self.removed: set[Loc] = set()

    def validate(
        self, adapter: TypeAdapter[Any], base: Loc, settings: frozenset[Loc] = frozenset()
    ) -> Any | None:
        """The value at ``base`` validated, with failing items inside it cut; None if
        it fails outside any item. ``settings``: paths of keys that may be cut as a whole
        when an error is inside them and in no list item (the default then applies)."""
        for _ in range(_MAX_ROUNDS):
            pruned = self._without(self._at(base), base)
            try:
                return adapter.validate_python(pruned, context=self.context)
            except ValidationError as exc:
                cut: set[Loc] = set()
                for error in exc.errors(include_url=False):
                    inner = document_path(error["loc"], pruned)
                    path = self.original((*base, *inner))
                    if error["type"] == "extra_forbidden" and path[len(base) :]:
                        cut.add(path)
                        continue
                    item = self._innermost_item(path, base) or next(
                        (s for s in settings if path[: len(s)] == s), None
                    )
                    if item is None:
                        return None
                    cut.add(item)
                if not cut - self.removed:
                    return None
                self.removed |= cut
        return None

    def original(self, path: Loc) -> Loc:
        """``path`` in a pruned part -> the same place in the file."""
        out: list[str | int] = []
        current: Any = self.data
        for part in path:
            if isinstance(current, list) and isinstance(part, int):
                kept = [i for i in range(len(current)) if (*out, i) not in self.removed]
                index = kept[part] if 0 <= part < len(kept) else part
                out.append(index)
                current = current[index] if 0 <= index < len(current) else None
            else:
                out.append(part)
                current = current.get(part) if isinstance(current, dict) else None
        return tuple(out)

    def removed_under(self, base: Loc) -> list[tuple[Loc, Any]]:
        """(path, raw value) of every item cut inside ``base``."""
        return [
            (path, self._at(path))
            for path in sorted(self.removed, key=str)
            if path[: len(base)] == base
        ]

    def value_at(self, path: Loc) -> Any:
        """The raw value at ``path`` of the file (nothing cut)."""
        return self._at(path)

    def _at(self, path: Loc) -> Any:
        current: Any = self.data
        for part in path:
            if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
                current = current[part]
            elif isinstance(current, dict):
                current = current.get(part)
            else:
                return None
        return current

    def _without(self, value: Any, path: Loc) -> Any:
        """``value`` (found at ``path``) without the removed items, copied only where cut."""
        if not any(r[: len(path)] == path and len(r) > len(path) for r in self.removed):
            return value
        if isinstance(value, list):
            return [
                self._without(item, (*path, i))
                for i, item in enumerate(value)
                if (*path, i) not in self.removed
            ]
        if isinstance(value, dict):
            return {
                key: self._without(item, (*path, key))
                for key, item in value.items()
                if (*path, key) not in self.removed
            }
        return value

    def _innermost_item(self, path: Loc, base: Loc) -> Loc | None:
        """The deepest list item on ``path`` below ``base``."""
        found = None
        current: Any = self.data
        for depth, part in enumerate(path):
            if isinstance(current, list) and isinstance(part, int):
                if depth >= len(base):
                    found = path[: depth + 1]
                current = current[part] if 0 <= part < len(current) else None
            elif isinstance(current, dict):
                current = current.get(part)
            else:
                break
        return found


@dataclass
class PlantParts:
    """What the cross-checks run on: every part that validated, with its index."""

    #: The plant identity; None when ``plant:`` itself is invalid.
    identity: PlantIdentity | None
    #: (index in ``devices``, validated device), failing tags and groups cut away.
    devices: list[tuple[int, Any]] = field(default_factory=list)
    #: (index, raw mapping) of devices that failed outside any tag.
    broken_devices: list[tuple[int, Any]] = field(default_factory=list)
    sinks: list[tuple[int, Any]] = field(default_factory=list)
    metrics: MetricsConfig | None = None
    #: The ``service:`` section (its console users may write); None when it is invalid.
    service: ServiceConfig | None = None
    #: ``remote_config:``; None when absent or invalid.
    remote_config: RemoteConfigSettings | None = None
    #: The name of every device and sink as written (valid or not), for duplicates.
    device_names: list[tuple[Loc, str]] = field(default_factory=list)
    sink_names: list[tuple[Loc, str]] = field(default_factory=list)
    #: Devices whose tags are unknown (they failed validation): references to them
    #: are not checked.
    unchecked_devices: set[str] = field(default_factory=set)
    #: (device, tag) of tags cut away: references to them are not checked.
    unchecked_tags: set[tuple[str, str]] = field(default_factory=set)
    #: Metric names of meters and machines cut away; True when a shift was cut.
    unchecked_metrics: set[str] = field(default_factory=set)
    shifts_cut: bool = False
    #: Names of tariffs cut away: references to them are not checked.
    tariffs_cut: set[str] = field(default_factory=set)
    #: Names of tariffs with a part cut away: their calendars are not checked.
    tariffs_pruned: set[str] = field(default_factory=set)
    pruner: Pruner | None = None

    def original(self, path: Loc) -> Loc:
        return path if self.pruner is None else self.pruner.original(path)

    @classmethod
    def of_plant(cls, plant: PlantConfig) -> PlantParts:
        """A valid plant: every part, nothing cut."""
        return cls(
            identity=plant.plant,
            devices=list(enumerate(plant.devices)),
            sinks=list(enumerate(plant.sinks)),
            metrics=plant.metrics,
            service=plant.service,
            remote_config=plant.remote_config,
            device_names=[(("devices", i, "name"), d.name) for i, d in enumerate(plant.devices)],
            sink_names=[(("sinks", i, "name"), s.name) for i, s in enumerate(plant.sinks)],
        )

    @classmethod
    def of_data(cls, data: dict[str, Any], context: dict[str, Any] | None = None) -> PlantParts:
        """The parts of a plant file that failed validation as a whole."""
        pruner = Pruner(data, context)
        identity = pruner.validate(_IDENTITY, ("plant",)) if "plant" in data else None
        parts = cls(identity=identity, pruner=pruner)
        if "service" in data:
            parts.service = pruner.validate(_SERVICE, ("service",))
        else:
            parts.service = ServiceConfig()
        if isinstance(data.get("remote_config"), dict):
            parts.remote_config = pruner.validate(
                _REMOTE, ("remote_config",), frozenset({("remote_config", "rollback_after")})
            )
        devices = data.get("devices")
        for index, item in enumerate(devices if isinstance(devices, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                parts.device_names.append((("devices", index, "name"), name))
            device = pruner.validate(_DEVICE, ("devices", index))
            if device is None:
                parts.broken_devices.append((index, item))
                if isinstance(name, str):
                    parts.unchecked_devices.add(name)
                continue
            parts.devices.append((index, device))
            for path, raw in pruner.removed_under(("devices", index)):
                if isinstance(path[-1], int):  # a tag or poll group, not an unknown key
                    parts.unchecked_tags |= {(device.name, tag) for tag in _tag_names(raw)}
        sinks = data.get("sinks")
        for index, item in enumerate(sinks if isinstance(sinks, list) else []):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str):
                parts.sink_names.append((("sinks", index, "name"), name))
            sink = pruner.validate(_SINK, ("sinks", index))
            if sink is not None:
                parts.sinks.append((index, sink))
        if isinstance(data.get("metrics"), dict):
            parts.metrics = pruner.validate(_METRICS, ("metrics",), METRICS_SETTINGS)
            for path, raw in pruner.removed_under(("metrics",)):
                if len(path) > 3 and path[1] == "tariffs" and isinstance(path[-1], int):
                    name = pruner.value_at(path[:3])
                    if isinstance(name, dict) and isinstance(name.get("name"), str):
                        parts.tariffs_pruned.add(name["name"])
                if len(path) != 3:  # a key or an item deeper inside
                    continue
                if path[1] == "shifts":
                    parts.shifts_cut = True
                if path[1] == "tariffs" and isinstance(raw, dict):
                    name = raw.get("name")
                    if isinstance(name, str):
                        parts.tariffs_cut.add(name)
                if path[1] in ("meters", "machines") and isinstance(raw, dict):
                    name = raw.get("name") or raw.get("device")
                    if isinstance(name, str):
                        parts.unchecked_metrics.add(name)
        return parts


def _tag_names(raw: Any) -> set[str]:
    """Names of the tags in a cut tag or poll group (as written)."""
    if not isinstance(raw, dict):
        return set()
    tags = raw.get("tags")
    if isinstance(tags, list):
        return {t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)}
    name = raw.get("name")
    return {name} if isinstance(name, str) else set()
