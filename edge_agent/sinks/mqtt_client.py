"""The small parts of the MQTT connection (:mod:`edge_agent.sinks.mqtt_bridge`): its errors,
the will, a pending delivery, the message handler's shape, and the paho client that takes
the socket we opened."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

from edge_agent.errors import SinkError

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

#: ``on_message(topic, payload, retained)``: an incoming message, called on the loop.
MessageHandler = Callable[[str, bytes, bool], None]


class MqttError(SinkError):
    """An MQTT operation failed; the batches involved stay buffered and are retried."""


class MqttConnectError(MqttError):
    """The connection to the broker could not be established (TCP, TLS or CONNACK)."""


@dataclass(slots=True)
class Will:
    """The message the broker publishes for us if our connection dies uncleanly."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True, eq=False)  # eq=False: hashed by identity, kept in sets
class PendingDelivery:
    """The messages of one :meth:`MqttConnection.publish` call still waiting for confirmation."""

    done: asyncio.Future[MqttError | None]
    last_progress: float
    remaining: set[int] = field(default_factory=set)


class MqttClient(mqtt.Client):
    """A paho client that uses the socket we opened instead of opening one itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared_socket: socket.socket | None = None

    def _create_socket(self) -> SocketLike:
        # Called by reconnect(). paho would call socket.create_connection() and do a
        # blocking TLS handshake here; we have already done both without blocking.
        sock, self.prepared_socket = self.prepared_socket, None
        if sock is None:
            raise ConnectionError("no socket prepared: connect through MqttConnection.connect()")
        return sock
