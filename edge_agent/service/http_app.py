"""The health listener's aiohttp application: ``/healthz``, ``/metrics``, ``/status``.

Routes and answers only; the listener's lifecycle and its bounds on connections, request
size and time live in :mod:`edge_agent.service.health`. An aiohttp app (rather than our
own HTTP code) so that the web console of issue 15 can be served by the same app on the
same listener, WebSocket and server-sent events included.

Answers, as the hand-written endpoint gave them:

* ``/healthz``: 200 while the agent runs well, 503 with the reasons; the body is the
  status document.
* ``/metrics``: Prometheus exposition (text 0.0.4, or OpenMetrics when asked for).
* ``/status``: the status document, always 200.
* the console's routes when ``service.console`` is set (:mod:`edge_agent.console.app`);
* GET and HEAD only, POST to ``/console/api/`` (405 otherwise, before routing), 404
  naming the known paths, one request per connection (``Connection: close``),
  ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats, status_document
from edge_agent.service.telemetry import render_metrics

if TYPE_CHECKING:
    from edge_agent.console.app import Console

log = structlog.get_logger("edge_agent.health")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
PATHS = ("/healthz", "/metrics", "/status")
#: Largest request body: the console's login and commissioning forms.
CONSOLE_MAX_BODY = 16 * 1024


@dataclass(frozen=True, slots=True)
class Sources:
    """What the routes answer from: the agent, the service's figures, the registry."""

    agent: Agent
    stats: ServiceStats
    registry: CollectorRegistry
    #: The web console (``service.console``), when configured.
    console: Console | None = None


SOURCES = web.AppKey("sources", Sources)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(sources: Sources) -> web.Application:
    """The application the health listener serves."""
    # The console's forms are small; the health routes read no body at all.
    app = web.Application(middlewares=[_guard], client_max_size=CONSOLE_MAX_BODY)
    app[SOURCES] = sources
    # add_get answers HEAD too: the same headers, no body.
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/status", _status)
    if sources.console is not None:
        sources.console.add_routes(app)
    return app


def answer(status: HTTPStatus, body: bytes, content_type: str = TEXT) -> web.Response:
    """A response with the headers every answer of this endpoint carries."""
    response = web.Response(
        status=status.value,
        body=body,
        # Server: the product, not the Python and aiohttp versions (which would tell
        # anyone on the network what to try).
        headers={"Content-Type": content_type, "Cache-Control": "no-store", "Server": "edge-agent"},
    )
    # One request per connection: a scraper opens a new one each time, and nothing
    # idles between requests holding a descriptor.
    response.force_close()
    return response


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """GET/HEAD only (POST to the console's API), 404 that names the paths, and a failing
    route answered with 500."""
    console = request.app[SOURCES].console
    posts = console is not None and request.path.startswith("/console/api/")
    if request.method not in ("GET", "HEAD") and not (posts and request.method == "POST"):
        return answer(HTTPStatus.METHOD_NOT_ALLOWED, b"GET or HEAD only\n")
    try:
        return await handler(request)
    except web.HTTPNotFound:
        known = " ".join((*PATHS, "/console/") if console is not None else PATHS)
        return answer(HTTPStatus.NOT_FOUND, f"not found; try {known}\n".encode())
    except web.HTTPException:
        raise
    except Exception:
        # A bug in a collector must not take the endpoint (or the agent) down.
        log.exception("health endpoint failed to answer", path=request.path)
        return answer(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n")


async def _healthz(request: web.Request) -> web.Response:
    sources = request.app[SOURCES]
    document = status_document(sources.agent, sources.stats)
    status = HTTPStatus.OK if document["healthy"] else HTTPStatus.SERVICE_UNAVAILABLE
    return answer(status, _json(document), JSON)


async def _status(request: web.Request) -> web.Response:
    sources = request.app[SOURCES]
    return answer(HTTPStatus.OK, _json(status_document(sources.agent, sources.stats)), JSON)


async def _metrics(request: web.Request) -> web.Response:
    sources = request.app[SOURCES]
    body, content_type = render_metrics(sources.registry, request.headers.get("Accept", ""))
    return answer(HTTPStatus.OK, body, content_type)


def _json(document: object) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"
