"""The JSON text of a batch's value list, written once for both wire formats.

The MQTT payload and InfluxDB line protocol both start from the C JSON encoder's text
of ``batch.values`` (see :func:`edge_agent.sinks.payload._values_text` and
:func:`edge_agent.sinks.line_protocol._good_line`): it is most of their cost, because
turning a float into its shortest decimal is. The sinks deliver the same live batches
moments apart (MQTT on the event loop, InfluxDB on its own thread), so the text of the
most recent value lists is kept and the second sink reuses it.

Keyed by the list's identity, holding the list itself so the identity cannot be
reused while it is cached. A batch's lists are fresh per poll and never changed once
the batch is in the outbox, so the text cannot go stale. Bounded to the last
:data:`RECENT` lists (a few ticks of a large plant); a miss only costs the encoding.
"""

from __future__ import annotations

import json
import threading
from typing import Final

from edge_agent.model import Value

#: Value lists whose text is kept.
RECENT: Final = 64

#: Strict (NaN raises ValueError), compact, ASCII; no circularity check (the documents
#: are acyclic by construction). Both formats rely on these options.
ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":")
)

_recent: dict[int, tuple[list[Value], str | None]] = {}
_lock = threading.Lock()


def values_json(values: list[Value]) -> str | None:
    """``ENCODER.encode(values)``, or None when a value is NaN or infinite."""
    key = id(values)
    hit = _recent.get(key)
    if hit is not None and hit[0] is values:
        return hit[1]
    try:
        text: str | None = ENCODER.encode(values)
    except ValueError:
        text = None
    with _lock:
        if len(_recent) >= RECENT:
            del _recent[next(iter(_recent))]  # the oldest: dicts keep insertion order
        _recent[key] = (values, text)
    return text
