"""``type: influxdb`` sinks: the InfluxDB v2 write API (InfluxDB 2.x/3.x, VictoriaMetrics...).

The rule that needs the devices (:func:`influx_sink_problems`) sits beside the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.catalog import DeviceInfo
from edge_agent.redaction import redact_urls

#: Tag and field keys InfluxDB 2 reserves (``_measurement``, ``_field``...) or refuses.
RESERVED_KEYS = frozenset({"time"})
#: Tags the sink sets itself; a configured tag or label of the same name would clash.
OWN_TAGS = frozenset({"plant", "device", "group", "window", "shift"})
#: The tag that carries a value's unit with ``units: tag``.
UNIT_TAG = "unit"
#: Suffix of the quality field with ``quality: field``.
QUALITY_SUFFIX = "_q"
#: ``measurement:`` values that are not a fixed measurement name.
MEASUREMENT_MODES = frozenset({"device", "device_type"})

#: What PromQL (a metric or label name, without the ``:`` reserved for recording rules)
#: and Flux (an identifier, as ``r.energy_import``) accept without quoting.
SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
#: Put before a name that would start with a digit or ``_`` once made safe: PromQL
#: reads a leading digit as a number, and InfluxDB reserves names starting with ``_``.
SAFE_PREFIX = "n_"


def safe_name(name: str) -> str:
    """``name`` as a measurement, tag key or field key that PromQL and Flux take unquoted.

    Every character but ASCII letters, digits and ``_`` becomes ``_`` (``line-meter``
    -> ``line_meter``, ``Zähler`` -> ``Z_hler``); a name that then starts with a digit
    or ``_`` gets :data:`SAFE_PREFIX` (``3phase`` -> ``n_3phase``). VictoriaMetrics
    joins measurement and field with ``_``, so the series name is safe as well.
    """
    if SAFE_NAME.fullmatch(name):
        return name
    safe = _UNSAFE.sub("_", name)
    if not safe[:1].isalpha():
        safe = SAFE_PREFIX + safe
    return safe


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot be an InfluxDB tag or field key, or None if it can."""
    if not key:
        return "an empty key"
    if key.startswith("_"):
        return f"{key!r} starts with '_', which InfluxDB reserves"
    if key in RESERVED_KEYS:
        return f"{key!r} is reserved by InfluxDB"
    if any(ch in key for ch in "\n\r"):
        return f"{key!r} contains a line break"
    if key in OWN_TAGS:
        return f"{key!r} is a tag the sink sets itself"
    return None


class InfluxSinkConfig(Strict):
    """Writes sample batches as line protocol to ``{url}/api/v2/write`` (docs/INFLUXDB.md)."""

    name: Name
    type: Literal["influxdb"]
    url: str = Field(description="e.g. http://127.0.0.1:8086 or https://influx.example:8086")
    org: str = Field(
        min_length=1, description="Organization name or ID (ignored by InfluxDB 3 and VM)."
    )
    bucket: str = Field(min_length=1, description="Bucket (InfluxDB 3: the database).")
    token: str = Field(
        default="",
        repr=False,
        description="API token; put ${INFLUX_TOKEN} here so it comes from the environment.",
    )
    gzip: bool = Field(default=False, description="Compress request bodies (slow links).")
    precision: Literal["ns", "us", "ms", "s"] = Field(
        default="ns", description="Timestamp precision written (timestamps are truncated)."
    )
    measurement: str = Field(
        default="device",
        json_schema_extra={"pattern": f"^{SAFE_NAME.pattern}$"},
        description="Measurement of a data point: 'device' (the device name), "
        "'device_type' (the device's type, its name when it has none), or one fixed "
        "name for every device (e.g. 'edge'; the device is in the 'device' tag either "
        "way). Metric batches always use their family (energy, demand, ...).",
    )
    safe_names: bool = Field(
        default=True,
        description="Write measurements, tag keys and field keys that PromQL and Flux "
        "accept unquoted: 'line-meter' becomes 'line_meter' (tag values, such as "
        "device=line-meter, keep the real name). false: the names as configured.",
    )
    units: Literal["tag", "none"] = Field(
        default="tag",
        description="'tag': each value carries its tag's unit: as a 'unit' tag (the "
        "values of one poll are written as one line per unit). 'none': no unit tag "
        "(units are still in the MQTT meta message).",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Constant tags on every point (e.g. {site: hall-3})."
    )
    labels_as_tags: bool = Field(default=True, description="Device labels become tags.")
    group_tag: bool = Field(default=True, description="Tag each point with its poll group.")
    quality: Literal["drop_bad", "field"] = Field(
        default="drop_bad",
        description="'drop_bad': bad samples are left out, uncertain ones written. 'field': "
        "every sample also writes <tag>_q = 0 good / 1 uncertain / 2 bad (bad values "
        "themselves are never written).",
    )
    timeout: Duration = Field(default=10.0, gt=0, le=300, description="Per HTTP request.")
    max_lines_per_request: int = Field(
        default=5000, ge=1, le=1_000_000, description="Lines per write request."
    )
    flush_interval: Duration = Field(
        default=0.2,
        ge=0.0,
        le=60.0,
        description="Wait this long after a batch is ready for more to join it, so one "
        "request carries a whole poll tick (Telegraf's flush_interval); skipped when a "
        "full send is already waiting, for a backlog, and at a stop. 0 = send at once.",
    )
    verify_tls: bool = Field(default=True, description="Check the server's certificate.")
    ca_file: Path | None = Field(default=None, description="CA bundle for https URLs.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or rest[0] in "/:":
            raise ValueError(f"{redact_urls(url)!r} is not an http:// or https:// URL with a host")
        if any(ch.isspace() for ch in url):
            raise ValueError(f"{redact_urls(url)!r} contains a space")
        return url

    @field_validator("measurement")
    @classmethod
    def _safe_measurement(cls, measurement: str) -> str:
        if SAFE_NAME.fullmatch(measurement) is None:
            raise ValueError(
                f"{measurement!r} cannot be a measurement: write 'device', 'device_type' or "
                f"a fixed name of letters, digits and '_' that starts with a letter (such "
                f"as {safe_name(measurement or 'edge')!r}), which PromQL and Flux accept "
                "unquoted"
            )
        return measurement

    @field_validator("tags")
    @classmethod
    def _valid_tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            problem = key_problem(key)
            if problem is not None:
                raise ValueError(f"tag key {problem}")
        return tags

    @model_validator(mode="after")
    def _no_unit_tag(self) -> InfluxSinkConfig:
        if self.units == "tag" and UNIT_TAG in self.tags:
            raise ValueError(
                f"tag key {UNIT_TAG!r} is the tag that carries each value's unit "
                "(units: tag); rename it or set units: none"
            )
        return self

    @property
    def fixed_measurement(self) -> str | None:
        """The one measurement of every data point, or None when it depends on the device."""
        return None if self.measurement in MEASUREMENT_MODES else self.measurement

    def name_of(self, name: str) -> str:
        """A measurement, tag key or field key as written (:func:`safe_name` or as is)."""
        return safe_name(name) if self.safe_names else name

    def measurement_of(self, device: DeviceInfo | None, device_name: str) -> str:
        """The measurement of a data point of ``device_name`` (``device``: its catalog
        entry, None for a device the plant does not know)."""
        fixed = self.fixed_measurement
        if fixed is not None:
            return fixed
        measurement = device_name
        if self.measurement == "device_type" and device is not None and device.device_type:
            measurement = device.device_type
        return self.name_of(measurement)


def influx_sink_problems(
    sink: InfluxSinkConfig, devices: Iterable[DeviceInfo]
) -> list[tuple[str, str]]:
    """(field, message) for what a single field cannot see: device labels used as tags,
    and names that become one once made safe (:func:`safe_name`).

    ``devices``: every device of the plant, a repeated name included (the catalog keeps
    one device per name; the second one's problems are reported too).
    """
    problems = _constant_tag_collisions(sink)
    measurements: dict[str, str] = {}
    for device in devices:
        for tag_name in device.tags:
            if tag_name in RESERVED_KEYS:
                problems.append(
                    (
                        "name",
                        f"device {device.name}: a tag named {tag_name!r} cannot be an "
                        "InfluxDB field; rename it",
                    )
                )
        if (
            not sink.safe_names
            and sink.measurement == "device_type"
            and device.device_type.startswith("#")
        ):
            problems.append(
                (
                    "measurement",
                    f"device {device.name}: device_type {device.device_type!r} would start a "
                    "line protocol comment; it cannot be a measurement",
                )
            )
        problems += _field_collisions(sink, device)
        problems += _unit_field(sink, device)
        problems += _measurement_collision(sink, device, measurements)
        if not sink.labels_as_tags:
            continue
        for key in device.labels:
            problem = key_problem(key)
            if problem is None and sink.units == "tag" and key == UNIT_TAG:
                problem = f"{key!r} is the tag that carries each value's unit (units: tag)"
            if problem is not None:
                problems.append(
                    (
                        "labels_as_tags",
                        f"device {device.name}: label {problem}; rename it or set "
                        "labels_as_tags: false",
                    )
                )
        problems += _tag_key_collisions(sink, device)
    return problems


def _safe_hint(sink: InfluxSinkConfig) -> str:
    return "rename one" + (
        " (names are made safe for PromQL and Flux; safe_names: false writes them as they are)"
        if sink.safe_names
        else ""
    )


def _field_collisions(sink: InfluxSinkConfig, device: DeviceInfo) -> list[tuple[str, str]]:
    """Two tags of a device that would write the same field (``a-b`` and ``a_b``, or
    ``power_q`` and the quality field of ``power``)."""
    problems: list[tuple[str, str]] = []
    fields: dict[str, tuple[str, str]] = {}
    for tag_name in device.tags:
        keys = [(tag_name, repr(tag_name))]
        if sink.quality == "field":
            keys.append((tag_name + QUALITY_SUFFIX, f"the quality of {tag_name!r}"))
        for key, what in keys:
            field = sink.name_of(key)
            first_key, first = fields.setdefault(field, (key, what))
            if first == what or (first.startswith("the quality") and what.startswith("the")):
                continue  # (two quality fields clash only when their tags do: said once)
            made_safe = first_key != key
            problems.append(
                (
                    "safe_names" if made_safe else "quality",
                    f"device {device.name}: {first} and {what} would both be the InfluxDB "
                    f"field {field!r}; "
                    + (_safe_hint(sink) if made_safe else "rename one or set quality: drop_bad"),
                )
            )
    return problems


def _unit_field(sink: InfluxSinkConfig, device: DeviceInfo) -> list[tuple[str, str]]:
    """A tag written as the field ``unit`` beside the ``unit`` tag of ``units: tag``: one
    name for a tag and a field of one measurement, which InfluxDB 3 refuses (the line goes
    to the dead letters) and a Flux pivot cannot tell apart."""
    if sink.units != "tag":
        return []
    return [
        (
            "units",
            f"device {device.name}: its tag {tag_name!r} would be an InfluxDB field of the "
            f"same name as the tag that carries each value's unit (units: tag); rename the "
            "tag or set units: none",
        )
        for tag_name in device.tags
        if sink.name_of(tag_name) == UNIT_TAG
    ]


def _measurement_collision(
    sink: InfluxSinkConfig, device: DeviceInfo, seen: dict[str, str]
) -> list[tuple[str, str]]:
    """Two devices (or device types) whose different names give one measurement."""
    if sink.fixed_measurement is not None or not sink.safe_names:
        return []
    raw = device.name
    if sink.measurement == "device_type" and device.device_type:
        raw = device.device_type
    measurement = sink.name_of(raw)
    first = seen.setdefault(measurement, raw)
    if first == raw:
        return []
    what = "device_type" if sink.measurement == "device_type" else "device"
    return [
        (
            "measurement",
            f"{what} {first!r} and {what} {raw!r} would both be the measurement "
            f"{measurement!r}; {_safe_hint(sink)}, or set measurement to one fixed name "
            "(the device is a tag)",
        )
    ]


def _constant_tag_collisions(sink: InfluxSinkConfig) -> list[tuple[str, str]]:
    """Constant tags whose safe keys clash (``line-no`` and ``line_no``): one would
    silently overwrite the other on every line."""
    if not sink.safe_names:
        return []
    first_of: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key in sink.tags:
        first = first_of.setdefault(safe_name(key), key)
        if first != key:
            problems.append(
                (
                    "tags",
                    f"tag {first!r} and tag {key!r} would both be the InfluxDB tag "
                    f"{safe_name(key)!r}; {_safe_hint(sink)}",
                )
            )
    return problems


def _tag_key_collisions(sink: InfluxSinkConfig, device: DeviceInfo) -> list[tuple[str, str]]:
    """Labels whose safe keys clash with each other, a constant tag or the sink's own."""
    if not sink.safe_names:
        return []
    own = OWN_TAGS | ({UNIT_TAG} if sink.units == "tag" else set())
    keys: dict[str, str] = {key: f"tag {key!r}" for key in own}
    keys.update((safe_name(key), f"tag {key!r}") for key in sink.tags)
    problems: list[tuple[str, str]] = []
    for label in device.labels:
        key = safe_name(label)
        first = keys.setdefault(key, f"label {label!r}")
        if first in (f"label {label!r}", f"tag {label!r}"):
            continue  # the same name: a label overrides a constant tag (an own one is above)
        problems.append(
            (
                "labels_as_tags",
                f"device {device.name}: label {label!r} and {first} would both be "
                f"the InfluxDB tag {key!r}; {_safe_hint(sink)}",
            )
        )
    return problems
