"""``edge-agent run --once``: read every poll group of every device once and show it.

The commissioning loop without the agent (like ``telegraf --test --once``): per tag the
decoded value with its unit, its quality and reason, and what it was decoded from (the
registers in hex, or the OPC UA node), so a wrong address, type or byte order shows at
a glance. The same drivers as the agent, built through :mod:`drivers.registry`: devices
that share a connection share it here too and are read one after the other; devices on
different connections are read in parallel; every read is bounded by the driver's own
budget, as the agent's scheduler bounds it. Nothing is published, no outbox is opened
and no state file is written (a secured OPC UA session still uses, and on first use
creates, the agent's own certificate under ``state_dir``: it is the identity the server
trusts).
"""

from __future__ import annotations

import asyncio
import json
import math
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import DeviceConfig, PlantConfig
from edge_agent.config.catalog import TagCatalog
from edge_agent.driver import Driver, GroupSpec, ShowsRaw
from edge_agent.errors import DriverConnectError, DriverError
from edge_agent.model import REASON_DISCONNECTED, Quality, SampleBatch, Value

#: Seconds between reads of a subscription group while its first values arrive.
SUBSCRIPTION_POLL_S = 0.1
REASON_NO_NOTIFICATION = "no value from the subscription"


@dataclass(frozen=True, slots=True)
class TagReading:
    name: str
    value: Value
    unit: str
    quality: Quality
    reason: str
    raw: str


@dataclass(slots=True)
class GroupReading:
    name: str
    tags: list[TagReading] = field(default_factory=list)


@dataclass(slots=True)
class DeviceReading:
    name: str
    groups: list[GroupReading] = field(default_factory=list)
    #: Its ``driver:`` kind, which words its reasons ("" when unknown).
    driver: str = ""

    @property
    def good(self) -> bool:
        return all(t.quality is Quality.GOOD for g in self.groups for t in g.tags)


def _raw(driver: Driver, group: str, count: int) -> Sequence[str]:
    return driver.raw(group) if isinstance(driver, ShowsRaw) else [""] * count


def _failed(driver: Driver, spec: GroupSpec, reason: str, catalog: TagCatalog) -> GroupReading:
    raw = _raw(driver, spec.name, len(spec.names))
    return GroupReading(
        spec.name,
        [
            TagReading(name, None, _unit(catalog, driver.device, name), Quality.BAD, reason, raw[n])
            for n, name in enumerate(spec.names)
        ],
    )


def _unit(catalog: TagCatalog, device: str, tag: str) -> str:
    info = catalog.tag(device, tag)
    return "" if info is None else info.unit


Latest = dict[str, tuple[Value, Quality, str]]


def _samples_of(name: str, latest: Latest) -> list[tuple[str, Value, Quality, str]]:
    """The samples of tag ``name``: itself, or its elements (``name[0]``...) for an array."""
    if name in latest:
        return [(name, *latest[name])]
    prefix = f"{name}["
    return [(key, *sample) for key, sample in latest.items() if key.startswith(prefix)]


async def _read_group(driver: Driver, spec: GroupSpec) -> Latest:
    """Every tag of the group once: one read, or a subscription's first values."""
    latest: Latest = {}

    def take(batches: Sequence[SampleBatch]) -> None:
        for batch in batches:
            for name, value, quality, reason in batch:
                latest[name] = (value, quality, reason)

    async with asyncio.timeout(driver.read_budget(spec.name)):
        if not driver.connected:
            await driver.connect()
        take(await driver.read(spec.name))
        if spec.change_based:
            # A subscription hands over what changed: its first publish carries every
            # value; wait for it within one publishing interval (and the read budget).
            deadline = time.monotonic() + spec.interval + SUBSCRIPTION_POLL_S
            while time.monotonic() < deadline and not all(
                _samples_of(name, latest) for name in spec.names
            ):
                await asyncio.sleep(SUBSCRIPTION_POLL_S)
                take(await driver.read(spec.name))
    return latest


@dataclass(slots=True)
class _Outcome:
    reading: DeviceReading
    #: Why the device's connection could not be opened ("" when it could).
    unreachable: str = ""


async def _read_device(
    driver: Driver, catalog: TagCatalog, unreachable: str = "", kind: str = ""
) -> _Outcome:
    """Every group of one device; ``unreachable``: its shared connection already failed."""
    outcome = _Outcome(DeviceReading(driver.device, driver=kind), unreachable)
    groups = outcome.reading.groups
    for spec in driver.groups:
        if outcome.unreachable:  # every further try would wait for the same timeout
            groups.append(_failed(driver, spec, outcome.unreachable, catalog))
            continue
        try:
            latest = await _read_group(driver, spec)
        except DriverError as exc:
            reason = f"{exc.reason} ({exc.detail})" if exc.detail else exc.reason
            # Only a connection that could not be opened, or was lost, stops the rest:
            # a driver also drops it on purpose after one unit's garbled or late answer
            # (and opens it again for the next read), which says nothing of the others.
            lost = isinstance(exc, DriverConnectError) or exc.reason == REASON_DISCONNECTED
        except TimeoutError:
            reason = f"timeout ({driver.read_budget(spec.name):g}s)"
            lost = True
        else:
            groups.append(_group_reading(driver, spec, latest, catalog))
            continue
        groups.append(_failed(driver, spec, reason, catalog))
        if lost and not driver.connected:
            outcome.unreachable = reason
    return outcome


def _group_reading(
    driver: Driver, spec: GroupSpec, latest: Latest, catalog: TagCatalog
) -> GroupReading:
    raw = _raw(driver, spec.name, len(spec.names))
    group = GroupReading(spec.name)
    for n, name in enumerate(spec.names):
        unit = _unit(catalog, driver.device, name)
        samples = _samples_of(name, latest) or [(name, None, Quality.BAD, REASON_NO_NOTIFICATION)]
        for shown, value, quality, reason in samples:
            group.tags.append(TagReading(shown, value, unit, quality, reason, raw[n]))
    return group


async def read_once(config: PlantConfig) -> list[DeviceReading]:
    """Read every group of every device once; devices in config order."""
    from drivers.registry import build_drivers, connection_key  # lazy: protocol packages

    drivers = build_drivers(config)
    for driver in drivers:
        if isinstance(driver, ShowsRaw):
            driver.record_raw()
    catalog = TagCatalog.of(config.devices)
    by_connection: dict[str, list[tuple[DeviceConfig, Driver]]] = {}
    for device, driver in zip(config.devices, drivers, strict=True):
        by_connection.setdefault(connection_key(device), []).append((device, driver))
    readings: dict[str, DeviceReading] = {}

    async def one_connection(members: list[tuple[DeviceConfig, Driver]]) -> None:
        unreachable = ""
        for device, driver in members:  # one after the other, as on a shared line
            outcome = await _read_device(driver, catalog, unreachable, device.driver)
            readings[device.name] = outcome.reading
            unreachable = outcome.unreachable

    try:
        async with asyncio.TaskGroup() as tasks:
            for key, members in by_connection.items():
                tasks.create_task(one_connection(members), name=f"once {key}")
    finally:
        for driver in drivers:
            await driver.close()
    return [readings[device.name] for device in config.devices]


async def read_device_once(config: PlantConfig, device: DeviceConfig) -> DeviceReading:
    """Every group of one device of ``config`` once, on a fresh driver of its own (its
    own connection, even where the agent shares one with other devices), closed after.

    For the console's ``once`` beside a running agent: the caller makes sure the
    connection can be opened a second time (a serial port cannot)."""
    from drivers.registry import build_drivers  # lazy: protocol packages

    (driver,) = build_drivers(config, [device])
    if isinstance(driver, ShowsRaw):
        driver.record_raw()
    try:
        outcome = await _read_device(driver, TagCatalog.of([device]), kind=device.driver)
    finally:
        await driver.close()
    return outcome.reading


# --------------------------------------------------------------------------- output


def value_text(value: Value) -> str:
    """The value as decoded (not rounded: this is where a wrong decoding shows)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


#: Columns the text output keeps within (a terminal's default).
WIDTH = 80
#: Lines a long reason (a read's whole register list) is cut to; --json has it whole.
REASON_LINES = 2
#: A tag whose reason is said once for its whole group or device.
AS_ABOVE = "(as above)"

Explain = Callable[[str, str], tuple[str, str] | None]


def _explainer() -> Explain:
    from drivers.registry import explain_reason  # lazy: the drivers' own words

    return explain_reason


def _shared_reason(tags: Sequence[TagReading]) -> str:
    """The one reason every tag is bad for ("" when they differ, or for a single tag)."""
    reasons = {t.reason for t in tags if t.quality is Quality.BAD}
    if len(tags) < 2 or len(reasons) != 1 or any(t.quality is not Quality.BAD for t in tags):
        return ""
    return reasons.pop()


def _wrapped(text: str, indent: str, lines: int | None = None) -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        max_lines=lines,
        placeholder=" ...",
    )


class _Said:
    """What one device's block has said, so a reason's words and hint come once."""

    def __init__(self, driver: str, explain: Explain) -> None:
        self.driver = driver
        self.explain = explain
        self.hinted: set[str] = set()

    def hint(self, reason: str, indent: str) -> list[str]:
        words = self.explain(self.driver, reason) if self.driver else None
        if words is None or reason in self.hinted:
            return []
        self.hinted.add(reason)
        meaning, hint = words
        said = f"hint: {hint}" if meaning in reason else f"{meaning}. hint: {hint}"
        return _wrapped(said, indent)

    def shared(self, tags: Sequence[TagReading], what: str, indent: str) -> list[str]:
        reason = _shared_reason(tags)
        if not reason:
            return []
        head = f"all {len(tags)} {what} bad: {reason}"
        return _wrapped(head, indent, REASON_LINES) + self.hint(reason, indent + "  ")


def render_text(readings: Sequence[DeviceReading], explain: Explain | None = None) -> str:
    """Per device and group, one line per tag: name, value unit, quality, raw, reason.

    A reason every tag of a group (or device) shares is said once for it, with what it
    means and what to try; its tags then only say so. Long reasons are cut to fit:
    ``--json`` has every tag with its whole reason."""
    said_by = explain or _explainer()
    lines: list[str] = []
    rows = [t for d in readings for g in d.groups for t in g.tags]
    name_w = max((len(t.name) for t in rows), default=4)
    value_w = max((len(f"{value_text(t.value)} {t.unit}".strip()) for t in rows), default=5)
    value_w = min(value_w, 30)
    for device in readings:
        said = _Said(device.driver, said_by)
        verdict = "all good" if device.good else "NOT all good"
        lines.append(f"{device.name}: {verdict}")
        device_tags = [t for g in device.groups for t in g.tags]
        shared = said.shared(device_tags, "tags", "  ") if len(device.groups) > 1 else []
        lines += shared
        for group in device.groups:
            lines.append(f"  group {group.name}")
            group_said = [] if shared else said.shared(group.tags, "tags", "    ")
            lines += group_said
            for tag in group.tags:
                shown = f"{value_text(tag.value)} {tag.unit}".strip()
                quality = tag.quality.label
                raw = f"  [{tag.raw}]" if tag.raw else ""
                line = f"    {tag.name:<{name_w}}  {shown:<{value_w}}  {quality:<9}{raw}"
                if shared or group_said:
                    lines.append(f"{line}  {AS_ABOVE}")
                    continue
                if not tag.reason:
                    lines.append(line.rstrip())
                elif len(line) + 2 + len(tag.reason) <= WIDTH:
                    lines.append(f"{line}  {tag.reason}")
                else:  # on its own lines below the tag
                    lines.append(line.rstrip())
                    lines += _wrapped(tag.reason, "      ", REASON_LINES)
                lines += said.hint(tag.reason, "      ")
    good = sum(1 for t in rows if t.quality is Quality.GOOD)
    lines.append(f"{good} of {len(rows)} tags good")
    return "\n".join(lines)


def to_json(readings: Sequence[DeviceReading]) -> str:
    """The same as :func:`render_text` for scripts; raw and reason empty when there is none."""
    return json.dumps(json_document(readings), indent=2, default=str, allow_nan=False)


def json_document(readings: Sequence[DeviceReading]) -> dict[str, Any]:
    """What :func:`to_json` writes, as a dict (the console sends it as it is)."""

    def tag(t: TagReading) -> dict[str, Any]:
        value: Any = t.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)  # JSON has no inf or NaN
        elif isinstance(value, bytes):
            value = value.hex()
        return {
            "name": t.name,
            "value": value,
            "unit": t.unit,
            "quality": t.quality.label,
            "reason": t.reason,
            "raw": t.raw,
        }

    return {
        "good": all(d.good for d in readings),
        "devices": [
            {
                "device": d.name,
                "good": d.good,
                "groups": [{"group": g.name, "tags": [tag(t) for t in g.tags]} for g in d.groups],
            }
            for d in readings
        ],
    }
