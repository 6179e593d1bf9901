"""Energy from a cumulative counter or from integrated power, interval by interval.

Both trackers turn a stream of good samples of one tag into *intervals* between
consecutive samples; the window bookkeeping (:mod:`~edge_agent.metrics.tracks`)
spreads each interval over the windows it overlaps.

Counters are handled in integer *ticks* of the counter's resolution (0.01 kWh for
a typical meter register), so a day of readings adds up exactly, with no float
drift. A drop of the counter is either a rollover at the configured modulus
(``2**32`` ticks for a 32-bit register) or a reset / meter replacement, which starts
a new segment: it is never turned into a negative or a huge positive delta.
Whether a delta is plausible is decided by the meter's ``max_power`` when it is
configured (the most energy that can flow in the elapsed time), else by half the
modulus.

Power is integrated with the trapezoidal rule; an interval longer than ``max_gap``
is not bridged: its energy is unknown and it counts as missing coverage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

#: Nanoseconds per hour: kW x ns / NS_PER_HOUR = kWh.
NS_PER_HOUR: Final = 3_600_000_000_000
NS_PER_S: Final = 1_000_000_000

#: What happened between two counter readings (``""``: an ordinary increase).
EVENT_ROLLOVER: Final = "rollover"
EVENT_RESET: Final = "reset"
EVENT_JUMP: Final = "jump"


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
    * a drop that wraps to a plausible increase is a ``rollover``;
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
        plausible = wrapped <= allowance if allowance is not None else wrapped < modulus // 2
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
    """

    __slots__ = (
        "jumps",
        "last_ns",
        "last_ticks",
        "max_gap_ns",
        "max_ticks_per_s",
        "modulus",
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

    def update(self, t_ns: int, value: float) -> CounterStep | None:
        """Account for one good reading; the step since the previous one, if any."""
        ticks = round(value / self.resolution)
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
        self.last_ticks, self.last_ns = ticks, t_ns
        return step

    def state(self) -> dict[str, Any]:
        return {
            "last_ticks": self.last_ticks,
            "last_ns": self.last_ns,
            "rollovers": self.rollovers,
            "resets": self.resets,
            "jumps": self.jumps,
        }

    def restore(self, state: dict[str, Any]) -> None:
        last = state.get("last_ticks")
        self.last_ticks = None if last is None else int(last)
        self.last_ns = int(state.get("last_ns", 0))
        self.rollovers = int(state.get("rollovers", 0))
        self.resets = int(state.get("resets", 0))
        self.jumps = int(state.get("jumps", 0))


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
