"""Values rounded to what the device can express, once, where they are produced.

A float32 register read into a Python float prints as ``14.545377731323242``: 17
digits of which the device meant 8. A scaled integer ``121 * 0.1`` prints as
``12.100000000000001``. Drivers round here, so MQTT JSON, InfluxDB line protocol and
every other consumer see the same number, and no sink needs rounding logic.

float32
    :func:`shortest_float32` gives, for each float32 value, the float with the fewest
    significant digits that still packs back to the same 32 bits (``14.545378``), the
    closest such one when two tie in length: what ``numpy.float32.__repr__`` prints.
    NaN and ±inf pass through unchanged (the drivers mark them bad anyway).

scaled integers
    :class:`DecimalScale` turns ``raw * scale + offset`` into
    ``(raw * m + k) / 10**d`` with integers ``m``, ``k`` and ``d`` taken from the
    decimals written in the config (scale 0.1 -> ``raw / 10``; 0.25 -> ``raw * 25 /
    100``). Python's int arithmetic is exact and its true division correctly rounded,
    so the result is the float nearest the exact decimal value, at the cost of a
    multiplication and a division.

Speed: a poll hands over whole blocks, so :func:`shortest_float32` works on lists. A
list of :data:`COMPILED_FROM` values or more goes through a compiled writer
(edge_agent/rounding_compiled.py): numpy packs it as float32 and orjson writes each
float32's shortest decimal (Ryu) and parses the text back. Ryu's decimal is the
shortest that reads back as the float32 directly; read back through float64, as
everyone does, it is not always (a double rounding onto the midpoint between two
float32: rare, found by running every float32): so that module also flags every
value next to such a midpoint, and every result is checked to pack back to the value
it came from; flagged and failing values take the list path. About 180 ns per value, checks
included, against 1 µs for the list path below (one ``%`` formatting call and one
``struct`` round trip per candidate length for the whole list). Both are imported once
:data:`COMPILED_AFTER` values have taken the list path, and not in the first
:data:`COMPILED_DELAY_S` seconds, so a plant without float32 tags never loads numpy
(about 50 ms and 13 MB; the InfluxDB client loads it anyway) and no plant loads it
during its start; without numpy or orjson the list path serves for good (a warning
says so, once). Hypothesis tests hold both paths to :func:`shortest_float32_exact`,
on random bits and next to short-decimal midpoints; bench/bench_encode.py measures them.
"""

from __future__ import annotations

import operator
import struct
import time
from collections.abc import Callable, Sequence
from decimal import Context, Decimal
from functools import lru_cache
from itertools import compress
from typing import Any, Final

import structlog

log = structlog.get_logger("edge_agent.rounding")

_F32 = struct.Struct("<f")
#: Enough digits for any product and sum below: decimal arithmetic here never rounds.
_EXACT = Context(prec=200)

#: Significant digits tried in turn. Fewer than 6 need no separate try: a float32
#: that has a round-tripping decimal of 5 or fewer digits prints as that decimal at 6
#: (``%g`` drops trailing zeros), since the float32 spacing (2**-23 relative) is far
#: below half a unit of the sixth digit. 9 always round-trips.
_FIRST = 7
_SMALLEST_NORMAL: Final = 2.0**-126
_LENGTHS: Final = (8, 9)


@lru_cache(maxsize=256)
def _plan(count: int) -> tuple[struct.Struct, dict[int, str]]:
    """The ``struct`` of ``count`` float32 and the ``%`` formats per length, built once."""
    return struct.Struct(f"<{count}f"), {d: f"%.{d}g " * count for d in (6, 7, 8, 9)}


def _round_trips(candidates: Sequence[float], originals: Sequence[float]) -> list[bool]:
    packer = _plan(len(candidates))[0]
    return list(map(operator.eq, packer.unpack(packer.pack(*candidates)), originals))


def _formatted(values: Sequence[float], digits: int) -> list[float]:
    """``[float(f"{v:.{digits}g}") for v in values]`` in three C calls."""
    return list(map(float, (_plan(len(values))[1][digits] % tuple(values)).split()))


#: Lists at least this long take the compiled path: below it, building a numpy array and
#: an orjson call (about 1.5 µs together) cost more than the list path saves.
COMPILED_FROM: Final = 4
#: The compiled path is loaded once the list path has taken this many values, and not
#: before :data:`COMPILED_DELAY_S` after its first: loading numpy costs about 50 ms and
#: 13 MB once, the list path ~1 µs more per value. So no plant loads it during its start
#: (its first polls), a 10,000-tag plant loads it a few seconds in, and a small plant,
#: which gains little, only after minutes.
COMPILED_AFTER: Final = 10_000
COMPILED_DELAY_S: Final = 3.0

_compiled: Callable[[bytes], tuple[list[Any], list[int]]] | None = None
#: What could not be imported, once it failed: the list path then serves for good.
_missing: str | None = None
_listed = 0
_since: float | None = None


def shortest_float32(values: Sequence[float]) -> list[float]:
    """Each float32 value as its shortest round-tripping decimal (see the module doc).

    Every value must be exactly representable as a float32 (as decoded from a
    register or an OPC UA Float). NaN comes back as it came, ±inf as ±inf.
    """
    global _listed, _since
    if _compiled is not None:
        if len(values) >= COMPILED_FROM:
            return shortest_float32_compiled(values)
    elif _missing is None:
        now = time.monotonic()
        if _since is None:
            _since = now
        if _listed >= COMPILED_AFTER and now - _since >= COMPILED_DELAY_S and _loaded():
            return shortest_float32_compiled(values)
        _listed += len(values)
    return shortest_float32_listwise(values)


def _loaded() -> bool:
    """Load the compiled path; without numpy or orjson, say so once and stay listwise."""
    global _compiled, _missing
    try:
        _compiled = _load_compiled()
    except ImportError as exc:
        _missing = exc.name or str(exc)
        log.warning(
            "float32_rounding_without_numpy_or_orjson",
            missing=_missing,
            error=str(exc),
            effect="float32 values are rounded by the slower pure-Python path "
            "(same values, about 1 µs each)",
        )
        return False
    return True


def shortest_float32_compiled(values: Sequence[float]) -> list[float]:
    """:func:`shortest_float32` through numpy and orjson (imported on the first call;
    ImportError without them).

    Ryu's decimal for each value (edge_agent/rounding_compiled.py), except where that
    module cannot vouch for it or it does not pack back to the value it came from
    (NaN, ±inf, a value that was not a float32): those take the list path, so the
    paths agree outside the contract too (a float64 that is no float32, an int, a
    value beyond float32: OverflowError from both).
    """
    global _compiled
    if _compiled is None:
        _compiled = _load_compiled()
    if not values:
        return []
    packer = _plan(len(values))[0]
    result, redo = _compiled(packer.pack(*values))  # OverflowError beyond float32, as listed
    for i in redo:
        result[i] = values[i]  # a stand-in that packs; replaced below
    back = packer.unpack(packer.pack(*result))
    if back != tuple(values):  # NaN (never equal), or a value that was not a float32
        redo = sorted({*redo, *compress(range(len(values)), map(operator.ne, back, values))})
    if redo:
        again = shortest_float32_listwise([values[i] for i in redo])
        for i, value in zip(redo, again, strict=True):
            result[i] = value
    return result


def _load_compiled() -> Callable[[bytes], tuple[list[Any], list[int]]]:
    """:func:`edge_agent.rounding_compiled.shortest_candidates` (imports numpy, orjson)."""
    from edge_agent.rounding_compiled import shortest_candidates

    return shortest_candidates


def shortest_float32_listwise(values: Sequence[float]) -> list[float]:
    """:func:`shortest_float32` without numpy and orjson: short lists, the first
    :data:`COMPILED_AFTER` values, and the reference the compiled path is tested against
    besides :func:`shortest_float32_exact`.

    Works a length at a time over the whole list: all
    values at 7 digits; those that round-trip at 7 may have a 6-digit form, those that
    do not try 8, then 9. Rounding to the nearest decimal of a given length finds the
    shortest one except at a power of two, where the float32 spacing below is half the
    spacing above (those come from a table), and for subnormals (done one by one).
    """
    if not values:
        return []
    result = _formatted(values, _FIRST)
    fits = _round_trips(result, values)
    positions = range(len(values))
    _improve(values, result, list(compress(positions, fits)), 6)
    missing = list(compress(positions, map(operator.not_, fits)))
    for digits in _LENGTHS:
        if not missing:
            break
        missing = _improve(values, result, missing, digits)
    for i in missing:  # NaN, which never compares equal: leave it as it came
        result[i] = values[i]
    if any(map(_POWERS_OF_TWO.__contains__, values)):
        get = _POWERS_OF_TWO.get
        result = [get(v, r) for v, r in zip(values, result, strict=True)]
    # Subnormals (below 2**-126, zero aside) carry fewer than 24 bits, so a decimal
    # shorter than 6 digits can round-trip where the 6-digit form is not it: rare, done
    # one at a time. Two C-level counts tell whether there is any.
    if sum(map(_SMALLEST_NORMAL.__gt__, map(abs, values))) != values.count(0.0):
        for i, value in enumerate(values):
            if 0.0 < abs(value) < _SMALLEST_NORMAL:
                result[i] = shortest_float32_exact(value)
    return result


def _improve(
    values: Sequence[float], result: list[float], indexes: list[int], digits: int
) -> list[int]:
    """Set ``result[i]`` to the ``digits``-long form where it round-trips; the rest."""
    if not indexes:
        return indexes
    subset = [values[i] for i in indexes]
    tried = _formatted(subset, digits)
    fits = _round_trips(tried, subset)
    for i, value in zip(compress(indexes, fits), compress(tried, fits), strict=True):
        result[i] = value
    return list(compress(indexes, map(operator.not_, fits)))


def shortest_float32_exact(value: float) -> float:
    """The reference definition, one value at a time (slow: tests and the table).

    For each length from 1 to 9 significant digits, the decimals of that length just
    below and just above ``value``; the shortest that round-trips wins, the closer
    one of two (ties to the even last digit, as ``%g`` rounds).
    """
    if value != value or value in (float("inf"), float("-inf")) or value == 0.0:
        return value
    bits = _F32.pack(value)
    exact = Decimal(value)
    for digits in range(1, 10):
        exponent = exact.adjusted() - digits + 1
        unit = Decimal(1).scaleb(exponent)
        below = exact.quantize(unit, rounding="ROUND_FLOOR")
        above = exact.quantize(unit, rounding="ROUND_CEILING")
        nearest = exact.quantize(unit, rounding="ROUND_HALF_EVEN")
        fitting = [d for d in {below, above} if _packs_to(d, bits)]
        if fitting:
            if len(fitting) == 2:
                gap_below, gap_above = exact - below, above - exact
                if gap_below == gap_above:
                    return float(nearest)
                return float(below if gap_below < gap_above else above)
            return float(fitting[0])
    raise AssertionError(f"no 9-digit decimal round-trips {value!r}")  # pragma: no cover


def _packs_to(decimal: Decimal, bits: bytes) -> bool:
    try:
        return _F32.pack(float(decimal)) == bits
    except OverflowError:  # rounded up beyond the largest float32
        return False


def _power_of_two_table() -> dict[float, float]:
    """Every normal float32 power of two (and its negative) -> its shortest decimal."""
    table: dict[float, float] = {}
    for exponent in range(-126, 128):
        for sign in (1.0, -1.0):
            value = sign * 2.0**exponent
            table[value] = shortest_float32_exact(value)
    return table


_POWERS_OF_TWO: Final = _power_of_two_table()


class DecimalScale:
    """``raw * scale + offset`` computed exactly in decimal for integer ``raw``.

    ``scale`` and ``offset`` are taken as the decimals they print as (``repr``), which
    is what the config said: ``0.1`` is one tenth, not 0.1000000000000000055511. The
    result is the float nearest the exact decimal value. Beyond 20 decimals or
    digits (a scale nobody writes) it falls back to float arithmetic rounded to
    :attr:`decimals` places.
    """

    __slots__ = ("decimals", "divisor", "exact", "factor", "offset", "scale", "shift")

    def __init__(self, scale: float, offset: float = 0.0) -> None:
        self.scale = scale
        self.offset = offset
        scale_dec = Decimal(repr(scale)).normalize()
        offset_dec = Decimal(repr(offset)).normalize()
        self.decimals = max(0, -_exponent(scale_dec), -_exponent(offset_dec))
        self.divisor: int = 10**self.decimals
        self.factor = int(scale_dec.scaleb(self.decimals))
        self.shift = int(offset_dec.scaleb(self.decimals))
        limit = 10**20
        self.exact = self.divisor <= limit and abs(self.factor) < limit and abs(self.shift) < limit

    def __call__(self, raw: int) -> float:
        if self.exact:
            return (raw * self.factor + self.shift) / self.divisor
        return round(raw * self.scale + self.offset, self.decimals)


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0


def shortest_float32_one(value: float) -> float:
    """:func:`shortest_float32` of one value, without the list machinery (slow paths).

    The smallest length from 6 to 9 that round-trips is the shortest, powers of two
    and subnormals aside (see :func:`shortest_float32`).
    """
    if value != value or value - value != 0.0:  # NaN, ±inf
        return value
    special = _POWERS_OF_TWO.get(value)
    if special is not None:
        return special
    if 0.0 < abs(value) < _SMALLEST_NORMAL:
        return shortest_float32_exact(value)
    pack, unpack = _F32.pack, _F32.unpack
    for digits in (6, 7, 8):
        candidate = float(f"{value:.{digits}g}")
        if unpack(pack(candidate))[0] == value:
            return candidate
    return float(f"{value:.9g}")


def scaled_float(raw: float, scale: Decimal, offset: Decimal, float32: bool) -> float:
    """``raw * scale + offset`` for a float register, exact in decimal.

    ``raw`` is taken as its shortest decimal (float32 or float64), so a float32 power
    of 14.545378 kW with scale 1000 gives 14545.378 W, not 14545.377731323242.
    ``scale`` and ``offset`` are the config's decimals (``Decimal(repr(scale))``).
    Slower than the integer path (``Decimal``), and rare: most float registers are
    not scaled.
    """
    if raw - raw != 0.0:  # NaN or ±inf: nothing to round
        return raw * float(scale) + float(offset)
    short = shortest_float32_one(raw) if float32 else raw
    return float(_EXACT.add(_EXACT.multiply(Decimal(repr(short)), scale), offset))
