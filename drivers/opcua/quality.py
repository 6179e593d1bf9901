"""OPC UA StatusCode -> :class:`~edge_agent.model.Quality` and a reason that names the code.

The two top bits of a StatusCode give its severity (00 good, 01 uncertain, 10 and 11
bad); the upper 16 bits name the code (``BadNodeIdUnknown``), the lower 16 carry
info bits (limits, overflow) that do not change the severity. A good sample has the
empty reason, as with every driver; an uncertain or bad one carries the code's name,
which is what an engineer would search for in the server's manual.
"""

from __future__ import annotations

from asyncua.ua.status_codes import get_name_and_doc

from edge_agent.model import Quality

_SEVERITY_MASK = 0xC000_0000
_CODE_MASK = 0xFFFF_0000
_UNCERTAIN = 0x4000_0000

#: Every code seen so far: a plant sees a handful, so the lookup is done once each.
_CACHE: dict[int, tuple[Quality, str]] = {0: (Quality.GOOD, "")}


def status_name(code: int) -> str:
    """``BadNodeIdUnknown`` for 0x80340000; ``0x80AB0000`` for a code the spec lacks."""
    name, doc = get_name_and_doc(code & _CODE_MASK)
    if doc.startswith("Unknown StatusCode"):
        return f"0x{code:08X}"
    return name


def classify(code: int) -> tuple[Quality, str]:
    """Quality and reason of a value with StatusCode ``code``."""
    hit = _CACHE.get(code)
    if hit is not None:
        return hit
    severity = code & _SEVERITY_MASK
    if severity == 0:
        result = (Quality.GOOD, "")
    elif severity == _UNCERTAIN:
        result = (Quality.UNCERTAIN, status_name(code))
    else:
        result = (Quality.BAD, status_name(code))
    _CACHE[code] = result
    return result
