"""A tiny HTTP/1.1 endpoint on the event loop: ``/healthz``, ``/metrics``, ``/status``.

Deliberately small: GET and HEAD only, one request per connection, bounded request
size and read time, at most :data:`MAX_CLIENTS` connections at once (more are closed
as soon as they are accepted, and counted), no threads. It serves monitoring on
loopback (or a management address); it is not a web server. Answers:

* ``/healthz``: 200 while the agent runs well, 503 with the reasons (a sink down or a
  device offline for longer than the configured thresholds, a stalled poller, a
  blocked event loop, starting or stopping); the body is the status document.
* ``/metrics``: Prometheus exposition (text 0.0.4, or OpenMetrics when asked for).
* ``/status``: the status document, always 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge_agent.episodes import Episode
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, status_document
from edge_agent.service.telemetry import build_registry, render_metrics

log = structlog.get_logger("edge_agent.health")

#: Request line plus headers; a scraper sends a few hundred bytes.
MAX_REQUEST_BYTES = 8192
#: A client that has not sent its request and read the answer by then is cut off.
REQUEST_TIMEOUT_S = 5.0
#: Connections served at once. Monitoring needs one or two; idle or slow clients beyond
#: this (a scanner, a stuck scraper) would otherwise each hold a file descriptor that
#: the agent needs for its devices and sinks, for up to REQUEST_TIMEOUT_S.
MAX_CLIENTS = 32
JSON = "application/json"


@dataclass(slots=True)
class Response:
    status: HTTPStatus
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


class HealthServer:
    """Serves one agent's health, status and metrics on ``host:port``."""

    def __init__(self, agent: Agent, stats: ServiceStats, host: str, port: int) -> None:
        self.agent = agent
        self.stats = stats
        self.host = host
        self.port = port
        self.registry: CollectorRegistry = build_registry(agent, stats)
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        #: Connections closed at once because MAX_CLIENTS were being served.
        self.refused_connections = 0
        self._refusing = Episode()
        self.registry.register(_EndpointCollector(self))
        self._routes: dict[str, Callable[[str], Response]] = {
            "/healthz": self._healthz,
            "/metrics": self._metrics,
            "/status": self._status,
        }

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
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=MAX_REQUEST_BYTES
        )
        log.info("health endpoint listening", url=f"http://{_host(self.host)}:{self.bound_port}")

    async def stop(self) -> None:
        """Stop listening, cut every open exchange, and wait for their tasks to end."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        clients = set(self._clients)
        for task in clients:
            task.cancel()
        if clients:
            await asyncio.wait(clients)
        await server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A new connection: served by a task of ours, or closed at once when full.

        A plain function, not a coroutine: asyncio would run a coroutine in a task of
        its own whose done-callback reports a cancelled task as an error, once per
        client cut at stop. Our tasks are cancelled and awaited quietly.
        """
        if self._server is None:
            writer.transport.abort()  # stopping: accepted in the last moment
            return
        if len(self._clients) >= MAX_CLIENTS:
            self._refuse(writer)
            return
        if self._refusing.end():
            log.info("health endpoint accepts connections again", refused=self.refused_connections)
        task = asyncio.get_running_loop().create_task(
            self._client(reader, writer), name="health:client"
        )
        self._clients.add(task)
        task.add_done_callback(self._clients.discard)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = False
        try:
            # One bound for the whole exchange: a client that sends slowly, or never
            # reads the answer, does not hold a task forever.
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                response, head_only = self._respond(head)
                writer.write(_encode(response, head_only))
                await writer.drain()
            answered = True
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # slow, truncated or oversized request, or a client that does not read
        except ConnectionError:
            pass  # the client went away
        finally:
            if not answered:
                writer.transport.abort()  # drop unsent data: closing would wait for it
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _refuse(self, writer: asyncio.StreamWriter) -> None:
        """Full: close the new connection at once (it holds no descriptor for long)."""
        self.refused_connections += 1
        if self._refusing.begin():
            log.warning(
                "health endpoint full: closing new connections",
                limit=MAX_CLIENTS,
                peer=str(writer.get_extra_info("peername")),
            )
        writer.transport.abort()

    def _respond(self, head: bytes) -> tuple[Response, bool]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Response(HTTPStatus.BAD_REQUEST, b"bad request\n"), False
        method, target, _version = parts
        if method not in ("GET", "HEAD"):
            return Response(HTTPStatus.METHOD_NOT_ALLOWED, b"GET or HEAD only\n"), False
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            known = " ".join(self._routes)
            return Response(HTTPStatus.NOT_FOUND, f"not found; try {known}\n".encode()), False
        try:
            return route(headers.get("accept", "")), method == "HEAD"
        except Exception:
            # A bug in a collector must not take the endpoint (or the agent) down.
            log.exception("health endpoint failed to answer", path=target)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n"), False

    def _healthz(self, _accept: str) -> Response:
        document = status_document(self.agent, self.stats)
        status = HTTPStatus.OK if document["healthy"] else HTTPStatus.SERVICE_UNAVAILABLE
        return Response(status, _json(document), JSON)

    def _status(self, _accept: str) -> Response:
        return Response(HTTPStatus.OK, _json(status_document(self.agent, self.stats)), JSON)

    def _metrics(self, accept: str) -> Response:
        body, content_type = render_metrics(self.registry, accept)
        return Response(HTTPStatus.OK, body, content_type)


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


def _json(document: object) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


def _encode(response: Response, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status.value} {response.status.phrase}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head if head_only else head + response.body


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
