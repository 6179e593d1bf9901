"""SparkplugSink: the agent as a Sparkplug B 3.0 edge node (docs/SPARKPLUG.md).

One MQTT session at a time, each its own Sparkplug session:

1. a new bdSeq, stored in the state directory before anything else (:mod:`.bdseq`), and
   the NDEATH carrying it set as the Will of the CONNECT (QoS 1, not retained)
   [tck-id-message-flow-edge-node-birth-publish-will-message,
   tck-id-message-flow-edge-node-birth-publish-will-message-qos,
   tck-id-message-flow-edge-node-birth-publish-will-message-will-retained];
2. CONNECT, then SUBSCRIBE (QoS 1) to NCMD, DCMD and, with a primary host, its STATE
   topic, all before any birth [tck-id-message-flow-edge-node-ncmd-subscribe];
3. with a primary host: wait until a STATE received *in this session* says online (what
   an earlier session heard is not enough: the broker may have restarted, the host not be
   back) [tck-id-message-flow-edge-node-birth-publish-phid-wait,
   tck-id-operational-behavior-edge-node-birth-sequence-wait];
4. NBIRTH (seq 0, the same bdSeq), every DBIRTH, confirmed by a fence; from then on the
   runner's sends go out as DDATA (QoS 0, one message per batch, confirmed by a fence
   before ``send`` returns). The runner may send only once the births are confirmed
   *and* the host has not said offline since they began;
5. the end: a lost connection, a failed confirmation or a failure of our own (logged; the
   connection is dropped and the broker sends the Will), the primary host going offline at
   any moment after the births began, even if it is back already (NDEATH, then DISCONNECT
   [tck-id-message-flow-edge-node-birth-publish-phid-offline]), or ``stop`` (NDEATH, then
   DISCONNECT [tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath]).
   Then again from 1.

Several brokers (``brokers:``, :class:`~edge_agent.sinks.brokers.BrokerSwitch`): a session
that ends, or an attempt that fails, goes on to the next at once; a failover is a new
session (new bdSeq and Will, NBIRTH). STATE is read per broker (:class:`~.host_state.HostWatch`):
an offline STATE moves on until every broker said it (:class:`~.host_state.OfflineRound`)
[tck-id-operational-behavior-edge-node-termination-host-offline-reconnect] (docs/SPARKPLUG.md).

While no session is born the sink *holds* (:class:`~edge_agent.sinks.base.Holding`): the
runner sends nothing, the batches stay in the outbox, and delivery resumes the moment the
births are confirmed. What is published, and when a batch is historical, is decided by
:class:`~.node.EdgeNode`; commands by :class:`~.commands.CommandHandler`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import structlog

from edge_agent import __version__
from edge_agent.backoff import Backoff
from edge_agent.config import PlantIdentity, SparkplugSinkConfig
from edge_agent.config.catalog import DeviceInfo
from edge_agent.config.mqtt import broker_problems
from edge_agent.config.sparkplug import scan_rate_ms, sparkplug_sink_problems
from edge_agent.episodes import Episode
from edge_agent.errors import ConfigError, SinkError
from edge_agent.model import SampleBatch
from edge_agent.sinks.brokers import BrokerSwitch
from edge_agent.sinks.mqtt_bridge import MqttError, Will
from edge_agent.sinks.mqtt_client import MqttConnectError
from edge_agent.sinks.resends import BatchIdentity, Resends, batch_identity
from edge_agent.sinks.sparkplug.bdseq import BdSeqStore, bdseq_path
from edge_agent.sinks.sparkplug.commands import CommandHandler
from edge_agent.sinks.sparkplug.host_state import HostWatch, OfflineRound, Verdict
from edge_agent.sinks.sparkplug.node import EdgeNode, Message, NodeInfo
from edge_agent.sinks.sparkplug.topics import Topics, state_topic
from edge_agent.writes.model import WriteGate

log = structlog.get_logger("edge_agent.sink.sparkplug")

#: A session that lived this long resets the reconnect backoff.
STABLE_SESSION_S: Final = 10.0
#: Bound on the graceful part of stop(): NDEATH, then DISCONNECT.
STOP_TIMEOUT_S: Final = 2.0


class SparkplugSink:
    """Publishes the plant as one Sparkplug edge node (see the module docstring).

    ``ack_timeout`` bounds each confirmation (SUBACK, a fence, the PUBACK of an explicit
    NDEATH); ``connect_timeout`` one connection attempt; ``backoff`` paces reconnects.
    """

    def __init__(
        self,
        config: SparkplugSinkConfig,
        plant: PlantIdentity,
        state_dir: Path,
        *,
        devices: Iterable[DeviceInfo] = (),
        ack_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        described = list(devices)
        problems = [
            f"sinks.{config.name}.{'.'.join(map(str, path))}: {message}"
            for path, message in [
                *sparkplug_sink_problems(config, [d.name for d in described]),
                *broker_problems(config),
            ]
        ]
        if problems:
            raise ConfigError(problems)
        self.config = config
        self.topics = Topics(config.group_id, config.edge_node_id)
        info = NodeInfo(
            scan_rate_ms=scan_rate_ms(described),
            properties={
                "Agent version": __version__,
                "Plant": plant.name,
                "Site": plant.site,
            },
        )
        self.node = EdgeNode(self.topics, info, config.device_id)
        self.node.describe(described)
        self.commands = CommandHandler(
            config.name, config.device_id, self.node.allocator, config.primary_host or "sparkplug"
        )
        self.commands.describe(d.name for d in described)
        self.bdseq = BdSeqStore(bdseq_path(state_dir, config.name))
        self.host = HostWatch() if config.primary_host else None
        self._round = OfflineRound(len(config.endpoints()))
        self._state_topic = state_topic(config.primary_host) if config.primary_host else ""
        self.client_id = config.client_id or f"edge-agent-{config.group_id}-{config.edge_node_id}"
        self._ack_timeout = ack_timeout
        self._backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self.brokers = BrokerSwitch(config, "sparkplug")
        self._connection = self.brokers.connection(
            self.client_id, connect_timeout=connect_timeout, on_message=self._on_message
        )
        #: One writer of the session at a time: births, sends and the NDEATH keep order.
        self._lock = asyncio.Lock()
        #: Set while a session is born: the runner may send.
        self._ready = asyncio.Event()
        #: Wakes the session task: a rebirth asked for, a STATE change, a reload.
        self._wake = asyncio.Event()
        self._rebirth_due = False
        #: The primary host's STATE as heard in the current session: online now, and
        #: whether it said offline since the session began.
        self._host_online = self._host_left = False
        #: :func:`batch_identity` of a batch the node failed on: skipped when sent again.
        self._poison: BatchIdentity | None = None
        self._holding = "not connected to the broker yet"
        self._supervisor: asyncio.Task[None] | None = None
        self._stopped = False
        self.sessions = 0
        self.state_messages_ignored = 0
        self.resends = Resends()
        self._state_invalid = Episode()
        self._log = log.bind(sink=config.name, node=self.topics.nbirth)

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

    @property
    def born(self) -> bool:
        """A Sparkplug session is born (NBIRTH and DBIRTHs confirmed) and not ended."""
        return self._ready.is_set()

    @property
    def bd_seq(self) -> int | None:
        """The bdSeq of the current (or latest) session."""
        return self.bdseq.current

    async def start(self) -> None:
        """Start the session task; never raises because the broker is away."""
        if self._stopped:
            raise RuntimeError(f"sparkplug sink {self.name} was stopped; make a new one")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"sparkplug-sink-{self.name}"
            )
            self._supervisor.add_done_callback(self._supervisor_ended)

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        """One DDATA per batch (with a DBIRTH or DDEATH first where due), in order; returns
        once the broker has read them all (a fence)."""
        if not batches:
            return
        async with self._lock:
            if not self._ready.is_set():
                raise SinkError(f"sparkplug sink {self.name}: {self._holding}")
            messages = []
            skipped = False
            for batch in batches:
                key = batch_identity(batch) if self._poison is not None else None
                if key is not None and key == self._poison:
                    # It broke a session already: skip it (counted), never retry forever.
                    skipped = True
                    self.node.counters.unencodable_batches += 1
                    self._log.error(
                        "sparkplug batch skipped", device=batch.device, group=batch.group
                    )
                    continue
                try:
                    messages += self.node.deliver(batch, settle=False)
                except Exception as exc:  # a bug: the node's state may be half-changed
                    self._poison = batch_identity(batch)
                    self._log.exception(
                        "sparkplug batch could not be delivered; session ends, batch skipped",
                        device=batch.device,
                        group=batch.group,
                    )
                    self._drop("a batch could not be encoded")
                    raise SinkError(f"sparkplug sink {self.name}: {exc!r}") from exc
            messages += self.node.settle()
            self.resends.sending(batches)
            try:
                await self._publish(messages)
            except MqttError:
                self.resends.unconfirmed(batches)
                raise
            if self._host_left:
                # The primary host said offline while these were on their way: it may
                # never have got them. Not acknowledged: the outbox keeps them, and they
                # go out again (historical) after the next birth.
                self.resends.unconfirmed(batches)
                raise SinkError(f"sparkplug sink {self.name}: {self._holding}")
            if skipped:
                self._poison = None  # used: the skipped batch is acknowledged with the rest

    async def stop(self) -> None:
        """NDEATH, then DISCONNECT (so the broker drops the Will), end every task. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._ready.clear()
        self._holding = "stopped"
        task, self._supervisor = self._supervisor, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not "await task": our own cancellation must still propagate.
            await asyncio.wait({task})
        await self.commands.stop()
        bd_seq = self.bdseq.current
        if self._connection.connected and bd_seq is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    async with self._lock:
                        await self._send_ndeath(bd_seq)
            except (MqttError, TimeoutError) as exc:
                # The Will says the same if the broker sees us vanish.
                self._log.warning("sparkplug NDEATH not confirmed", error=str(exc))
            await self._connection.disconnect(STOP_TIMEOUT_S)
            self._log.info("sparkplug session ended: NDEATH sent, disconnected", bd_seq=bd_seq)
        await self._connection.aclose()

    # ------------------------------------------------------------------ capabilities

    def see_live(self, batch: SampleBatch) -> None:
        """LiveTap: every batch as it is collected, so births carry current values. O(1)."""
        self.node.see_live(batch)

    def event_counts(self) -> dict[str, int]:
        """EventCounting: what /metrics shows as ``edge_agent_sink_events{sink, event}``."""
        node = dataclasses.asdict(self.node.counters)
        return {
            "sessions": self.sessions,
            "node_births": node.pop("births"),
            **node,
            **dataclasses.asdict(self.commands.counters),
            "state_messages_ignored": self.state_messages_ignored,
            "failovers": self.brokers.failovers,
            "batches_resent": self.resends.count,
        }

    @property
    def holding_reason(self) -> str:
        """Holding: why sends wait ("" while a session is born)."""
        return "" if self._ready.is_set() else self._holding

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def describe_devices(self, devices: Iterable[DeviceInfo]) -> None:
        """MetaPublisher: a reload's devices. A changed device is born again, a removed one
        gets its DDEATH, by the session task (now if born, else with the next births)."""
        devices = list(devices)
        self.commands.describe(d.name for d in devices)
        if self.node.describe(devices):
            self._wake.set()

    def take_commands(self, gate: WriteGate | None) -> None:
        """TakesCommands: DCMD metric writes go to ``gate`` (None: refused)."""
        self.commands.gate = gate

    def publish_audit(self, record: Mapping[str, object]) -> None:
        """TakesCommands: Sparkplug has no audit topic (the MQTT sink's carries them)."""

    # ------------------------------------------------------------------ session

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        # Only cancellation ends it; anything else is a bug leaving the sink without a session.
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._log.error("sparkplug session task died", exc_info=exc)

    async def _supervise(self) -> None:
        """Sessions, one after another, until cancelled (the module docstring's steps)."""
        unreachable = Episode()
        bd_seq: int | None = None
        while True:
            if bd_seq is None:
                try:
                    bd_seq = self.bdseq.advance()
                except OSError as exc:
                    self._holding = f"the bdSeq cannot be stored: {exc}"
                    if unreachable.begin():
                        self._log.error("sparkplug bdSeq cannot be stored", error=str(exc))
                    await asyncio.sleep(self._backoff.next_delay())
                    continue
                ndeath = self.node.ndeath(bd_seq)[1]
                self._connection.set_will(Will(self.topics.ndeath, ndeath, qos=1, retain=False))
            self.brokers.aim(self._connection)
            try:
                await self._connection.connect()
            except MqttConnectError as exc:
                if not isinstance(exc.__cause__, OSError):
                    # The CONNECT (with this bdSeq in its Will) may have reached the
                    # broker: the next CONNECT carries the next value.
                    bd_seq = None
                self._holding = f"not connected to the broker: {exc}"
                if unreachable.begin():
                    self._log.warning(
                        "sparkplug broker unreachable; retrying in the background",
                        error=str(exc),
                    )
                if self.brokers.failed():
                    await asyncio.sleep(self._backoff.next_delay())
                continue
            unreachable.end()
            started = asyncio.get_running_loop().time()
            self.sessions += 1
            self._log.info(
                "sparkplug connected", client_id=self.client_id, bd_seq=bd_seq, broker=self.broker
            )
            self.brokers.connected()
            try:
                reason = await self._session(bd_seq)
            except Exception as exc:  # noqa: BLE001 - a bug of ours must not end the session task
                self._log.exception("sparkplug session failed; reconnecting")
                reason = f"internal error: {type(exc).__name__}: {exc}"
                self._drop(reason)
            if not self._host_left:
                self._round.reset()  # lost for another reason than the host: a new round
            bd_seq = None
            self._ready.clear()
            self.node.end_session()
            self._holding = f"not connected to the broker: {reason}"
            self._log.warning(
                "sparkplug session ended; reconnecting", reason=reason, broker=self.broker
            )
            lasted = asyncio.get_running_loop().time() - started >= STABLE_SESSION_S
            if lasted:
                self._backoff.reset()
            if self.brokers.failed(lasted=lasted):
                await asyncio.sleep(self._backoff.next_delay())

    async def _session(self, bd_seq: int) -> str:
        """Subscribe, wait for the host, be born, keep the session; return why it ended."""
        subscriptions = [(self.topics.ncmd, 1), (self.topics.dcmd, 1)]
        if self._state_topic:
            subscriptions.append((self._state_topic, 1))
        self._host_online = self._host_left = False
        if self.host is not None:
            self.host.at(self.broker)  # STATE timestamps are compared per broker only
        closed = asyncio.ensure_future(self._connection.wait_closed())
        born = False
        try:
            await self._connection.subscribe(subscriptions, within=self._ack_timeout)
            while not closed.done():
                self._wake.clear()
                if self.host is not None:
                    # Before the births, only while another broker may have it online.
                    if self._host_left and (self._round.offline(self.broker) or born):
                        return await self._host_went_offline(bd_seq, born)
                    self._host_left = False  # nothing born yet: nothing to end
                if self.host is not None and not self._host_online:
                    self._holding = (
                        f"waiting for the primary host {self.config.primary_host} to be "
                        f"online ({self._state_topic})"
                    )
                else:
                    async with self._lock:
                        if not born or self._rebirth_due:
                            self._rebirth_due = False
                            await self._publish(self.node.births(bd_seq))
                            if not born:
                                self._log.info("sparkplug session born", bd_seq=bd_seq)
                            born = True
                            self._round.reset()
                            # The host may have said offline while the births were on
                            # their way: then no data; the loop ends the session.
                            if not self._host_left:
                                self._ready.set()
                        else:
                            await self._publish(self.node.reconcile())
                wake = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({closed, wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    wake.cancel()
                    await asyncio.wait({wake})
            return closed.result()
        except MqttError as exc:
            self._drop(str(exc))
            return str(exc)
        finally:
            self._ready.clear()
            closed.cancel()
            await asyncio.wait({closed})

    async def _host_went_offline(self, bd_seq: int, born: bool) -> str:
        """The primary host is offline: NDEATH (if born), DISCONNECT; the next session goes
        to the next broker and waits for it there
        [tck-id-operational-behavior-edge-node-termination-host-offline]."""
        self._holding = f"the primary host {self.config.primary_host} is offline"
        self._log.warning(
            "sparkplug primary host offline: NDEATH, disconnect, data waits in the outbox",
            host=self.config.primary_host,
        )
        if born:
            async with self._lock:
                await self._send_ndeath(bd_seq)
        await self._connection.disconnect(STOP_TIMEOUT_S)
        return f"the primary host {self.config.primary_host} went offline"

    async def _publish(self, messages: list[Message]) -> None:
        """QoS 0 (the spec's for births and data), then a fence: back once the broker has
        read them. A failure drops the connection (the Will tells the host)."""
        if not messages:
            return
        try:
            await self._connection.publish(messages, qos=0, idle_timeout=self._ack_timeout)
            await self._connection.fence(within=self._ack_timeout)
        except MqttError as exc:
            self._drop(f"messages not confirmed: {exc}")
            raise

    async def _send_ndeath(self, bd_seq: int) -> None:
        await self._connection.publish(
            [self.node.ndeath(bd_seq)], qos=1, idle_timeout=self._ack_timeout
        )

    def _drop(self, reason: str) -> None:
        self._ready.clear()
        self._holding = f"the session ended: {reason}"
        if self._connection.connected:
            self._connection.abort(reason)

    # ------------------------------------------------------------------ incoming

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """NCMD, DCMD and STATE messages, on the loop (called from paho's reader)."""
        if self._state_topic and topic == self._state_topic and self.host is not None:
            self._on_state(payload)
            return
        command = self.topics.command(topic)
        if command is not None and self.commands.handle(command, payload):
            self._log.info("sparkplug rebirth requested")
            self._rebirth_due = True
            self._wake.set()

    def _on_state(self, payload: bytes) -> None:
        assert self.host is not None
        verdict = self.host.offer(payload)
        if verdict is not Verdict.INVALID:
            self._state_invalid.end()
        elif self._state_invalid.begin():
            self._log.warning(
                "sparkplug STATE message not understood; ignored",
                topic=self._state_topic,
                error=self.host.last_error,
            )
        if verdict in (Verdict.INVALID, Verdict.STALE):
            # Not understood, or an old host session's message on this broker (its Will,
            # delivered late): not the news.
            self.state_messages_ignored += 1
            return
        self._host_online = verdict is Verdict.ONLINE
        if verdict is Verdict.OFFLINE:
            # Hold now: nothing more goes out in this session, even if the host is back
            # before the session task looks (it ends the session: NDEATH, a new one).
            self._host_left = True
            self._ready.clear()
            self._holding = f"the primary host {self.config.primary_host} is offline"
        self._log.info("sparkplug primary host state", online=verdict is Verdict.ONLINE)
        self._wake.set()
