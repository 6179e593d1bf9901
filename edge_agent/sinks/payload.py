"""The JSON message one :class:`~edge_agent.model.SampleBatch` becomes (schema in docs/MQTT.md).

This runs for every batch a sink delivers, so it is kept lean: one dict per value
handed to the C JSON encoder, no per-sample Python objects, and no per-value
finiteness check on the common path. ``allow_nan=False`` makes the encoder itself
detect NaN/Infinity; only a batch that actually holds one is encoded a second time
with those values turned into ``null`` / ``bad``. The output is strict JSON
(RFC 8259) and pure ASCII, so any consumer can parse it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Final

from edge_agent.model import Quality, SampleBatch

#: Version of the message layout, sent as ``"schema"``; bump on incompatible change.
SCHEMA_VERSION: Final = 1

#: Reason given to a value that was not a finite number (NaN, ±Infinity).
REASON_NOT_FINITE: Final = "not finite"

_LABEL: Final[dict[Quality, str]] = {q: q.name.lower() for q in Quality}
_BAD: Final = _LABEL[Quality.BAD]

# One encoder for every call: json.dumps() with non-default options builds a new one
# each time. check_circular is off because the document is acyclic by construction.
# ensure_ascii keeps odd strings (lone surrogates from a bad string decode) encodable.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":")
)


def iso_utc_ms(timestamp_ns: int) -> str:
    """``2026-11-26T19:00:01.000Z``: UTC, millisecond precision (``ts_ns`` carries the rest)."""
    seconds, rest_ns = divmod(timestamp_ns, 1_000_000_000)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest_ns // 1_000_000:03d}Z"
    )


def encode_batch(batch: SampleBatch, plant: str, site: str) -> bytes:
    """The MQTT payload of ``batch``: one UTF-8 (in fact ASCII) JSON object."""
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "plant": plant,
        "site": site,
        "device": batch.device,
        "group": batch.group,
        "ts": iso_utc_ms(batch.timestamp_ns),
        "ts_ns": batch.timestamp_ns,
    }
    if batch.historical:
        document["historical"] = True
    if batch.attributes:
        document["attributes"] = batch.attributes
        if batch.attributes.get("kind") == "metrics":
            window = _window(batch.attributes)
            if window is not None:
                document["window"] = window
    document["values"] = _values(batch)
    try:
        return _ENCODER.encode(document).encode("ascii")
    except ValueError:
        # Only "Out of range float values are not JSON compliant" can get here: the
        # document holds nothing but str, int, float, bool and None.
        document["values"] = _values_checked(batch)
        return _ENCODER.encode(document).encode("ascii")


def _window(attributes: dict[str, str]) -> dict[str, Any] | None:
    """The window of a metric batch, readable and exact (docs/MQTT.md, metric messages)."""
    try:
        start_ns, end_ns = int(attributes["window_start"]), int(attributes["window_end"])
    except (KeyError, ValueError):
        return None  # not the metrics contract: the attributes still go out as they are
    window: dict[str, Any] = {
        "name": attributes.get("window", ""),
        "start": iso_utc_ms(start_ns),
        "end": iso_utc_ms(end_ns),
        "start_ns": start_ns,
        "end_ns": end_ns,
    }
    if "shift" in attributes:
        window["shift"] = attributes["shift"]
    return window


def _values(batch: SampleBatch) -> dict[str, dict[str, Any]]:
    label = _LABEL
    stamps = batch.timestamps_ns
    if stamps is None:
        return {
            name: {"v": value, "q": label[quality], "r": reason}
            if reason
            else {"v": value, "q": label[quality]}
            for name, value, quality, reason in zip(
                batch.names, batch.values, batch.qualities, batch.reasons, strict=True
            )
        }
    base_ns = batch.timestamp_ns
    out: dict[str, dict[str, Any]] = {}
    for name, value, quality, reason, stamp in zip(
        batch.names, batch.values, batch.qualities, batch.reasons, stamps, strict=True
    ):
        entry: dict[str, Any] = {"v": value, "q": label[quality]}
        if reason:
            entry["r"] = reason
        if stamp != base_ns:
            entry["t"] = stamp
        out[name] = entry
    return out


def _values_checked(batch: SampleBatch) -> dict[str, dict[str, Any]]:
    """Slow path of :func:`_values`: a non-finite float becomes ``null`` with quality bad."""
    out = _values(batch)
    for name, value, reason in zip(batch.names, batch.values, batch.reasons, strict=True):
        if isinstance(value, float) and not math.isfinite(value):
            entry = out[name]
            entry["v"] = None
            entry["q"] = _BAD
            # Keep the driver's own reason if it gave one: it is the more specific.
            entry["r"] = reason or f"{REASON_NOT_FINITE} ({value!r})"
    return out
