"""The two kinds of poll group of an OPC UA device, on one session at a time.

* :class:`ReadGroup`: every interval one bulk Read of all the group's nodes (in chunks
  that fit the server's MaxNodesPerRead), one batch with every tag;
* :class:`SubscribeGroup`: a subscription whose publishing interval is the group's
  interval; notifications (value, status, source and server timestamps) are buffered
  as they arrive and handed over on each read as one or more batches holding only
  what changed (see :mod:`drivers.opcua.batches`), followed by a batch without
  samples, ``SampleBatch.alive``, stamped with the server's time of the latest
  publish (change or keepalive): the proof that every value last reported still
  held then, which the metrics use to hold steady values (nothing repeated goes to
  the sinks). A watchdog makes a silent subscription an error: when neither a data
  change nor a keepalive arrived for ``watchdog_intervals`` publishing intervals, the
  read fails and the session is marked lost. Changes that arrived before a loss are
  never thrown away: the read that notices the loss hands them over (the loss is
  raised on the read after), and a reconnect carries what is still buffered over to
  the first read on the new session.

Each group is attached to every new session with the tags' resolution; tags that
could not be resolved or monitored are tried again by :meth:`retry`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import structlog
from asyncua import ua

from drivers.opcua.batches import GroupAssembler
from drivers.opcua.convert import datetime_ns
from drivers.opcua.nodes import Resolution
from drivers.opcua.quality import classify
from drivers.opcua.session import Session
from edge_agent.config.opcua import (
    Deadband,
    NodeAddress,
    OpcUaDeviceConfig,
    OpcUaPollGroup,
    OpcUaTag,
    parse_node_address,
)
from edge_agent.driver import GroupSpec
from edge_agent.errors import DriverReadError
from edge_agent.model import Quality, SampleBatch

log = structlog.get_logger("edge_agent.opcua")

#: Shortest watchdog, so that a busy gateway's scheduling hiccup is not a lost session.
MIN_WATCHDOG_SECONDS = 2.0
REASON_WATCHDOG = "subscription watchdog"
#: Most changes a subscribe group buffers between two reads; beyond, the oldest go
#: (a read is due every publishing interval, so this only caps a stuck agent's memory).
MAX_PENDING_CHANGES = 200_000
REASON_NOT_MONITORED = "not monitored"


@dataclass(slots=True)
class Tags:
    """The tags of one group and where each stands on the current session."""

    config: OpcUaPollGroup
    addresses: list[NodeAddress]
    node_ids: list[ua.NodeId | None] = field(default_factory=list)
    #: Per tag: why it is not read or monitored ("" when it is).
    missing: list[str] = field(default_factory=list)
    next_retry: float = 0.0


def _assembler(device: OpcUaDeviceConfig, config: OpcUaPollGroup) -> GroupAssembler:
    return GroupAssembler(
        device.name,
        config.name,
        tuple(t.name for t in config.tags),
        use_source=device.timestamp == "source",
        max_array_lengths=[t.max_array_length or device.max_array_length for t in config.tags],
    )


class ReadGroup:
    def __init__(self, device: OpcUaDeviceConfig, config: OpcUaPollGroup) -> None:
        names = tuple(t.name for t in config.tags)
        self.spec = GroupSpec(config.name, config.interval, names)
        self.tags = Tags(config, [parse_node_address(t.node) for t in config.tags])
        self.assembler = _assembler(device, config)
        self._read_ids: list[ua.ReadValueId] = []
        self._positions: list[int] = []

    async def attach(self, session: Session, resolution: Resolution) -> None:
        self.tags.node_ids = resolution.node_ids
        self.tags.missing = resolution.reasons
        self.assembler.enums = resolution.enums
        self._prepare()

    def _prepare(self) -> None:
        self._positions = [i for i, node in enumerate(self.tags.node_ids) if node is not None]
        self._read_ids = [
            ua.ReadValueId(NodeId=self.tags.node_ids[i], AttributeId=ua.AttributeIds.Value)
            for i in self._positions
        ]

    async def read(self, session: Session) -> list[SampleBatch]:
        timestamp_ns = time.time_ns()
        values = await session.read(self._read_ids)
        if len(self._positions) == len(self.spec.names):
            return [self.assembler.read_batch(timestamp_ns, values, self.tags.missing)]
        results: list[ua.DataValue | None] = [None] * len(self.spec.names)
        for position, value in zip(self._positions, values, strict=True):
            results[position] = value
        return [self.assembler.read_batch(timestamp_ns, results, self.tags.missing)]

    def unresolved(self) -> list[int]:
        return [i for i, node in enumerate(self.tags.node_ids) if node is None]

    async def retry(self, session: Session, positions: list[int], resolution: Resolution) -> None:
        for k, i in enumerate(positions):
            if resolution.node_ids[k] is not None:
                self.tags.node_ids[i] = resolution.node_ids[k]
                self.tags.missing[i] = ""
                self.assembler.enums[i] = resolution.enums[k]
            else:
                self.tags.missing[i] = resolution.reasons[k]
        self._prepare()


class Subscription:
    """One subscription on one session; its callback only ever fills its own buffer."""

    __slots__ = (
        "changes",
        "deadline",
        "dropped",
        "last_seen",
        "lost",
        "published_ns",
        "subscription_id",
    )

    def __init__(self, deadline: float) -> None:
        self.changes: list[tuple[int, ua.DataValue]] = []
        self.last_seen = time.monotonic()
        #: Server time of the latest publish (0: none yet): every change sampled
        #: before it has been delivered.
        self.published_ns = 0
        self.deadline = deadline
        self.lost = ""
        self.subscription_id = 0
        self.dropped = 0

    def on_publish(self, result: ua.PublishResult) -> None:
        """asyncua's publish loop calls this for every response, keepalives included."""
        self.last_seen = time.monotonic()
        message = result.NotificationMessage
        if message.PublishTime is not None:
            self.published_ns = datetime_ns(message.PublishTime)
        data = message.NotificationData
        if not data:
            return
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                self.changes.extend(
                    (item.ClientHandle, item.Value) for item in notification.MonitoredItems
                )
                excess = len(self.changes) - MAX_PENDING_CHANGES
                if excess > 0:
                    del self.changes[:excess]
                    self.dropped += excess
            elif isinstance(notification, ua.StatusChangeNotification):
                # BadTimeout (the server dropped the subscription), BadShutdown (asyncua
                # saw the connection go): either way this subscription is over.
                self.lost = classify(notification.Status.value)[1] or "status change"


class SubscribeGroup:
    def __init__(self, device: OpcUaDeviceConfig, config: OpcUaPollGroup) -> None:
        names = tuple(t.name for t in config.tags)
        self.spec = GroupSpec(config.name, config.interval, names, change_based=True)
        self.tags = Tags(config, [parse_node_address(t.node) for t in config.tags])
        self.assembler = _assembler(device, config)
        self.watchdog_intervals = device.watchdog_intervals
        self._subscription: Subscription | None = None
        #: Changes of an earlier subscription not yet handed on (the session was lost).
        self._carried: list[tuple[int, ua.DataValue]] = []
        self._carried_dropped = 0
        #: Tags to report bad once (unresolved, or their monitored item was refused).
        self._refused: list[tuple[int, str]] = []

    async def attach(self, session: Session, resolution: Resolution) -> None:
        self._carry_over()
        self.tags.node_ids = resolution.node_ids
        self.tags.missing = list(resolution.reasons)
        self.assembler.enums = resolution.enums
        interval_ms = self.tags.config.interval * 1000
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = interval_ms
        # A keepalive in every publishing cycle without changes: that is what lets the
        # watchdog judge silence in publishing intervals.
        params.RequestedMaxKeepAliveCount = 1
        params.RequestedLifetimeCount = max(3, math.ceil(30_000 / interval_ms))
        params.MaxNotificationsPerPublish = 0
        params.PublishingEnabled = True
        params.Priority = 0
        subscription = Subscription(MIN_WATCHDOG_SECONDS)
        result = await session.create_subscription(params, subscription.on_publish)
        subscription.subscription_id = result.SubscriptionId
        subscription.deadline = max(
            MIN_WATCHDOG_SECONDS,
            self.watchdog_intervals
            * (result.RevisedPublishingInterval / 1000)
            * max(1, result.RevisedMaxKeepAliveCount),
        )
        self._subscription = subscription
        self._refused = [(i, r) for i, r in enumerate(self.tags.missing) if r]
        await self._monitor(session, [i for i, n in enumerate(self.tags.node_ids) if n is not None])

    async def _monitor(self, session: Session, positions: list[int]) -> None:
        """Create one monitored item per tag; a refused item fails only its tag."""
        assert self._subscription is not None
        if not positions:
            return
        requests = [self._item_request(i) for i in positions]
        results = await session.create_monitored_items(self._subscription.subscription_id, requests)
        for i, result in zip(positions, results, strict=True):
            quality, reason = classify(result.StatusCode.value)
            if quality is Quality.BAD:
                self.tags.missing[i] = reason
                self._refused.append((i, reason))
            else:
                self.tags.missing[i] = ""

    def _item_request(self, position: int) -> ua.MonitoredItemCreateRequest:
        group = self.tags.config
        tag: OpcUaTag = group.tags[position]
        sampling = tag.sampling_interval
        if sampling is None:
            sampling = (
                group.sampling_interval if group.sampling_interval is not None else group.interval
            )
        parameters = ua.MonitoringParameters()
        parameters.ClientHandle = position
        parameters.SamplingInterval = sampling * 1000
        parameters.QueueSize = tag.queue_size or group.queue_size
        parameters.DiscardOldest = True
        deadband = tag.deadband or group.deadband
        if deadband is not None:
            parameters.Filter = _deadband_filter(deadband)
        request = ua.MonitoredItemCreateRequest()
        request.ItemToMonitor = ua.ReadValueId(
            NodeId=self.tags.node_ids[position], AttributeId=ua.AttributeIds.Value
        )
        request.MonitoringMode = ua.MonitoringMode.Reporting
        request.RequestedParameters = parameters
        return request

    async def read(self, session: Session) -> list[SampleBatch]:
        subscription = self._subscription
        if subscription is None:
            raise DriverReadError(REASON_NOT_MONITORED, "no subscription")
        error: DriverReadError | None = None
        if subscription.lost:
            error = DriverReadError(subscription.lost, "the subscription ended")
        else:
            silent = time.monotonic() - subscription.last_seen
            if silent > subscription.deadline:
                error = DriverReadError(
                    REASON_WATCHDOG,
                    f"no data change or keepalive for {silent:.1f}s "
                    f"(limit {subscription.deadline:.1f}s); reconnecting",
                )
        if error is not None:
            pending = self.pending()
            if pending:
                return pending  # what arrived before the loss; the loss on the next read
            session.mark_lost(error)
            raise error
        changes = self._take_changes()
        refused, self._refused = self._refused, []
        batches = (
            self.assembler.change_batches(time.time_ns(), changes, refused)
            if changes or refused
            else []
        )
        if subscription.published_ns:
            # Changes first: they happened before this publish.
            batches.append(
                SampleBatch.alive(self.assembler.device, self.spec.name, subscription.published_ns)
            )
        return batches

    def pending(self) -> list[SampleBatch]:
        """The changes received but not yet handed on, as batches (read on a lost session)."""
        changes = self._take_changes()
        return self.assembler.change_batches(time.time_ns(), changes) if changes else []

    def _take_changes(self) -> list[tuple[int, ua.DataValue]]:
        """Carried-over changes first (they are older), then the subscription's own."""
        changes, self._carried = self._carried, []
        dropped, self._carried_dropped = self._carried_dropped, 0
        subscription = self._subscription
        if subscription is not None:
            changes += subscription.changes
            subscription.changes = []
            dropped += subscription.dropped
            subscription.dropped = 0
        if dropped:
            log.warning(
                "OPC UA changes dropped: not handed on in time",
                group=self.spec.name,
                dropped=dropped,
            )
        return changes

    def _carry_over(self) -> None:
        """Keep what the old subscription received for the first read on the new one."""
        old = self._subscription
        if old is None or not (old.changes or old.dropped):
            return
        self._carried += old.changes
        self._carried_dropped += old.dropped
        old.changes, old.dropped = [], 0
        excess = len(self._carried) - MAX_PENDING_CHANGES
        if excess > 0:
            del self._carried[:excess]
            self._carried_dropped += excess

    def unresolved(self) -> list[int]:
        return [i for i, reason in enumerate(self.tags.missing) if reason]

    async def retry(self, session: Session, positions: list[int], resolution: Resolution) -> None:
        ready: list[int] = []
        for k, i in enumerate(positions):
            if resolution.node_ids[k] is None:
                # Still not there: say so again (subscribe groups only report changes).
                self.tags.missing[i] = resolution.reasons[k]
                self._refused.append((i, resolution.reasons[k]))
                continue
            self.tags.node_ids[i] = resolution.node_ids[k]
            self.assembler.enums[i] = resolution.enums[k]
            ready.append(i)
        before = set(self.unresolved())
        await self._monitor(session, ready)
        recovered = before - set(self.unresolved())
        if recovered:
            log.info(
                "OPC UA tags now monitored", tags=sorted(self.spec.names[i] for i in recovered)
            )


Group = ReadGroup | SubscribeGroup


def _deadband_filter(deadband: Deadband) -> ua.DataChangeFilter:
    filter_ = ua.DataChangeFilter()
    filter_.Trigger = ua.DataChangeTrigger.StatusValue
    filter_.DeadbandType = (
        ua.DeadbandType.Absolute if deadband.type == "absolute" else ua.DeadbandType.Percent
    )
    filter_.DeadbandValue = deadband.value
    return filter_
