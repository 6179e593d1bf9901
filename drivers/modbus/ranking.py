"""Which decoding of a block is the value the device means: the ranking behind ``probe``.

Pure: no I/O. Every decoding (:mod:`drivers.modbus.decodings`: type x byte order x
scale x starting register) whose value falls in the expected range is a candidate; the
question is which of them is not there by chance. The score is how surprising the hit
would be if the decoding were wrong, in powers of ten (``-log10`` of the chance that
unrelated register contents land in the range read that way), plus small priors:

* floats: the exact share of float32 / float64 bit patterns in the range. A float32
  that reads 230.1 needs the right sign, exponent and mantissa at once: 1 pattern in
  several thousand does that, so a float hit in a narrow range is strong evidence;
* integers: magnitudes spread evenly over the decades the type can hold (log-uniform),
  because real registers hold small numbers far more often than random 32-bit
  patterns would. A uint16 x0.1 in 220..240 is then about 1 in 130, an int32 x0.1
  about 1 in 250: an integer hit is weaker evidence than a float hit;
* a 32/64-bit integer whose upper registers are zero (or all ones) reads the same as a
  narrower type: the narrower reading is preferred (nothing says the next register
  belongs to it);
* likewise a float64 whose low-order 32 bits are 0, when its high half is a float32
  hit: a float32 followed by empty registers reads that way (``[3FA0 0000 0000 0000]``
  is float32 1.25 and float64 0.03125); the float32 is preferred, unless it is itself
  cut short (``[4049 0000 0000 0000]`` is float64 50, float32 3.140625);
* byte order: ABCD (the Modbus standard) first, CDAB (word swap, common on PLCs and
  meters) close behind, the byte-swapped orders BADC and DCBA rarely used;
* a float of absurd magnitude for a measurement (nonzero and below 1e-12, which takes
  in every subnormal, or above 1e15) is never a likely reading: it is what a float
  read across the wrong registers gives (``[3FA0 0000]`` word-swapped is 2.28e-41), so
  it is ranked last whatever its chance, and the float chances count only plausible
  patterns;
* a float32 whose low-order register is 0 is weak evidence either way: a round value
  (1.25 is 0x3FA00000, 230.5 is 0x43668000) has it, and so has the top half of a
  measured float read across a neighbour's empty register (0.93 cut to 0.9296875).
  Only the second kind, a long decimal, is marked down;
* the register asked for beats its neighbours: a hit one register off means the
  register number is probably off by one (1-based numbering, 30001/40001 style).

How many decodings were tried matters: with about a hundred of them, a hit that each
one makes 1 time in 100 by chance is expected somewhere. The explanation weighs the
best hit against that (N decodings x its chance) before it calls anything evidence.

These are rules of thumb, said as such in the explanation; when two candidates score
close, the explanation says so and what to do (read a second value, compare with the
device's display).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drivers.modbus.decodings import FLOAT_TYPES, SIGNED_TYPES, Decoding, format_value
from edge_agent.config import REGISTER_COUNT, ModbusTable
from edge_agent.model import Quality
from edge_agent.rounding import shortest_float32_exact

DEFAULT_SCALES: Final = (1.0, 0.1, 0.01, 0.001)

ORDER_PRIOR: Final = {"ABCD": 0.0, "CDAB": -0.3, "BADC": -1.0, "DCBA": -1.0}
ORDER_WORDS: Final = {
    "ABCD": "ABCD is the Modbus standard (big-endian) order",
    "CDAB": "CDAB (word swap: low register first) is common on PLCs and meters",
    "BADC": "BADC (bytes swapped in each register) is rare",
    "DCBA": "DCBA (fully little-endian) is rare",
}
#: Score lost per register between the address asked for and the candidate's start.
OFFSET_PENALTY: Final = 1.0
#: Score lost per filler register by a wide integer that reads the same as a narrower one.
WIDE_ALIAS_PENALTY: Final = 0.5
#: Score lost by a float32 whose low-order register is 0 and whose value is a long
#: decimal (the top half of a float cut off: 0.9296875), not a round one (1.25).
EMPTY_TAIL_PENALTY: Final = 1.0
#: Score lost by a float64 that is a float32 hit followed by 32 zero bits.
HALF_FLOAT64_PENALTY: Final = 1.5
#: Significant digits up to which a float is a round value (1.25, 230.5, 0.001).
ROUND_DIGITS: Final = 4
#: Magnitudes a measured float does not have: nonzero below TINY (every subnormal is)
#: or above HUGE. A float32 read across the wrong registers often lands there.
TINY: Final = 1e-12
HUGE: Final = 1e15
#: The score of an absurd float: below any plausible reading.
ABSURD_SCORE: Final = -100.0
#: The chance that ANY of the decodings tried lands in range by chance, below which the
#: best hit is called strong evidence, and above which it is no convincing match.
STRONG: Final = 0.01
WEAK: Final = 0.2
#: Scores closer than this are called a tie in the explanation.
CLOSE: Final = 0.5


@dataclass(frozen=True, slots=True)
class Candidate:
    decoding: Decoding
    #: Chance that unrelated register contents land in the range decoded this way.
    chance: float
    score: float
    #: Why the score is what it is, beyond the chance (order, offset, aliases).
    notes: tuple[str, ...]

    @property
    def value(self) -> float:
        value = self.decoding.value
        assert isinstance(value, int | float)
        return float(value)


def chance_in_range(type_: str, scale: float, low: float, high: float) -> float:
    """How often unrelated register contents, decoded as ``type_`` x ``scale``, land
    in ``low..high`` (see the module doc for the model per kind of type)."""
    if type_ in FLOAT_TYPES:
        code, int_code, bits = ("f", "I", 32) if type_ == "float32" else ("d", "Q", 64)
        # Only plausible magnitudes count (absurd ones are never a likely reading):
        # the range clipped to TINY..HUGE on each side of zero, plus zero itself.
        share = 0.0
        for lo, hi in ((max(low, TINY), min(high, HUGE)), (max(low, -HUGE), min(high, -TINY))):
            if lo <= hi:
                share += _float_share(lo, hi, code, int_code, bits)
        if low <= 0.0 <= high:
            share += 2 / 2.0**bits  # +0 and -0
        return share
    bits = 16 * REGISTER_COUNT[type_]
    lo, hi = sorted((_on_grid(low / scale), _on_grid(high / scale)))
    signed = type_ in SIGNED_TYPES
    if signed:
        share = 0.5 * _log_share(max(lo, 0.0), hi, bits - 1)
        share += 0.5 * _log_share(max(-hi, 0.0), -lo, bits - 1)
    else:
        share = _log_share(max(lo, 0.0), hi, bits)
    return min(share, 1.0)


#: Relative error of a scaled value (raw x scale) or a bound divided by the scale:
#: 57 x 0.01 = 0.5700000000000001 and 0.57 / 0.01 = 56.99999999999999.
SCALE_ROUNDING: Final = 1e-9


def _on_grid(raw: float) -> float:
    """A bound divided by the scale, snapped to the whole raw value it means."""
    nearest = round(raw)
    return float(nearest) if abs(raw - nearest) <= SCALE_ROUNDING * max(1.0, abs(raw)) else raw


def _in_range(decoding: Decoding, low: float, high: float) -> bool:
    """The good number of ``decoding`` lies in ``low..high``; a scaled integer within
    its rounding error of a bound counts as in (the display shows it as the bound)."""
    value = decoding.value
    if (
        decoding.quality is not Quality.GOOD
        or isinstance(value, bool)
        or not isinstance(value, int | float)
    ):
        return False
    if low <= value <= high:
        return True
    if decoding.type in FLOAT_TYPES or decoding.scale == 1.0:
        return False  # no arithmetic, no rounding: the value is exact
    # Relative to the bounds: a range of 1e-46..1e-44 leaves no room for a 0.
    slack = SCALE_ROUNDING * max(abs(low), abs(high))
    return low - slack <= value <= high + slack


def _log_share(lo: float, hi: float, bits: int) -> float:
    """Share of the whole magnitudes 0 .. 2**bits - 1 in ``lo..hi`` when magnitudes are
    spread log-uniformly (magnitude m weighs log(m + 2) - log(m + 1))."""
    first, last = math.ceil(max(lo, 0.0)), math.floor(hi)
    if last < first:
        return 0.0
    return (math.log(last + 2.0) - math.log(first + 1.0)) / math.log(2.0**bits + 1.0)


def _shortest32(x: float) -> float:
    """The shortest decimal of the float32 nearest ``x`` (±inf beyond the float32 range)."""
    try:
        nearest = struct.unpack(">f", struct.pack(">f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)
    return shortest_float32_exact(nearest)


def _float_share(low: float, high: float, code: str, int_code: str, bits: int) -> float:
    """Exact share of float bit patterns in ``low..high`` (NaNs included in the total)."""

    def order_key(x: float) -> int:
        # Float bit patterns sorted by value: positive patterns grow with the value,
        # negative ones shrink; map both onto one integer line.
        try:
            raw = struct.unpack(f">{int_code}", struct.pack(f">{code}", x))[0]
        except OverflowError:
            x = math.copysign(math.inf, x)
            raw = struct.unpack(f">{int_code}", struct.pack(f">{code}", x))[0]
        sign = 1 << (bits - 1)
        return int(raw) if not raw & sign else -(int(raw) & (sign - 1))

    lo_key = order_key(low)
    hi_key = order_key(high)
    if code == "f":
        # The decoder gives a float32 as its shortest decimal (edge_agent.rounding), so
        # a pattern counts when that decimal is inside: ``--expect 0.29..0.29`` holds the
        # float32 nearest 0.29, whose shortest decimal is 0.29.
        if _shortest32(low) < low:
            lo_key += 1
        if _shortest32(high) > high:
            hi_key -= 1
    count = max(0, hi_key - lo_key + 1)
    return count / 2.0**bits


def _wide_alias(decoding: Decoding, registers: Sequence[int]) -> int:
    """How many filler registers (0, or 0xFFFF for a negative value) a 32/64-bit integer
    holds when it reads the same number as a 16-bit read of its one other register;
    0 when it is not such an alias."""
    if decoding.type in FLOAT_TYPES or decoding.registers < 2:
        return 0
    words = registers[decoding.offset : decoding.offset + decoding.registers]
    filler = 0xFFFF if isinstance(decoding.value, int | float) and decoding.value < 0 else 0
    fillers = sum(1 for w in words if w == filler)
    return fillers if fillers >= len(words) - 1 else 0


def absurd(decoding: Decoding) -> bool:
    """A float of a magnitude no measurement has (see TINY and HUGE)."""
    value = decoding.value
    if decoding.type not in FLOAT_TYPES or not isinstance(value, float) or value == 0.0:
        return False
    return not TINY <= abs(value) <= HUGE


def _half_float64(decoding: Decoding, hits: Sequence[Decoding]) -> str | None:
    """The float32 hit that a float64 with 32 zero low-order bits is made of, if any
    (not one that is itself cut short: [4049 0000 0000 0000] is float64 50, and its
    float32 3.140625 is the one borrowing empty registers)."""
    if decoding.type != "float64" or not isinstance(decoding.value, float):
        return None
    bits = struct.pack(">d", decoding.value)
    if bits[4:] != bytes(4):
        return None
    for h in hits:
        if h.type == "float32" and isinstance(h.value, float):
            try:
                cut = bits[2:4] == bytes(2) and not _round(h.value)
                if struct.pack(">f", h.value) == bits[:4] and not cut:
                    return format_value(h)
            except OverflowError:
                continue
    return None


def _round(value: float) -> bool:
    """``value`` is a decimal of at most ROUND_DIGITS significant digits (1.25, 230.5)."""
    return any(float(f"{value:.{digits}g}") == value for digits in range(1, ROUND_DIGITS + 1))


def _cut_float(decoding: Decoding, registers: Sequence[int]) -> bool:
    """A float32 whose low-order register (the last 16 bits of its mantissa) is 0 and
    whose value is not a round decimal: the top half of a float, the rest elsewhere."""
    if decoding.type != "float32" or not isinstance(decoding.value, float):
        return False
    first, second = registers[decoding.offset : decoding.offset + 2]
    low = {"ABCD": second, "CDAB": first, "BADC": second, "DCBA": first}[decoding.byte_order]
    return low == 0 and not _round(decoding.value)


def rank(
    decodings: Sequence[Decoding], registers: Sequence[int], low: float, high: float
) -> list[Candidate]:
    """The decodings whose good value lies in ``low..high``, most likely first.

    A signed type that reads the same value as its unsigned twin is dropped (the
    unsigned one stands for both, its note says so).
    """
    hits = [d for d in decodings if _in_range(d, low, high)]
    unsigned_keys = {
        (d.offset, d.registers, d.byte_order, d.scale, d.value)
        for d in hits
        if d.type not in SIGNED_TYPES and d.type not in FLOAT_TYPES
    }
    candidates = []
    for d in hits:
        key = (d.offset, d.registers, d.byte_order, d.scale, d.value)
        if d.type in SIGNED_TYPES and key in unsigned_keys:
            continue  # the same reading as the unsigned type: listed once, under it
        chance = chance_in_range(d.type, d.scale, low, high)
        score = -math.log10(chance) if chance > 0 else 20.0
        notes: list[str] = []
        score += ORDER_PRIOR[d.byte_order]
        if d.offset:
            score -= OFFSET_PENALTY * d.offset
            notes.append(f"{d.offset} register(s) after the one asked for")
        if _cut_float(d, registers):
            score -= EMPTY_TAIL_PENALTY
            notes.append(
                "its low-order register is 0 and the value is not a round one: the top "
                "half of a float read across a neighbour's empty register?"
            )
        half = _half_float64(d, hits)
        if half is not None:
            score -= HALF_FLOAT64_PENALTY
            notes.append(
                f"its low-order 32 bits are 0 and its high half is float32 {half}: a "
                "float32 followed by empty registers reads this way"
            )
        if absurd(d):
            score = ABSURD_SCORE
            notes.append(
                f"{format_value(d)} is no measurement (nonzero below {TINY:g} or above "
                f"{HUGE:g}): registers read across the wrong boundary"
            )
        fillers = _wide_alias(d, registers)
        if fillers:
            score -= WIDE_ALIAS_PENALTY * fillers
            notes.append("its other register(s) are 0: a 16-bit read gives the same number")
        if d.type.startswith("u") and d.type.replace("u", "", 1) in SIGNED_TYPES:
            signed = d.type.replace("u", "", 1)
            if (d.offset, d.registers, d.byte_order, d.scale, d.value) in {
                (h.offset, h.registers, h.byte_order, h.scale, h.value)
                for h in hits
                if h.type == signed
            }:
                notes.append(f"{signed} reads the same")
        candidates.append(Candidate(d, chance, score, tuple(notes)))
    candidates.sort(key=lambda c: (-c.score, c.decoding.offset, c.decoding.registers))
    return candidates


def one_in(chance: float) -> str:
    """``1 in 4,200`` (rounded to two significant digits)."""
    if chance <= 0:
        return "never"
    n = 1.0 / chance
    if n < 1.5:
        return "almost always"
    digits = max(0, math.floor(math.log10(n)) - 1)
    rounded = round(n / 10**digits) * 10**digits
    return f"1 in {rounded:,.0f}"


def label(c: Candidate) -> str:
    d = c.decoding
    scale = "" if d.scale == 1.0 else f" x{d.scale:g}"
    return f"{d.type} {d.byte_order}{scale}"


def any_by_chance(top: Candidate, tried: Sequence[Decoding], low: float, high: float) -> float:
    """The chance that some one of the ``tried`` decodings lands in range by chance at
    least as surprisingly as ``top`` did (at most 1).

    Only decodings that can be that surprising count (a uint16 that lands in a wide range
    half the time cannot): the sum of their chances, each at most ``top``'s. With no
    decodings given, ``top``'s own chance.
    """
    if not tried:
        return top.chance
    limit = top.chance * (1 + SCALE_ROUNDING)
    chances = (chance_in_range(d.type, d.scale, low, high) for d in tried)
    return min(1.0, sum(c for c in chances if c <= limit))


def _times(chance: float) -> str:
    """``1 in 12 times``, or ``almost always``."""
    words = one_in(chance)
    return words if words == "almost always" else f"{words} times"


def verdict(top: Candidate, tried: Sequence[Decoding], low: float, high: float) -> str:
    """How much the best hit says, given how many decodings were tried."""
    if absurd(top.decoding):
        return "no convincing match: the only readings in range are absurd floats"
    if top.value == 0.0:
        return (
            "no convincing match: its registers are 0, and every type reads 0 from them; "
            "read when the value is not 0"
        )
    overall = any_by_chance(top, tried, low, high)
    tried_words = f"of the {len(tried)} decodings tried, one" if tried else "one"
    if overall < STRONG:
        why = ""
        if top.decoding.type in FLOAT_TYPES:
            why = " (a float in range needs the right sign, exponent and mantissa at once)"
        return (
            f"strong evidence{why}: {tried_words} lands in range this surprisingly "
            f"by chance only {one_in(overall)} times"
        )
    if overall < WEAK:
        return (
            f"weak evidence: {tried_words} lands in range this surprisingly by chance "
            f"{one_in(overall)} times; read a second value (or narrow the range) to confirm"
        )
    return (
        f"no convincing match: {tried_words} lands in range this surprisingly by chance "
        f"{_times(overall)}; narrow the range (what the display shows now) or read "
        "a value you know"
    )


def explain(
    candidates: Sequence[Candidate],
    low: float,
    high: float,
    address: int,
    tried: Sequence[Decoding] = (),
) -> list[str]:
    """Why the first candidate is the likeliest, in a few sentences; ``tried`` are all
    the decodings tried (the more, the more hits by chance)."""
    if not candidates:
        return [
            f"no decoding falls in {low:g}..{high:g}: check the range, the table (holding or "
            "input), the unit id, or try addresses around this one (--address A-1, A+1)"
        ]
    top = candidates[0]
    d = top.decoding
    lines = [
        f"likeliest: {label(top)} at address {address + d.offset} = {_value_text(top)}",
        f"  by chance, unrelated registers read as {label(top)} land in {low:g}..{high:g} "
        f"{one_in(top.chance)} times",
    ]
    others = [c for c in candidates[1:] if label(c) != label(top)]
    if others:
        best_other = others[0]
        lines.append(
            f"  next: {label(best_other)} at address {address + best_other.decoding.offset} "
            f"= {_value_text(best_other)} ({one_in(best_other.chance)} by chance)"
        )
    lines.append(f"  {verdict(top, tried, low, high)}")
    lines.append(f"  {ORDER_WORDS[d.byte_order]}")
    if d.offset == 1:
        lines.append(
            "  it starts 1 register after the address asked for: the register number may "
            f"be off by one (1-based, or 30001/40001 numbering); use address {address + 1}"
        )
    elif d.offset:
        lines.append(
            f"  it starts {d.offset} registers after the address asked for; if it is the "
            f"value, use address {address + d.offset}"
        )
    lines.extend(f"  note: {n}" for n in top.notes if "register(s) after" not in n)
    if others and top.score - others[0].score < CLOSE:
        lines.append(
            "  the next one is nearly as likely: read a second value of the device (or "
            "compare with its display) to decide"
        )
    return lines


def _value_text(c: Candidate) -> str:
    return format_value(c.decoding)


def tag_yaml(c: Candidate, table: ModbusTable, address: int) -> str:
    """The candidate as a tag line for a poll group."""
    d = c.decoding
    parts = [
        "name: value",
        f"table: {table}",
        f"address: {address + d.offset}",
        f"type: {d.type}",
    ]
    if d.byte_order != "ABCD":
        parts.append(f"byte_order: {d.byte_order}")
    if d.scale != 1.0:
        parts.append(f"scale: {d.scale:g}")
    return "- {" + ", ".join(parts) + "}"
