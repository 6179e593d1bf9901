"""The demand guard: the running 15-minute block's predicted end-of-block demand.

A utility bills demand as the mean power of fixed 15-minute blocks (:mod:`.demand`);
a plant with a contracted maximum demand wants to know *during* a block whether it
will end above the limit, while there is still time to shed load. On every good
poll of a guarded meter (after its energy handlers, so its open window holds this
poll's energy), with ``T`` the block's length, ``t`` the poll's time in it:

    predicted_kw = (E + P x (t_left + t_unknown)) / T

``E`` the block's energy so far (the meter's open ``15m`` window, the Stager's stage
included, less late energy, which belongs to earlier blocks), ``P`` the current power
(the power tag; without one, the counter's rate over ``rate_window``), ``t_left`` the
time to the block's end, ``t_unknown`` the time of the block so far whose energy is
not known at all (the agent started mid-block, a gap in the power readings),
assumed to have run at ``P`` too. A gap the counter bridges (readings further apart
than ``max_gap``, an agent restart mid-block) is not unknown: its energy is in
``E`` (``EnergyAcc.known_ns``), and counting its time at ``P`` again would count it
twice.

Error bound: the prediction is exact when power stays at ``P`` for the rest of the
block (and for the unknown time). If it changes by at most ``dP`` (``|P(s) - P| <=
dP`` over the rest of the block and the unknown time), the block's demand ``D``
satisfies

    |D - predicted_kw| <= dP x (t_left + t_unknown) / T  (+ r / T for a counter of
                                                           resolution r kWh)

because ``D x T = E + integral of P(s) ds`` over ``t_left``, and that integral differs
from ``P x t_left`` by at most ``dP x t_left``; ``E`` read from a counter is short of
the truth by less than one count. tests/unit/test_guard_prediction.py checks it
against the simulator's ground truth.

Events (:mod:`.events` builds them): ``demand_limit`` starts when the prediction is
above the limit; not in the first ``quiet_start`` of a block (one reading decides
the prediction there), unless the block's energy alone already exceeds the limit
(``E / T > limit``: the block *will* end above it). It ends when the prediction is
``hysteresis`` below the limit and it has lasted ``min_hold``, or when its block
ends (at the block's end, also when no poll comes: :meth:`DemandGuard.expire`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.metrics.accumulators import EnergyAcc
from edge_agent.metrics.contract import AS_OF, MetricInfo, metric_group
from edge_agent.metrics.events import EventLog
from edge_agent.metrics.output import DEMAND_WINDOW
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.metrics.units.meter import MeterUnit
from edge_agent.model import Quality, SampleBatch, Value

NS_PER_S: Final = 1_000_000_000
NS_PER_HOUR: Final = 3600 * NS_PER_S
NS_PER_MIN: Final = 60 * NS_PER_S

FAMILY: Final = "demand_guard"
NAMES: Final = ("predicted_kw", "limit_kw", "block_kwh", "minutes_left", "shed_kw")
EVENT: Final = "demand_limit"
_ALL_GOOD: Final = (Quality.GOOD,) * len(NAMES)
_NO_REASONS: Final = ("",) * len(NAMES)
_NO_POWER: Final = "no recent power reading (power tag or counter rate)"


@dataclass(frozen=True, slots=True)
class GuardSpec:
    """What the guard is told at start (from ``meters[].demand_guard``)."""

    limit_kw: float
    critical: bool
    hysteresis: float
    min_hold_ns: int
    quiet_start_ns: int
    rate_window_ns: int


@dataclass(slots=True)
class Prediction:
    """One poll's figures (unrounded); ``predicted_kw`` and ``shed_kw`` ``None`` without power."""

    t_ns: int
    block_start_ns: int
    block_end_ns: int
    block_kwh: float
    predicted_kw: float | None
    shed_kw: float | None
    #: The block's energy alone exceeds the limit: it will end above it, whatever happens.
    certain: bool
    #: How long the block's energy is known for (the quiet start counts this, not the
    #: time since the block began: an agent started late in a block knows little).
    known_ns: int

    @property
    def minutes_left(self) -> float:
        return (self.block_end_ns - self.t_ns) / NS_PER_MIN


@dataclass(slots=True)
class _Active:
    """The running ``demand_limit`` event."""

    start_ns: int
    block_start_ns: int
    block_end_ns: int
    last: list[float | None]


class DemandGuard:
    """The guard of one meter: a ``demand_guard`` batch per poll, ``demand_limit`` events."""

    def __init__(self, meter: MeterUnit, spec: GuardSpec, out: list[SampleBatch]) -> None:
        self.meter = meter
        self.spec = spec
        self._out = out
        self.events = EventLog(out)
        self._track = meter.tracks[DEMAND_WINDOW]
        feed = meter.feed
        self._power = feed.power
        self._power_gap_ns = feed.spec.power.max_gap_ns if feed.spec.power is not None else 0
        counter = feed.spec.counter
        self._kwh_per_tick = 0.0 if counter is None else counter.resolution * counter.to_kwh
        self._modulus = None if counter is None else counter.modulus_ticks
        #: (t_ns, counter ticks since the guard started) for the rate without a power tag.
        self._history: deque[tuple[int, int]] = deque()
        self._last_ticks: int | None = None
        self._anomalies = 0
        self._total_ticks = 0
        self.active: _Active | None = None
        self.last: Prediction | None = None
        self._attributes: dict[str, str] = {}
        self._attributes_block = -1

    @property
    def primary_tag(self) -> str:
        """The tag whose polls drive the guard: the counter if any (energy), else power."""
        spec = self.meter.feed.spec
        source = spec.counter if spec.counter is not None else spec.power
        assert source is not None
        return source.tag

    # ------------------------------------------------------------------ per poll

    def on_poll(self, t_ns: int, value: Value) -> None:
        """A good reading of the primary tag, after the meter's energy handlers ran."""
        if self._kwh_per_tick and self.meter.feed.counter is not None:
            self._remember_ticks(t_ns)
        prediction = self.predict(t_ns)
        if prediction is None:
            return
        self.last = prediction
        self._out.append(self._batch(prediction))
        self._decide(prediction)

    def predict(self, t_ns: int) -> Prediction | None:
        """The prediction at ``t_ns`` from the open block and the current power."""
        window = self._track.containing(t_ns)
        if window is None:
            self._track.ensure(t_ns)
            window = self._track.containing(t_ns)
            if window is None:
                return None
        kwh, known_ns = _so_far(window, self.meter)
        start, end = window.start_ns, window.end_ns
        length = end - start
        left = end - t_ns
        unknown = max(0, t_ns - start - known_ns)
        power = self.power_kw(t_ns)
        limit = self.spec.limit_kw
        certain = kwh * NS_PER_HOUR > limit * length
        known = t_ns - start - unknown
        if power is None:
            return Prediction(t_ns, start, end, kwh, None, None, certain, known)
        power = max(power, 0.0)  # an export reading does not lower the import block
        predicted = (kwh * NS_PER_HOUR + power * (left + unknown)) / length
        shed = 0.0
        if predicted > limit:
            # Mean power the rest of the block must stay below; below zero: unavoidable.
            rest = left + unknown
            allowed = (limit * length - kwh * NS_PER_HOUR) / rest if rest else 0.0
            shed = power - max(allowed, 0.0)
        return Prediction(t_ns, start, end, kwh, predicted, max(shed, 0.0), certain, known)

    def power_kw(self, t_ns: int) -> float | None:
        """Current power: the power tag's last reading if recent, else the counter's rate."""
        power = self._power
        last_ns = None if power is None else power.last_ns
        if power is not None and last_ns is not None and t_ns - last_ns <= self._power_gap_ns:
            return power.last_kw
        history = self._history
        if len(history) < 2:
            return None
        t0, ticks0 = history[0]
        t1, ticks1 = history[-1]
        if 2 * (t1 - t0) < self.spec.rate_window_ns or t_ns - t1 > self.spec.rate_window_ns:
            return None  # too short a span for a rate, or stale
        return (ticks1 - ticks0) * self._kwh_per_tick * NS_PER_HOUR / (t1 - t0)

    def _remember_ticks(self, t_ns: int) -> None:
        counter = self.meter.feed.counter
        assert counter is not None
        ticks = counter.last_ticks
        anomalies = counter.resets + counter.jumps + counter.glitches
        if ticks is None or counter.last_ns != t_ns:
            return  # the reading was refused (out of range, repeated)
        history = self._history
        if anomalies != self._anomalies or self._last_ticks is None:
            history.clear()  # a reset or jump: no rate across it
            self._anomalies = anomalies
        else:
            step = ticks - self._last_ticks
            if self._modulus is not None:
                step %= self._modulus
            self._total_ticks += step
        self._last_ticks = ticks
        history.append((t_ns, self._total_ticks))
        horizon = t_ns - self.spec.rate_window_ns
        while len(history) > 2 and history[1][0] <= horizon:
            history.popleft()

    # ------------------------------------------------------------------ events

    def _decide(self, p: Prediction) -> None:
        spec, active = self.spec, self.active
        if active is not None and p.t_ns >= active.block_end_ns:
            self._end(active.block_end_ns, "the block ended")
            active = None
        predicted = p.predicted_kw
        if active is not None:
            active.last = self._numbers(p)
            clear = predicted is not None and predicted < spec.limit_kw * (1 - spec.hysteresis)
            if clear and p.t_ns - active.start_ns >= spec.min_hold_ns:
                self._end(p.t_ns, "the prediction is back below the limit")
            return
        # Quiet until the block's energy is known for quiet_start (from the block's start,
        # or from the agent's first reading when it started late in the block).
        quiet = p.known_ns < spec.quiet_start_ns and not p.certain
        if predicted is not None and predicted > spec.limit_kw and not quiet:
            self._start(p)

    def _start(self, p: Prediction) -> None:
        numbers = self._numbers(p)
        self.active = _Active(p.t_ns, p.block_start_ns, p.block_end_ns, numbers)
        if p.certain or p.shed_kw is None:
            why = "the block's energy already exceeds it; it cannot be avoided any more"
        else:
            why = (
                f"shed {p.shed_kw:.1f} kW for the {p.minutes_left:.1f} minutes left "
                "in the block to stay within it"
            )
        reason = (
            f"{self.meter.name}: this 15-minute block is predicted to end at "
            f"{p.predicted_kw:.1f} kW, above the {self._kind} limit of "
            f"{self.spec.limit_kw:g} kW; {why}"
        )
        self.events.emit(
            EVENT, self.meter.name, self._severity, p.t_ns, None, reason, NAMES_EVENT, numbers
        )

    def _end(self, end_ns: int, why: str) -> None:
        active = self.active
        assert active is not None
        self.active = None
        numbers = list(active.last)
        if end_ns >= active.block_end_ns:
            numbers[NAMES_EVENT.index("minutes_left")] = 0.0
        reason = f"{self.meter.name}: demand limit event over, {why}"
        self.events.emit(
            EVENT,
            self.meter.name,
            self._severity,
            active.start_ns,
            end_ns,
            reason,
            NAMES_EVENT,
            numbers,
        )

    def expire(self, now_ns: int) -> None:
        """End the event of a block that has ended, also when no poll came since."""
        active = self.active
        if active is not None and now_ns >= active.block_end_ns:
            self._end(active.block_end_ns, "the block ended")

    def _numbers(self, p: Prediction) -> list[float | None]:
        return [p.predicted_kw, self.spec.limit_kw, p.shed_kw, p.minutes_left]

    @property
    def _severity(self) -> str:
        return "critical" if self.spec.critical else "warning"

    @property
    def _kind(self) -> str:
        return "contracted" if self.spec.critical else "target"

    # ------------------------------------------------------------------ output, state

    def _batch(self, p: Prediction) -> SampleBatch:
        """The live ``demand_guard`` batch (timestamp: the poll, window: the running block,
        ``as_of``: the poll, as the contract marks a running window's figure)."""
        if self._attributes_block != p.block_start_ns:
            info = MetricInfo(FAMILY, DEMAND_WINDOW, (p.block_start_ns, p.block_end_ns))
            self._attributes = info.attributes()
            self._attributes_block = p.block_start_ns
        if p.predicted_kw is not None and p.shed_kw is not None:
            values: list[Value] = [
                round(p.predicted_kw, 3) + 0.0,
                self.spec.limit_kw,
                round(p.block_kwh, 3) + 0.0,
                round(p.minutes_left, 2) + 0.0,
                round(p.shed_kw, 3) + 0.0,
            ]
            qualities, reasons = list(_ALL_GOOD), list(_NO_REASONS)
        else:
            values = [None, self.spec.limit_kw, round(p.block_kwh, 3) + 0.0]
            values += [round(p.minutes_left, 2) + 0.0, None]
            qualities = [Quality.UNCERTAIN, Quality.GOOD, Quality.GOOD, Quality.GOOD]
            qualities.append(Quality.UNCERTAIN)
            reasons = [_NO_POWER, "", "", "", _NO_POWER]
        return SampleBatch(
            device=self.meter.name,
            group=metric_group(DEMAND_WINDOW),
            timestamp_ns=p.t_ns,
            names=NAMES,
            values=values,
            qualities=qualities,
            reasons=reasons,
            attributes={**self._attributes, AS_OF: str(p.t_ns)},
        )

    def state(self) -> dict[str, Any]:
        active = self.active
        return {
            "active": None
            if active is None
            else [active.start_ns, active.block_start_ns, active.block_end_ns, active.last],
            "severity": self._severity,  # for the end, should the guard be gone at restart
            "sent": self.events.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        active = state.get("active")
        if active is not None:
            start, block_start, block_end, last = active
            self.active = _Active(int(start), int(block_start), int(block_end), list(last))
        self.events.restore(state.get("sent"))


#: Numbers of a ``demand_limit`` event, after ``start_s``, ``end_s`` and ``reason``.
NAMES_EVENT: Final = ("predicted_kw", "limit_kw", "shed_kw", "minutes_left")


def end_removed_guard(
    meter: str, saved: dict[str, Any], saved_at_ns: int | None, log: EventLog
) -> None:
    """End the event a guard left active in the saved state when that guard is gone at
    restart (``demand_guard`` removed, the meter renamed): without this its end would
    never be sent. It ends when the agent last knew it active, the state's save
    (``saved_at_ns``), at its block's end if that came first; ``log`` (restored with the
    guard's sent events) refuses an end sent before.
    """
    log.restore(saved.get("sent"))
    active = saved.get("active")
    if active is None:
        return
    start, _, block_end, last = active
    start, block_end = int(start), int(block_end)
    end = block_end if saved_at_ns is None else min(max(int(saved_at_ns), start), block_end)
    numbers = list(last)
    if end >= block_end:
        numbers[NAMES_EVENT.index("minutes_left")] = 0.0
    reason = (
        f"{meter}: demand limit event over, its demand guard is no longer configured; "
        "ended when the agent last knew it active"
    )
    severity = str(saved.get("severity", "critical"))  # saved before severity was: the default
    log.emit(EVENT, meter, severity, start, end, reason, NAMES_EVENT, numbers)


def _so_far(window: OpenWindow[EnergyAcc], meter: MeterUnit) -> tuple[float, int]:
    """Energy (kWh, late energy left out) of a block so far and the time it is known for
    (covered, or bridged by the counter), stage included."""
    acc = window.acc
    kwh = acc.kwh - acc.late_kwh
    known = acc.known_ns
    stager = meter.stager
    if stager.dirty and window.start_ns <= stager.start_ns < window.end_ns:
        stage = stager.stage
        kwh += stage.kwh - stage.late_kwh
        known += stage.known_ns
    return kwh, known
