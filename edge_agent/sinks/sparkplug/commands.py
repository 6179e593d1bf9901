"""NCMD and DCMD: the rebirth request is answered, device metric writes go to the write gate.

``Node Control/Rebirth`` = true on the NCMD topic asks for a complete rebirth
[tck-id-operational-behavior-data-commands-ncmd-rebirth-name,
tck-id-operational-behavior-data-commands-ncmd-rebirth-value].

A DCMD metric is a write of the tag of the same name on the agent device the Sparkplug
device id stands for (the sink's ``device_ids``, read backwards), an alias resolved
through the aliases the births gave. It goes to the one write gate
(:class:`~edge_agent.writes.model.WriteGate`) as channel ``sparkplug``, each metric as a
command of its own. One DCMD is one message from one host (a recipe: ten setpoints at
once): its metrics go to the gate one after the other, in their order, in one task; at
most :data:`MAX_IN_FLIGHT` DCMDs are handled at once. The metrics of one more DCMD are
refused "busy", through the gate all the same (as refusals), so each is audited: a
command that arrived leaves a trace. Only beyond a second bound (:data:`MAX_REFUSING`
DCMDs being audited as busy: a flood) is a DCMD dropped unaudited, counted and logged
once per burst.

Sparkplug has no result topic: an applied write shows in the device's next DDATA; a
refusal is logged once per (device, metric, reason) and counted, and the gate audits
every command. A metric that names nothing the agent knows, or has no value, goes to the
gate as a refusal (``WriteRequest.refusal``) so it is audited too. Any other NCMD metric
is refused the same way: node metrics are not tags. Without a gate every write is
refused "writes are not enabled on this agent" (counted and logged; there is no audit
log to write to).

A payload that does not decode is logged (once until one decodes again) and counted;
nothing here may raise into paho's reader.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import structlog

from edge_agent.episodes import Episode
from edge_agent.sinks.sparkplug.metric_table import AliasAllocator
from edge_agent.sinks.sparkplug.payloads import REBIRTH, CommandError, decode_command
from edge_agent.sinks.sparkplug.topics import CommandTopic
from edge_agent.writes.model import Outcome, WriteGate, WriteRequest, WriteValue

log = structlog.get_logger("edge_agent.sink.sparkplug")

NOT_ENABLED: Final = "writes are not enabled on this agent"
NODE_METRIC: Final = (
    "node metrics are not tags: the edge node takes only Node Control/Rebirth (NCMD); "
    "write a device's tag with a DCMD"
)
#: DCMDs handled at once; the metrics of one more are refused "busy" (never an unbounded
#: queue), and audited as such.
MAX_IN_FLIGHT: Final = 8
#: Busy DCMDs being audited at once (the gate refuses them without waiting on a device,
#: so these end at once unless the loop is flooded); one more is dropped, counted.
MAX_REFUSING: Final = 32
#: How long stop() lets the writes under way finish.
STOP_GRACE_S: Final = 5.0


@dataclass(slots=True)
class CommandCounters:
    rebirth_requests: int = 0
    commands_refused: int = 0
    commands_undecodable: int = 0
    #: Writes the gate let through (applied, dry run, or failed at the device).
    commands_accepted: int = 0
    #: Metrics of DCMDs dropped unaudited in a flood (beyond both bounds).
    commands_dropped: int = 0


@dataclass(slots=True)
class CommandHandler:
    """Reads one command message; says whether a rebirth is asked for; hands writes over."""

    sink: str
    #: Agent device name -> Sparkplug device id (the sink's ``device_ids``).
    device_id: Callable[[str], str] = lambda name: name
    #: The edge node's aliases (the births'), to read a metric sent by alias only.
    aliases: AliasAllocator = field(default_factory=AliasAllocator)
    #: Who the gate and the audit log see as the sender.
    identity: str = "sparkplug"
    max_in_flight: int = MAX_IN_FLIGHT
    max_refusing: int = MAX_REFUSING
    counters: CommandCounters = field(default_factory=CommandCounters)
    gate: WriteGate | None = None
    #: Sparkplug device id -> agent device.
    _devices: dict[str, str] = field(default_factory=dict)
    _refused: set[tuple[str, str, str]] = field(default_factory=set)
    _undecodable: Episode = field(default_factory=Episode)
    _flooded: Episode = field(default_factory=Episode)
    #: DCMDs being handled (each a task running its metrics in order).
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Busy DCMDs whose metrics are being audited as refusals.
    _refusing: set[asyncio.Task[None]] = field(default_factory=set)
    _stopping: bool = False

    def describe(self, devices: Iterable[str]) -> None:
        """The plant's agent devices (again after every reload)."""
        self._devices = {self.device_id(name): name for name in devices}

    def handle(self, command: CommandTopic, payload: bytes) -> bool:
        """True when ``payload`` (on ``command``'s topic) asks for a rebirth."""
        try:
            metrics = decode_command(payload)
        except CommandError as exc:
            self.counters.commands_undecodable += 1
            if self._undecodable.begin():
                log.warning(
                    "sparkplug command payload not decodable; ignored (quiet until one decodes)",
                    sink=self.sink,
                    device=command.device,
                    error=str(exc),
                )
            return False
        self._undecodable.end()
        rebirth = False
        received_at = time.time_ns()
        writes: list[tuple[WriteRequest, str]] = []
        for name, alias, value, _datatype in metrics:
            # By name only: the NBIRTH gives the metric no alias (tck-id-operational-behavior-
            # data-commands-rebirth-name-aliases), so no alias can mean it.
            if command.device is None and name == REBIRTH:
                if value is True:
                    rebirth = True
                    self.counters.rebirth_requests += 1
                continue
            writes.append(self._request(command.device, name, alias, value, received_at))
        if writes:
            self._dispatch(writes)
        return rebirth

    def _request(
        self,
        sparkplug_device: str | None,
        name: str | None,
        alias: int | None,
        value: WriteValue | None,
        received_at: int,
    ) -> tuple[WriteRequest, str]:
        """One command metric as the gate's request (a refusal when it names nothing the
        agent knows), and the metric as the log names it."""
        if name is None and alias is not None and sparkplug_device is not None:
            name = self.aliases.name_of(sparkplug_device, alias)
        metric = name if name is not None else f"alias {alias}"
        device = self._devices.get(sparkplug_device) if sparkplug_device is not None else None
        refusal = ""
        if sparkplug_device is None:
            refusal = NODE_METRIC
        elif device is None:
            refusal = f"no device of this agent has the Sparkplug device id {sparkplug_device!r}"
        elif name is None:
            refusal = f"{metric} is no metric of device {sparkplug_device!r}"
        elif value is None:
            refusal = f"metric {name} carries no value (null, or not in the field of its datatype)"
        request = WriteRequest(
            id=f"sparkplug-{uuid.uuid4().hex}",
            channel="sparkplug",
            identity=self.identity,
            device=device or sparkplug_device or "",
            tag=None if refusal else name,
            value=None if refusal else value,
            received_at_ns=received_at,
            refusal=refusal,
        )
        return request, metric

    def _dispatch(self, writes: Sequence[tuple[WriteRequest, str]]) -> None:
        """One message's metrics: to the gate in one task, in their order; refused
        "busy" (still through the gate, so audited) beyond the bound; refused here only
        without a gate, while stopping, or in a flood beyond both bounds."""
        gate = self.gate
        if gate is None or self._stopping:
            reason = NOT_ENABLED if gate is None else "the agent is stopping"
            for request, metric in writes:
                self._count_refusal(request.device, metric, reason)
            return
        device = writes[0][0].device
        loop = asyncio.get_running_loop()
        if len(self._tasks) < self.max_in_flight:
            self._flooded.end()
            task = loop.create_task(
                self._submit_all(gate, writes), name=f"sparkplug-write-{device}"
            )
            tasks = self._tasks
        elif len(self._refusing) < self.max_refusing:
            busy = f"busy: {len(self._tasks)} Sparkplug commands (DCMD) are being handled"
            refusals = [
                (
                    request
                    if request.refusal
                    else replace(
                        request,
                        tag=None,
                        value=None,
                        refusal=f"{busy}; metric {metric} was not written",
                    ),
                    metric,
                )
                for request, metric in writes
            ]
            task = loop.create_task(
                self._submit_all(gate, refusals), name=f"sparkplug-write-busy-{device}"
            )
            tasks = self._refusing
        else:
            self.counters.commands_dropped += len(writes)
            if self._flooded.begin():
                log.warning(
                    "sparkplug commands arrive faster than they can even be refused; "
                    "dropping some unaudited (quiet until one is handled again)",
                    sink=self.sink,
                    in_flight=len(self._tasks),
                    refusing=len(self._refusing),
                )
            return
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _submit_all(
        self, gate: WriteGate, writes: Sequence[tuple[WriteRequest, str]]
    ) -> None:
        done = 0
        try:
            for request, metric in writes:
                await self._submit(gate, request, metric)
                done += 1
        except asyncio.CancelledError:
            # stop() ran out of grace: the metric under way is the gate's (it audits a
            # command the stop cuts short); the ones not yet handed over go to it as
            # refusals, so each is audited (Sparkplug has no result topic: the audit log
            # is a DCMD's only trace). A refusal finishes without waiting for anything,
            # so the cancelled task can still hand them over.
            for request, metric in writes[done + 1 :]:
                stopped = (
                    f"the agent stopped before metric {metric} was handled: nothing was written"
                )
                await self._submit(
                    gate,
                    request
                    if request.refusal
                    else replace(request, tag=None, value=None, refusal=stopped),
                    metric,
                )
            raise

    async def _submit(self, gate: WriteGate, request: WriteRequest, metric: str) -> None:
        try:
            result = await gate.submit(request)
        except Exception:  # a gate bug: logged; the session and its reader go on
            log.exception(
                "write gate failed on a sparkplug command", sink=self.sink, device=request.device
            )
            return
        if result.outcome is Outcome.REFUSED:
            self._count_refusal(request.device, metric, result.reason)
        else:
            self.counters.commands_accepted += 1
            log.info(
                "sparkplug write",
                sink=self.sink,
                device=request.device,
                metric=metric,
                outcome=result.outcome.value,
                reason=result.reason,
            )

    def _count_refusal(self, device: str, metric: str, reason: str) -> None:
        self.counters.commands_refused += 1
        key = (device, metric, reason)
        if key not in self._refused:
            if len(self._refused) >= 1000:  # reasons may hold values: bounded all the same
                self._refused.clear()
            self._refused.add(key)
            log.warning(
                "sparkplug command refused",
                sink=self.sink,
                device=device or "(edge node)",
                metric=metric,
                reason=reason,
            )

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Take no more writes; let those under way finish for up to ``grace_s``, then
        cancel them."""
        self._stopping = True
        tasks = self._tasks | self._refusing
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
