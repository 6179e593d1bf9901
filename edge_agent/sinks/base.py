"""The sink-side contracts: what a sink implements, and what its runner reads from.

A sink only delivers: ``send`` returns once the far end has confirmed the batches
(PUBACK, HTTP 2xx) and raises :class:`~edge_agent.errors.SinkError` otherwise.
Buffering, retry, backoff and counters belong to
:class:`~edge_agent.runtime.sink_runner.SinkRunner`, so sinks stay small.

What only some sinks can do is declared as a capability protocol of its own
(:class:`Lingering`, :class:`RefusalCounting`, :class:`StatusPublisher`,
:class:`MetaPublisher`, :class:`LiveTap`, :class:`Holding`, :class:`TakesCommands`,
:class:`CarriesTopics`, :class:`BrokerConnected`), checked with
``isinstance``: a new sink opts in by having the member, and a typo is a type error,
not a feature silently off.

The runner reads the batches for its sink from a :class:`Feed`. In the agent that is
the sink's view of the durable outbox (:class:`edge_agent.outbox.SinkView`), which
satisfies the protocol without importing it: the outbox sits below the sinks it feeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from edge_agent.model import Pending, SampleBatch

if TYPE_CHECKING:  # the config package loads pydantic; the runners need not
    from edge_agent.config.catalog import DeviceInfo
    from edge_agent.writes.model import WriteGate


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None:
        """Begin connecting; never raises when the far end is unreachable (it reconnects)."""
        ...

    async def send(self, batches: Sequence[SampleBatch]) -> None:
        """Deliver ``batches`` in order; return only after delivery is confirmed."""
        ...

    async def stop(self) -> None:
        """Close cleanly (e.g. publish the retained offline status); idempotent."""
        ...


@runtime_checkable
class Lingering(Protocol):
    """A sink that wants its runner to wait a moment for more batches before a send that is
    not full (the InfluxDB sink: one HTTP request per poll tick rather than per device)."""

    @property
    def linger(self) -> float:
        """Seconds to wait; 0 sends at once."""
        ...


@runtime_checkable
class RefusalCounting(Protocol):
    """A sink whose far end can refuse points for good (InfluxDB: HTTP 400), counted for
    ``/metrics``."""

    @property
    def lines_refused(self) -> int: ...


@runtime_checkable
class EventCounting(Protocol):
    """A sink that counts events of its own beyond deliveries (the Sparkplug sink: sessions,
    births, deaths, commands refused), for ``/metrics``."""

    def event_counts(self) -> Mapping[str, int]:
        """Event name -> count since the sink was made; names stay the same across calls."""
        ...


@runtime_checkable
class BrokerConnected(Protocol):
    """A sink whose connection goes to one broker of a list (the MQTT and Sparkplug sinks):
    the status shows which."""

    @property
    def broker(self) -> str:
        """``host:port`` of the broker connected to, or of the one being tried."""
        ...


@runtime_checkable
class StatusPublisher(Protocol):
    """A sink that can carry the agent's status document (the MQTT sink)."""

    async def publish_status(self, payload: bytes) -> bool:
        """Publish ``payload``; False, without trying, when it cannot now (not connected)."""
        ...


@runtime_checkable
class MetaPublisher(Protocol):
    """A sink that publishes each device's metadata (the MQTT sink's retained meta
    messages). The agent hands it the plant's devices after every reload; the sink
    publishes what changed and clears what is gone, in its own time (now if connected,
    else at the next connection)."""

    def describe_devices(self, devices: Iterable[DeviceInfo]) -> None: ...


@runtime_checkable
class LiveTap(Protocol):
    """A sink that wants every batch as it is collected, beside the outbox (the Sparkplug
    sink: its births carry the current values even while the outbox replays old ones).
    The agent adds ``see_live`` to the pipeline's consumers with the sink and removes it
    with the sink."""

    def see_live(self, batch: SampleBatch) -> None:
        """Called on the loop for every batch; must cost O(1) (keep a reference)."""
        ...


@runtime_checkable
class Holding(Protocol):
    """A sink that may hold its deliveries by design (the Sparkplug sink while its primary
    host is offline, or while its session is not born): its runner does not send then,
    shows :attr:`holding_reason` as the sink's last error, and resumes as soon as
    :meth:`wait_ready` returns, without a backoff in between."""

    @property
    def holding_reason(self) -> str:
        """Why sends are held now; "" when the sink can take a send."""
        ...

    async def wait_ready(self) -> None:
        """Return once the sink can take a send (the runner bounds the wait)."""
        ...


@runtime_checkable
class TakesCommands(Protocol):
    """A sink whose connection also carries write commands in (MQTT ``.../cmd``, Sparkplug
    NCMD/DCMD) and their results and the audit records out. The agent hands it the one
    gate every command goes through (:class:`edge_agent.writes.model.WriteGate`), again
    after a reload; a sink that has no gate refuses every command."""

    def take_commands(self, gate: WriteGate | None) -> None:
        """Route commands to ``gate`` from now on (None: refuse them)."""
        ...

    def publish_audit(self, record: Mapping[str, object]) -> None:
        """Publish one audit record (``edge/{plant}/audit``), best effort: the audit log
        file is the record that is kept; O(1), never raises."""
        ...


#: ``handler(topic, payload, retained)``: a message that arrived, called on the loop;
#: O(1) (queue it), never raises.
TopicHandler = Callable[[str, bytes, bool], None]


@dataclass(frozen=True, slots=True, eq=False)
class Subscription:
    """One topic the agent wants on a sink's connection (remote configuration's
    ``edge/{plant}/config/set``): an exact topic, no wildcards, QoS 1."""

    topic: str
    handler: TopicHandler
    #: Called on the loop after each connection once the broker granted the subscription:
    #: what waited for the connection (a state report) can go now. O(1), never raises.
    on_subscribed: Callable[[], None] | None = None


class TopicCarrier(Protocol):
    """The part of a sink's connection others may use (:class:`CarriesTopics`)."""

    def add(self, subscription: Subscription) -> None:
        """Subscribe after every connection from now on (and now, if connected)."""
        ...

    def remove(self, subscription: Subscription) -> None:
        """No more messages to ``subscription``'s handler."""
        ...

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        """Publish at QoS 1; True once confirmed, False when not connected or not
        confirmed (the caller tries again after the next connection)."""
        ...

    @property
    def is_connected(self) -> bool:
        """Whether the connection is up now."""
        ...


@runtime_checkable
class CarriesTopics(Protocol):
    """A sink whose connection also carries topics of the agent's own beside the data
    (the MQTT sink: remote configuration in, its state report out)."""

    @property
    def topics(self) -> TopicCarrier: ...


class Feed(Protocol):
    """The batches one sink has not had confirmed yet, oldest first, as its runner reads them.

    Read-only: who appends, and for how many sinks, is the writer's business (the
    outbox stores each batch once and every sink's feed has it). Acknowledgement is by
    sequence number, so batches dropped while others are in flight never make the
    runner acknowledge the wrong ones.
    """

    async def peek(self, max_batches: int) -> list[Pending]:
        """Wait until at least one batch is pending; return up to ``max_batches`` in order.

        Until :meth:`ack`, a peek starts with the same batches again (a retry, or a
        linger that lets more join them)."""
        ...

    def ack(self, seq: int) -> None:
        """Forget every batch with a sequence number ``<= seq`` (delivery confirmed)."""
        ...

    def __len__(self) -> int:
        """Batches not confirmed yet."""
        ...

    @property
    def dropped_batches(self) -> int:
        """Batches of this sink given up before delivery (a bound on memory or disk)."""
        ...
