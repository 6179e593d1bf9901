"""Typed constructors for asyncua values whose annotations are stricter than Python.

asyncua annotates identifiers as its own ``Int32``/``Int16`` int subclasses and
booleans as a marker class, while the encoder accepts plain ``int`` and ``bool``;
these helpers keep the casts in one place instead of at every call site.
"""

from __future__ import annotations

from typing import Any, cast

from asyncua import ua


def node_id(
    identifier: int | str | object, namespace: int = 0, kind: ua.NodeIdType | None = None
) -> ua.NodeId:
    """``ua.NodeId`` from a plain identifier (int, str, UUID, bytes) and namespace index."""
    return ua.NodeId(cast(Any, identifier), cast(ua.Int16, namespace), cast(Any, kind))


def ua_bool(value: bool) -> ua.Boolean:
    return cast(ua.Boolean, value)
