"""paho-mqtt 2.x driven by the running asyncio loop: no paho network thread, no executor.

paho is a sans-I/O-friendly client when used through its "external event loop"
hooks: it tells us when its socket opens and closes and when it has bytes to write
(``on_socket_*`` callbacks), and we call ``loop_read`` / ``loop_write`` when the
socket is ready and ``loop_misc`` about once a second for keepalive. That is what
aiomqtt 2.x does, too.

aiomqtt still runs paho's blocking ``connect()`` in an executor thread, because
paho opens the TCP connection (and does the TLS handshake) itself with blocking
calls. We do not: :meth:`MqttConnection.connect` opens the socket with asyncio
(:func:`edge_agent.sinks.tcp.open_socket`: ``loop.sock_connect``, then a
non-blocking TLS handshake) and hands the connected socket to paho, whose
``reconnect()`` then only sends CONNECT. The hand-over is the one place that
touches paho internals: :class:`MqttClient` overrides the private
``Client._create_socket`` (present in paho 2.0 to 2.2; a test exercises it, and
the pyproject pin ``paho-mqtt<3`` bounds the risk).

One connection per :class:`MqttConnection` at a time; the owner reconnects by
calling :meth:`MqttConnection.connect` again after :meth:`wait_closed` returns.

Besides publishing, a connection can subscribe (messages are handed to the owner's
``on_message`` callback, on the loop) and *fence*: a round trip that proves the broker
has read every packet sent before it on this connection. That is how a QoS 0 publish
(which Sparkplug B prescribes for its data) is confirmed at all: MQTT brokers handle a
connection's packets in order, so the UNSUBACK of an UNSUBSCRIBE sent after the
messages arrives only once the broker has taken them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.sinks.mqtt_client import (
    MessageHandler,
    MqttClient,
    MqttConnectError,
    MqttError,
    PendingDelivery,
    Will,
)
from edge_agent.sinks.tcp import OpenError, open_socket

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

__all__ = ["MessageHandler", "MqttConnectError", "MqttConnection", "MqttError", "Will"]

log = structlog.get_logger("edge_agent.sink.mqtt")

#: Reason code paho gives a client-side loss (EOF, socket error).
_UNSPECIFIED: Final = 0x80

#: How often paho's ``loop_misc`` runs: sends PINGREQ and notices a missing PINGRESP.
MISC_INTERVAL_S: Final = 1.0

#: Topic of the fence's UNSUBSCRIBE: never subscribed, so the round trip changes nothing.
_FENCE_TOPIC: Final = "edge-agent/fence"


class MqttConnection:
    """One MQTT 3.1.1 connection to one broker, run on the current asyncio loop.

    ``connect`` makes one attempt and raises :class:`MqttConnectError` on failure;
    reconnecting (and backoff) is the owner's job, so that the owner decides what
    happens between attempts. ``publish`` returns once every message is confirmed
    (PUBACK for QoS 1, written to the socket for QoS 0).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        keepalive: int = 30,
        username: str = "",
        password: str = "",
        ssl_context: ssl.SSLContext | None = None,
        will: Will | None = None,
        max_inflight: int = 100,
        connect_timeout: float = 10.0,
        on_message: MessageHandler | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        # reconnect_on_failure=False: on a CONNACK asking for an older protocol paho
        # would otherwise call reconnect() from inside loop_read, i.e. reopen a socket
        # synchronously; we want the failure reported and the owner to retry.
        client = MqttClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        if username:
            client.username_pw_set(username, password or None)
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        client.max_inflight_messages_set(max_inflight)
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_suback
        client.on_unsubscribe = self._on_suback
        self._on_message_handler = on_message
        if on_message is not None:
            client.on_message = self._on_message
        self._client = client
        self._keepalive = keepalive
        self.retarget(host, port, ssl_context)
        self._fd = -1
        self._misc_task: asyncio.Task[None] | None = None
        self._connack: asyncio.Future[MqttConnectError | None] | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._connected = False
        self._pending: dict[int, PendingDelivery] = {}
        #: SUBSCRIBE / UNSUBSCRIBE waiting for their acknowledgement, by message id.
        self._acks: dict[int, asyncio.Future[list[int] | MqttError]] = {}
        self.disconnect_reason = ""

    # ------------------------------------------------------------------ state

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the loss (or close) of the socket."""
        return self._connected

    async def wait_closed(self) -> str:
        """Wait until the current connection is gone; return why (for logging)."""
        await self._closed.wait()
        return self.disconnect_reason

    def retarget(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        """Aim the next :meth:`connect` at another broker (a failover); not while connected."""
        if self._client.socket() is not None:
            raise RuntimeError("MqttConnection.retarget() called while a connection is open")
        self.host, self.port, self._ssl_context = host, port, ssl_context
        self._client.connect_async(host, port, self._keepalive)  # records them; opens nothing

    def set_will(self, will: Will | None) -> None:
        """Replace the will; it goes out with the next :meth:`connect` (a Sparkplug edge
        node's NDEATH carries a new bdSeq for every session)."""
        if will is None:
            self._client.will_clear()
        else:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)

    # ------------------------------------------------------------------ connect

    async def connect(self) -> None:
        """Open TCP (and TLS), send CONNECT, wait for a successful CONNACK."""
        if self._client.socket() is not None:
            raise RuntimeError("MqttConnection.connect() called while a connection is open")
        loop = asyncio.get_running_loop()
        connack: asyncio.Future[MqttConnectError | None] = loop.create_future()
        self._connack = connack
        self.disconnect_reason = ""
        # QoS 1 messages paho still holds from the last connection would be re-sent by
        # paho after this CONNACK; the sink runner re-sends the same batches itself,
        # so forget paho's copies (one retry mechanism, not two).
        self._client.drop_out_messages()
        try:
            async with asyncio.timeout(self.connect_timeout):
                sock = await self._open_socket()
                self._client.prepared_socket = sock
                self._closed.clear()
                rc = self._client.reconnect()  # only queues CONNECT: no I/O here
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise MqttConnectError(f"{self._where}: {mqtt.error_string(rc)}")
                failure = await connack
        except TimeoutError:
            self.abort()
            raise MqttConnectError(
                f"{self._where}: no connection within {self.connect_timeout:g} s"
            ) from None
        except BaseException:
            # Our own MqttConnectError, or cancellation: never leave a half-open socket.
            self.abort()
            raise
        finally:
            self._connack = None
            if self._client.socket() is None:
                self._closed.set()
        if failure is not None:
            self.abort()
            raise failure
        if not self._connected:  # CONNACK, then closed before we resumed
            raise MqttConnectError(f"{self._where}: connection closed right after CONNACK")

    @property
    def _where(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def _open_socket(self) -> socket.socket:
        try:
            return await open_socket(self.host, self.port, self._ssl_context)
        except OpenError as exc:
            raise MqttConnectError(f"{self._where}: {exc}") from exc.__cause__

    # ------------------------------------------------------------------ publish

    async def publish(
        self,
        messages: Sequence[tuple[str, bytes]],
        *,
        qos: int,
        retain: bool = False,
        idle_timeout: float,
    ) -> None:
        """Publish ``(topic, payload)`` messages in order; return when all are confirmed.

        Raises :class:`MqttError` if not connected, if the connection drops first, or
        if ``idle_timeout`` seconds pass without any confirmation arriving: the limit
        is on progress, not on the whole call, so a large backlog over a slow link is
        not cut off while it is moving.
        """
        if not self._connected:
            raise MqttError(f"{self._where}: not connected")
        loop = asyncio.get_running_loop()
        delivery = PendingDelivery(loop.create_future(), loop.time())
        try:
            for topic, payload in messages:
                # Synchronous from here to the await: the socket cannot close under us,
                # and paho only queues (it writes when our writer callback runs).
                info = self._client.publish(topic, payload, qos, retain)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise MqttError(f"{self._where}: publish failed: {mqtt.error_string(info.rc)}")
                if not info.is_published():
                    delivery.remaining.add(info.mid)
                    self._pending[info.mid] = delivery
            if not delivery.remaining:
                return
            while True:
                left = delivery.last_progress + idle_timeout - loop.time()
                if left <= 0:
                    raise MqttError(
                        f"{self._where}: {len(delivery.remaining)} of {len(messages)} messages "
                        f"unconfirmed after {idle_timeout:g} s without progress"
                    )
                done, _ = await asyncio.wait({delivery.done}, timeout=left)
                if done:
                    failure = delivery.done.result()
                    if failure is not None:
                        raise failure
                    return
        finally:
            for mid in delivery.remaining:
                self._pending.pop(mid, None)

    # ------------------------------------------------------------------ subscribe, fence

    async def subscribe(self, topics: Sequence[tuple[str, int]], *, within: float) -> list[int]:
        """Subscribe to ``(filter, qos)`` pairs; return the granted QoS of each.

        Raises :class:`MqttError` when not connected, when the connection drops first,
        when no SUBACK comes within ``within`` seconds, or when the broker refuses a
        filter (SUBACK 0x80): a subscription the owner relies on must not be assumed."""
        granted = await self._round_trip(
            lambda: self._client.subscribe(list(topics)), within, "SUBACK"
        )
        refused = [topic for (topic, _), code in zip(topics, granted, strict=False) if code >= 0x80]
        if refused or len(granted) != len(topics):
            raise MqttError(f"{self._where}: the broker refused the subscription to {refused}")
        return granted

    async def fence(self, *, within: float) -> None:
        """Return once the broker has read everything this connection sent before the call.

        One UNSUBSCRIBE of a topic never subscribed, answered in order after the packets
        before it: the confirmation of QoS 0 messages. Raises :class:`MqttError` like
        :meth:`subscribe`."""
        await self._round_trip(lambda: self._client.unsubscribe(_FENCE_TOPIC), within, "UNSUBACK")

    async def _round_trip(
        self,
        send: Callable[[], tuple[MQTTErrorCode, int | None]],
        within: float,
        answer: str,
    ) -> list[int]:
        if not self._connected:
            raise MqttError(f"{self._where}: not connected")
        future: asyncio.Future[list[int] | MqttError] = asyncio.get_running_loop().create_future()
        rc, mid = send()  # synchronous: paho only queues the packet
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"{self._where}: {answer} request failed: {mqtt.error_string(rc)}")
        self._acks[mid] = future
        try:
            async with asyncio.timeout(within):
                result = await future
        except TimeoutError:
            raise MqttError(f"{self._where}: no {answer} within {within:g} s") from None
        finally:
            self._acks.pop(mid, None)
        if isinstance(result, MqttError):
            raise result
        return result

    # ------------------------------------------------------------------ close

    async def disconnect(self, grace_s: float = 2.0) -> None:
        """Send DISCONNECT (so the broker does not publish the will) and wait for the close.

        After ``grace_s`` without the close (a stuck socket) the connection is aborted.
        """
        if self._client.socket() is None:
            return
        self._client.disconnect()
        try:
            async with asyncio.timeout(grace_s):
                await self._closed.wait()
        except TimeoutError:
            self.abort()

    def abort(self, reason: str = "aborted by the client") -> None:
        """Drop the connection now, without DISCONNECT: the broker will publish the will.

        Uses paho's own loss path (shut the socket down, let ``loop_read`` see EOF), so
        paho's state, our readers and waiters all end up as for any other loss.
        """
        sock = self._client.socket()
        if sock is None:
            return
        if isinstance(sock, socket.socket):
            # socket.socket.shutdown even for an SSLSocket: SSLSocket.shutdown() would
            # detach the TLS layer and let paho parse raw TLS records as MQTT.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        # After SHUT_RD, recv() never blocks: it returns what was already buffered,
        # then EOF (or raises), which paho handles as a lost connection.
        while self._client.socket() is sock:
            self._client.loop_read()
        # Waiters of wait_closed() have not resumed yet: they will see this reason.
        self.disconnect_reason = reason

    async def aclose(self) -> None:
        """Abort any connection and wait for the helper task to finish. Idempotent."""
        self.abort()
        task, self._misc_task = self._misc_task, None
        if task is not None:
            task.cancel()
            # asyncio.wait, not "await task": our own cancellation must still propagate.
            await asyncio.wait({task})

    # ------------------------------------------------------------------ paho callbacks

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        loop.add_reader(self._fd, self._readable, sock)
        self._misc_task = loop.create_task(self._misc_loop(sock), name=f"mqtt-misc-{self._where}")

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        loop = asyncio.get_running_loop()
        if self._fd >= 0:
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
            self._fd = -1
        task = self._misc_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._connected = False
        if not self.disconnect_reason:
            self.disconnect_reason = "connection closed"
        pending, self._pending = self._pending, {}
        connack, self._connack = self._connack, None
        # Wake the owner first: whatever happens below, it must learn of the loss.
        self._closed.set()
        failure = MqttError(f"{self._where}: connection lost before delivery was confirmed")
        for delivery in set(pending.values()):
            if not delivery.done.done():
                delivery.done.set_result(failure)
        acks, self._acks = self._acks, {}
        for ack in acks.values():
            if not ack.done():
                ack.set_result(failure)
        if connack is not None and not connack.done():
            connack.set_result(MqttConnectError(f"{self._where}: connection closed before CONNACK"))

    def _on_socket_register_write(
        self, client: mqtt.Client, userdata: Any, sock: SocketLike
    ) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().add_writer(self._fd, self._writable)

    def _on_socket_unregister_write(
        self, client: mqtt.Client, userdata: Any, sock: SocketLike
    ) -> None:
        if self._fd >= 0:
            asyncio.get_running_loop().remove_writer(self._fd)

    def _readable(self, sock: SocketLike) -> None:
        self._client.loop_read()
        if not isinstance(sock, ssl.SSLSocket):
            return
        # TLS may have decrypted more than loop_read consumed; the fd will not become
        # readable again for bytes already inside the SSL object, so drain them now.
        while self._is_current(sock) and sock.pending():
            self._client.loop_read()

    def _is_current(self, sock: object) -> bool:
        # A function, not an inline "is": mypy would narrow sock to paho's SocketLike.
        return self._client.socket() is sock

    def _writable(self) -> None:
        self._client.loop_write()

    async def _misc_loop(self, sock: SocketLike) -> None:
        """Keepalive: PINGREQ when idle, and a close when the PINGRESP does not come."""
        while True:
            await asyncio.sleep(MISC_INTERVAL_S)
            if self._client.socket() is not sock:
                return
            self._client.loop_misc()

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connack is None or self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_result(
                MqttConnectError(f"{self._where}: broker refused the connection: {reason}")
            )
        else:
            self._connected = True
            self._connack.set_result(None)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # paho calls this right before or right after on_socket_close; either way the
        # reason is in place before anyone awaiting wait_closed() resumes.
        if flags.is_disconnect_packet_from_server or reason.value != _UNSPECIFIED:
            self.disconnect_reason = str(reason)
        else:  # what paho reports for EOF or a socket error: say it plainly
            self.disconnect_reason = "connection closed by the broker or the network"

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        delivery = self._pending.pop(mid, None)
        if delivery is None:  # confirmation of a message whose publish() gave up
            return
        delivery.remaining.discard(mid)
        delivery.last_progress = asyncio.get_running_loop().time()
        if not delivery.remaining and not delivery.done.done():
            delivery.done.set_result(None)

    def _on_suback(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        future = self._acks.get(mid)
        if future is not None and not future.done():
            future.set_result([reason.value for reason in reasons])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        handler = self._on_message_handler
        if handler is None:
            return
        try:
            handler(message.topic, bytes(message.payload), bool(message.retain))
        except Exception:
            # Called from paho's loop_read: an exception here would end reading for good.
            log.exception("mqtt message handler failed", topic=message.topic)
