"""The brokers of an MQTT or Sparkplug sink: their TLS contexts, and the switch between them.

:func:`brokers_of` turns the sink's ``host:`` or ``brokers:`` into connection targets
once, when the sink is built: every TLS context is made then (an unreadable certificate
is a :class:`~edge_agent.errors.ConfigError` at build, not a surprise at the first
failover), an endpoint's own ``tls`` replacing the sink's.

:class:`BrokerSwitch` aims the sink's one :class:`~edge_agent.sinks.mqtt_bridge.MqttConnection`
at the broker :class:`~edge_agent.sinks.broker_rotation.BrokerRotation` picks, counts the
failovers (a connection made to another broker than the previous one) and logs each once,
with where from and where to.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import structlog

from edge_agent.config.mqtt import MqttBrokerConfig, MqttTls
from edge_agent.errors import ConfigError
from edge_agent.sinks.broker_rotation import BrokerRotation, broker_order
from edge_agent.sinks.mqtt_bridge import MessageHandler, MqttConnection, Will

log = structlog.get_logger("edge_agent.sink.mqtt")


@dataclass(frozen=True, slots=True)
class Broker:
    """One broker as the connection reaches it."""

    host: str
    port: int
    ssl_context: ssl.SSLContext | None
    #: ``host:port``, as the logs and the status show it.
    address: str


def brokers_of(config: MqttBrokerConfig) -> list[Broker]:
    """The sink's brokers in the order they are tried (``broker_order``), TLS contexts made."""
    contexts: dict[MqttTls, ssl.SSLContext] = {}
    brokers = []
    for index, endpoint in enumerate(config.endpoints()):
        tls = config.endpoint_tls(endpoint)
        context = None
        if tls is not None:
            # One context per distinct setting: ten nodes behind one CA load it once.
            context = contexts.get(tls)
            if context is None:
                where = "tls" if endpoint.tls is None else f"brokers[{index}].tls"
                context = contexts[tls] = tls_context(tls, config.name, where)
        brokers.append(Broker(endpoint.host, endpoint.port, context, endpoint.address))
    key = f"{config.name}|{','.join(e.address for e in config.endpoints())}"
    return broker_order(brokers, config.broker_order, key)


def tls_context(tls: MqttTls, sink: str, field: str = "tls") -> ssl.SSLContext:
    """TLS client context of sink ``sink`` (MQTT, Sparkplug): verification of the broker's
    certificate and host name by default. ``field``: where the settings are, for errors."""
    where = f"sinks.{sink}.{field}"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if tls.ca_file is not None:
            context.load_verify_locations(cafile=tls.ca_file)
        else:
            context.load_default_certs()
        if tls.cert_file is not None:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        elif tls.key_file is not None:
            raise ConfigError([f"{where}: key_file needs cert_file"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([f"{where}: cannot load certificates: {exc}"]) from exc
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        log.warning(
            "mqtt TLS certificate verification is off: the broker is not authenticated",
            sink=sink,
        )
    return context


class BrokerSwitch:
    """Which broker the sink's connection goes to, and the failovers between them.

    The owner (the sink's connection task) calls :meth:`aim` before each attempt,
    :meth:`connected` after a successful one, and :meth:`failed` after a failed attempt
    or a lost connection; :meth:`failed` says whether to back off first.
    """

    def __init__(self, config: MqttBrokerConfig, kind: str = "mqtt") -> None:
        self.config = config
        self._rotation = BrokerRotation(brokers_of(config))
        self._kind = kind
        self._log = log.bind(sink=config.name)
        #: Connections made to another broker than the previous connection's.
        self.failovers = 0

    @property
    def current(self) -> Broker:
        """The broker connected to, or the one being tried (or tried next)."""
        return self._rotation.current

    def connection(
        self,
        client_id: str,
        *,
        connect_timeout: float,
        will: Will | None = None,
        on_message: MessageHandler | None = None,
    ) -> MqttConnection:
        """The sink's one connection, with its credentials, aimed at the first broker."""
        config, first = self.config, self.current
        return MqttConnection(
            host=first.host,
            port=first.port,
            client_id=client_id,
            keepalive=config.keepalive,
            username=config.username,
            password=config.password,
            ssl_context=first.ssl_context,
            will=will,
            max_inflight=config.max_inflight,
            connect_timeout=connect_timeout,
            on_message=on_message,
        )

    def aim(self, connection: MqttConnection) -> None:
        """Point ``connection`` (not connected) at :attr:`current` for its next attempt."""
        broker = self.current
        connection.retarget(broker.host, broker.port, broker.ssl_context)

    def connected(self) -> None:
        """The connection to :attr:`current` is up: count and log a failover."""
        previous = self._rotation.connected()
        if previous is not None:
            self.failovers += 1
            self._log.warning(
                f"{self._kind} failover: connected to another broker",
                from_broker=previous.address,
                to_broker=self.current.address,
                failovers=self.failovers,
            )

    def failed(self, *, lasted: bool = False) -> bool:
        """The attempt failed or the connection was lost: on to the next broker. True when
        a whole round failed and the owner should back off."""
        return self._rotation.failed(lasted=lasted)
