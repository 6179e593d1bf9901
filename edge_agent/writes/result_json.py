"""A command's result as the bytes a channel sends (``.../cmd/result``)."""

from __future__ import annotations

import json
from dataclasses import replace

from edge_agent.writes.model import WriteResult


def result_json(result: WriteResult, *, method: bool = False) -> bytes:
    """:meth:`WriteResult.to_json` as compact UTF-8 JSON; ``method``: the command named
    a method (for results a channel makes itself, the gate's already say so)."""
    if method and result.target_kind == "tag":
        result = replace(result, target_kind="method")
    return json.dumps(result.to_json(), separators=(",", ":"), allow_nan=False).encode("utf-8")
