"""Which diagnostics echo proves an RTU unit back in step (see :mod:`drivers.modbus.channel`).

A unit that missed an answer is sent a diagnostics echo (function 8) before anything
else. A slave answers in order, so only the answer to a probe sent *after* the unit's
last request (read or write) proves that every answer it still owed is past: an earlier
probe still unanswered is answered before that request. :class:`ProbeLog` keeps, per
unit, the probes not answered yet, oldest first, and says of each answer whether it
proves anything.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from drivers.modbus.frames import Echo, ExceptionReply, Frame, Sendable, echoed

#: Unanswered diagnostics probes remembered per RTU unit (a slave queues none; past
#: this, the oldest is forgotten).
MAX_PROBES = 16


@dataclass(slots=True)
class _Probe:
    """A diagnostics echo sent to an RTU unit and not answered yet."""

    data: int
    #: No other request went to the unit since: its answer proves every answer is past.
    after_last_request: bool = True


class ProbeLog:
    def __init__(self) -> None:
        self._probes: dict[int, deque[_Probe]] = {}  # per unit, oldest first

    def sending(self, request: Sendable) -> None:
        """Note ``request`` going to its unit (a probe, or any other request)."""
        probes = self._probes.setdefault(request.unit, deque(maxlen=MAX_PROBES))
        if isinstance(request, Echo):
            probes.append(_Probe(request.data))
            return
        # The probes still unanswered are answered before this request: from now on
        # their answers no longer prove the unit in step (its answer may follow them).
        for probe in probes:
            probe.after_last_request = False

    def answered(self, frame: Frame) -> bool:
        """Take the probe ``frame`` answers off its unit's list (with the earlier ones: a
        slave answers in order); True if that probe was sent after the unit's last request."""
        probes = self._probes.get(frame.unit)
        answer = echoed(frame)
        if not probes or answer is None:
            return False
        if isinstance(answer, ExceptionReply):
            index = 0  # an exception carries no data word: it answers the oldest probe
        else:
            found = [i for i, probe in enumerate(probes) if probe.data == answer]
            if not found:
                return False  # not the echo of a probe we are waiting for
            index = found[0]
        for _ in range(index):
            probes.popleft()
        return probes.popleft().after_last_request
