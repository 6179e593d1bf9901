"""MQTT sink: one JSON message per batch (device and poll), a retained online/offline status,
and a retained metadata message per device.

Delivery is at least once: :meth:`MqttSink.send` returns only when every message
is confirmed (PUBACK at QoS 1; written to the socket at QoS 0) and raises
:class:`~edge_agent.errors.SinkError` otherwise, after which the
:class:`~edge_agent.runtime.sink_runner.SinkRunner` sends the same batches again. A
retry after a lost PUBACK therefore duplicates messages; consumers de-duplicate
on ``(device, group, ts_ns)`` if they care.

The sink keeps its connection up by itself (a supervisor task reconnecting with
jittered backoff, going over to the next broker of a ``brokers:`` list at once:
:mod:`edge_agent.sinks.broker_rotation`) and says so once per change of state in the
log. Buffering, retry of batches and their backoff stay in the runner; the batches it
sends again after an unconfirmed send are counted (:mod:`edge_agent.sinks.resends`).

The meta messages (:mod:`edge_agent.sinks.meta`) do not go through the outbox: each is
the whole, current description of a device, retained by the broker, and published
again after every (re)connection, so one lost during an outage is replaced as soon as
the broker is back; queueing old descriptions would only replay outdated ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import structlog

from edge_agent.backoff import Backoff
from edge_agent.config import MqttSinkConfig, PlantIdentity
from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.mqtt import broker_problems, mqtt_sink_problems
from edge_agent.episodes import Episode
from edge_agent.errors import ConfigError, SinkError
from edge_agent.metrics.contract import (
    KIND,
    KIND_EVENT,
    KIND_REPORT,
    MetricInfo,
    event_info,
    metric_info,
    report_info,
)
from edge_agent.model import SampleBatch
from edge_agent.sinks.brokers import BrokerSwitch
from edge_agent.sinks.meta import encode_meta
from edge_agent.sinks.mqtt_bridge import MqttError, Will
from edge_agent.sinks.mqtt_commands import MqttCommands
from edge_agent.sinks.mqtt_topics import RESUBSCRIBING, MqttTopics
from edge_agent.sinks.payload import encode_batch
from edge_agent.sinks.resends import Resends
from edge_agent.writes.model import WriteGate

log = structlog.get_logger("edge_agent.sink.mqtt")

STATUS_ONLINE: Final = b"online"
STATUS_OFFLINE: Final = b"offline"


#: A connection that lived this long resets the reconnect backoff.
STABLE_CONNECTION_S: Final = 10.0

#: Bound on the graceful part of stop(): offline status, then DISCONNECT.
STOP_TIMEOUT_S: Final = 2.0


class _Status(enum.Enum):
    """Where the sink's retained status stands: whether a status document may replace it."""

    #: Not started, connecting, or between connections: the will or an old "offline"
    #: stands, and this connection's "online" (not out yet) would overwrite a document.
    OFFLINE = enum.auto()
    #: The current connection's "online" went out (or failing, dropped the connection).
    ONLINE = enum.auto()
    #: :meth:`MqttSink.stop` began: its "offline", or the will, stays the last word.
    STOPPED = enum.auto()


class MqttSink:
    """Publishes sample batches to one MQTT broker (see docs/MQTT.md).

    ``ack_timeout``: seconds without any confirmation after which ``send`` gives up
    and the connection is dropped and re-made (a broker that stopped answering
    on a socket that still looks open). ``connect_timeout`` bounds one connection
    attempt (TCP, TLS and CONNACK). ``backoff`` paces reconnection attempts.
    """

    def __init__(
        self,
        config: MqttSinkConfig,
        plant: PlantIdentity,
        *,
        ack_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        meta_backoff: Backoff | None = None,
        devices: Iterable[DeviceInfo] = (),
    ) -> None:
        self.config = config
        self._identity = plant
        self._plant = plant.name
        self._site = plant.site
        self._qos = config.qos
        self._ack_timeout = ack_timeout
        self._backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._topic_template = config.topic
        self._topics: dict[tuple[str, str], str] = {}
        self._metric_topics: dict[tuple[str, str, str], str] = {}
        problems = [
            f"sinks.{config.name}.{field}: {message}"
            for field, message in mqtt_sink_problems(config, plant)
        ]
        problems += [
            f"sinks.{config.name}.{'.'.join(map(str, path))}: {message}"
            for path, message in broker_problems(config)
        ]
        if problems:
            raise ConfigError(problems)
        self.status_topic = config.status_topic.format(plant=plant.name, site=plant.site)
        self.client_id = config.client_id or f"edge-agent-{plant.name}-{secrets.token_hex(4)}"
        #: Write commands in, results and audit records out (``commands: true``).
        self.commands = (
            MqttCommands(config.name, plant.name, ack_timeout=ack_timeout)
            if config.commands
            else None
        )
        #: Topics of the agent's own (remote configuration): CarriesTopics.
        self.topics = MqttTopics(config.name, ack_timeout=ack_timeout)
        #: The broker(s): which one the connection goes to, the failovers between them.
        self.brokers = BrokerSwitch(config)
        self._connection = self.brokers.connection(
            self.client_id,
            connect_timeout=connect_timeout,
            will=Will(self.status_topic, STATUS_OFFLINE, qos=1, retain=True),
            on_message=self.topics.dispatcher(self.commands.on_message if self.commands else None),
        )
        self.topics.connection = self._connection
        if self.commands is not None:
            self.commands.connection = self._connection
        self._supervisor: asyncio.Task[None] | None = None
        self._status = _Status.OFFLINE
        #: Device -> its meta message, as it should stand on the broker.
        self._meta: dict[str, bytes] = {}
        #: Devices whose meta message (or, gone from ``_meta``, its clearing) this
        #: connection has not had confirmed yet.
        self._meta_due: set[str] = set()
        self._meta_changed = asyncio.Event()
        #: Paces the meta messages after one was not confirmed (:meth:`_serve_connection`).
        self._meta_backoff = meta_backoff or Backoff(initial=10.0, cap=600.0, minimum=5.0)
        self._meta_failed = False
        self.describe_devices(devices)
        self.resends = Resends()
        self._log = log.bind(sink=config.name)

    # ------------------------------------------------------------------ Sink protocol

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def connected(self) -> bool:
        return self._connection.connected

    @property
    def broker(self) -> str:
        """BrokerConnected: ``host:port`` of the broker connected to, or being tried."""
        return self.brokers.current.address

    async def start(self) -> None:
        """Start connecting in the background; never raises because the broker is away."""
        if self._status is _Status.STOPPED:
            raise RuntimeError(f"mqtt sink {self.name} was stopped; make a new one")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"mqtt-sink-{self.name}")
            self._supervisor.add_done_callback(self._supervisor_ended)

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        """Publish one message per batch, in order; return once all are confirmed."""
        if not batches:
            return
        if not self._connection.connected:
            raise SinkError(f"mqtt sink {self.name}: not connected to the broker")
        plant, site = self._plant, self._site
        messages = [(self._topic(b), encode_batch(b, plant, site)) for b in batches]
        self.resends.sending(batches)
        try:
            if any(b.attributes and b.attributes.get(KIND) == KIND_REPORT for b in batches):
                await self._publish_runs(batches, messages)
            else:
                await self._connection.publish(
                    messages, qos=self._qos, idle_timeout=self._ack_timeout
                )
        except MqttError:
            self.resends.unconfirmed(batches)
            if self._connection.connected:
                # Not a loss but a stall: the broker stopped confirming. Re-making the
                # connection also clears paho's copies, so the runner's retry does not
                # queue the same messages twice.
                self._connection.abort("the broker stopped confirming messages")
            raise

    async def _publish_runs(
        self, batches: Sequence[SampleBatch], messages: list[tuple[str, bytes]]
    ) -> None:
        """Reports are retained (the last report of each kind stays on the broker for a
        consumer that connects later), the rest not: one publish per run of either, in
        order."""
        start = 0
        while start < len(messages):
            retain = report_info(batches[start]) is not None
            end = start + 1
            while end < len(messages) and (report_info(batches[end]) is not None) == retain:
                end += 1
            await self._connection.publish(
                messages[start:end], qos=self._qos, retain=retain, idle_timeout=self._ack_timeout
            )
            start = end

    async def publish_status(self, payload: bytes) -> bool:
        """Replace the retained status with ``payload`` (the agent's status document).

        False, without trying, while not connected or once stopping: the will and the
        ``offline`` of :meth:`stop` must stay the last word. Raises MqttError if the
        broker does not confirm.
        """
        if self._status is not _Status.ONLINE or not self._connection.connected:
            return False
        await self._connection.publish(
            [(self.status_topic, payload)], qos=1, retain=True, idle_timeout=self._ack_timeout
        )
        return True

    def describe_devices(self, devices: Iterable[DeviceInfo]) -> None:
        """Take the plant's devices (MetaPublisher): a device whose meta message changed
        or is new is published again, a device that is gone has its retained message
        cleared (an empty retained message), by the connection task, now or after the
        next connect. No-op without ``meta_topic``."""
        if not self.config.meta_topic:
            return
        identity = self._identity
        meta = {device.name: encode_meta(device, identity) for device in devices}
        changed = {name for name, payload in meta.items() if self._meta.get(name) != payload}
        changed |= self._meta.keys() - meta.keys()
        self._meta = meta
        if changed:
            self._meta_due |= changed
            self._meta_changed.set()

    def take_commands(self, gate: WriteGate | None) -> None:
        """TakesCommands: route commands to ``gate``; a sink without ``commands: true``
        subscribes to none."""
        if self.commands is not None:
            self.commands.take(gate)

    def publish_audit(self, record: Mapping[str, object]) -> None:
        """TakesCommands: one audit record on ``edge/{plant}/audit`` (``commands: true``)."""
        if self.commands is not None:
            self.commands.publish_audit(record)

    def event_counts(self) -> dict[str, int]:
        """EventCounting: failovers to another broker, batches sent again after an
        unconfirmed send (the only duplicates), and the command side's counts
        (``commands: true``), e.g. the commands answered "busy", which are not audited
        (docs/WRITES.md)."""
        counts = {"failovers": self.brokers.failovers, "batches_resent": self.resends.count}
        if self.commands is not None:
            commands = dataclasses.asdict(self.commands.counters)
            counts |= {f"commands_{name}": count for name, count in commands.items()}
        return counts

    async def stop(self) -> None:
        """Publish the retained ``offline``, disconnect cleanly, end every task. Idempotent."""
        if self._status is _Status.STOPPED:
            return
        self._status = _Status.STOPPED
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not "await task": our own cancellation must still propagate.
            await asyncio.wait({task})
        if self.commands is not None:  # the commands under way end, their results go out
            await self.commands.stop()
        if self._connection.connected:
            try:
                await self._connection.publish(
                    [(self.status_topic, STATUS_OFFLINE)],
                    qos=1,
                    retain=True,
                    idle_timeout=STOP_TIMEOUT_S,
                )
            except MqttError as exc:
                # The will says "offline" anyway if the broker sees us vanish.
                self._log.warning("mqtt offline status not confirmed", error=str(exc))
            await self._connection.disconnect(STOP_TIMEOUT_S)
            self._log.info("mqtt disconnected", broker=self.broker)
        await self._connection.aclose()

    # ------------------------------------------------------------------ internals

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        # It only ends by cancellation; anything else is a bug that would otherwise
        # leave the sink silently disconnected for good, so say it loudly.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("mqtt connection supervisor died", exc_info=exc)

    def _topic(self, batch: SampleBatch) -> str:
        if batch.attributes:
            # Metric, event and report batches first: a device may have a poll group
            # named like theirs ("events"), whose cached data topic must not catch them.
            info = metric_info(batch)
            if info is not None:
                return self._metrics_topic(batch, info)
            if batch.attributes.get(KIND) in (KIND_EVENT, KIND_REPORT):
                return self._event_topic(batch)
        key = (batch.device, batch.group)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topic_template.format(
                plant=self._plant, site=self._site, device=batch.device, group=batch.group
            )
            self._topics[key] = topic
        return topic

    def _metrics_topic(self, batch: SampleBatch, info: MetricInfo) -> str:
        """Topic of a metric batch (docs/METRICS.md): ``metrics_topic`` with its window."""
        family = info.family
        key = (batch.device, batch.group, family)
        topic = self._metric_topics.get(key)
        if topic is None:
            topic = self.config.metrics_topic.format(
                plant=self._plant,
                site=self._site,
                device=batch.device,
                window=info.window,
                family=family,
            )
            self._metric_topics[key] = topic
        return topic

    def _event_topic(self, batch: SampleBatch) -> str:
        """``events_topic`` of an event batch, ``reports_topic`` of a report batch."""
        event, report = event_info(batch), report_info(batch)
        if report is not None:
            return self.config.reports_topic.format(
                plant=self._plant, site=self._site, report=report.report or "report"
            )
        return self.config.events_topic.format(
            plant=self._plant,
            site=self._site,
            device=batch.device,
            event=event.event if event is not None and event.event else "event",
        )

    async def _supervise(self) -> None:
        """Connect, announce ``online``, wait for the loss, back off, repeat until cancelled.

        With several brokers, a failed attempt or a lost connection goes on to the next
        at once; the backoff comes only after a whole round failed (:class:`BrokerSwitch`).
        """
        unreachable = Episode()
        while True:
            self.brokers.aim(self._connection)
            try:
                await self._connection.connect()
            except MqttError as exc:
                if unreachable.begin():
                    self._log.warning(
                        "mqtt broker unreachable; retrying in the background", error=str(exc)
                    )
                if self.brokers.failed():
                    await asyncio.sleep(self._backoff.next_delay())
                continue
            unreachable.end()  # "mqtt connected" below says it
            connected_at = asyncio.get_running_loop().time()
            self._log.info("mqtt connected", client_id=self.client_id, broker=self.broker)
            self.brokers.connected()
            try:
                await self._connection.publish(
                    [(self.status_topic, STATUS_ONLINE)],
                    qos=1,
                    retain=True,
                    idle_timeout=self._ack_timeout,
                )
            except MqttError as exc:
                self._log.warning("mqtt online status not confirmed", error=str(exc))
                self._connection.abort("online status not confirmed")
            if self.commands is not None and self._connection.connected:
                try:
                    await self.commands.connected()
                except MqttError as exc:
                    self._log.warning("mqtt command topic not subscribed", error=str(exc))
                    self._connection.abort("command subscription not granted")
            await self.topics.connected()
            # stop() sets STOPPED, then cancels this task, which resumes only to end: the
            # assignments here never overwrite STOPPED.
            self._status = _Status.ONLINE
            reason = await self._serve_connection()
            self._status = _Status.OFFLINE
            if reason.startswith(RESUBSCRIBING):  # our own doing: the same broker, at once
                self._log.info("mqtt reconnecting to subscribe", reason=reason)
                continue
            self._log.warning(
                "mqtt connection lost; reconnecting", reason=reason, broker=self.broker
            )
            # Only a connection that lasted resets the backoff: a broker that accepts
            # and then drops us at once must not be hammered in a tight loop.
            lasted = asyncio.get_running_loop().time() - connected_at >= STABLE_CONNECTION_S
            if lasted:
                self._backoff.reset()
            if self.brokers.failed(lasted=lasted):
                await asyncio.sleep(self._backoff.next_delay())

    async def _serve_connection(self) -> str:
        """Publish every meta message, then each change handed over, until the connection
        is lost; return why it was."""
        # A new connection may reach a broker that lost its retained messages (restarted
        # without persistence): everything again. Clearings still due stay due.
        self._meta_due |= self._meta.keys()
        self._meta_changed.set()
        closed = asyncio.ensure_future(self._connection.wait_closed())
        try:
            if self._meta_failed:
                # The last try lost its connection, perhaps because of a meta message (a
                # broker with a packet size limit drops a client that sends a larger one):
                # the data goes first, the meta messages only after a pause that grows
                # with each failure, so they cannot keep the data from being delivered.
                await asyncio.wait({closed}, timeout=self._meta_backoff.next_delay())
                if closed.done():
                    return closed.result()
            while True:
                changed = asyncio.ensure_future(self._meta_changed.wait())
                try:
                    await asyncio.wait({closed, changed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                    await asyncio.wait({changed})
                if closed.done():
                    return closed.result()
                self._meta_changed.clear()
                await self._publish_meta()
        finally:
            closed.cancel()
            await asyncio.wait({closed})

    async def _publish_meta(self) -> None:
        """The due meta messages (retained, QoS 1); a clearing is an empty one. A failure
        drops the connection: the next one publishes them all again."""
        meta = self._meta
        # Smallest first: those the broker takes are retained before one it refuses.
        due = sorted(self._meta_due, key=lambda name: (len(meta.get(name, b"")), name))
        if not due:
            return
        messages = [(self._meta_topic(name), meta.get(name, b"")) for name in due]
        try:
            await self._connection.publish(
                messages, qos=1, retain=True, idle_timeout=self._ack_timeout
            )
        except MqttError as exc:
            self._meta_failed = True
            self._log.warning(
                "mqtt meta messages not confirmed; they are sent again after a pause, the "
                "data meanwhile (a broker drops the connection of a message larger than its "
                "maximum packet size)",
                error=str(exc),
                largest_device=due[-1],
                largest_bytes=len(messages[-1][1]),
            )
            self._connection.abort("meta messages not confirmed")
            return
        self._meta_failed = False
        self._meta_backoff.reset()
        # Only what was sent: a change handed over meanwhile stays due (and its event set).
        for name in due:
            if meta.get(name) == self._meta.get(name):
                self._meta_due.discard(name)
        self._log.info(
            "mqtt meta messages published",
            devices=sum(1 for name in due if name in meta),
            cleared=[name for name in due if name not in meta],
        )

    def _meta_topic(self, device: str) -> str:
        return self.config.meta_topic.format(plant=self._plant, site=self._site, device=device)
