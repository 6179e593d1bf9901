"""``type: influxdb`` sinks: the InfluxDB v2 write API (InfluxDB 2.x/3.x, VictoriaMetrics...).

The rule that needs the devices (:func:`influx_sink_problems`) sits beside the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edge_agent.config.base import Duration, Name, Strict
from edge_agent.config.catalog import DeviceInfo
from edge_agent.redaction import redact_urls

#: Tag and field keys InfluxDB 2 reserves (``_measurement``, ``_field``...) or refuses.
RESERVED_KEYS = frozenset({"time"})
#: Tags the sink sets itself; a configured tag or label of the same name would clash.
OWN_TAGS = frozenset({"plant", "device", "group", "window", "shift"})


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
    measurement: Literal["device", "device_type"] = Field(
        default="device",
        description="Measurement of a data point: the device name, or the device's "
        "device_type (the device name when it has none). Metric batches always use "
        "their family (energy, demand, ...).",
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

    @field_validator("tags")
    @classmethod
    def _valid_tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            problem = key_problem(key)
            if problem is not None:
                raise ValueError(f"tag key {problem}")
        return tags


def influx_sink_problems(
    sink: InfluxSinkConfig, devices: Iterable[DeviceInfo]
) -> list[tuple[str, str]]:
    """(field, message) for what a single field cannot see: device labels used as tags.

    ``devices``: every device of the plant, a repeated name included (the catalog keeps
    one device per name; the second one's problems are reported too).
    """
    problems: list[tuple[str, str]] = []
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
        if sink.measurement == "device_type" and device.device_type.startswith("#"):
            problems.append(
                (
                    "measurement",
                    f"device {device.name}: device_type {device.device_type!r} would start a "
                    "line protocol comment; it cannot be a measurement",
                )
            )
        if not sink.labels_as_tags:
            continue
        for key in device.labels:
            problem = key_problem(key)
            if problem is not None:
                problems.append(
                    (
                        "labels_as_tags",
                        f"device {device.name}: label {problem}; rename it or set "
                        "labels_as_tags: false",
                    )
                )
    return problems
