"""The result document of a command (docs/writes-channels.md), as the channels answer it.

The body of ``edge/{plant}/{device}/cmd/result`` and of the console's answer. The
contract gives this document to ``WriteResult.to_json()`` (the gate's part); until that
exists the channels build it here, field for field as the contract has it. Times are
RFC 3339 UTC with milliseconds, absent ones null; an id that could not be read is null.
Never a key, password or signature.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from edge_agent.model import iso_utc_ms
from edge_agent.writes.model import WriteResult


def result_document(result: WriteResult, *, method: bool = False) -> dict[str, Any]:
    """``result`` as the contract's JSON object; ``method``: the target is a method."""
    requested: Any = result.requested
    if isinstance(requested, Mapping):
        requested = {name: _finite(value) for name, value in requested.items()}
    return {
        "id": result.id or None,
        "device": result.device,
        ("method" if method else "tag"): result.target or None,
        "accepted": result.accepted,
        "outcome": result.outcome.value,
        "reason": result.reason,
        "requested": _finite(requested),
        "before": _finite(result.before),
        "read_back": _finite(result.read_back),
        "sent": result.sent,
        "output": [_finite(value) for value in result.output],
        "received_at": _time(result.received_at_ns),
        "written_at": _time(result.written_at_ns),
        "confirmed_at": _time(result.confirmed_at_ns),
        "finished_at": _time(result.finished_at_ns),
        "timing_ms": {
            "to_write": _ms(result.received_at_ns, result.written_at_ns),
            "to_confirm": _ms(result.written_at_ns, result.confirmed_at_ns),
            "total": _ms(result.received_at_ns, result.finished_at_ns),
        },
    }


def result_json(result: WriteResult, *, method: bool = False) -> bytes:
    """:func:`result_document` as UTF-8 JSON."""
    document = result_document(result, method=method)
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _finite(value: Any) -> Any:
    """A NaN or infinity (a device may read back one) is null: JSON has no such number."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _time(ns: int) -> str | None:
    return iso_utc_ms(ns) if ns else None


def _ms(start_ns: int, end_ns: int) -> float | None:
    if not start_ns or not end_ns:
        return None
    return round((end_ns - start_ns) / 1e6, 1)
