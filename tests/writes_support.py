"""A small, honest stand-in for the write gate (the real one is
:class:`edge_agent.writes.service.WriteService`): it records every request and answers
as the contract says a gate answers, writing nothing.

* a request a channel could not take (``refusal``), or one without exactly one of tag
  and method: refused, with the channel's reason;
* ``dry_run``: DRY_RUN;
* else APPLIED, the value "read back" as requested.

``hold`` (an Event) keeps every submit waiting until it is set: commands in flight, for
the bounds. ``publish_to`` gets every result as an audit record, as the gate publishes
them to its TakesCommands sinks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from edge_agent.writes.model import Outcome, WriteRequest, WriteResult


@dataclass
class RecordingGate:
    requests: list[WriteRequest] = field(default_factory=list)
    hold: asyncio.Event | None = None
    publish_to: list[Callable[[Mapping[str, object]], None]] = field(default_factory=list)

    async def submit(self, request: WriteRequest) -> WriteResult:
        self.requests.append(request)
        if self.hold is not None:
            await self.hold.wait()
        target = request.tag or request.method or ""
        if request.refusal or (request.tag is None) == (request.method is None):
            result = WriteResult(
                request.id,
                request.device,
                target,
                Outcome.REFUSED,
                request.refusal or "malformed request",
                received_at_ns=request.received_at_ns,
                finished_at_ns=time.time_ns(),
            )
        else:
            dry = request.dry_run
            now = time.time_ns()
            result = WriteResult(
                request.id,
                request.device,
                target,
                Outcome.DRY_RUN if dry else Outcome.APPLIED,
                requested=request.value if request.tag else dict(request.args),
                before=None if dry else 0,
                read_back=None if dry else request.value,
                sent="stand-in: nothing sent",
                received_at_ns=request.received_at_ns,
                written_at_ns=0 if dry else now,
                confirmed_at_ns=0 if dry else now,
                finished_at_ns=now,
            )
        for publish in self.publish_to:
            publish(
                {
                    "time": result.finished_at_ns,
                    "channel": request.channel,
                    "identity": request.identity,
                    "id": result.id or None,
                    "device": result.device,
                    "outcome": result.outcome.value,
                    "reason": result.reason,
                }
            )
        return result
