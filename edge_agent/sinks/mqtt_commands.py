"""Write commands over the MQTT sink's connection (``commands: true``; docs/WRITES.md).

In: ``edge/{plant}/{device}/cmd`` (subscribed at QoS 1 after every connection: the
sessions are clean, so a broker forgets the subscription with the connection). Each
message is parsed (:mod:`edge_agent.writes.command_json`) and handed to the one gate
(:class:`~edge_agent.writes.model.WriteGate`) as a task of its own; a payload that is
not a command goes to the gate too, as a refusal (``WriteRequest.refusal``), so the
audit log has it. Out: the result on ``edge/{plant}/{device}/cmd/result`` and every
audit record on ``edge/{plant}/audit``, both QoS 1, not retained, published directly on
the connection (not through the outbox: a result is an answer now, not data to replay).

Bounded everywhere: at most ``max_in_flight`` commands are handled at once (the gate
runs a device's commands one after the other, so a flood to one device would otherwise
queue without end); one more is answered refused "busy" at once, and beyond twice the
bound a message is dropped, counted and logged once per burst. Audit records wait in a
bounded queue while the broker is away (the oldest dropped first, counted): the audit
file is the record that is kept, the topic only a copy.

Without a gate every command is answered refused "writes are not enabled on this agent".
Nothing in a payload can raise out of here into paho's reader.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final

import structlog

from edge_agent.episodes import Episode
from edge_agent.sinks.mqtt_bridge import MqttConnection, MqttError
from edge_agent.writes.command_json import CommandRefusal, parse_command
from edge_agent.writes.model import Outcome, WriteGate, WriteRequest, WriteResult
from edge_agent.writes.result_json import result_json

log = structlog.get_logger("edge_agent.sink.mqtt")

NOT_ENABLED: Final = "writes are not enabled on this agent"
#: Commands handled at once, by default.
MAX_IN_FLIGHT: Final = 8
#: Audit records kept while the broker is away, by default.
AUDIT_QUEUE: Final = 1000
#: How long stop() lets the commands being handled finish (their writes are under way).
STOP_GRACE_S: Final = 5.0


def command_filter(plant: str) -> str:
    return f"edge/{plant}/+/cmd"


def result_topic(plant: str, device: str) -> str:
    return f"edge/{plant}/{device}/cmd/result"


def audit_topic(plant: str) -> str:
    return f"edge/{plant}/audit"


@dataclass(slots=True)
class CommandCounters:
    received: int = 0
    #: Answered refused "busy" (more than ``max_in_flight`` at once) or "stopping".
    refused_busy: int = 0
    #: Not even answered: beyond twice the bound.
    dropped: int = 0
    results_published: int = 0
    results_lost: int = 0
    audit_published: int = 0
    audit_dropped: int = 0


class MqttCommands:
    """The command side of one MQTT sink (see the module docstring)."""

    def __init__(
        self,
        sink: str,
        plant: str,
        *,
        ack_timeout: float = 10.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        audit_queue: int = AUDIT_QUEUE,
    ) -> None:
        self.sink = sink
        self.plant = plant
        self.filter = command_filter(plant)
        self.audit_topic = audit_topic(plant)
        #: Set by the sink right after it made the connection (which calls us back).
        self.connection: MqttConnection | None = None
        self.counters = CommandCounters()
        #: Subscriptions granted (one per connection).
        self.subscriptions = 0
        self._gate: WriteGate | None = None
        self._ack_timeout = ack_timeout
        self.max_in_flight = max_in_flight
        self._commands: set[asyncio.Task[None]] = set()
        self._replies: set[asyncio.Task[None]] = set()
        self._audit: deque[bytes] = deque(maxlen=audit_queue)
        self._audit_wake = asyncio.Event()
        self._audit_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._overloaded = Episode()
        self._log = log.bind(sink=sink)

    # ------------------------------------------------------------------ the sink's calls

    def take(self, gate: WriteGate | None) -> None:
        """Route the commands that arrive from now on to ``gate`` (None: refuse them)."""
        self._gate = gate

    async def connected(self) -> None:
        """After every (re)connection: subscribe (raises MqttError if the broker does not
        grant it), and let the audit records that waited go out."""
        connection = self._connection()
        await connection.subscribe([(self.filter, 1)], within=self._ack_timeout)
        self.subscriptions += 1
        self._log.info("mqtt command topic subscribed", filter=self.filter)
        if self._audit_task is None and not self._stopping:
            self._audit_task = asyncio.create_task(
                self._publish_audit_records(), name=f"mqtt-audit-{self.sink}"
            )
        self._audit_wake.set()

    def publish_audit(self, record: Mapping[str, object]) -> None:
        """Queue one audit record for ``edge/{plant}/audit``. O(1), never raises."""
        if len(self._audit) == self._audit.maxlen:
            self.counters.audit_dropped += 1
        self._audit.append(_audit_payload(record))
        self._audit_wake.set()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Answer no more commands; let those under way finish (their results still go
        out) for up to ``grace_s``, then cancel them; end the audit task."""
        self._stopping = True
        running = self._commands | self._replies
        if running:
            await asyncio.wait(running, timeout=grace_s)
        for task in [*self._commands, *self._replies]:
            task.cancel()
        audit, self._audit_task = self._audit_task, None
        if audit is not None:
            audit.cancel()
        pending = {*self._commands, *self._replies, *([audit] if audit else [])}
        if pending:
            # asyncio.wait, not gather: our own cancellation must still propagate.
            await asyncio.wait(pending)

    @property
    def in_flight(self) -> int:
        return len(self._commands)

    # ------------------------------------------------------------------ incoming

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """A message on the command filter, on the loop (from paho's reader): O(1)."""
        device = self._device_of(topic)
        if device is None:
            return
        self.counters.received += 1
        received_at = time.time_ns()
        if self._stopping or len(self._commands) >= self.max_in_flight:
            self._reply_busy(device, payload, received_at)
            return
        self._overloaded.end()
        self._spawn(
            self._commands, self._handle(device, payload, retained, received_at), f"cmd-{device}"
        )

    def _device_of(self, topic: str) -> str | None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "edge" or parts[1] != self.plant or parts[3] != "cmd":
            return None
        return parts[2] or None

    def _spawn(
        self, tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None], name: str
    ) -> None:
        task = asyncio.get_running_loop().create_task(work, name=f"mqtt-{name}")
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _reply_busy(self, device: str, payload: bytes, received_at: int) -> None:
        if len(self._replies) >= self.max_in_flight:
            self.counters.dropped += 1
            if self._overloaded.begin():
                self._log.warning(
                    "mqtt commands arrive faster than they are handled; dropping some "
                    "unanswered (quiet until they are handled again)",
                    in_flight=len(self._commands),
                )
            return
        self.counters.refused_busy += 1
        reason = (
            "the agent is stopping"
            if self._stopping
            else f"busy: {len(self._commands)} commands are being handled; send it again later"
        )
        parsed = parse_command(payload, plant=self.plant, device=device, received_at_ns=received_at)
        result = _refused(parsed, device, reason, received_at)
        method = parsed.method is not None if isinstance(parsed, WriteRequest) else parsed.method
        self._spawn(self._replies, self._publish_result(device, result, method), f"busy-{device}")

    async def _handle(self, device: str, payload: bytes, retained: bool, received_at: int) -> None:
        parsed = parse_command(payload, plant=self.plant, device=device, received_at_ns=received_at)
        if retained and isinstance(parsed, WriteRequest):
            # A retained command would be delivered again at every connection.
            parsed = CommandRefusal(
                "a command must not be a retained message (it would be delivered again at "
                "every connection): publish it with retain false",
                parsed.id,
                parsed.tag or parsed.method or "",
                parsed.method is not None,
            )
        method = parsed.method is not None if isinstance(parsed, WriteRequest) else parsed.method
        result = await self._decide(parsed, device, received_at)
        await self._publish_result(device, result, method)

    async def _decide(
        self, parsed: WriteRequest | CommandRefusal, device: str, received_at: int
    ) -> WriteResult:
        gate = self._gate
        if gate is None:
            return _refused(parsed, device, NOT_ENABLED, received_at)
        if isinstance(parsed, WriteRequest):
            request = parsed
        else:
            # To the gate all the same, so the audit log has it; neither tag nor method
            # set: malformed to any gate, whatever it makes of ``refusal``.
            request = WriteRequest(
                id=parsed.id or "",
                channel="mqtt",
                identity="",
                device=device,
                received_at_ns=received_at,
                refusal=parsed.reason,
            )
        try:
            return await gate.submit(request)
        except Exception as exc:  # noqa: BLE001 - a gate bug: answered, never a crashed sink
            self._log.exception("write gate failed on an mqtt command", device=device)
            # Whether the device was written is not known: never say refused.
            return WriteResult(
                request.id,
                device,
                request.tag or request.method or "",
                Outcome.UNKNOWN,
                f"the agent failed while handling the command ({type(exc).__name__}); "
                "see the agent's log and audit log",
                received_at_ns=received_at,
                finished_at_ns=time.time_ns(),
            )

    async def _publish_result(self, device: str, result: WriteResult, method: bool) -> None:
        """On the topic of the device the command came for (whatever the result says)."""
        connection = self._connection()
        topic = result_topic(self.plant, device)
        try:
            await connection.publish(
                [(topic, result_json(result, method=method))],
                qos=1,
                idle_timeout=self._ack_timeout,
            )
        except MqttError as exc:
            self.counters.results_lost += 1
            self._log.warning(
                "mqtt command result not delivered (the audit log has it)",
                device=result.device,
                id=result.id,
                outcome=result.outcome.value,
                error=str(exc),
            )
            return
        self.counters.results_published += 1

    # ------------------------------------------------------------------ audit

    async def _publish_audit_records(self) -> None:
        """Publish the queued audit records, oldest first, while connected."""
        while True:
            await self._audit_wake.wait()
            self._audit_wake.clear()
            connection = self._connection()
            while self._audit and connection.connected:
                payload = self._audit[0]
                try:
                    await connection.publish(
                        [(self.audit_topic, payload)], qos=1, idle_timeout=self._ack_timeout
                    )
                except MqttError:
                    break  # kept: the next connection sends it (connected() wakes us)
                if self._audit and self._audit[0] is payload:
                    self._audit.popleft()
                self.counters.audit_published += 1

    def _connection(self) -> MqttConnection:
        if self.connection is None:
            raise RuntimeError("MqttCommands used before the sink gave it its connection")
        return self.connection


def _refused(
    parsed: WriteRequest | CommandRefusal, device: str, reason: str, received_at: int
) -> WriteResult:
    """A refusal answered by the channel itself (no gate, busy): nothing was written."""
    if isinstance(parsed, WriteRequest):
        ident, target = parsed.id, parsed.tag or parsed.method or ""
    else:
        ident, target = parsed.id or "", parsed.target
        reason = f"{reason}; and the payload is not a command: {parsed.reason}"
    return WriteResult(
        ident,
        device,
        target,
        Outcome.REFUSED,
        reason,
        received_at_ns=received_at,
        finished_at_ns=time.time_ns(),
    )


def _audit_payload(record: Mapping[str, object]) -> bytes:
    """The record as JSON; a non-finite number is null (JSON has none), anything else
    not JSON by nature (a bytes value, by mistake) as its text."""
    clean = {
        key: None if isinstance(value, float) and not math.isfinite(value) else value
        for key, value in record.items()
    }
    try:
        text = json.dumps(clean, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # a NaN deeper in (a method's output): still one valid document
        text = json.dumps({key: str(value) for key, value in clean.items()})
    return text.encode("utf-8")
