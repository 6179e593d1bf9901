"""Values of change-based groups (OPC UA subscriptions) hold while the subscription lives.

A subscribe group reports a tag only when it changes: a machine running at a steady
50 kW sends one value and then nothing for an hour. Sample-and-hold with ``max_gap``
would take that silence for a communication gap (no energy, no coverage). The silence
is not a gap as long as the subscription is alive, and the driver says so: after each
hand-over it emits a batch without samples (:meth:`SampleBatch.alive
<edge_agent.model.SampleBatch.alive>`) stamped with the server's time of its latest
publish (a data change or a keepalive). Every change sampled before that moment has
been delivered, so each value the group last reported still held then.

:class:`Holds` keeps, per change-based group, the last good value of every tag the
metrics use, and on each proof of life feeds those values again, stamped with its
time: the calculators see an ordinary sample and bridge the interval. Nothing is
repeated on the wire (sinks never see a batch without samples). When the session
drops, the proofs stop and the bad samples of the failed reads end every hold: the
silence becomes a gap again after ``max_gap``, as for any other tag.

A change that arrives stamped before the last proof (the server sampled it before that
publish but sent it with the next one, or the device's source clock lags the server's)
is fed at the proof's time: the calculators accept no sample older than one they have
seen, and the value is known from then on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from edge_agent.metrics.units.feed import Handler
from edge_agent.model import Quality, SampleBatch, Value

Key = tuple[str, str]


class Holds:
    """Last good values of the change-based groups ``groups`` ((device, group) pairs)."""

    def __init__(self, groups: set[Key]) -> None:
        self.groups = frozenset(groups)
        self._values: dict[Key, dict[str, Value]] = {}
        #: Per group: the time of its latest proof of life (ns); changes before it are late.
        self._until: dict[Key, int] = {}

    def feed(self, batch: SampleBatch, handlers: Sequence[tuple[int, Handler]]) -> None:
        """Feed the good samples of a change batch, and remember them (or forget bad ones)."""
        key = (batch.device, batch.group)
        held = self._values.setdefault(key, {})
        floor = self._until.get(key, -1) + 1
        names, values, qualities = batch.names, batch.values, batch.qualities
        stamps = batch.timestamps_ns
        good = Quality.GOOD
        for index, handler in handlers:
            if qualities[index] is not good:
                held.pop(names[index], None)  # unknown from now on: nothing to hold
                continue
            value = values[index]
            held[names[index]] = value
            t = batch.timestamp_ns if stamps is None else stamps[index]
            handler(t if t >= floor else floor, value)

    def alive(self, batch: SampleBatch, needs: Mapping[str, Sequence[tuple[int, Handler]]]) -> None:
        """Feed every held value again at the time of ``batch``, a proof of life.

        ``needs``: the handlers (with their priority) of each tag name of the device.
        """
        key = (batch.device, batch.group)
        until = batch.timestamp_ns
        if until <= self._until.get(key, -1):
            return  # no publish since the last proof: nothing new is known
        self._until[key] = until
        held = self._values.get(key)
        if not held:
            return
        calls = [
            (priority, handler, value)
            for name, value in held.items()
            for priority, handler in needs.get(name, ())
        ]
        calls.sort(key=lambda call: call[0])  # amounts before states, as within a batch
        for _, handler, value in calls:
            handler(until, value)
