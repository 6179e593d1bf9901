"""Event batches, and the idle-energy and stalled-meter detectors.

An event is an ordinary :class:`~edge_agent.model.SampleBatch` (docs/METRICS.md,
"Demand guard and events"): ``group`` ``events``, attributes ``kind: event``,
``event`` (its type), ``severity`` (info, warning, critical), ``state`` (start or
end); ``timestamp_ns`` the start (state start) or the end (state end); values
``start_s``, ``end_s`` (``None`` while active), ``reason`` (a sentence), then the
numbers of its type. Every sink delivers them like any batch.

:class:`EventLog` writes them and remembers what it sent (saved with the metrics
state), so an event is never sent twice for the same start, and an event active at
a restart still gets its end.

Detectors (fed by the processor after the unit's own handlers, like the guard):

* :class:`IdleDetector` (``idle_energy``): a machine idle while drawing more than
  ``above_kw``. The episode begins at the first such reading; the event starts once
  it has lasted ``after`` (``start_s`` = the episode's beginning) and ends at the
  first reading where the machine is no longer idle or draws ``above_kw`` or less.
  ``idle_kwh`` is the trapezoidal integral of its power over the episode. A new
  episode must last ``after`` again before it is an event: no flapping faster than
  that. A gap in the readings longer than the machine's ``max_gap`` ends the episode
  at the last reading before it (nothing is known of the time between).
* :class:`StalledDetector` (``meter_stalled``): a meter's counter has not moved for
  ``after`` while its power stayed above ``min_kw``, *and* the power seen since would
  have counted at least two counts (a slow counter at low power is not a fault). It
  ends when the counter moves or the power falls to ``min_kw`` or below; a gap in the
  counter's readings longer than its ``max_gap`` ends it at the last reading.

A gap is noticed without waiting for the next reading (a machine switched off at the
mains may send none for a weekend): the processor's close pass calls each
detector's ``expire`` (through :class:`~edge_agent.metrics.watchers.Watchers`), and
``deadline_ns`` tells it when the active episode's readings will have been missing
for longer than ``max_gap``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edge_agent.metrics.contract import EVENTS_GROUP, event_attributes
from edge_agent.metrics.energy import CounterTracker, PowerIntegrator, trapezoid_kwh
from edge_agent.metrics.units.feed import finite_number
from edge_agent.metrics.utilization import IDLE, StateTracker
from edge_agent.model import Quality, SampleBatch, Value

NS_PER_S: Final = 1_000_000_000
NS_PER_MIN: Final = 60 * NS_PER_S
START: Final = "start"
END: Final = "end"
IDLE_ENERGY: Final = "idle_energy"
METER_STALLED: Final = "meter_stalled"
IDLE_NAMES: Final = ("idle_kw", "idle_minutes", "idle_kwh")
STALLED_NAMES: Final = ("power_kw", "stalled_minutes")
#: Starts remembered per log (to refuse a second send of the same start).
REMEMBERED: Final = 16
#: Counts of energy the power must show before a counter standing still is a fault.
STALL_COUNTS: Final = 2


def event_batch(
    event: str,
    device: str,
    severity: str,
    state: str,
    start_ns: int,
    end_ns: int | None,
    reason: str,
    names: Sequence[str],
    numbers: Sequence[float | None],
) -> SampleBatch:
    """One event batch (see the module docstring); numbers rounded to 0.001."""
    values: list[Value] = [
        start_ns / NS_PER_S,
        None if end_ns is None else end_ns / NS_PER_S,
        reason,
    ]
    values += [None if n is None else round(n, 3) + 0.0 for n in numbers]
    qualities = [Quality.GOOD] * len(values)
    reasons = [""] * len(values)
    for index, value in enumerate(values):
        if value is None:
            # A null is never good (docs/MQTT.md): an active event's end is not yet known.
            reason_ = "the event is still active" if index == 1 else "not known"
            qualities[index], reasons[index] = Quality.UNCERTAIN, reason_
    return SampleBatch(
        device=device,
        group=EVENTS_GROUP,
        timestamp_ns=start_ns if end_ns is None else end_ns,
        names=("start_s", "end_s", "reason", *names),
        values=values,
        qualities=qualities,
        reasons=reasons,
        attributes=event_attributes(event, severity, START if end_ns is None else END),
    )


class EventLog:
    """Writes event batches into ``out``, never the same (type, device, start, state) twice.

    ``on_event`` is called after each event (the processor saves its state then, so
    that a restart knows the event was sent).
    """

    __slots__ = ("_on_event", "_out", "sent")

    def __init__(self, out: list[SampleBatch], on_event: Callable[[], None] | None = None) -> None:
        self._out = out
        self._on_event = on_event
        self.sent: list[list[Any]] = []

    def bind(self, on_event: Callable[[], None]) -> None:
        self._on_event = on_event

    def emit(
        self,
        event: str,
        device: str,
        severity: str,
        start_ns: int,
        end_ns: int | None,
        reason: str,
        names: Sequence[str],
        numbers: Sequence[float | None],
    ) -> bool:
        """Send one event; False (nothing sent) if this start or end went out before."""
        state = START if end_ns is None else END
        key: list[Any] = [event, device, start_ns, state]
        if key in self.sent:
            return False
        self.sent.append(key)
        del self.sent[:-REMEMBERED]
        self._out.append(
            event_batch(event, device, severity, state, start_ns, end_ns, reason, names, numbers)
        )
        if self._on_event is not None:
            self._on_event()
        return True

    def state(self) -> list[list[Any]]:
        return list(self.sent)

    def restore(self, state: list[list[Any]] | None) -> None:
        self.sent = [list(key) for key in state or []][-REMEMBERED:]


@dataclass(slots=True)
class _Episode:
    """A stretch where a detector's condition held: since when, energy, last reading."""

    start_ns: int
    last_ns: int
    last_kw: float
    kwh: float = 0.0
    active: bool = False

    def state(self) -> list[Any]:
        return [self.start_ns, self.last_ns, self.last_kw, self.kwh, self.active]

    @classmethod
    def load(cls, state: list[Any] | None) -> _Episode | None:
        if state is None:
            return None
        start, last, kw, kwh, active = state
        return cls(int(start), int(last), float(kw), float(kwh), bool(active))


def end_removed_detector(event: str, device: str, saved: dict[str, Any], log: EventLog) -> None:
    """End the ``idle_energy`` or ``meter_stalled`` event a detector left active in the
    saved state when that detector is gone at restart (``metrics.events`` lost it, the
    machine or meter was renamed): without this its end would never be sent. It ends at
    the episode's last reading, the last time the condition was seen to hold (as when
    readings stop); ``log`` (restored with the detector's sent events) refuses an end
    sent before.
    """
    log.restore(saved.get("sent"))
    episode = _Episode.load(saved.get("episode"))
    if episode is None or not episode.active:
        return
    minutes = (episode.last_ns - episode.start_ns) / NS_PER_MIN
    names: tuple[str, ...] = IDLE_NAMES if event == IDLE_ENERGY else STALLED_NAMES
    numbers = [episode.last_kw, minutes, episode.kwh][: len(names)]
    reason = (
        f"{device}: {event.replace('_', ' ')} event over, its detector is no longer "
        "configured; ended at its last reading"
    )
    log.emit(event, device, "warning", episode.start_ns, episode.last_ns, reason, names, numbers)


class _Detector:
    """What both detectors share: one episode at a time, ended at its last reading when
    its readings stop for longer than ``max_gap`` (the processor's close pass asks)."""

    episode: _Episode | None
    _max_gap_ns: int

    def _finish(self, episode: _Episode, end_ns: int, why: str) -> None:
        raise NotImplementedError

    def expire(self, now_ns: int) -> None:
        """End the episode at its last reading once readings stopped for over ``max_gap``."""
        episode = self.episode
        if episode is not None and now_ns - episode.last_ns > self._max_gap_ns:
            self._finish(episode, episode.last_ns, "readings stopped")

    def deadline_ns(self) -> int | None:
        """When :meth:`expire` would end the active event if no reading comes."""
        episode = self.episode
        if episode is None or not episode.active:
            return None
        return episode.last_ns + self._max_gap_ns + 1


class IdleDetector(_Detector):
    """``idle_energy`` events of one machine (see the module docstring)."""

    def __init__(
        self,
        machine: str,
        states: StateTracker,
        to_kw: float,
        after_s: float,
        above_kw: float,
        max_gap_ns: int,
        log: EventLog,
    ) -> None:
        self.machine = machine
        self._states = states
        self._to_kw = to_kw
        self._after_ns = round(after_s * NS_PER_S)
        self._above_kw = above_kw
        self._max_gap_ns = max_gap_ns
        self.log = log
        self.episode: _Episode | None = None

    def on_power(self, t_ns: int, value: Value) -> None:
        """A good power reading, after the machine's state handlers ran."""
        number = finite_number(value)
        if number is None:
            return
        kw = number * self._to_kw
        episode = self.episode
        if episode is not None:
            if t_ns <= episode.last_ns:
                return
            if t_ns - episode.last_ns > self._max_gap_ns:
                self._finish(episode, episode.last_ns, "readings stopped")
                episode = None
        holds = self._states.state == IDLE and kw > self._above_kw
        if episode is None:
            if holds:
                self.episode = _Episode(t_ns, t_ns, kw)
            return
        if not holds:
            self._finish(episode, t_ns, "it is no longer idle" if kw > self._above_kw else "")
            return
        episode.kwh += trapezoid_kwh(episode.last_kw, kw, t_ns - episode.last_ns)
        episode.last_ns, episode.last_kw = t_ns, kw
        if not episode.active and t_ns - episode.start_ns >= self._after_ns:
            episode.active = True
            minutes = (t_ns - episode.start_ns) / NS_PER_MIN
            reason = (
                f"{self.machine} has been idle for {minutes:.1f} minutes drawing {kw:.1f} kW "
                f"(above {self._above_kw:g} kW): switch it off or to standby"
            )
            self.log.emit(
                IDLE_ENERGY,
                self.machine,
                "warning",
                episode.start_ns,
                None,
                reason,
                IDLE_NAMES,
                [kw, minutes, episode.kwh],
            )

    def _finish(self, episode: _Episode, end_ns: int, why: str) -> None:
        self.episode = None
        if not episode.active:
            return
        minutes = (episode.last_ns - episode.start_ns) / NS_PER_MIN
        why = why or f"its power fell to {self._above_kw:g} kW or below"
        reason = (
            f"{self.machine} idled {minutes:.1f} minutes above {self._above_kw:g} kW, "
            f"{episode.kwh:.2f} kWh; over: {why}"
        )
        self.log.emit(
            IDLE_ENERGY,
            self.machine,
            "warning",
            episode.start_ns,
            end_ns,
            reason,
            IDLE_NAMES,
            [episode.last_kw, minutes, episode.kwh],
        )

    def state(self) -> dict[str, Any]:
        return {
            "episode": None if self.episode is None else self.episode.state(),
            "sent": self.log.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.episode = _Episode.load(state.get("episode"))
        self.log.restore(state.get("sent"))


class StalledDetector(_Detector):
    """``meter_stalled`` events of one meter with a counter and a power tag."""

    def __init__(
        self,
        meter: str,
        counter: CounterTracker,
        power: PowerIntegrator,
        power_gap_ns: int,
        kwh_per_tick: float,
        after_s: float,
        min_kw: float,
        log: EventLog,
        max_gap_ns: int,
    ) -> None:
        self.meter = meter
        self._counter = counter
        self._power = power
        self._power_gap_ns = power_gap_ns
        #: The counter's max_gap: readings further apart end an episode (:meth:`expire`).
        self._max_gap_ns = max_gap_ns
        self._min_kwh = STALL_COUNTS * kwh_per_tick
        self._after_ns = round(after_s * NS_PER_S)
        self._min_kw = min_kw
        self.log = log
        self.episode: _Episode | None = None
        self._ticks: int | None = None

    def on_counter(self, t_ns: int, value: Value) -> None:
        """A good counter reading, after the meter's counter and power handlers ran."""
        counter, power = self._counter, self._power
        ticks = counter.last_ticks
        if ticks is None or counter.last_ns != t_ns:
            return  # refused by the counter (out of range, repeated)
        moved = ticks != self._ticks
        self._ticks = ticks
        recent = power.last_ns is not None and t_ns - power.last_ns <= self._power_gap_ns
        kw = power.last_kw if recent else None
        self.expire(t_ns)  # a gap before this reading ends the episode at the last one
        episode = self.episode
        if moved or kw is None or kw <= self._min_kw:
            if episode is not None:
                if moved:
                    why = "the counter counts again"
                elif kw is None:
                    why = "no recent power reading"
                else:
                    why = f"the power fell to {self._min_kw:g} kW or below"
                self._finish(episode, t_ns, why)
            # A stall is counted from the counter's last move while power flows.
            flowing = moved and kw is not None and kw > self._min_kw
            self.episode = _Episode(t_ns, t_ns, kw) if flowing and kw is not None else None
            return
        if episode is None:
            self.episode = _Episode(t_ns, t_ns, kw)
            return
        if t_ns <= episode.last_ns:
            return
        episode.kwh += trapezoid_kwh(episode.last_kw, kw, t_ns - episode.last_ns)
        episode.last_ns, episode.last_kw = t_ns, kw
        stalled = t_ns - episode.start_ns
        if not episode.active and stalled >= self._after_ns and episode.kwh >= self._min_kwh:
            episode.active = True
            minutes = stalled / NS_PER_MIN
            reason = (
                f"{self.meter}: the energy counter has not moved for {minutes:.1f} minutes "
                f"while power reads {kw:.1f} kW ({episode.kwh:.2f} kWh uncounted): check "
                "the meter's wiring and current transformers"
            )
            self.log.emit(
                METER_STALLED,
                self.meter,
                "warning",
                episode.start_ns,
                None,
                reason,
                STALLED_NAMES,
                [kw, minutes],
            )

    def _finish(self, episode: _Episode, end_ns: int, why: str) -> None:
        self.episode = None
        if not episode.active:
            return
        minutes = (end_ns - episode.start_ns) / NS_PER_MIN
        reason = f"{self.meter}: stalled counter over after {minutes:.1f} minutes: {why}"
        self.log.emit(
            METER_STALLED,
            self.meter,
            "warning",
            episode.start_ns,
            end_ns,
            reason,
            STALLED_NAMES,
            [episode.last_kw, minutes],
        )

    def state(self) -> dict[str, Any]:
        return {
            "episode": None if self.episode is None else self.episode.state(),
            "ticks": self._ticks,
            "sent": self.log.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.episode = _Episode.load(state.get("episode"))
        ticks = state.get("ticks")
        self._ticks = None if ticks is None else int(ticks)
        self.log.restore(state.get("sent"))
