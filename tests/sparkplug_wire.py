"""A wire tap between the edge node and the broker: every MQTT packet the node sends.

A host application only sees what the broker delivers: not the CONNECT packet (clean
session flag, the Will's topic, payload, QoS and retain), not the SUBSCRIBE packets and
their order relative to the births, not the flags a PUBLISH was sent with (a broker
delivers at the subscription's QoS, and clears the retain flag on live messages). The
Sparkplug TCK reads those inside its broker (a HiveMQ extension); we put a TCP relay on
127.0.0.1 in front of mosquitto and parse the client-to-broker stream (MQTT 3.1.1, the
version the agent speaks). Bytes are forwarded unchanged, as they arrive.

When either side closes, the relay closes the other: a killed agent's socket closes,
and mosquitto, seeing no DISCONNECT, publishes the Will, as it would with no relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from tests.servers import LOOPBACK

CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 1, 3, 8, 10, 12, 14
PACKET_NAMES = {
    1: "CONNECT",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    10: "UNSUBSCRIBE",
    12: "PINGREQ",
    14: "DISCONNECT",
}


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet from the node. ``session``: the relayed connection it came on (1, 2, ...);
    ``order``: its place among every packet of every session; ``at_ns``: wall clock."""

    session: int
    order: int
    at_ns: int
    kind: int
    flags: int
    body: bytes

    @property
    def name(self) -> str:
        return PACKET_NAMES.get(self.kind, f"type {self.kind}")


@dataclass(frozen=True, slots=True)
class Connect:
    protocol_name: str
    protocol_level: int
    clean_session: bool
    keepalive: int
    client_id: str
    will_topic: str | None
    will_payload: bytes | None
    will_qos: int
    will_retain: bool


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool


def _string(body: bytes, at: int) -> tuple[bytes, int]:
    size = int.from_bytes(body[at : at + 2], "big")
    return body[at + 2 : at + 2 + size], at + 2 + size


def parse_connect(packet: Packet) -> Connect:
    body = packet.body
    name, at = _string(body, 0)
    level, flags = body[at], body[at + 1]
    keepalive = int.from_bytes(body[at + 2 : at + 4], "big")
    client_id, at = _string(body, at + 4)
    will_topic: bytes | None = None
    will_payload: bytes | None = None
    if flags & 0x04:
        will_topic, at = _string(body, at)
        will_payload, at = _string(body, at)
    return Connect(
        protocol_name=name.decode(),
        protocol_level=level,
        clean_session=bool(flags & 0x02),
        keepalive=keepalive,
        client_id=client_id.decode(),
        will_topic=None if will_topic is None else will_topic.decode(),
        will_payload=will_payload,
        will_qos=(flags >> 3) & 0x03,
        will_retain=bool(flags & 0x20),
    )


def parse_publish(packet: Packet) -> Publish:
    qos = (packet.flags >> 1) & 0x03
    topic, at = _string(packet.body, 0)
    if qos:
        at += 2  # packet identifier
    return Publish(
        topic=topic.decode(),
        payload=packet.body[at:],
        qos=qos,
        retain=bool(packet.flags & 0x01),
        dup=bool(packet.flags & 0x08),
    )


def parse_subscribe(packet: Packet) -> list[tuple[str, int]]:
    """(topic filter, requested QoS) of a SUBSCRIBE."""
    body, at, out = packet.body, 2, []
    while at < len(body):
        topic, at = _string(body, at)
        out.append((topic.decode(), body[at]))
        at += 1
    return out


class _Parser:
    """Splits a byte stream into MQTT packets (fixed header, remaining length, body)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buffer += data
        out = []
        while True:
            parsed = self._next()
            if parsed is None:
                return out
            out.append(parsed)

    def _next(self) -> tuple[int, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        length, multiplier, at = 0, 1, 1
        while True:
            if at >= len(buf):
                return None
            byte = buf[at]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            at += 1
            if not byte & 0x80:
                break
        if len(buf) < at + length:
            return None
        kind, flags = buf[0] >> 4, buf[0] & 0x0F
        body = bytes(buf[at : at + length])
        del buf[: at + length]
        return kind, flags, body


@dataclass
class WireTap:
    """The relay: listen on ``port`` (free loopback port), forward to the broker's."""

    broker_port: int
    packets: list[Packet] = field(default_factory=list)
    #: session -> wall clock (ns) when its connection closed, and which side closed it.
    closed: dict[int, tuple[int, str]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _sessions: int = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._serve(reader, writer)
        finally:
            self._handlers.discard(handler)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._sessions += 1
        session = self._sessions
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self.broker_port)
        except OSError:
            # The broker is down. Record what the node sends anyway (its CONNECT, which
            # counts for the bdSeq rule), then close: the node sees the connection fail.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.3):
                    await self._relay(reader, None, session)
            self.closed[session] = (time.time_ns(), "broker unreachable")
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        node_to_broker = asyncio.create_task(
            self._relay(reader, up_writer, session), name=f"wiretap-up-{session}"
        )
        broker_to_node = asyncio.create_task(
            self._relay(up_reader, writer, None), name=f"wiretap-down-{session}"
        )
        self._tasks |= {node_to_broker, broker_to_node}
        try:
            done, _ = await asyncio.wait(
                {node_to_broker, broker_to_node}, return_when=asyncio.FIRST_COMPLETED
            )
            side = "node" if node_to_broker in done else "broker"
            self.closed.setdefault(session, (time.time_ns(), side))
        finally:
            for task in (node_to_broker, broker_to_node):
                task.cancel()
            await asyncio.wait({node_to_broker, broker_to_node})
            self._tasks -= {node_to_broker, broker_to_node}
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    async def _relay(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter | None,
        session: int | None,
    ) -> None:
        """Forward until EOF; ``session`` given: parse and record (node to broker)."""
        parser = _Parser() if session is not None else None
        while data := await self._read(reader):
            if parser is not None and session is not None:
                now = time.time_ns()
                for kind, flags, body in parser.feed(data):
                    packet = Packet(session, len(self.packets), now, kind, flags, body)
                    self.packets.append(packet)
            if writer is None:
                continue
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.read(65536)
        except OSError:
            return b""

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        if self._handlers:
            await asyncio.wait(self._handlers)

    # ------------------------------------------------------------------ views

    def connects(self) -> list[tuple[Packet, Connect]]:
        return [(p, parse_connect(p)) for p in self.packets if p.kind == CONNECT]

    def publishes(self) -> list[tuple[Packet, Publish]]:
        return [(p, parse_publish(p)) for p in self.packets if p.kind == PUBLISH]

    def subscribes(self) -> list[tuple[Packet, list[tuple[str, int]]]]:
        return [(p, parse_subscribe(p)) for p in self.packets if p.kind == SUBSCRIBE]
