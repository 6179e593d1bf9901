"""Machine state over time, and the ISO 22400-2 KPIs computed from it.

A machine is in one of four states: off, idle, run (producing) or fault. The state
comes either from a state tag (its enum label mapped to one of the four), or is
derived from power with thresholds, hysteresis and a minimum dwell time, so that
noise around a threshold does not flap the state.

Time in a state is counted sample-and-hold: the state read at ``t1`` holds until
the next good reading at ``t2``; an interval longer than ``max_gap`` is *unknown*
time, not off time. KPIs (ISO 22400-2:2014, §6 of its KPI descriptions):

* availability = APT / PBT: actual production time (run) over planned busy time;
* effectiveness = PRI x PQ / APT: planned run time per item (ideal cycle time) times
  produced quantity, over actual production time (often called performance);
* quality ratio = GQ / PQ: good quantity over produced quantity;
* OEE index = availability x effectiveness x quality ratio.

Planned busy time here is the planned time (shifts minus breaks) during which the
state is known, so that a communication gap lowers coverage, not availability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from edge_agent.metrics.timeline import StateTimeline

OFF: Final = 0
IDLE: Final = 1
RUN: Final = 2
FAULT: Final = 3
#: A state by name, as the plant file's state maps write it (the config's type too).
StateName = Literal["off", "idle", "run", "fault"]
#: State names in index order; the config maps enum labels onto these.
STATE_NAMES: Final[tuple[StateName, ...]] = get_args(StateName)


@dataclass(slots=True)
class StateStep:
    """The machine was in ``state`` from ``t1_ns`` to ``t2_ns`` (unknown if not ``covered``)."""

    t1_ns: int
    t2_ns: int
    state: int
    covered: bool


class StateTracker:
    """Sample-and-hold state timeline of one machine, as :class:`StateStep` intervals.

    With a ``timeline`` it also tells that timeline each change of state and each gap
    (see :mod:`~edge_agent.metrics.timeline`): a comparison per sample, a call per change.
    """

    __slots__ = ("last_ns", "max_gap_ns", "state", "timeline")

    def __init__(self, max_gap_ns: int, timeline: StateTimeline | None = None) -> None:
        self.max_gap_ns = max_gap_ns
        self.last_ns: int | None = None
        self.state: int | None = None
        self.timeline = timeline

    def update(self, t_ns: int, state: int) -> StateStep | None:
        last, previous = self.last_ns, self.state
        if last is not None and t_ns <= last:
            return None
        self.last_ns, self.state = t_ns, state
        if last is None or previous is None:
            if self.timeline is not None:
                self.timeline.change(t_ns, state)
            return None
        covered = t_ns - last <= self.max_gap_ns
        if (state != previous or not covered) and self.timeline is not None:
            self.timeline.change(t_ns, state, None if covered else last)
        return StateStep(last, t_ns, previous, covered)

    def state_dict(self) -> dict[str, Any]:
        return {"last_ns": self.last_ns, "state": self.state}

    def restore(self, state: dict[str, Any]) -> None:
        last, current = state.get("last_ns"), state.get("state")
        self.last_ns = None if last is None else int(last)
        self.state = None if current is None else int(current)
        if self.timeline is not None and self.last_ns is not None and self.state is not None:
            # The band restarts at the last saved state; the first reading decides
            # whether it held (within max_gap) or the downtime was unknown.
            self.timeline.change(self.last_ns, self.state)


class PowerStateDeriver:
    """Off / idle / run from power, with hysteresis and a minimum dwell.

    Thresholds: below ``off_below`` kW is off, at or above ``run_above`` is run,
    between is idle. ``hysteresis`` (kW) is a band around each threshold: leaving a
    state needs the power to cross its threshold by half the band. A new state must
    hold for ``min_dwell_ns`` before it is accepted; it is then dated back to its
    first sample, so time in state stays right. Samples are therefore released up
    to ``min_dwell`` late, as ``(t_ns, state)`` points for a :class:`StateTracker`.
    """

    __slots__ = (
        "half_band",
        "min_dwell_ns",
        "off_below",
        "pending",
        "pending_times",
        "run_above",
        "settled",
    )

    def __init__(
        self, off_below: float, run_above: float, hysteresis: float, min_dwell_ns: int
    ) -> None:
        if not off_below + hysteresis / 2 < run_above - hysteresis / 2:
            raise ValueError("the off and run thresholds (with hysteresis) overlap")
        self.off_below = off_below
        self.run_above = run_above
        self.half_band = hysteresis / 2
        self.min_dwell_ns = min_dwell_ns
        self.settled: int | None = None
        self.pending: int | None = None
        self.pending_times: list[int] = []

    def classify(self, kw: float, current: int | None) -> int:
        """The state ``kw`` indicates, given the ``current`` settled state (``None``: none yet)."""
        band = self.half_band
        if current is None:
            run_threshold, off_threshold = self.run_above, self.off_below
        else:
            # Staying in a state is easier than entering it: that is the hysteresis.
            run_threshold = self.run_above - band if current == RUN else self.run_above + band
            off_threshold = self.off_below + band if current == OFF else self.off_below - band
        if kw >= run_threshold:
            return RUN
        if kw < off_threshold:
            return OFF
        return IDLE

    def update(self, t_ns: int, kw: float) -> list[tuple[int, int]]:
        """Feed one good power sample; returns the points whose state is now decided."""
        settled = self.settled
        if settled is None:
            self.settled = self.classify(kw, None)
            return [(t_ns, self.settled)]
        if self.pending_times and t_ns <= self.pending_times[-1]:
            return []
        candidate = self.classify(kw, settled)
        out: list[tuple[int, int]] = []
        if candidate == settled:
            out = [(t, settled) for t in self.pending_times]
            out.append((t_ns, settled))
            self.pending, self.pending_times = None, []
            return out
        if candidate != self.pending:
            # A different change than the one pending: the pending samples were noise.
            out = [(t, settled) for t in self.pending_times]
            self.pending, self.pending_times = candidate, []
        self.pending_times.append(t_ns)
        if t_ns - self.pending_times[0] >= self.min_dwell_ns:
            self.settled = candidate
            out.extend((t, candidate) for t in self.pending_times)
            self.pending, self.pending_times = None, []
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"settled": self.settled, "pending": self.pending, "times": self.pending_times}

    def restore(self, state: dict[str, Any]) -> None:
        settled, pending = state.get("settled"), state.get("pending")
        self.settled = None if settled is None else int(settled)
        self.pending = None if pending is None else int(pending)
        self.pending_times = [int(t) for t in state.get("times", [])]


@dataclass(frozen=True, slots=True)
class Kpis:
    """ISO 22400-2 KPIs of one window; ``None`` where the inputs do not define one."""

    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None


def compute_kpis(
    planned_busy_s: float,
    production_s: float,
    produced: float | None,
    good: float | None,
    ideal_cycle_s: float | None,
) -> Kpis:
    """Availability, effectiveness, quality ratio and OEE (see the module docstring).

    ``planned_busy_s`` (PBT) and ``production_s`` (APT) in seconds; ``produced`` (PQ)
    and ``good`` (GQ) in parts, ``None`` when the machine has no such counter;
    ``ideal_cycle_s`` (PRI) ``None`` when not configured.
    """
    availability = production_s / planned_busy_s if planned_busy_s > 0 else None
    effectiveness = None
    counts_parts = ideal_cycle_s is not None and produced is not None
    if counts_parts and production_s > 0:
        assert ideal_cycle_s is not None
        assert produced is not None
        effectiveness = ideal_cycle_s * produced / production_s
    quality = good / produced if produced and good is not None else None
    oee = None
    if availability is not None and counts_parts:
        if availability == 0 or effectiveness == 0:
            # Planned, but nothing ran or nothing was made: OEE is zero, not undefined.
            oee = 0.0
        elif effectiveness is not None and quality is not None:
            oee = availability * effectiveness * quality
    return Kpis(availability, effectiveness, quality, oee)


def kwh_per_part(kwh: float | None, good: float | None) -> float | None:
    """Energy per good part; ``None`` without good parts."""
    if kwh is None or not good:
        return None
    return kwh / good
