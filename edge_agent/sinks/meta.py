"""The metadata message of one device: what each tag is (schema in docs/MQTT.md).

Data messages carry values only; a dashboard also needs the unit, the description,
the type, the enum labels and where a value comes from. These change only with the
plant file, so they go out once per device as a retained message (MQTT) rather than
with every sample. The bytes depend on nothing but the description, so two equal
descriptions give equal messages and the sink re-publishes a device only when its
message changed.
"""

from __future__ import annotations

from typing import Any, Final

from edge_agent.config.base import PlantIdentity
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.sinks.value_text import ENCODER

#: Version of the meta message layout, sent as ``"schema"``; bump on incompatible change.
META_SCHEMA_VERSION: Final = 1


def encode_meta(device: DeviceInfo, plant: PlantIdentity) -> bytes:
    """The retained meta message of ``device``: one strict JSON object, pure ASCII."""
    document: dict[str, Any] = {
        "schema": META_SCHEMA_VERSION,
        "plant": plant.name,
        "site": plant.site,
        "device": device.name,
        "driver": device.driver,
        "device_type": device.device_type,
        "template": device.template or None,
        "labels": dict(device.labels),
        "tags": {name: _tag(tag) for name, tag in device.tags.items()},
    }
    return ENCODER.encode(document).encode("ascii")


def _tag(tag: TagInfo) -> dict[str, Any]:
    return {
        "group": tag.group,
        "unit": tag.unit,
        "description": tag.description,
        "type": tag.value_type,
        "enum": None if tag.enum is None else {str(k): v for k, v in tag.enum.items()},
        "address": dict(tag.address),
        "interval": tag.interval,
        "on_change": tag.change_based,
    }
