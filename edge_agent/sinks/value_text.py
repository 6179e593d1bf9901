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

orjson writes the list first (about 3x quicker than the C json encoder, its checks
included: 48 against 160 ns per value), and its text is taken when it is provably what
:data:`ENCODER` writes. Both write the same digits for a float (orjson with Ryu, Python
with David Gay's dtoa: the shortest that round-trips, the closest of those), ``true``, ``false``,
``null`` and integers alike, and every ASCII string alike but one holding DEL (each of
the 128 characters is checked in the tests). They differ in a float's exponent form
(Python ``1e+16`` and ``1e-05``, orjson ``1e16`` and ``0.00001`` or ``1e-5``), NaN and
±inf (Python refuses them, orjson writes ``null``), non-ASCII (orjson writes UTF-8),
DEL (orjson writes it raw, Python ``\\u007f``), and integers beyond 64 bits (orjson
refuses them). :func:`_trusted` finds each of those in a few C
scans of the text; the list then goes to :data:`ENCODER`, as before. A string holding
a digit before an ``e`` or a ``0.0000`` only costs that fallback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, Final

import structlog

from edge_agent.model import Value

log = structlog.get_logger("edge_agent.sink")

#: Value lists whose text is kept.
RECENT: Final = 64

#: Strict (NaN raises ValueError), compact, ASCII; no circularity check (the documents
#: are acyclic by construction). Both formats rely on these options.
ENCODER: Final = json.JSONEncoder(
    ensure_ascii=True, check_circular=False, allow_nan=False, separators=(",", ":")
)

_recent: dict[int, tuple[list[Value], str | None]] = {}
_lock = threading.Lock()


#: Every digit as ``0``: a digit before an ``e`` is then one two-byte search.
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_dumps: Callable[[Any], bytes] | None = None


def values_json(values: list[Value]) -> str | None:
    """``ENCODER.encode(values)``, or None when a value is NaN or infinite."""
    key = id(values)
    hit = _recent.get(key)
    if hit is not None and hit[0] is values:
        return hit[1]
    global _dumps  # orjson on the first list (6 ms to import): not at start
    if _dumps is None:
        _dumps = _load_dumps()
    text: str | None
    try:
        raw = _dumps(values)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits
        raw = b""
    if raw and _trusted(raw, values):
        text = raw.decode("ascii")
    else:
        try:
            text = ENCODER.encode(values)
        except ValueError:
            text = None
    with _lock:
        if len(_recent) >= RECENT:
            del _recent[next(iter(_recent))]  # the oldest: dicts keep insertion order
        _recent[key] = (values, text)
    return text


def _load_dumps() -> Callable[[Any], bytes]:
    """``orjson.dumps``; without orjson, say so once and let :data:`ENCODER` write all."""
    try:
        import orjson
    except ImportError as exc:
        log.warning(
            "value_text_without_orjson",
            error=str(exc),
            effect="the MQTT and InfluxDB sinks write values with Python's json encoder "
            "(same text, about 3x the CPU)",
        )
        return _nothing
    dumps: Callable[[Any], bytes] = orjson.dumps
    return dumps


def _nothing(_values: Any) -> bytes:
    """No text: :func:`values_json` then takes :data:`ENCODER`'s."""
    return b""


def _trusted(raw: bytes, values: list[Value]) -> bool:
    """Whether orjson's ``raw`` is exactly ``ENCODER.encode(values)`` (module doc)."""
    if not raw.isascii() or b"\x7f" in raw or b"0.0000" in raw:
        return False  # non-ASCII, DEL, a float below 1e-4 that orjson writes plainly
    if b"0e" in raw.translate(_DIGITS_AS_ZERO):
        return False  # an exponent: 1e16 and beyond, below 1e-4
    # orjson writes NaN and ±inf as null: one null per None, or the list holds one.
    return b"null" not in raw or raw.count(b"null") == values.count(None)
