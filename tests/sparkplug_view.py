"""The story's traffic arranged for the assertions: sessions, what the node sent in each,
what the broker delivered, the host's STATE timeline.

"Sent" comes from the wire tap (every PUBLISH exactly as the node sent it: topic, QoS,
retain flag, payload), "delivered" from the recorder (what a host application receives,
including the Will the broker publishes for a killed node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.sparkplug_story import DEVICE_IDS, GROUP, HOST, NODE, Story
from tests.sparkplug_support import NAMESPACE, Captured, decode
from tests.sparkplug_wire import CONNECT, DISCONNECT, Connect, parse_connect, parse_publish

NODE_TYPES = ("NBIRTH", "NDEATH", "NDATA", "NCMD")
DEVICE_TYPES = ("DBIRTH", "DDEATH", "DDATA", "DCMD")
BIRTHS = ("NBIRTH", "DBIRTH")
DATA = ("NDATA", "DDATA")
#: A payload timestamp "denotes the time the message was sent": how far from the moment the
#: tap saw it go out it may be (loopback; the agent stamps just before publishing).
SENT_WINDOW_MS = 5_000


@dataclass(frozen=True)
class Sent:
    """One PUBLISH from the node, as the wire tap saw it."""

    session: int
    order: int
    at_ns: int
    topic: str
    qos: int
    retain: bool
    payload: bytes

    @property
    def levels(self) -> list[str]:
        return self.topic.split("/")

    @property
    def message_type(self) -> str:
        levels = self.levels
        return levels[2] if len(levels) > 2 else ""

    @property
    def device(self) -> str:
        levels = self.levels
        return levels[4] if len(levels) > 4 else ""

    @cached_property
    def decoded(self) -> pb.Payload:
        return decode(self.payload)

    @property
    def at_ms(self) -> int:
        return self.at_ns // 1_000_000

    def __str__(self) -> str:
        return f"#{self.order} (session {self.session}) {self.topic}"


@dataclass
class Session:
    number: int
    connect: Connect
    connect_order: int
    connect_ns: int
    sent: list[Sent] = field(default_factory=list)
    subscribed: list[tuple[int, str, int]] = field(default_factory=list)  # (order, filter, qos)
    disconnect_order: int | None = None
    closed_ns: int = 0
    closed_by: str = ""

    @property
    def will(self) -> pb.Payload | None:
        if self.connect.will_payload is None:
            return None
        return decode(self.connect.will_payload)

    @property
    def will_bdseq(self) -> int | None:
        will = self.will
        return None if will is None else bdseq_of(will)

    def of_type(self, *types: str) -> list[Sent]:
        return [s for s in self.sent if s.message_type in types]


def bdseq_of(payload: pb.Payload) -> int | None:
    for metric in payload.metrics:
        if metric.name == "bdSeq":
            return int(metric.long_value)
    return None


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching (+ one level, # the rest)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t) or (part not in ("+", t[i])):
            return False
    return len(f) == len(t)


class View:
    def __init__(self, story: Story) -> None:
        self.story = story
        self.sessions: dict[int, Session] = {}
        for packet in story.packets:
            if packet.kind == CONNECT:
                self.sessions[packet.session] = Session(
                    packet.session, parse_connect(packet), packet.order, packet.at_ns
                )
                continue
            session = self.sessions.get(packet.session)
            if session is None:
                continue
            if packet.kind == 3:
                p = parse_publish(packet)
                session.sent.append(
                    Sent(
                        packet.session,
                        packet.order,
                        packet.at_ns,
                        p.topic,
                        p.qos,
                        p.retain,
                        p.payload,
                    )
                )
            elif packet.kind == 8:
                from tests.sparkplug_wire import parse_subscribe

                for topic_filter, qos in parse_subscribe(packet):
                    session.subscribed.append((packet.order, topic_filter, qos))
            elif packet.kind == DISCONNECT:
                session.disconnect_order = packet.order
        for number, (at_ns, side) in story.closed.items():
            if number in self.sessions:
                self.sessions[number].closed_ns = at_ns
                self.sessions[number].closed_by = side

    # ------------------------------------------------------------------ the node's side

    @property
    def sent(self) -> list[Sent]:
        return [s for session in self.sessions.values() for s in session.sent]

    def sent_of(self, *types: str) -> list[Sent]:
        return [s for s in self.sent if s.message_type in types]

    @property
    def sparkplug_sent(self) -> list[Sent]:
        """Every publish but the node's own NDEATH (which carries no seq)."""
        return [s for s in self.sent if s.message_type != "NDEATH"]

    def phase_sent(self, phase: str, *types: str) -> list[Sent]:
        span = self.story.phases[phase]
        return [s for s in self.sent_of(*types) if span.start_ns <= s.at_ns <= span.end_ns]

    def session_at(self, at_ns: int) -> Session | None:
        for session in self.sessions.values():
            if session.connect_ns <= at_ns and (
                not session.closed_ns or at_ns <= session.closed_ns
            ):
                return session
        return None

    # ------------------------------------------------------------------ the host's side

    @property
    def delivered(self) -> list[Captured]:
        return self.story.delivered

    def delivered_of(self, message_type: str) -> list[Captured]:
        return [m for m in self.delivered if m.message_type == message_type]

    # ------------------------------------------------------------------ expectations

    node_topic_prefix = f"{NAMESPACE}/{GROUP}"
    device_ids = frozenset(DEVICE_IDS.values())

    def node_topic(self, message_type: str) -> str:
        return f"{NAMESPACE}/{GROUP}/{message_type}/{NODE}"

    def device_topic(self, message_type: str, device: str) -> str:
        return f"{NAMESPACE}/{GROUP}/{message_type}/{NODE}/{device}"

    state_topic = f"{NAMESPACE}/STATE/{HOST}"

    def host_online_at(self, at_ns: int) -> bool:
        """Whether the primary host was online at ``at_ns`` by the STATE messages published
        so far (the newest timestamp wins, as the spec orders them)."""
        newest: tuple[int, bool] | None = None
        for published_ns, online, ts in self.story.host.published:
            if published_ns > at_ns:
                break
            if newest is None or ts >= newest[0]:
                newest = (ts, online)
        return newest is not None and newest[1]
