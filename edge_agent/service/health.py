"""The health listener: ``/healthz``, ``/metrics``, ``/status`` on the event loop.

Served by aiohttp (the app and its answers are in :mod:`edge_agent.service.http_app`;
issue 15's console joins them there), on a listener of ours that keeps the endpoint's
bounds: one request per connection, a bounded request head and exchange time, at most
:data:`MAX_CLIENTS` connections at once (more are closed as soon as they are accepted,
and counted), no threads. It serves monitoring on loopback (or a management address).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.config.console import ConsoleConfig, HealthTls, is_loopback
from edge_agent.console.app import Console
from edge_agent.console.logring import LogRing
from edge_agent.episodes import Episode
from edge_agent.service.agent import Agent
from edge_agent.service.http_app import Sources, build_app
from edge_agent.service.status import ServiceStats
from edge_agent.service.telemetry import build_registry

log = structlog.get_logger("edge_agent.health")

#: Request line plus headers; a scraper sends a few hundred bytes.
MAX_REQUEST_BYTES = 8192
#: A client that has not sent its request and read the answer by then is cut off.
REQUEST_TIMEOUT_S = 5.0
#: Connections served at once. Monitoring needs one or two; idle or slow clients beyond
#: this (a scanner, a stuck scraper) would otherwise each hold a file descriptor that
#: the agent needs for its devices and sinks, for up to REQUEST_TIMEOUT_S.
MAX_CLIENTS = 32


class HealthServer:
    """Serves one agent's health, status and metrics on ``host:port``."""

    def __init__(
        self,
        agent: Agent,
        stats: ServiceStats,
        host: str,
        port: int,
        *,
        console: ConsoleConfig | None = None,
        tls: HealthTls | None = None,
        config_path: Path | None = None,
        logs: LogRing | None = None,
    ) -> None:
        self.agent = agent
        self.stats = stats
        self.host = host
        self.port = port
        self.tls = tls
        #: The web console, when configured: a login is required off loopback (the
        #: config's validation refuses a console there without users) or with users.
        self.console = (
            None
            if console is None
            else Console(
                agent,
                stats,
                console,
                login_required=bool(console.users) or not is_loopback(host),
                secure=tls is not None,
                config_path=config_path,
                hold_open=self._hold_open,
                logs=logs,
            )
        )
        self.registry: CollectorRegistry = build_registry(agent, stats)
        self._server: asyncio.Server | None = None
        self._runner: web.AppRunner | None = None
        #: The connections being served (each one's guard, until its connection is lost).
        self._clients: set[_Guard] = set()
        #: Connections closed at once because MAX_CLIENTS were being served.
        self.refused_connections = 0
        self._refusing = Episode()
        self.registry.register(_EndpointCollector(self))
        self.app = build_app(Sources(agent, stats, self.registry, self.console))

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._clients)

    @property
    def bound_port(self) -> int:
        """The port actually bound (differs from ``port`` when that was 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        runner = web.AppRunner(
            self.app,
            access_log=None,  # the agent logs what matters; a scrape every 15 s does not
            handle_signals=False,  # the supervisor owns the signals
            shutdown_timeout=1.0,  # answers are computed at once; nothing to wait for
            # Per line bounds; the whole head is bounded by _Guard (MAX_REQUEST_BYTES).
            max_line_size=MAX_REQUEST_BYTES,
            max_field_size=MAX_REQUEST_BYTES,
            logger=_ClientErrors(),
        )
        context = None if self.tls is None else _tls_context(self.tls)
        await runner.setup()
        try:
            # Our own listener around aiohttp's protocol factory (rather than a TCPSite):
            # the connection limit and the per-connection deadline need to see every
            # connection as it is accepted.
            self._server = await asyncio.get_running_loop().create_server(
                self._protocol,
                self.host,
                self.port,
                ssl=context,
                ssl_handshake_timeout=REQUEST_TIMEOUT_S if context is not None else None,
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.console is not None:
            self.console.start()
        log.info("health endpoint listening", url=self.url)
        if self.console is not None:
            log.info(
                "web console",
                url=f"{self.url}/console/",
                login="required" if self.console.login_required else "none (loopback)",
                points_per_tag=self.console.points,
            )

    @property
    def url(self) -> str:
        scheme = "http" if self.tls is None else "https"
        return f"{scheme}://{_host(self.host)}:{self.bound_port}"

    async def stop(self) -> None:
        """Stop listening, cut every open exchange, and wait for their tasks to end."""
        server, self._server = self._server, None
        runner, self._runner = self._runner, None
        if server is None or runner is None:
            return
        server.close()
        clients = set(self._clients)
        for client in clients:
            client.abort()
        await asyncio.gather(*(client.lost for client in clients))
        await runner.cleanup()
        await server.wait_closed()
        if self.console is not None:
            await self.console.stop()

    def _hold_open(self, request: web.Request) -> bool:
        """Lift the exchange deadline of ``request``'s connection (a live stream)."""
        for client in self._clients:
            if client.transport is request.transport:
                client.hold_open()
                return True
        return False

    def _protocol(self) -> asyncio.Protocol:
        """A new connection: served by aiohttp under a guard, or closed at once when full."""
        if self._server is None or self._runner is None or self._runner.server is None:
            return _Refused()  # stopping: accepted in the last moment
        if len(self._clients) >= MAX_CLIENTS:
            return _Refused(self._refused)
        if self._refusing.end():
            log.info("health endpoint accepts connections again", refused=self.refused_connections)
        return _Guard(self._clients, self._runner.server())

    def _refused(self, peer: object) -> None:
        """Full: the new connection is closed at once (it holds no descriptor for long)."""
        self.refused_connections += 1
        if self._refusing.begin():
            log.warning(
                "health endpoint full: closing new connections", limit=MAX_CLIENTS, peer=str(peer)
            )


class _ClientErrors(logging.Logger):
    """aiohttp's server logger: what it reports is a client's malformed request.

    aiohttp logs each one with a traceback at error level; a port scanner would fill
    the agent's log. Said in one line at debug level instead (as the hand-written
    endpoint said nothing). A bug in a route is caught and logged by the app itself.
    """

    def __init__(self) -> None:
        super().__init__("edge_agent.health.http")

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        text = str(msg) % args if args else str(msg)
        log.debug("health endpoint: bad request", what=text, error=str(error or ""))


class _Refused(asyncio.Protocol):
    """A connection closed as soon as it is made, and told to ``counted`` with its peer."""

    def __init__(self, counted: Callable[[object], None] | None = None) -> None:
        self.counted = counted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.counted is not None:
            self.counted(transport.get_extra_info("peername"))
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


class _Guard(asyncio.Protocol):
    """aiohttp's protocol for one connection, within the endpoint's bounds.

    aiohttp bounds each line and header but not the whole request head, nor the time a
    client takes to send it and read the answer (a slow client would hold a descriptor
    for as long as it likes). The guard counts the head's bytes before aiohttp sees them
    and cuts the connection, without an answer, past MAX_REQUEST_BYTES or past
    REQUEST_TIMEOUT_S from the accept: one bound for the whole exchange, as the
    endpoint answers one request per connection.
    """

    def __init__(self, clients: set[_Guard], inner: asyncio.Protocol) -> None:
        #: The endpoint's connections being served; this one is among them while it lasts.
        self.clients = clients
        self.inner = inner
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_done = False
        self._tail = b""  # the last bytes seen, to find a head end split between reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.clients.add(self)
        self._deadline = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT_S, self.abort)
        self.inner.connection_made(transport)

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    def hold_open(self) -> None:
        """No deadline for this connection: it carries a live stream (the console's),
        which ends by itself (its lifetime) or when the client goes."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def abort(self) -> None:
        """Cut the connection at once, dropping unsent data (closing would wait for it)."""
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if not self._head_done:
            seen = self._tail + data
            end = seen.find(b"\r\n\r\n")
            if end >= 0:
                self._head_done = True
                self._head_bytes += end + 4 - len(self._tail)
            else:
                self._head_bytes += len(data)
                self._tail = seen[-3:]
            if self._head_bytes > MAX_REQUEST_BYTES:
                self.abort()  # oversized request: hung up on, no answer
                return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.clients.discard(self)
        self.inner.connection_lost(exc)
        if not self.lost.done():
            self.lost.set_result(None)


class _EndpointCollector(Collector):
    """The endpoint's own figures, in the agent's registry."""

    def __init__(self, server: HealthServer) -> None:
        self.server = server

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "edge_agent_health_connections",
            "Connections the health endpoint is serving now.",
            value=self.server.connections,
        )
        yield GaugeMetricFamily(
            "edge_agent_health_connections_max",
            "Connections the health endpoint serves at once; more are closed at once.",
            value=MAX_CLIENTS,
        )
        yield CounterMetricFamily(
            "edge_agent_health_connections_refused",
            "Connections closed at once because the endpoint was serving its maximum.",
            value=self.server.refused_connections,
        )


def _tls_context(tls: HealthTls) -> ssl.SSLContext:
    """A server context of today's defaults (TLS 1.2 and up) with the configured pair."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
