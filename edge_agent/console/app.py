"""The web console's routes on the health listener's aiohttp app.

Pages are static files (``static/``: one page app, no build step, nothing from the
internet); data comes from JSON APIs under ``/console/api/`` and, live, from one
server-sent-events stream per open page. What is guarded here, before any handler runs:

* a session for every visitor (cookie ``edge_session``: HttpOnly, SameSite=Strict,
  Secure under TLS), authenticated by a login when the console requires one;
* every POST carries the session's CSRF token in ``X-CSRF-Token``;
* commissioning needs its switch in the config and the user's permission;
* every answer carries the security headers (a CSP without inline script, no framing,
  no sniffing, no referrer) and closes its connection, as the health answers do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from pathlib import Path

import structlog
from aiohttp import web

from edge_agent import __version__
from edge_agent.config import PlantConfig, TagCatalog
from edge_agent.config.console import ConsoleConfig
from edge_agent.console.answers import (
    JSON,
    SECURITY_HEADERS,
    file_answer,
    iso_wall,
    json_answer,
    json_object,
    language,
    redirect,
    static_files,
)
from edge_agent.console.auth import COMMISSION, VIEW, WRITE, Auth, Session
from edge_agent.console.commissioning import (
    CommissioningGate,
    commission_once,
    commission_probe,
    commission_read,
)
from edge_agent.console.energy import energy_document
from edge_agent.console.logring import LogRing
from edge_agent.console.reports import PREFIX as REPORTS_PREFIX
from edge_agent.console.reports import read_report, report_answer, reports_document
from edge_agent.console.ring import LiveRing, points_within
from edge_agent.console.stream import HoldOpen, LiveStreams
from edge_agent.console.views import Views, redacted_config
from edge_agent.console.writes import WriteDoor
from edge_agent.metrics.report_files import reports_root
from edge_agent.model import SampleBatch
from edge_agent.service.agent import Agent
from edge_agent.service.status import ServiceStats
from edge_agent.worker import BlockingWorker

log = structlog.get_logger("edge_agent.console")

COOKIE = "edge_session"
CSRF_HEADER = "X-CSRF-Token"
#: A device's raw registers are recorded until no page has looked at it for this long.
RAW_IDLE_S = 60.0
#: The longest a commissioning request may take (its tools bound each read tighter).
COMMISSION_MAX_S = 75.0

SESSION_KEY = web.RequestKey("console_session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: A commissioning handler of :mod:`edge_agent.console.commissioning`.
CommissionHandler = Callable[..., Awaitable[web.Response]]


class Console:
    """The console of one running agent: its ring, users, sessions, logs and routes."""

    def __init__(
        self,
        agent: Agent,
        stats: ServiceStats,
        config: ConsoleConfig,
        *,
        login_required: bool,
        secure: bool,
        config_path: Path | None = None,
        hold_open: HoldOpen | None = None,
        logs: LogRing | None = None,
    ) -> None:
        self.agent = agent
        self.config = config
        self.secure = secure
        self.config_path = config_path
        self.hold_open = hold_open
        self.ring = LiveRing(config.history, config.history_points)
        self._sized_for: PlantConfig | None = None
        self._raw_timer: asyncio.TimerHandle | None = None
        self._size_ring()
        #: Blocking work off the event loop: password checks, the config page's text.
        self.worker = BlockingWorker("console")
        self.auth = Auth(config, login_required=login_required, worker=self.worker)
        self._config_text: tuple[PlantConfig, str] | None = None
        self.views = Views(agent, stats, self.ring)
        #: Recent warnings and errors: the service's (kept across reloads that make the
        #: console anew), or the console's own.
        self.logs = logs or LogRing()
        self._own_logs = logs is None
        self.live = LiveStreams(self.views, self._still_allowed, hold_open)
        self.files = static_files()
        #: One commissioning request at a time per agent.
        self.gate = CommissioningGate()
        #: Write commands from the device page, through the agent's gate (it may be made
        #: by a reload: asked for each time).
        self.writes = WriteDoor()
        self.writes.gate = lambda: self.agent.writes
        self._started = False

    def _size_ring(self) -> None:
        """Points kept per tag: history_points, fewer when the plant is too large for
        history_memory (again after a reload that changed the plant)."""
        config = self.agent.config
        catalog = TagCatalog.of(config.devices)
        tags = sum(len(device.tags) for device in catalog.devices.values())
        self.points = points_within(self.config.history_memory, tags, self.config.history_points)
        self.ring.resize(self.points, catalog.change_groups())
        self._sized_for = config

    def keep(self, batch: SampleBatch) -> None:
        """The pipeline's consumer: into the ring (sized for the running config)."""
        if self.agent.config is not self._sized_for:
            self._size_ring()
        self.ring.append(batch)

    def _still_allowed(self, request: web.Request) -> bool:
        """A live stream's check each second: not a request of the user's, so it does
        not keep a login alive."""
        token = request.cookies.get(COOKIE)
        return not self.login_required or self.auth.session(token, touch=False) is not None

    @property
    def streams(self) -> int:
        """Live streams being served now."""
        return len(self.live)

    @property
    def login_required(self) -> bool:
        return self.auth.login_required

    def start(self) -> None:
        """Start keeping samples and log records (before the first page is asked for)."""
        if self._raw_timer is None:
            self._raw_timer = asyncio.get_running_loop().call_later(RAW_IDLE_S, self._expire_raw)
        if not self._started:
            self.agent.pipeline.add_consumer(self.keep)
            if self._own_logs:
                self.logs.install()
            self._started = True

    def _expire_raw(self) -> None:
        self.views.expire_raw(RAW_IDLE_S)
        self._raw_timer = asyncio.get_running_loop().call_later(RAW_IDLE_S, self._expire_raw)

    async def stop(self) -> None:
        if self._raw_timer is not None:
            self._raw_timer.cancel()
            self._raw_timer = None
        self.views.expire_raw(0.0)  # nobody can look any more
        if self._started:
            self._started = False
            self.agent.pipeline.remove_consumer(self.keep)
            if self._own_logs:
                self.logs.remove()
        await self.worker.close()

    # -- routes

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._guard)
        router = app.router
        router.add_get("/", self._root)
        router.add_get("/console", self._root)
        router.add_get("/console/", self._index)
        router.add_get("/console/login", self._login_page)
        router.add_get("/console/static/{path:.+}", self._static)
        router.add_get("/console/api/session", self._session)
        router.add_post("/console/api/login", self._login)
        router.add_post("/console/api/logout", self._logout)
        router.add_get("/console/api/plant", self._plant)
        router.add_get("/console/api/device/{name}", self._device)
        router.add_get("/console/api/device/{name}/history", self._history)
        router.add_get("/console/api/config", self._config)
        router.add_get("/console/api/stream", self.live.serve)
        router.add_get("/console/api/energy", self._energy)
        router.add_get("/console/api/reports", self._reports)
        router.add_get(REPORTS_PREFIX + "{path:.+}", self._report_file)
        router.add_post("/console/api/write", self._write)
        for action, handler in (
            ("read", commission_read),
            ("probe", commission_probe),
            ("once", commission_once),
        ):
            router.add_post(f"/console/api/commission/{action}", self._commissioning(handler))

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Session, login, CSRF and permission checks, then the security headers."""
        path = request.path
        if not (path == "/" or path == "/console" or path.startswith("/console/")):
            return await handler(request)
        session = self.auth.session(request.cookies.get(COOKIE))
        fresh = session is None
        if session is None:
            session = self.auth.new_session()
        request[SESSION_KEY] = session
        refusal = self._refusal(request, session)
        response = refusal if refusal is not None else await handler(request)
        if not response.prepared:
            # setdefault: a report page brings its own, stricter Content-Security-Policy.
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("Cache-Control", "no-store")
            if fresh and COOKIE not in response.cookies:
                self._set_cookie(response, request[SESSION_KEY])
            response.force_close()
        return response

    def _refusal(self, request: web.Request, session: Session) -> web.Response | None:
        path, method = request.path, request.method
        if method == "POST" and not Auth.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            return json_answer({"error": "csrf"}, HTTPStatus.FORBIDDEN)
        if not path.startswith(("/console/api/", REPORTS_PREFIX)):
            return None
        if path in ("/console/api/session", "/console/api/login", "/console/api/logout"):
            return None
        if VIEW not in session.permissions:
            return json_answer({"error": "login"}, HTTPStatus.UNAUTHORIZED)
        if path.startswith("/console/api/commission/"):
            if not self.config.commissioning:
                return json_answer({"error": "commissioning is off"}, HTTPStatus.NOT_FOUND)
            if COMMISSION not in session.permissions:
                return json_answer({"error": "permission"}, HTTPStatus.FORBIDDEN)
        if path == "/console/api/write" and session.user is None:
            # An anonymous visitor never writes, and is nobody to audit. A logged-in
            # user without writes: true is refused by the write code, audited.
            return json_answer({"error": "permission"}, HTTPStatus.FORBIDDEN)
        return None

    def _set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.token,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )

    # -- pages

    async def _root(self, request: web.Request) -> web.StreamResponse:
        return redirect("/console/")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if VIEW not in request[SESSION_KEY].permissions:
            return redirect("/console/login")
        response = self._file(request, "index.html")
        # Not even kept in the browser's back/forward cache: a page kept there keeps
        # its live stream open (Chromium does), for nobody.
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _login_page(self, request: web.Request) -> web.StreamResponse:
        return self._file(request, "login.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request, request.match_info["path"])

    def _file(self, request: web.Request, relative: str) -> web.Response:
        return file_answer(self.files, request, relative)

    # -- session

    async def _session(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        plant = self.agent.config.plant
        return json_answer(
            {
                "authenticated": session.authenticated,
                "login_required": self.login_required,
                "user": session.user,
                "permissions": sorted(session.permissions),
                "csrf": session.csrf,
                "lang": language(request),
                "commissioning": self.config.commissioning,
                "plant": plant.name,
                "site": plant.site,
                "version": __version__,
            }
        )

    async def _login(self, request: web.Request) -> web.Response:
        try:
            body = json_object(await request.read()) if request.content_type == JSON else None
        except web.HTTPRequestEntityTooLarge:
            return json_answer({"error": "too large"}, HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        if body is None:
            return json_answer({"error": "bad request"}, HTTPStatus.BAD_REQUEST)
        name, password = body.get("user"), body.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > 1024:
            return json_answer({"error": "bad request"}, HTTPStatus.BAD_REQUEST)
        address = request.remote or "?"
        session, wait = await self.auth.login(name[:64], password, address)
        if session is None:
            if wait > 0:
                response = json_answer(
                    {"error": "rate", "retry_after": round(wait, 1)}, HTTPStatus.TOO_MANY_REQUESTS
                )
                response.headers["Retry-After"] = str(max(1, round(wait)))
                return response
            return json_answer({"error": "login"}, HTTPStatus.UNAUTHORIZED)
        self.auth.end(request[SESSION_KEY])  # the anonymous session is done with
        request[SESSION_KEY] = session
        response = json_answer({"ok": True})
        self._set_cookie(response, session)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        session = request[SESSION_KEY]
        if session.user is not None:
            log.info("console logout", user=session.user)
        self.auth.end(session)
        fresh = self.auth.new_session()
        request[SESSION_KEY] = fresh
        response = json_answer({"ok": True})
        self._set_cookie(response, fresh)
        return response

    # -- data

    async def _plant(self, request: web.Request) -> web.Response:
        return json_answer({**self.views.plant(), "version": __version__})

    async def _device(self, request: web.Request) -> web.Response:
        document = self.views.device(request.match_info["name"])
        if document is None:
            return json_answer({"error": "device"}, HTTPStatus.NOT_FOUND)
        return json_answer(document)

    async def _history(self, request: web.Request) -> web.Response:
        document = self.views.history(request.match_info["name"], request.query.get("tag", ""))
        if document is None:
            return json_answer({"error": "tag"}, HTTPStatus.NOT_FOUND)
        return json_answer(document)

    async def _config(self, request: web.Request) -> web.Response:
        stats = self.views.stats
        return json_answer(
            {
                "file": str(self.config_path) if self.config_path else None,
                "text": await self._redacted_config(),
                "version": __version__,
                "uptime_s": round(time.monotonic() - stats.started_monotonic, 1),
                "started": self.views.plant()["started"],
                "reload": {
                    "applied": stats.reloads_applied,
                    "refused": stats.reloads_refused,
                    "last": iso_wall(stats.last_reload_wall),
                    "problems": list(stats.last_reload_problems),
                },
                "log": list(reversed(self.logs.records)),
            }
        )

    async def _energy(self, request: web.Request) -> web.Response:
        # Today's published windows are in the ring; energy_document keeps today's.
        return json_answer(
            energy_document(
                self.agent.metrics,
                self.ring.metric_batches(),
                timezone=self.agent.config.plant.timezone,
                events=self.ring.event_batches(),
            )
        )

    async def _reports(self, request: web.Request) -> web.Response:
        root = reports_root(self.agent.config.state_dir)
        return json_answer(await self.worker.call(reports_document, root))

    async def _report_file(self, request: web.Request) -> web.Response:
        root = reports_root(self.agent.config.state_dir)
        return report_answer(await self.worker.call(read_report, root, request.match_info["path"]))

    async def _write(self, request: web.Request) -> web.Response:
        """The guard checked the login and the CSRF token; the door refuses (and audits)
        a user without the ``write`` permission."""
        session = request[SESSION_KEY]
        user = session.user
        if user is None:  # the guard answers these; never a command of nobody
            return json_answer({"error": "permission"}, HTTPStatus.FORBIDDEN)
        return await self.writes.write(request, user=user, may_write=WRITE in session.permissions)

    def _commissioning(self, handler: CommissionHandler) -> Handler:
        """``handler`` for the running config, as the logged-in user (the guard has
        checked the switch, the permission and the CSRF token)."""

        async def serve(request: web.Request) -> web.StreamResponse:
            user = request[SESSION_KEY].user or "?"
            # A read may wait for a slow device longer than the listener's 5 s per
            # exchange: this connection gets the tool's own (bounded) time instead.
            if self.hold_open is not None:
                self.hold_open(request)
            try:
                async with asyncio.timeout(COMMISSION_MAX_S):
                    return await handler(
                        request, user=user, gate=self.gate, config=self.agent.config
                    )
            except TimeoutError:
                return json_answer({"error": "took too long"}, HTTPStatus.GATEWAY_TIMEOUT)

        return serve

    async def _redacted_config(self) -> str:
        """The config page's text: made once per config (a reload makes a new one), on
        the worker thread (a large plant's takes a second or more)."""
        config = self.agent.config
        if self._config_text is None or self._config_text[0] is not config:
            self._config_text = (config, await self.worker.call(redacted_config, config))
        return self._config_text[1]
