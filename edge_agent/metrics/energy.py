"""Energy from a cumulative counter or from integrated power, interval by interval.

Both trackers turn a stream of good samples of one tag into *intervals* between
consecutive samples; the window bookkeeping (:mod:`~edge_agent.metrics.tracks`)
spreads each interval over the windows it overlaps.

Counters are handled in integer *ticks* of the counter's resolution (0.01 kWh for
a typical meter register), so a day of readings adds up exactly, with no float
drift. Whether a change is plausible is decided by a rate bound when one is
configured (a meter's ``max_power``, a machine's ``ideal_cycle_time``: the most that
can be counted in the elapsed time), else by the modulus:

* an increase is counted; one beyond the bound (without one: half the modulus) is a
  *jump* (a meter replaced by one reading higher), not counted;
* a drop is a *rollover* only when the wrapped increase is plausible: within the
  bound, or without one at most ``1/ROLLOVER_SHARE`` of the modulus (a 16-bit parts
  counter reset from 40,000 to 0 is not 25,536 parts);
* any other drop is a *reset* (register cleared, meter replaced, or a glitch):
  a new segment, never a negative or huge delta.

A reset or a jump is *suspect* until the new segment has counted half the size of
the anomaly. A reading that comes back to the old segment meanwhile (at or above the
last reading before the anomaly, plausibly for the time since, and nearer to it than
the suspect segment's own step) shows the anomaly was a *glitch* (a gateway
answering zeros, a torn 32-bit read): the old segment resumes and only its change
since the last good reading is counted, less what the suspect readings counted.

A reading that cannot be a counter value (infinite, NaN, beyond the register's range
or beyond 2**63 ticks: a decode or device fault) is left out as if it were a bad
sample; the tracker reports the first of a run once.

Power is integrated with the trapezoidal rule; an interval longer than ``max_gap``
is not bridged: its energy is unknown and it counts as missing coverage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

#: Nanoseconds per hour: kW x ns / NS_PER_HOUR = kWh.
NS_PER_HOUR: Final = 3_600_000_000_000
NS_PER_S: Final = 1_000_000_000

#: What happened between two counter readings (``""``: an ordinary increase).
EVENT_ROLLOVER: Final = "rollover"
EVENT_RESET: Final = "reset"
EVENT_JUMP: Final = "jump"
#: Readings came back to the segment before a reset or jump: that was a glitch.
EVENT_GLITCH: Final = "glitch"
#: Without a rate bound, a drop is a rollover when the wrapped increase is at most
#: modulus / ROLLOVER_SHARE: 1,024 counts of a 16-bit parts counter (an operator's
#: reset near its top is rare), 671 MWh of a 32-bit register of 0.01 kWh. A real
#: rollover between two polls is far smaller; across a longer outage a rate bound
#: (max_power, ideal_cycle_time) keeps it exact.
ROLLOVER_SHARE: Final = 64
#: A reading left out because it cannot be a counter value (reported once per run).
EVENT_OUT_OF_RANGE: Final = "out of range"
#: Largest counter reading in ticks without a modulus (int64, as the widest register).
MAX_TICKS: Final = float(2**63)


@dataclass(slots=True)
class CounterStep:
    """The change of a counter between two good readings at ``t1_ns`` and ``t2_ns``.

    ``ticks`` is what is counted (never negative). ``known`` is false when the change
    had to be discarded (a jump, a reset without a plausible count): the interval's
    energy is unknown. ``covered`` is false then, and also when the readings are
    further apart than ``max_gap`` (a gap the counter bridges).
    """

    t1_ns: int
    t2_ns: int
    ticks: int
    covered: bool
    event: str = ""
    known: bool = True


def counter_delta(
    previous: int, current: int, modulus: int | None, allowance: float | None
) -> tuple[int | None, str]:
    """Ticks to count between two readings, and what happened.

    ``modulus``: ticks at which the counter wraps to zero (``None``: it never does).
    ``allowance``: the largest plausible increase for the elapsed time (``None``:
    unknown). Returns ``(delta, event)``; ``delta`` is never negative, and ``None``
    when the change is discarded (its energy is unknown):

    * an increase within the allowance (and, without one, below half the modulus) is
      counted as it is;
    * a larger increase is a ``jump`` (meter replaced by one reading higher): not counted;
    * a drop that wraps to a plausible increase (within the allowance; without one, at
      most ``modulus / ROLLOVER_SHARE``) is a ``rollover``;
    * any other drop is a ``reset``: counted from zero (the register was cleared)
      when the new reading itself is within the allowance, else not counted.
    """
    delta = current - previous
    if delta >= 0:
        if allowance is not None:
            return (delta, "") if delta <= allowance else (None, EVENT_JUMP)
        if modulus is not None and delta >= modulus // 2:
            return None, EVENT_JUMP
        return delta, ""
    if modulus is not None:
        wrapped = delta + modulus
        plausible = (
            wrapped <= allowance if allowance is not None else wrapped <= modulus // ROLLOVER_SHARE
        )
        if plausible and wrapped >= 0:
            return wrapped, EVENT_ROLLOVER
    if allowance is not None and 0 <= current <= allowance:
        return current, EVENT_RESET
    return None, EVENT_RESET


class CounterTracker:
    """Turns readings of one cumulative counter into :class:`CounterStep` intervals.

    ``resolution``: the counter's step in its unit (e.g. 0.01 kWh); readings are
    rounded to whole ticks of it. ``modulus_ticks``: rollover modulus in ticks.
    ``max_ticks_per_s``: plausibility bound (e.g. from the meter's maximum power).
    ``max_gap_ns``: readings further apart are a gap (bridged, but not covered).

    After a reset or a jump, ``ref_*`` remember the segment before it (its last
    reading and time), the first reading after it and what has been counted since,
    until a reading resumes the old segment (a glitch) or the new one has counted half
    the size of the anomaly (a genuine reset: the old segment is forgotten).
    """

    __slots__ = (
        "_limit",
        "_rejecting",
        "glitches",
        "jumps",
        "last_ns",
        "last_rejected",
        "last_ticks",
        "max_gap_ns",
        "max_ticks_per_s",
        "modulus",
        "ref_base",
        "ref_counted",
        "ref_ns",
        "ref_ticks",
        "rejected",
        "resets",
        "resolution",
        "rollovers",
    )

    def __init__(
        self,
        resolution: float,
        modulus_ticks: int | None,
        max_ticks_per_s: float | None,
        max_gap_ns: int,
    ) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self.modulus = modulus_ticks
        self.max_ticks_per_s = max_ticks_per_s
        self.max_gap_ns = max_gap_ns
        self.last_ticks: int | None = None
        self.last_ns = 0
        self.rollovers = 0
        self.resets = 0
        self.jumps = 0
        self.glitches = 0
        self.ref_ticks: int | None = None
        self.ref_ns = 0
        self.ref_base = 0
        self.ref_counted = 0
        #: Readings left out as out of range, and the last of them (for the log).
        self.rejected = 0
        self.last_rejected = 0.0
        self._rejecting = False
        self._limit = float(modulus_ticks) if modulus_ticks is not None else MAX_TICKS

    def update(self, t_ns: int, value: float) -> CounterStep | None:
        """Account for one good reading; the step since the previous one, if any.

        An out-of-range reading returns an ``out of range`` step (nothing known, nothing
        covered) the first time in a run, ``None`` after that, and changes nothing.
        """
        scaled = value / self.resolution
        if not -self._limit <= scaled <= self._limit:  # false for NaN and infinities too
            return self._reject(t_ns, value)
        self._rejecting = False
        ticks = round(scaled)
        if self.modulus is not None:
            ticks %= self.modulus
        last = self.last_ticks
        if last is None:
            self.last_ticks, self.last_ns = ticks, t_ns
            return None
        if t_ns <= self.last_ns:
            return None  # a repeated or out-of-order reading: already accounted for
        elapsed = t_ns - self.last_ns
        rate = self.max_ticks_per_s
        allowance = None if rate is None else rate * elapsed / NS_PER_S + 1.0
        delta = ticks - last
        counted: int | None = delta
        event = ""
        # The common case inline (an ordinary increase); counter_delta decides the rest.
        if delta < 0 or (
            delta > allowance
            if allowance is not None
            else self.modulus is not None and delta >= self.modulus // 2
        ):
            counted, event = counter_delta(last, ticks, self.modulus, allowance)
        if self.ref_ticks is not None:
            counted, event = self._after_anomaly(ticks, last, t_ns, counted, event)
        elif event in (EVENT_RESET, EVENT_JUMP):
            self.ref_ticks, self.ref_ns = last, self.last_ns
            self.ref_base, self.ref_counted = ticks, counted or 0
        step = CounterStep(
            self.last_ns,
            t_ns,
            0 if counted is None else counted,
            elapsed <= self.max_gap_ns and counted is not None,
            event,
            counted is not None,
        )
        if event == EVENT_ROLLOVER:
            self.rollovers += 1
        elif event == EVENT_RESET:
            self.resets += 1
        elif event == EVENT_JUMP:
            self.jumps += 1
        elif event == EVENT_GLITCH:
            self.glitches += 1
        self.last_ticks, self.last_ns = ticks, t_ns
        return step

    def _after_anomaly(
        self, ticks: int, last: int, t_ns: int, counted: int | None, event: str
    ) -> tuple[int | None, str]:
        """A reading while a reset or jump is suspect: a glitch's end, or the new segment."""
        ref = self.ref_ticks
        assert ref is not None
        back = ticks - ref  # the change since the last reading of the old segment
        if back >= 0 and back < self._claim(ticks, last) and self._plausible(back, t_ns):
            self.ref_ticks = None
            return max(0, back - self.ref_counted), EVENT_GLITCH
        if event == EVENT_RESET:
            # The suspect segment went down again (garbage decaying to zero, 2 then 1):
            # counting it from zero once more would count the garbage twice, and a
            # returning counter can take back only what one segment counted.
            counted = 0
        self.ref_counted += counted or 0
        if event in (EVENT_RESET, EVENT_JUMP):
            self.ref_base = ticks  # another anomaly: the old segment is still the reference
        elif 2 * self.ref_counted >= abs(ref - self.ref_base):
            self.ref_ticks = None  # the new segment counted on: a genuine reset or new meter
        return counted, event

    def _claim(self, ticks: int, last: int) -> float:
        """How much the suspect segment would count for ``ticks`` (its own step)."""
        if ticks >= last:
            return ticks - last
        return ticks + self.modulus - last if self.modulus is not None else math.inf

    def _plausible(self, increase: int, t_ns: int) -> bool:
        """Could ``increase`` have been counted since the old segment's last reading?"""
        rate = self.max_ticks_per_s
        if rate is not None:
            return increase <= rate * (t_ns - self.ref_ns) / NS_PER_S + 1.0
        return self.modulus is None or increase < self.modulus // 2

    def _reject(self, t_ns: int, value: float) -> CounterStep | None:
        self.rejected += 1
        self.last_rejected = value
        if self._rejecting:
            return None
        self._rejecting = True
        return CounterStep(t_ns, t_ns, 0, False, EVENT_OUT_OF_RANGE, False)

    def state(self) -> dict[str, Any]:
        return {
            "last_ticks": self.last_ticks,
            "last_ns": self.last_ns,
            "rollovers": self.rollovers,
            "resets": self.resets,
            "jumps": self.jumps,
            "glitches": self.glitches,
            "suspect": None
            if self.ref_ticks is None
            else [self.ref_ticks, self.ref_ns, self.ref_base, self.ref_counted],
        }

    def restore(self, state: dict[str, Any]) -> None:
        last = state.get("last_ticks")
        self.last_ticks = None if last is None else int(last)
        self.last_ns = int(state.get("last_ns", 0))
        self.rollovers = int(state.get("rollovers", 0))
        self.resets = int(state.get("resets", 0))
        self.jumps = int(state.get("jumps", 0))
        self.glitches = int(state.get("glitches", 0))
        suspect = state.get("suspect")
        self.ref_ticks = None if suspect is None else int(suspect[0])
        if suspect is not None:
            self.ref_ns, self.ref_base, self.ref_counted = (int(x) for x in suspect[1:4])


@dataclass(slots=True)
class PowerStep:
    """Energy (kWh) between two good power samples; ``covered`` false for an unbridged gap."""

    t1_ns: int
    t2_ns: int
    kwh: float
    covered: bool


def trapezoid_kwh(kw1: float, kw2: float, elapsed_ns: int) -> float:
    """Energy of a straight line from ``kw1`` to ``kw2`` over ``elapsed_ns``."""
    return (kw1 + kw2) * 0.5 * elapsed_ns / NS_PER_HOUR


class PowerIntegrator:
    """Trapezoidal integration of one power tag (kW) into :class:`PowerStep` intervals."""

    __slots__ = ("last_kw", "last_ns", "max_gap_ns")

    def __init__(self, max_gap_ns: int) -> None:
        self.max_gap_ns = max_gap_ns
        self.last_ns: int | None = None
        self.last_kw = 0.0

    def update(self, t_ns: int, kw: float) -> PowerStep | None:
        last = self.last_ns
        if last is not None and t_ns <= last:
            return None  # repeated or out of order
        previous = self.last_kw
        self.last_ns, self.last_kw = t_ns, kw
        if last is None:
            return None
        elapsed = t_ns - last
        if elapsed > self.max_gap_ns:
            return PowerStep(last, t_ns, 0.0, covered=False)
        return PowerStep(last, t_ns, trapezoid_kwh(previous, kw, elapsed), covered=True)

    def state(self) -> dict[str, Any]:
        return {"last_ns": self.last_ns, "last_kw": self.last_kw}

    def restore(self, state: dict[str, Any]) -> None:
        last = state.get("last_ns")
        self.last_ns = None if last is None else int(last)
        self.last_kw = float(state.get("last_kw", 0.0))


def deviation_pct(integrated_kwh: float, counter_kwh: float) -> float | None:
    """How far integrated power is from the counter, in percent of the counter.

    A persistent deviation points at wiring or a wrong CT ratio on one of the two.
    ``None`` when the counter saw no energy (no meaningful ratio).
    """
    if counter_kwh <= 0:
        return None
    return 100.0 * (integrated_kwh - counter_kwh) / counter_kwh
