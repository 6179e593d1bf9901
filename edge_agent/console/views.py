"""The console's documents: the plant, one device, one tag's history, the config.

Built when a page asks (or once a second per live stream), from the runners' counters,
the tag catalog and the live ring; nothing here is on the data path.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.config import PlantConfig, TagCatalog
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.console.energy_figures import event_rows
from edge_agent.console.ring import Kept, LiveRing
from edge_agent.console.writes import WritePolicies
from edge_agent.driver import ShowsRaw
from edge_agent.model import Value, iso_utc_ms
from edge_agent.runtime.source_runner import SourceRunner
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, health_problems

NS = 1_000_000_000
#: The window over which reads per second are counted.
RATE_WINDOW_S = 10.0
#: Points of the plant page's sparklines (the ring keeps more; the line needs few).
SPARK_POINTS = 120


def _iso_s(wall: float) -> str | None:
    return iso_utc_ms(int(wall * NS)) if wall else None


def _iso_ns(ns: int | None) -> str | None:
    return iso_utc_ms(ns) if ns else None


def _json_value(value: Value) -> Value:
    """NaN and infinities are not JSON: shown as text."""
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return str(value)
    return value


def key_tag(config: PlantConfig, device: DeviceInfo) -> TagInfo | None:
    """The tag the plant page draws for a device: configured, a meter's power, else the
    first numeric tag (preferring one with a unit)."""
    console = config.service.console
    chosen = console.key_tags.get(device.name) if console is not None else None
    if chosen and chosen in device.tags:
        return device.tags[chosen]
    if config.metrics is not None:
        for meter in config.metrics.meters:
            if meter.device == device.name:
                role = meter.power or meter.counter
                if role is not None and role.tag in device.tags:
                    return device.tags[role.tag]
        for machine in config.metrics.machines:
            energy = machine.energy
            if machine.device == device.name and energy is not None:
                role = energy.power or energy.counter
                if role is not None and role.tag in device.tags:
                    return device.tags[role.tag]
    numeric = [tag for tag in device.tags.values() if tag.numeric]
    with_unit = [tag for tag in numeric if tag.unit]
    candidates = with_unit or numeric
    return candidates[0] if candidates else None


class Views:
    """Documents about one running agent, for the console's pages."""

    def __init__(self, agent: Agent, stats: ServiceStats, ring: LiveRing) -> None:
        self.agent = agent
        self.write_policies = WritePolicies()
        self.stats = stats
        self.ring = ring
        self._catalog: tuple[PlantConfig, TagCatalog] | None = None
        #: Devices whose raw registers are being recorded, and when a page last looked.
        self._looked: dict[str, float] = {}
        #: Per device, (monotonic time, polls) as the plant page saw them.
        self._polls: dict[str, deque[tuple[float, int]]] = {}
        #: Each device's sparkline tag, per config.
        self._keys: tuple[PlantConfig, dict[str, TagInfo | None]] | None = None

    @property
    def catalog(self) -> TagCatalog:
        config = self.agent.config
        if self._catalog is None or self._catalog[0] is not config:
            self._catalog = (config, TagCatalog.of(config.devices))
        return self._catalog[1]

    def runner(self, device: str) -> SourceRunner | None:
        return next((s for s in self.agent.sources if s.device == device), None)

    # -- plant

    def plant(self) -> dict[str, Any]:
        agent, now = self.agent, time.time()
        self.ring.keep_only({source.device for source in agent.sources})
        problems = health_problems(agent, self.stats)
        return {
            "plant": agent.config.plant.name,
            "site": agent.config.plant.site,
            "timezone": agent.config.plant.timezone,
            "uptime_s": round(time.monotonic() - self.stats.started_monotonic, 1),
            "started": _iso_s(agent.started_at),
            "healthy": not problems,
            "reasons": problems,
            "devices": [self._device_row(source, now) for source in agent.sources],
            "sinks": [self._sink_row(sink) for sink in agent.sinks],
            "outbox": self._outbox(),
            # The events running now (the energy page lists today's): a start not yet ended.
            "events": event_rows(self.ring.event_batches(), int(now * NS)),
        }

    def _device_row(self, source: SourceRunner, now: float) -> dict[str, Any]:
        counters = source.counters
        info = self.catalog.device(source.device)
        since_ns = int((now - RATE_WINDOW_S) * NS)
        return {
            "name": source.device,
            "driver": info.driver if info is not None else "",
            "state": source.state.value,
            "reason": source.state_reason,
            "since": _iso_s(counters.state_since),
            "last_good": _iso_ns(counters.last_good_ns),
            "reads_per_s": self._rate(source, since_ns),
            "polls": counters.polls,
            "failed_polls": counters.failed_polls,
            "tags": len(info.tags) if info is not None else 0,
            "key": self._key(info) if info is not None else None,
        }

    def _rate(self, source: SourceRunner, since_ns: int) -> float:
        """Polls a second over the last RATE_WINDOW_S, from the runner's own count (the
        ring may keep fewer points than that window has polls); until this page has
        looked for a few seconds, from the kept batches."""
        now = time.monotonic()
        seen = self._polls.setdefault(source.device, deque())
        seen.append((now, source.counters.polls))
        while len(seen) > 1 and seen[0][0] < now - RATE_WINDOW_S:
            seen.popleft()
        span = now - seen[0][0]
        if span >= 2.0:
            return round((seen[-1][1] - seen[0][1]) / span, 2)
        return round(self.ring.polls_since(source.device, since_ns) / RATE_WINDOW_S, 2)

    def _key(self, info: DeviceInfo) -> dict[str, Any] | None:
        config = self.agent.config
        if self._keys is None or self._keys[0] is not config:
            self._keys = (config, {})
        keys = self._keys[1]
        if info.name not in keys:
            keys[info.name] = key_tag(config, info)  # once per config: it walks the tags
        tag = keys[info.name]
        if tag is None:
            return None
        # Its newest value wherever it is (a subscription's last change may be old).
        last = self.ring.latest(info.name, {tag.group: (tag.name,)}).get(tag.name)
        return {
            "tag": tag.name,
            "unit": tag.unit,
            "value": None if last is None else _json_value(last[0].values[last[1]]),
            "quality": None if last is None else last[0].quality(last[1]).label,
            "history": self.ring.series(info.name, tag.name, most=SPARK_POINTS),
        }

    def _sink_row(self, runner: Any) -> dict[str, Any]:
        sink, counters, buffer = runner.sink, runner.counters, runner.buffer
        backlog = len(buffer)
        outbox = self.agent.outbox
        oldest = outbox.oldest_at_ns if outbox is not None and backlog else None
        return {
            "name": sink.name,
            "kind": type(sink).__name__.removesuffix("Sink").lower(),
            "connected": sink.connected,
            "failing": counters.down_since_monotonic is not None,
            "last_error": counters.last_error,
            "backlog_batches": backlog,
            "oldest_undelivered": _iso_ns(oldest),
            "dropped_batches": getattr(buffer, "dropped_batches", 0),
            "batches_sent": counters.batches_sent,
        }

    def _outbox(self) -> dict[str, Any] | None:
        outbox = self.agent.outbox
        if outbox is None:
            return None
        return {
            "path": str(outbox.path),
            "rows": outbox.rows,
            "bytes": outbox.bytes,
            "budget_bytes": outbox.config.max_bytes,
            "oldest": _iso_ns(outbox.oldest_at_ns),
            "writing": not outbox.write_failing,
            "dropped_batches": outbox.dropped_batches,
            "lost_batches": outbox.lost_batches,
        }

    # -- device

    def expire_raw(self, idle_s: float) -> None:
        """Stop recording raw registers of devices no page has looked at for ``idle_s``."""
        now = time.monotonic()
        for name, looked in list(self._looked.items()):
            if now - looked < idle_s:
                continue
            del self._looked[name]
            source = self.runner(name)
            if source is not None and isinstance(source.driver, ShowsRaw):
                source.driver.record_raw(on=False)

    def device(self, name: str, *, events: bool = True) -> dict[str, Any] | None:
        info = self.catalog.device(name)
        source = self.runner(name)
        if info is None or source is None:
            return None
        driver = source.driver
        if isinstance(driver, ShowsRaw):
            # Recording starts when someone looks, and stops a while after the last look
            # (expire_raw): while nobody looks, polling pays nothing for it.
            if name not in self._looked:
                driver.record_raw()
            self._looked[name] = time.monotonic()
        groups = {group.name: group.names for group in driver.groups}
        raws: dict[str, Sequence[str]] = {}
        values: dict[str, tuple[Kept, int, str]] = {}
        for tag, (batch, index) in self.ring.latest(name, groups).items():
            if batch.group not in raws:
                raws[batch.group] = driver.raw(batch.group) if isinstance(driver, ShowsRaw) else ()
            raw = raws[batch.group]
            # Recorded in the order of the group's batches (enum codes included); a
            # subscription's batch of changes only has no such order: nothing shown.
            values[tag] = (batch, index, raw[index] if len(raw) == len(batch.names) else "")
        counters = source.counters
        document: dict[str, Any] = {
            "name": name,
            "driver": info.driver,
            "device_type": info.device_type,
            "template": info.template,
            "state": source.state.value,
            "reason": source.state_reason,
            "since": _iso_s(counters.state_since),
            "last_good": _iso_ns(counters.last_good_ns),
            "tags": [self._tag_row(tag, values.get(tag.name)) for tag in info.tags.values()],
        }
        self.write_policies.annotate(self.agent.config, name, document["tags"])
        if events:
            document["events"] = [
                {
                    "time": _iso_s(change.wall),
                    "kind": "state",
                    "state": change.state,
                    "previous": change.previous,
                    "reason": change.reason,
                    "detail": change.detail,
                    "text": change.text,
                }
                for change in reversed(counters.changes)
            ]
            document["failures"] = dict(counters.failures_by_reason.most_common(10))
        return document

    @staticmethod
    def _tag_row(tag: TagInfo, seen: tuple[Kept, int, str] | None) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": tag.name,
            "unit": tag.unit,
            "description": tag.description,
            "type": tag.value_type or "",
            "numeric": tag.numeric,
            # The registers of the last read only beside a good value: a bad one was not
            # decoded from them (a failed read records none).
            "source": _source(
                tag.address, seen[2] if seen and seen[0].qualities[seen[1]] == 0 else ""
            ),
            "value": None,
            "quality": None,
            "reason": "",
            "time": None,
        }
        if seen is not None:
            batch, index, _raw = seen
            row["value"] = _json_value(batch.values[index])
            row["quality"] = batch.quality(index).label
            row["reason"] = batch.reasons[index]
            row["time"] = iso_utc_ms(batch.sample_time_ns(index))
        return row

    def history(self, device: str, tag_name: str) -> dict[str, Any] | None:
        tag = self.catalog.tag(device, tag_name)
        if tag is None:
            return None
        return {
            "device": device,
            "tag": tag_name,
            "unit": tag.unit,
            "points": self.ring.series(device, tag_name),
        }


def _source(address: Mapping[str, str | int], raw: str) -> str:
    """``holding 40 (0x4148 0x0000)``, ``ns=2;s=Press.Power``: where a value comes from."""
    if "node" in address:
        return str(address["node"])
    text = " ".join(str(address[k]) for k in ("table", "address") if k in address)
    if "bit" in address:
        text += f".{address['bit']}"
    return f"{text} ({raw})" if raw else text


def redacted_config(config: PlantConfig) -> str:
    """The running config as YAML, what the file set (defaults left out), secrets ``***``.

    A secret is what the logs treat as one (:mod:`edge_agent.redaction`): a field
    declared ``repr=False`` or named like a secret, and passwords in URLs.
    """
    import yaml
    from pydantic import BaseModel

    from edge_agent.redaction import REDACTED, is_secret_key, redact, redact_urls

    def walk(value: Any) -> Any:
        if isinstance(value, BaseModel):
            out: dict[str, Any] = {}
            fields = type(value).model_fields
            for name in value.model_fields_set:
                if name not in fields:
                    continue
                item = getattr(value, name)
                info = fields[name]
                key = info.alias or name
                if (info.repr is False or is_secret_key(name)) and item:
                    out[key] = REDACTED
                elif isinstance(item, int | float) and _is_duration(info):
                    out[key] = _written_duration(float(item))
                else:
                    out[key] = walk(item)
            # In the order the model declares its fields, as the docs list them.
            order = {info.alias or n: i for i, (n, info) in enumerate(fields.items())}
            return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], 0)))
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return redact_urls(value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return redact_urls(str(value))

    text = yaml.safe_dump(walk(config), sort_keys=False, allow_unicode=True, width=100)
    return redact(text)


def _is_duration(info: Any) -> bool:
    """Whether a model field holds a :data:`~edge_agent.config.base.Duration`."""
    import typing

    from edge_agent.config.base import Duration

    (marker,) = typing.get_args(Duration)[1:]
    if marker in info.metadata:
        return True
    return any(
        marker in typing.get_args(arg)[1:]
        for arg in typing.get_args(info.annotation)
        if typing.get_origin(arg) is typing.Annotated
    )


def _written_duration(seconds: float) -> str:
    """``14d``, ``90s``, ``250ms``: the largest unit that says it exactly, as a plant file
    writes it (never an exponent, which the file's duration syntax refuses)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and (seconds / size).is_integer():
            return f"{int(seconds // size)}{unit}"
    millis = seconds * 1000
    if millis.is_integer():
        return f"{int(millis)}ms"
    return f"{seconds:.6f}".rstrip("0") + "s"
