"""The independent decoder: Eclipse Tahu's JavaScript ``sparkplug-payload`` against ours.

tests/peers/sparkplug/decode.js (Tahu 1.0.3, pinned by its package-lock.json; installed by
``npm ci --prefix tests/peers/sparkplug``, which .ci/run does) decodes every payload of a
test in one node process. :func:`disagreements` compares its reading with our generated
module's, field by field: payload timestamp, seq, and per metric name, alias, timestamp,
datatype, is_historical, is_transient, is_null, the value field that is set and its
content, and the properties (keys, types, null flags, values). Where a metric carries its
datatype (births), Tahu's own interpretation of the value by that datatype must also equal
the spec's (signed integers from their two's complement, 64-bit values exact).

Tahu 1.0.3 predates parts of Sparkplug 3.0; :data:`TAHU_GAPS` lists the datatypes whose
value Tahu's interpreter does not read the 3.0 way. For those the protobuf-level field and
content are still compared (Tahu's generated protobufjs code reads them), only Tahu's
interpretation is not.
"""

from __future__ import annotations

import base64
import json
import math
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.plant import ROOT
from tests.sparkplug_support import decode

PEER = ROOT / "tests" / "peers" / "sparkplug"

#: datatype -> why Tahu 1.0.3's interpreter cannot be compared for it (values still are,
#: at the protobuf level).
TAHU_GAPS = {
    7: "Tahu 1.0.3 reads UInt32 from long_value; Sparkplug 3.0 puts it in int_value (uint32)",
    **dict.fromkeys(
        range(22, 35),
        "Tahu 1.0.3 has no Sparkplug 3.0 array datatypes (22-34): it reads them as null",
    ),
}
_SIGNED32 = {1, 2, 3}  # Int8, Int16, Int32: two's complement in a uint32
_INT64 = 4


def tahu_decode(payloads: list[bytes]) -> list[dict[str, Any]]:
    """Tahu's reading of each payload (one node process for all of them)."""
    node = shutil.which("node")
    assert node is not None, "node is not installed (Debian: apt-get install nodejs)"
    assert (PEER / "node_modules" / "sparkplug-payload").is_dir(), (
        "Tahu's decoder is not installed: run `npm ci --prefix tests/peers/sparkplug`"
    )
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in payloads)
    done = subprocess.run(
        [node, str(PEER / "decode.js")],
        input=lines.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    out = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(out) == len(payloads), f"{len(payloads)} payloads in, {len(out)} answers out"
    return out


# ---------------------------------------------------------------------- one shape for both


def _snake(name: str | None) -> str | None:
    if name is None:
        return None
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _json_value(value: Any) -> Any:
    """decode.js's JSON encoding of a Long, a non-finite number or bytes, undone."""
    if isinstance(value, dict):
        if set(value) == {"long"}:
            return int(value["long"])
        if set(value) == {"float"}:
            return float(value["float"])
        if set(value) == {"bytes"}:
            return base64.b64decode(value["bytes"])
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return (bool(a == b) and type(a) is type(b)) or (_number(a) and _number(b) and a == b)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _ours_value(holder: Any) -> tuple[str | None, Any]:
    field = holder.WhichOneof("value")
    if field is None:
        return None, None
    content = getattr(holder, field)
    if field in ("dataset_value", "template_value", "extension_value"):
        return field, content.SerializeToString()
    return field, content


def _ours_properties(metric: pb.Payload.Metric) -> list[tuple[Any, ...]] | None:
    if not metric.HasField("properties"):
        return None
    out = []
    for key, value in zip(metric.properties.keys, metric.properties.values, strict=False):
        field, content = _ours_value(value)
        is_null = value.is_null if value.HasField("is_null") else None
        kind = value.type if value.HasField("type") else None
        out.append((key, kind, is_null, field, content))
    return out


def ours(payload: bytes) -> dict[str, Any]:
    """Our generated module's reading of ``payload``, in the shared shape."""
    message = decode(payload)
    metrics = []
    for m in message.metrics:
        field, content = _ours_value(m)
        metrics.append(
            {
                "name": m.name if m.HasField("name") else None,
                "alias": m.alias if m.HasField("alias") else None,
                "timestamp": m.timestamp if m.HasField("timestamp") else None,
                "datatype": m.datatype if m.HasField("datatype") else None,
                "is_historical": m.is_historical if m.HasField("is_historical") else None,
                "is_transient": m.is_transient if m.HasField("is_transient") else None,
                "is_null": m.is_null if m.HasField("is_null") else None,
                "field": field,
                "content": content,
                "properties": _ours_properties(m),
            }
        )
    return {
        "timestamp": message.timestamp if message.HasField("timestamp") else None,
        "seq": message.seq if message.HasField("seq") else None,
        "uuid": message.uuid if message.HasField("uuid") else None,
        "body": message.body if message.HasField("body") else None,
        "metrics": metrics,
    }


def _theirs_properties(raw: dict[str, Any] | None) -> list[tuple[Any, ...]] | None:
    if raw is None:
        return None
    return [
        (key, v["type"], v["is_null"], _snake(v["field"]), _json_value(v["content"]))
        for key, v in zip(raw["keys"], raw["values"], strict=False)
    ]


def theirs(doc: dict[str, Any]) -> dict[str, Any]:
    """Tahu's protobuf-level reading (decode.js "raw"), in the shared shape."""
    raw = doc["raw"]
    metrics = []
    for m in raw["metrics"]:
        metrics.append(
            {
                "name": m["name"],
                "alias": _json_value(m["alias"]),
                "timestamp": _json_value(m["timestamp"]),
                "datatype": m["datatype"],
                "is_historical": m["is_historical"],
                "is_transient": m["is_transient"],
                "is_null": m["is_null"],
                "field": _snake(m["field"]),
                "content": _json_value(m["content"]),
                "properties": _theirs_properties(m["properties"]),
            }
        )
    return {
        "timestamp": _json_value(raw["timestamp"]),
        "seq": _json_value(raw["seq"]),
        "uuid": raw["uuid"],
        "body": _json_value(raw["body"]),
        "metrics": metrics,
    }


def spec_value(datatype: int, field: str | None, content: Any, is_null: bool | None) -> Any:
    """A metric's value as Sparkplug 3.0 defines it for ``datatype`` (None if null)."""
    if is_null or field is None:
        return None
    if datatype in _SIGNED32 and isinstance(content, int):
        return content - (1 << 32) if content >= 1 << 31 else content
    if datatype == _INT64 and isinstance(content, int):
        return content - (1 << 64) if content >= 1 << 63 else content
    return content


# ---------------------------------------------------------------------- comparison


def disagreements(payload: bytes, doc: dict[str, Any]) -> list[str]:
    """Every field where Tahu's reading of ``payload`` differs from ours ([] = agree)."""
    if "error" in doc:
        return [f"Tahu cannot decode it: {doc['error']}"]
    a, b = ours(payload), theirs(doc)
    out = [
        f"payload {key}: ours {a[key]!r}, Tahu {b[key]!r}"
        for key in ("timestamp", "seq", "uuid", "body")
        if not _same(a[key], b[key])
    ]
    if len(a["metrics"]) != len(b["metrics"]):
        return [*out, f"{len(a['metrics'])} metrics in ours, {len(b['metrics'])} in Tahu's"]
    tahu_metrics = doc["tahu"].get("metrics", [])
    for i, (mine, tahu) in enumerate(zip(a["metrics"], b["metrics"], strict=True)):
        label = f"metric {i} ({mine['name'] or mine['alias']})"
        out += [
            f"{label} {key}: ours {mine[key]!r}, Tahu {tahu[key]!r}"
            for key in mine
            if not _same(mine[key], tahu[key])
        ]
        out += _interpreted(label, mine, tahu_metrics[i])
    return out


def _interpreted(label: str, mine: dict[str, Any], tahu: dict[str, Any]) -> list[str]:
    """Tahu's own interpretation (by datatype) against the spec's, where Tahu has one."""
    datatype = mine["datatype"]
    if datatype is None or datatype in TAHU_GAPS:
        return []
    out = []
    expected = spec_value(datatype, mine["field"], mine["content"], mine["is_null"])
    got = _json_value(tahu.get("value"))
    if not _same(expected, got):
        out.append(f"{label} value as Tahu reads it: {got!r}, the spec's reading {expected!r}")
    for key in ("name", "alias", "timestamp", "isHistorical", "isTransient"):
        ours_key = _snake(key)
        assert ours_key is not None
        if not _same(mine[ours_key], _json_value(tahu.get(key))):
            out.append(f"{label} {key} in Tahu's reading: {tahu.get(key)!r}")
    return out


def check_all(payloads: Iterable[bytes]) -> dict[bytes, list[str]]:
    """payload -> its disagreements, for every distinct payload that has any."""
    unique = list(dict.fromkeys(payloads))
    docs = tahu_decode(unique)
    found = {p: disagreements(p, d) for p, d in zip(unique, docs, strict=True)}
    return {p: d for p, d in found.items() if d}
