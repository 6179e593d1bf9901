"""Extra topics on an MQTT sink's connection (:class:`~edge_agent.sinks.base.CarriesTopics`).

The hook remote configuration rides (docs/REMOTE_CONFIG.md): a list of exact topics,
each with its handler, subscribed at QoS 1 after every connection (sessions are clean,
so the broker forgets them with the connection), and a QoS 1 publish for the
answers (retained or not). Messages on other topics go to the sink's own handler (write commands).

A subscription added while the sink is connected takes effect by making the connection
anew (the outbox keeps every batch; this happens only when a reload moves remote
configuration to another sink or turns it on): the sink's supervisor then subscribes as
after any connection, with no second path to keep right.
"""

from __future__ import annotations

from typing import Final

import structlog

from edge_agent.sinks.base import Subscription, TopicHandler
from edge_agent.sinks.mqtt_bridge import MqttConnection, MqttError

#: Why the connection is made anew when a subscription is added while connected: the
#: sink reconnects to the same broker at once (not a failover, no backoff).
RESUBSCRIBING: Final = "reconnecting to subscribe"

log = structlog.get_logger("edge_agent.sink.mqtt")


class MqttTopics:
    """The extra subscriptions of one MQTT sink (see the module docstring)."""

    def __init__(self, sink: str, *, ack_timeout: float = 10.0) -> None:
        self.sink = sink
        self._ack_timeout = ack_timeout
        #: Set by the sink right after it made the connection.
        self.connection: MqttConnection | None = None
        self._subscriptions: list[Subscription] = []
        #: Subscriptions granted (one per connection that had any).
        self.granted = 0

    def dispatcher(self, fallback: TopicHandler | None) -> TopicHandler:
        """The connection's message handler: ours first, then ``fallback``."""

        def dispatch(topic: str, payload: bytes, retained: bool) -> None:
            for subscription in self._subscriptions:
                if subscription.topic == topic:
                    subscription.handler(topic, payload, retained)
                    return
            if fallback is not None:
                fallback(topic, payload, retained)

        return dispatch

    def add(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            return
        self._subscriptions.append(subscription)
        connection = self.connection
        if connection is not None and connection.connected:
            connection.abort(f"{RESUBSCRIBING}: {subscription.topic}")

    @property
    def is_connected(self) -> bool:
        connection = self.connection
        return connection is not None and connection.connected

    def remove(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    async def connected(self) -> None:
        """After every connection: subscribe; if the broker does not grant it, drop the
        connection (the next one tries again) rather than run deaf to the topic."""
        connection = self.connection
        subscriptions = list(self._subscriptions)
        if connection is None or not subscriptions or not connection.connected:
            return
        topics = [(s.topic, 1) for s in subscriptions]
        try:
            await connection.subscribe(topics, within=self._ack_timeout)
        except MqttError as exc:
            log.warning("mqtt topics not subscribed", sink=self.sink, error=str(exc))
            connection.abort("subscription not granted")
            return
        self.granted += 1
        log.info("mqtt topics subscribed", sink=self.sink, topics=[t for t, _ in topics])
        for subscription in subscriptions:
            if subscription.on_subscribed is not None:
                subscription.on_subscribed()

    async def publish(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        connection = self.connection
        if connection is None or not connection.connected:
            return False
        try:
            await connection.publish(
                [(topic, payload)], qos=1, retain=retain, idle_timeout=self._ack_timeout
            )
        except MqttError as exc:
            log.warning("mqtt message not confirmed", sink=self.sink, topic=topic, error=str(exc))
            return False
        return True
