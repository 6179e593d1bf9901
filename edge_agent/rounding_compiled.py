"""The compiled path of :func:`edge_agent.rounding.shortest_float32`: numpy and orjson.

Imported by :mod:`edge_agent.rounding` only once a plant has run for a while (it loads
numpy); :func:`shortest_candidates` gives each value's answer and the positions it
cannot vouch for, which the caller sends through the list path.

What it computes. numpy packs the list as float32 and orjson writes each float32's
shortest decimal with Ryu: the shortest decimal inside the float32's rounding interval
(the exact interval between the two midpoints to its neighbours), the closest of those,
ties to the even digit. The reference (:func:`edge_agent.rounding.shortest_float32_exact`)
reads a decimal back the way every consumer does, decimal -> float64 -> float32, and
the two differ only where a decimal ``d`` rounds in float64 exactly onto a midpoint
``m`` (``float(d) == m``, ``d != m``): float32 rounding of ``m`` goes to the even one of
the two neighbours. So an odd float32 can get from Ryu a decimal that reads back as its
neighbour (7.0385307e-26, bits 0x15AE43FD, comes out as 7.038531e-26), and an even one
can have a decimal that Ryu leaves out, shorter than Ryu's (the neighbour 0x15AE43FE:
7.038531e-26 against Ryu's 7.0385313e-26).

Why the result is the reference's. Every answer has at most 9 significant digits. If
neither midpoint next to ``x`` is within half a float64 step of a decimal of 9 or fewer
digits, no such decimal reads back onto a midpoint, so the two definitions pick from
the same decimals and agree. :func:`shortest_candidates` flags every value for which it
cannot rule that out, with float arithmetic whose error is bounded:

- ``2m`` is ``x`` plus its float32 neighbour (``nextafter``; half the spacing below a
  power of two), exact in float64, and ``t = 2m * (10**s / 2)`` scales it to
  ``[1e9, 4e10)``, ``s`` taken from ``x``'s float32 exponent (``m`` lies between half and
  twice ``2**e``), ``10**s`` from a table of correctly rounded powers. At that scale a
  decimal of 9 or fewer digits near ``m`` is an integer ``K`` of 9 or fewer significant
  digits (below 1e9 any, below 1e10 a multiple of 10, above a multiple of 100).
- ``float(d) == m`` means ``|d - m| <= |m| * 2**-53``, so ``|K - t_exact| < 4.5e-6``;
  the two roundings of ``t`` add less than ``9e-6``; so ``|t - K| < 1.4e-5``, ``K`` is
  ``rint(t)`` and ``|t - rint(t)|`` is below :data:`TOLERANCE` (1e-4, 7 times that).
  About 0.02 % of values in a typical range are flagged besides.
- Where every midpoint of a binade is a decimal (2**22 to 2**35: x.125 to integers),
  nothing needs flagging. A midpoint ``m`` that is itself a short decimal reads back
  as itself, and float32 rounding of it (ties to even) agrees with Ryu (which takes
  the interval's ends for an even float32, leaves them out for an odd one); any other
  decimal of 9 or fewer digits is at least ``10**-s`` from it, a 4e10th of ``m``, far
  beyond a float64 step. The float32 integers and counters of a plant stay compiled.
- Zero, subnormals, ±inf and NaN have no table entry: flagged (zero aside: its
  midpoints are ±2**-150, 7.006492321624085e-46, far from 9 digits). The largest
  float32 is its own upper neighbour here (the midpoint above would be inf); it is odd.

That covers the even values; for the odd ones the caller's round-trip check alone is
enough (the reference's decimals are then a subset of Ryu's, so Ryu's pick, once it
reads back, is the reference's), and it also catches input that was not a float32 to
begin with. The tests compare both paths with the reference on random bits and on
values chosen next to short-decimal midpoints.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Final

import numpy as np
import orjson

#: Values whose scaled midpoint is closer than this to an integer of 9 significant digits
#: or fewer are flagged (see above: a decimal of 9 digits that reads back onto the
#: midpoint is closer than 1.4e-5).
TOLERANCE: Final = 1e-4


def _floor_log10(value: Fraction) -> int:
    exponent = 0
    while value >= 10:
        value /= 10
        exponent += 1
    while value < 1:
        value *= 10
        exponent -= 1
    return exponent


def _half_scales() -> Any:
    """``10**s / 2`` per float32 exponent field (with and without the sign bit), ``s`` such
    that both midpoints of a value with that exponent scale into ``[1e9, 4e10)``; NaN
    for the field 0 (zero, subnormals) and 255 (inf, NaN), which are flagged.

    Where every midpoint of the binade is itself a decimal of at most 11 digits (all
    midpoints are multiples of ``2**(e-25)``, so where ``s >= 25 - e`` and ``s >= 0``:
    2**22 to 2**35), nothing is flagged (module doc): the entry there scales the
    midpoints into (1/16, 1/4), which is never near an integer.
    """
    table = np.full(512, np.nan)
    for field in range(1, 255):
        exponent = field - 127
        power = 9 - _floor_log10(Fraction(2) ** (exponent - 1))
        if power >= max(0, 25 - exponent):
            half = 2.0 ** -(exponent + 4)  # exact: 2m * half = m / 2**(e+3)
        else:
            half = float(Fraction(10) ** power) / 2  # exact halving
        table[field] = table[field + 256] = half
    return table


_HALF_SCALES: Final = _half_scales()
#: Towards ±the largest float32, not ±inf: its own neighbour is then itself (it is odd,
#: so the round trip vouches for it), and no inf - inf warns (the tests run -W error).
_LARGEST: Final = np.finfo(np.float32).max
_NEIGHBOURS: Final = np.array([[_LARGEST], [-_LARGEST]], np.float32)
_OPTION: Final = orjson.OPT_SERIALIZE_NUMPY
_EXPONENT: Final = np.uint32(23)  # bits 23-31: exponent field and sign


def shortest_candidates(packed: bytes) -> tuple[list[Any], list[int]]:
    """Ryu's shortest decimal of each float32 in ``packed`` (little-endian, as
    ``struct`` packs them; None for NaN and ±inf), and the positions whose answer may
    differ from the reference (see the module doc).

    The caller still checks that every answer packs back to its original value.
    """
    array = np.frombuffer(packed, np.float32)
    text = orjson.dumps(array, option=_OPTION)
    scaled = np.add(np.nextafter(array, _NEIGHBOURS), array, dtype=np.float64)  # exact
    scaled *= _HALF_SCALES[np.right_shift(array.view(np.uint32), _EXPONENT)]
    whole = np.rint(scaled)
    scaled -= whole
    nearest = np.abs(scaled, out=scaled)
    if np.minimum.reduce(nearest, axis=None) >= TOLERANCE:  # NaN is not: see below
        return orjson.loads(text), []
    # Near an integer K: flagged if K has 9 significant digits or fewer (K is the
    # decimal scaled, so this is the decimal's length), or the value has no scale (NaN).
    np.abs(whole, out=whole)
    unit = np.where(whole >= 1e10, 100.0, np.where(whole >= 1e9, 10.0, 1.0))
    short = (nearest < TOLERANCE) & (np.fmod(whole, unit) == 0)
    flagged = (short | np.isnan(nearest)).any(axis=0) & (array != 0)
    suspects: list[int] = np.flatnonzero(flagged).tolist()
    return orjson.loads(text), suspects
