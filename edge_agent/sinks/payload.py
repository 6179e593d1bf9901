"""The JSON message one :class:`~edge_agent.model.SampleBatch` becomes (schema in docs/MQTT.md).

This runs for every batch a sink delivers, so it is kept lean: the common batch
never becomes a dict per value (see :func:`_values_text`), and there is no
per-value finiteness check. ``allow_nan=False`` makes the C encoder itself detect
NaN/Infinity; only a batch that actually holds one takes the general path
(:func:`encode_document`) with those values turned into ``null`` / ``bad``.
The output is strict JSON (RFC 8259) and pure ASCII, so any consumer can parse it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import add
from typing import Any, Final

from edge_agent.metrics.contract import MetricInfo, metric_info
from edge_agent.model import Quality, SampleBatch, iso_utc_ms
from edge_agent.sinks.value_text import ENCODER, values_json

#: Version of the message layout, sent as ``"schema"``; bump on incompatible change.
SCHEMA_VERSION: Final = 1

#: Reason given to a value that was not a finite number (NaN, ±Infinity).
REASON_NOT_FINITE: Final = "not finite"

_LABEL: Final[dict[Quality, str]] = {q: q.name.lower() for q in Quality}
_BAD: Final = _LABEL[Quality.BAD]

# One encoder for every call (json.dumps() with non-default options builds a new one each
# time), shared with value_text: compact, strict (NaN raises), ASCII (ensure_ascii keeps
# odd strings, such as lone surrogates from a bad string decode, encodable). Its
# check_circular is off because the document is acyclic by construction.
_ENCODER: Final = ENCODER


def encode_batch(batch: SampleBatch, plant: str, site: str) -> bytes:
    """The MQTT payload of ``batch``: one UTF-8 (in fact ASCII) JSON object."""
    document = _header(batch, plant, site)
    values = _values_text(batch)
    if values is not None:
        # The header is encoded on its own and the values object spliced in as its last
        # member: the same bytes as encode_document() (tests/unit/test_payload.py).
        return f'{_ENCODER.encode(document)[:-1]},"values":{values}}}'.encode("ascii")
    return encode_document(document, batch)


def encode_document(document: dict[str, Any], batch: SampleBatch) -> bytes:
    """The general path: ``document`` with a dict per value, through the C encoder."""
    document["values"] = _values(batch)
    try:
        return _ENCODER.encode(document).encode("ascii")
    except ValueError:
        # Only "Out of range float values are not JSON compliant" can get here: the
        # document holds nothing but str, int, float, bool and None.
        document["values"] = _values_checked(batch)
        return _ENCODER.encode(document).encode("ascii")


def _header(batch: SampleBatch, plant: str, site: str) -> dict[str, Any]:
    """Every member of the message but ``values``, in the order they are written."""
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
        info = metric_info(batch)
        if info is not None and info.bounds is not None:
            document["window"] = _window(info, *info.bounds)
    return document


def _values_text(batch: SampleBatch) -> str | None:
    """The ``values`` object as JSON text without a dict per value, or None when the
    general path must do it (per-value timestamps, a non-finite float, a string
    value holding a comma, repeated names).

    The C encoder turns the whole value list into text in one call (it checks for
    NaN/Infinity, escapes strings, writes ``true``/``null`` and shortest floats);
    split at its commas, that is one text per value as long as no string value holds
    a comma, which the count of pieces tells. Each piece is then glued between the
    tag's ready-made ``"name":{"v":`` and its quality's ready-made tail. This is
    the hot path of every MQTT message: 341 ns per value instead of 804 for the general
    path (``python -m bench.bench_encode``).
    """
    if batch.timestamps_ns is not None:
        return None
    count = len(batch.values)
    if count == 0:
        return "{}"
    heads = _heads(batch.names)
    if heads is None:
        return None
    listed = values_json(batch.values)
    if listed is None:
        return None  # NaN or Infinity: null with a reason, on the general path
    texts = listed[1:-1].split(",")
    if len(texts) != count:
        return None  # a string value with a comma in it
    qualities, reasons = batch.qualities, batch.reasons
    if qualities.count(Quality.GOOD) == count and not any(reasons):
        return "{" + _GOOD_JOIN.join(map(add, heads, texts)) + _GOOD_TAIL + "}"
    tails = [
        _TAIL[quality] if not reason else f'{_TAIL[quality][:-1]},"r":{_ENCODER.encode(reason)}}}'
        for quality, reason in zip(qualities, reasons, strict=True)
    ]
    return "{" + ",".join(map(add, map(add, heads, texts), tails)) + "}"


#: ``,"q":"good"}`` and so on: what follows a value that has no reason.
_TAIL: Final[dict[Quality, str]] = {q: f',"q":"{label}"}}' for q, label in _LABEL.items()}
_GOOD_TAIL: Final = _TAIL[Quality.GOOD]
_GOOD_JOIN: Final = _GOOD_TAIL + ","

#: ``"name":{"v":`` per tag, per names sequence (a poll group's names are one tuple shared
#: by all its batches; the cache is bounded for the odd producer that builds new ones).
_HEADS: dict[tuple[str, ...], list[str] | None] = {}
_HEADS_MAX: Final = 4096
#: Never stored: "not in the cache" (None is cached: "repeated names, general path").
_UNKNOWN: Final[list[str]] = []


def _heads(names: Sequence[str]) -> list[str] | None:
    key = names if isinstance(names, tuple) else tuple(names)
    heads = _HEADS.get(key, _UNKNOWN)  # one lookup, as in line_protocol._plan
    if heads is not _UNKNOWN:
        return heads
    if len(_HEADS) >= _HEADS_MAX:
        _HEADS.clear()
    unique = len(set(key)) == len(key)  # a dict keeps the last of repeated names
    heads = [f'{_ENCODER.encode(name)}:{{"v":' for name in key] if unique else None
    _HEADS[key] = heads
    return heads


def _window(info: MetricInfo, start_ns: int, end_ns: int) -> dict[str, Any]:
    """The window of a metric batch, readable and exact (docs/MQTT.md, metric messages).

    Only for a window with bounds: without them the attributes still go out as they are.
    """
    window: dict[str, Any] = {
        "name": info.window,
        "start": iso_utc_ms(start_ns),
        "end": iso_utc_ms(end_ns),
        "start_ns": start_ns,
        "end_ns": end_ns,
    }
    if info.shift is not None:
        window["shift"] = info.shift
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
