"""Cross-field rules of the ``metrics:`` section, each finding tied to its own path (line).

Called by :func:`edge_agent.config.checks.check_plant`. Checks what pydantic cannot
see alone: referenced devices and tags exist, counters and power are numbers, a
state tag has an enum map whose every label maps to a state, shifts do not
overlap and breaks lie inside their shift, names are unique.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from edge_agent.config.catalog import TagCatalog
from edge_agent.config.checks.baseline import check_baselines
from edge_agent.config.checks.common import Finding, Loc, duplicates, format_path
from edge_agent.config.metrics import (
    EnergyConfig,
    MachineConfig,
    MetricsConfig,
    PowerTag,
)
from edge_agent.config.tariff import tariff_problems, tariff_warnings
from edge_agent.metrics.specs import shift_specs
from edge_agent.metrics.utilization import STATE_NAMES
from edge_agent.metrics.windows import SHIFT, overlapping_shifts, shift_spec_problems


@dataclass(frozen=True)
class Unchecked:
    """What the metrics rules must not judge: devices that failed validation or whose
    name is used twice (which one is meant is unknown), tags cut away as invalid,
    meters and machines cut away, and whether a shift was cut. Their own errors are
    reported; a "no such device" on top would only repeat them."""

    devices: set[str] = field(default_factory=set)
    tags: set[tuple[str, str]] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    shifts: bool = False
    tariffs: set[str] = field(default_factory=set)
    pruned_tariffs: set[str] = field(default_factory=set)


class _Tags:
    """The plant's tag catalog, answering with findings."""

    def __init__(self, catalog: TagCatalog, unchecked: Unchecked) -> None:
        self.catalog = catalog
        self.devices = catalog.devices
        self.unchecked = unchecked

    def known(self, device: str) -> bool:
        """The device exists, and is the only one of its name."""
        return device in self.devices and device not in self.unchecked.devices

    def device(self, path: Loc, name: str) -> list[Finding]:
        if name in self.devices or name in self.unchecked.devices:
            return []
        close = difflib.get_close_matches(name, list(self.devices), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [(path, f"no device named {name!r} in devices{hint}")]

    def tag(self, path: Loc, device: str, name: str, need: str) -> list[Finding]:
        """Problems with tag ``name`` of ``device`` used as ``need``: numeric | enum."""
        info = self.devices.get(device)
        if info is None or not self.known(device) or (device, name) in self.unchecked.tags:
            return []  # the device finding (or an error of its own) says it already
        tag = info.tags.get(name)
        if tag is None:
            close = difflib.get_close_matches(name, list(info.tags), n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return [(path, f"device {device!r} has no tag {name!r}{hint}")]
        if need == "enum":
            if tag.enum is None:
                return [
                    (
                        path,
                        f"tag {name!r} has no enum map; a state tag needs one "
                        '(e.g. enum: {0: "off", 1: idle, 2: run, 3: fault})',
                    )
                ]
            return []
        if not tag.numeric:
            what = "an enum" if tag.enum is not None else f"a {tag.value_type}"
            return [(path, f"tag {name!r} is {what}; {need} needs a number")]
        return []

    def interval(self, device: str, name: str) -> float | None:
        if not self.known(device):
            return None
        found = self.catalog.tag(device, name)
        return None if found is None else found.interval


def check_metrics(
    metrics: MetricsConfig,
    plant_name: str | None,
    catalog: TagCatalog,
    unchecked: Unchecked | None = None,
) -> list[Finding]:
    """``plant_name``: None when the plant identity is invalid (its error is reported)."""
    unchecked = unchecked or Unchecked()
    base: Loc = ("metrics",)
    tags = _Tags(catalog, unchecked)
    found: list[Finding] = []
    found += duplicates(
        [((*base, "windows", i), w) for i, w in enumerate(metrics.windows)], "window", format_path
    )
    if SHIFT in metrics.windows and not metrics.shifts and not unchecked.shifts:
        index = metrics.windows.index(SHIFT)
        found.append(((*base, "windows", index), "shift windows need metrics.shifts"))
    found += _check_shifts(metrics, base)
    names = [((*base, "meters", i, "device"), m.metric_name) for i, m in enumerate(metrics.meters)]
    names += [
        ((*base, "machines", i, "device"), m.metric_name) for i, m in enumerate(metrics.machines)
    ]
    first_use: dict[str, Loc] = {}
    for path, name in names:
        if name in first_use and name not in unchecked.devices:
            found.append(
                (
                    path,
                    f"metric device name {name!r} is also used at {format_path(first_use[name])} "
                    "(set name: to tell them apart)",
                )
            )
        first_use.setdefault(name, path)
    for path, name in names:
        if metrics.plant_total and name == plant_name:
            found.append((path, f"{name!r} is the plant's name, used by the plant total"))
    for index, meter in enumerate(metrics.meters):
        meter_path: Loc = (*base, "meters", index)
        found += tags.device((*meter_path, "device"), meter.device)
        found += _check_energy(tags, meter_path, meter.device, meter)
    for index, machine in enumerate(metrics.machines):
        found += _check_machine(tags, metrics, (*base, "machines", index), machine, unchecked)
    meter_names = {m.metric_name for m in metrics.meters}
    found += duplicates(
        [((*base, "plant_total", i), n) for i, n in enumerate(metrics.plant_total)],
        "plant_total meter",
        format_path,
    )
    carriers = {m.metric_name: m.carrier for m in metrics.meters if not m.is_electric}
    for i, name in enumerate(metrics.plant_total):
        if name not in meter_names and name not in unchecked.metrics:
            found.append(((*base, "plant_total", i), f"{name!r} is not one of metrics.meters"))
        elif name in carriers:
            found.append(
                (
                    (*base, "plant_total", i),
                    f"{name!r} is a {carriers[name]} meter; the plant total adds electricity only",
                )
            )
    idle = metrics.events.idle_energy
    machine_names = {m.metric_name for m in metrics.machines}
    for name in idle.machines if idle is not None else ():
        if name not in machine_names and name not in unchecked.metrics:
            where: Loc = (*base, "events", "idle_energy", "machines", name)
            found.append((where, f"{name!r} is not one of metrics.machines"))
    found += _check_tariffs(metrics, base, unchecked)
    found += check_baselines(metrics, plant_name, tags, unchecked.metrics)
    found += [
        ((*base, "reports", key), message)
        for key, message in metrics.reports.problems(metrics.windows)
    ]
    return found


def _check_tariffs(metrics: MetricsConfig, base: Loc, unchecked: Unchecked) -> list[Finding]:
    """Each tariff alone, names unique, meters name a tariff there is, one currency per total."""
    found: list[Finding] = []
    names: list[str] = []
    for i, tariff in enumerate(metrics.tariffs):
        if tariff.name in names:
            found.append(
                (
                    (*base, "tariffs", i, "name"),
                    f"tariff name {tariff.name!r} is used twice (meters name their tariff)",
                )
            )
        names.append(tariff.name)
    for i, tariff in enumerate(metrics.tariffs):
        if tariff.name in unchecked.pruned_tariffs:
            continue  # a span or a season was cut: its own error says it, not a gap
        found += [((*base, "tariffs", i, *path), m) for path, m in tariff_problems(tariff)]
    for i, meter in enumerate(metrics.meters):
        if meter.tariff is not None and meter.tariff not in {*names, *unchecked.tariffs}:
            close = difflib.get_close_matches(meter.tariff, names, n=1, cutoff=0.6)
            known = (
                f"did you mean {close[0]!r}?"
                if close
                else f"tariffs: {', '.join(dict.fromkeys(names))}"
                if names
                else "metrics.tariffs is empty"
            )
            found.append(
                ((*base, "meters", i, "tariff"), f"no tariff named {meter.tariff!r} ({known})")
            )
    members = [m for m in metrics.meters if m.metric_name in metrics.plant_total]
    currencies = sorted({t.currency for m in members if (t := metrics.tariff_of(m)) is not None})
    if len(currencies) > 1:
        found.append(
            (
                (*base, "plant_total"),
                f"the plant total's meters are priced in {' and '.join(currencies)}: "
                "their costs cannot be added (give them tariffs in one currency)",
            )
        )
    return found


def tariff_warning_findings(metrics: MetricsConfig) -> list[Finding]:
    """Tariff prices that break the NDRC's 2021 ratios, electricity meters left unpriced
    by a second tariff, and a plant total that cannot be priced because some of its
    meters have a tariff and some not (warnings, not errors)."""
    found: list[Finding] = [
        (("metrics", "tariffs", i, *path), message)
        for i, tariff in enumerate(metrics.tariffs)
        for path, message in tariff_warnings(tariff)
    ]
    if len(metrics.tariffs) > 1:
        # The only tariff prices every meter without ``tariff:``; a second one ends that
        # default, and the cost of those meters would vanish without a word.
        names = " or ".join(dict.fromkeys(t.name for t in metrics.tariffs))
        for i, meter in enumerate(metrics.meters):
            if meter.is_electric and meter.tariff is None:
                found.append(
                    (
                        ("metrics", "meters", i),
                        f"meter {meter.metric_name!r} has no tariff: with "
                        f"{len(metrics.tariffs)} tariffs none is the default (only a single "
                        f"tariff is), so its energy has no cost; set tariff: {names}",
                    )
                )
    # Tariffs price electricity; a carrier meter in the total has an error of its own.
    members = [m for m in metrics.meters if m.metric_name in metrics.plant_total and m.is_electric]
    unpriced = [m.metric_name for m in members if metrics.tariff_of(m) is None]
    if unpriced and len(unpriced) < len(members):
        found.append(
            (
                ("metrics", "plant_total"),
                f"{', '.join(repr(n) for n in unpriced)} {'has' if len(unpriced) == 1 else 'have'}"
                " no tariff: the plant total publishes no cost (give every meter of it a tariff)",
            )
        )
    return found


def _check_shifts(metrics: MetricsConfig, base: Loc) -> list[Finding]:
    found = duplicates(
        [((*base, "shifts", i, "name"), s.name) for i, s in enumerate(metrics.shifts)],
        "shift",
        format_path,
    )
    specs = shift_specs(metrics)
    for index, spec in enumerate(specs):
        found += [((*base, "shifts", index, "breaks"), p) for p in shift_spec_problems(spec)]
    for later, earlier in overlapping_shifts(specs):
        found.append(
            (
                (*base, "shifts", later, "start"),
                f"shift {specs[later].name!r} overlaps shift {specs[earlier].name!r}",
            )
        )
    return found


def _check_energy(tags: _Tags, path: Loc, device: str, energy: EnergyConfig) -> list[Finding]:
    found: list[Finding] = []
    if energy.counter is not None:
        found += tags.tag(
            (*path, "counter", "tag"), device, energy.counter.tag, "an energy counter"
        )
    if energy.power is not None:
        found += tags.tag((*path, "power", "tag"), device, energy.power.tag, "power")
        found += _gap_problem(tags, (*path, "power", "max_gap"), device, energy.power)
    return found


def _gap_problem(tags: _Tags, path: Loc, device: str, power: PowerTag) -> list[Finding]:
    interval = tags.interval(device, power.tag)
    if power.max_gap is not None and interval is not None and power.max_gap <= interval:
        return [
            (
                path,
                f"max_gap {power.max_gap:g}s is not longer than the poll interval "
                f"{interval:g}s: every interval would be a gap",
            )
        ]
    return []


def _check_machine(
    tags: _Tags, metrics: MetricsConfig, path: Loc, machine: MachineConfig, unchecked: Unchecked
) -> list[Finding]:
    device = machine.device
    found = tags.device((*path, "device"), device)
    state_tag = None
    if machine.state is not None:
        state_tag = machine.state.tag
        problems = tags.tag((*path, "state", "tag"), device, state_tag, "enum")
        found += problems
        if not problems and tags.known(device) and (device, state_tag) not in unchecked.tags:
            found += _check_state_map(tags, path, machine)
    if machine.state_from_power is not None:
        power = machine.state_from_power
        state_tag = power.tag
        found += tags.tag((*path, "state_from_power", "tag"), device, power.tag, "power")
        if power.min_dwell > metrics.grace:
            found.append(
                (
                    (*path, "state_from_power", "min_dwell"),
                    f"min_dwell {power.min_dwell:g}s is longer than metrics.grace "
                    f"{metrics.grace:g}s: a state change would reach its window after it closed",
                )
            )
    interval = tags.interval(device, state_tag) if state_tag else None
    if machine.max_gap is not None and interval is not None and machine.max_gap <= interval:
        found.append(
            (
                (*path, "max_gap"),
                f"max_gap {machine.max_gap:g}s is not longer than the poll interval "
                f"{interval:g}s of the state tag: every interval would be a gap",
            )
        )
    if machine.parts is not None:
        parts = machine.parts
        for key, tag in (("total", parts.total), ("good", parts.good), ("scrap", parts.scrap)):
            if tag is not None:
                found += tags.tag((*path, "parts", key), device, tag, "a parts counter")
    if machine.energy is not None:
        found += _check_energy(tags, (*path, "energy"), device, machine.energy)
    if machine.planned == "shifts" and not metrics.shifts and not unchecked.shifts:
        found.append(((*path, "planned"), "planned: shifts needs metrics.shifts"))
    return found


def _check_state_map(tags: _Tags, path: Loc, machine: MachineConfig) -> list[Finding]:
    assert machine.state is not None
    tag = tags.devices[machine.device].tags[machine.state.tag]
    labels = [str(label) for label in (tag.enum or {}).values()]
    found: list[Finding] = []
    for label in machine.state.map:
        if label not in labels:
            found.append(
                (
                    (*path, "state", "map", label),
                    f"{label!r} is not a label of tag {machine.state.tag!r} "
                    f"(labels: {', '.join(labels)})",
                )
            )
    unmapped = [x for x in labels if x not in machine.state.map and x not in STATE_NAMES]
    if unmapped:
        found.append(
            (
                (*path, "state", "tag"),
                f"enum labels {', '.join(repr(x) for x in unmapped)} of tag "
                f"{machine.state.tag!r} map to no state: add them to map "
                "(off, idle, run or fault)",
            )
        )
    return found
