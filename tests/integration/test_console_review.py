"""Security review of the console server (issue 15): each test shows one finding.

Each test asserts what SHOULD hold and fails on main at the time of the review.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from aiohttp import ClientSession, CookieJar

from edge_agent.logs import configure_logging
from tests.console_support import PASSWORD, PASSWORD_HASH, console_yaml, running_console

pytestmark = pytest.mark.integration

USERS = (
    "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "', commissioning: true}, "
    "{name: bob, password_hash: '" + PASSWORD_HASH + "'}], commissioning: true}"
)


async def _exchange(
    port: int, parts: list[bytes], *, pause: float = 0.0, source: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP exchange; ``parts`` written one after another, ``pause`` apart."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        for index, part in enumerate(parts):
            if index and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "set-cookie" and value.strip().startswith("edge_session="):
            headers["session"] = value.strip().split("=", 1)[1].split(";")[0]
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


async def _anonymous(port: int, source: str = "127.0.0.1") -> tuple[str, str]:
    """A fresh anonymous session: (cookie, csrf)."""
    request = b"GET /console/api/session HTTP/1.1\r\nHost: x\r\n\r\n"
    _status, headers, body = await _exchange(port, [request], source=source)
    return headers["session"], json.loads(body)["csrf"]


def _post(path: str, cookie: str, csrf: str, document: object) -> tuple[bytes, bytes]:
    body = json.dumps(document).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nCookie: edge_session={cookie}\r\n"
        f"X-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def _login(port: int, user: str, password: str, source: str = "127.0.0.1") -> int:
    cookie, csrf = await _anonymous(port, source)
    head, body = _post("/console/api/login", cookie, csrf, {"user": user, "password": password})
    status, _headers, _body = await _exchange(port, [head + body], source=source)
    return status


async def test_a_login_whose_body_arrives_in_two_packets_is_accepted(tmp_path: Path) -> None:
    """_body reads request.content.read(n), which returns what has arrived so far."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        cookie, csrf = await _anonymous(port)
        head, body = _post(
            "/console/api/login", cookie, csrf, {"user": "alice", "password": PASSWORD}
        )
        status, _headers, answer = await _exchange(port, [head, body[:10], body[10:]], pause=0.2)
        assert status == 200, answer


async def test_cookieless_requests_do_not_evict_a_login_in_progress(tmp_path: Path) -> None:
    """Every cookie-less request makes a server-side session; 1,000 of them evict the
    anonymous session (and its CSRF token) of someone about to log in."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        cookie, csrf = await _anonymous(port)  # the engineer opens the login page
        flood = b"GET /console/login HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(10):  # an anonymous client on the plant network, 1,000 page loads
            await asyncio.gather(*(_exchange(port, [flood]) for _ in range(100)))
        head, body = _post(
            "/console/api/login", cookie, csrf, {"user": "alice", "password": PASSWORD}
        )
        status, _headers, answer = await _exchange(port, [head + body])
        assert status == 200, answer


async def test_another_address_cannot_lock_a_user_out(tmp_path: Path) -> None:
    """Six wrong guesses from another address slow alice down for at most
    MAX_USER_SLOWDOWN_S, never lock her out (before: 15 minutes, doubling)."""
    from edge_agent.console.auth import MAX_USER_SLOWDOWN_S

    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        for _ in range(12):
            await _login(port, "alice", "guess", source="127.0.0.2")  # the attacker
        await asyncio.sleep(MAX_USER_SLOWDOWN_S)
        assert await _login(port, "alice", PASSWORD, source="127.0.0.1") == 200


async def test_concurrent_guesses_are_braked_like_sequential_ones(tmp_path: Path) -> None:
    """The brake is asked before the hash check and told after it: guesses sent at once
    all pass it (FREE_FAILURES is 5)."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        sessions = [await _anonymous(port) for _ in range(12)]
        requests = [
            _post("/console/api/login", cookie, csrf, {"user": "alice", "password": f"guess{i}"})
            for i, (cookie, csrf) in enumerate(sessions)
        ]
        answers = await asyncio.gather(*(_exchange(port, [h + b]) for h, b in requests))
        checked = [status for status, _h, _b in answers if status == 401]
        assert len(checked) <= 6, f"{len(checked)} passwords were checked"


@pytest.fixture
def _logging_as_run() -> Iterator[None]:
    """Logging routed as ``edge-agent run`` routes it (through the root logger), restored."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    configure_logging("info", json=True, stream=io.StringIO())
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in ("edge_agent", "edge_agent.sink", "drivers", "simulators", "pymodbus"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


@pytest.mark.usefixtures("_logging_as_run")
async def test_a_password_typed_as_the_user_name_is_not_shown_to_viewers(tmp_path: Path) -> None:
    """A failed login logs the name as typed; the config page's log ring shows it to
    every viewer (bob may only look)."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        assert await _login(port, PASSWORD, "x") == 401  # alice typed into the wrong field
        async with console.session() as client:
            async with client.get("/console/api/session") as response:
                csrf = (await response.json())["csrf"]
            async with client.post(
                "/console/api/login",
                json={"user": "bob", "password": PASSWORD},
                headers={"X-CSRF-Token": csrf},
            ) as response:
                assert response.status == 200
            async with client.get("/console/api/config") as response:
                text = await response.text()
        assert PASSWORD not in text


@pytest.mark.usefixtures("_logging_as_run")
async def test_recent_warnings_outlive_a_reload_that_remakes_the_console(tmp_path: Path) -> None:
    """The new-user trial: failed logins, then a reload turning TLS on (the listener and
    its console made anew): the config page said "no warnings or errors since start"."""
    async with running_console(tmp_path, console_yaml(USERS)) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        assert await _login(port, "alice", "wrong") == 401
        # What a reload does when service.console or the listener changed.
        await console.supervisor._stop_health()
        await console.supervisor._start_health()
        assert console.supervisor.health is not None
        base = f"http://127.0.0.1:{console.supervisor.health.bound_port}"
        async with ClientSession(base, cookie_jar=CookieJar(unsafe=True)) as client:
            async with client.get("/console/api/session") as response:
                csrf = (await response.json())["csrf"]
            async with client.post(
                "/console/api/login",
                json={"user": "bob", "password": PASSWORD},
                headers={"X-CSRF-Token": csrf},
            ) as response:
                assert response.status == 200, await response.text()
            async with client.get("/console/api/config") as response:
                log = (await response.json())["log"]
        assert any(entry["event"] == "console login failed" for entry in log), log


async def test_head_on_the_stream_does_not_hold_connections_past_the_deadline(
    tmp_path: Path,
) -> None:
    """HEAD /console/api/stream: _stream lifts the 5 s deadline (hold_open) before
    sse_response refuses HEAD with a 405 that keeps the connection alive. 32 of them
    (any viewer; anyone on loopback without users) fill the listener: /healthz is refused."""
    from edge_agent.service.health import MAX_CLIENTS
    from tests.service_support import http_get

    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        held = []
        for _ in range(MAX_CLIENTS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"HEAD /console/api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            held.append(writer)
        try:
            await asyncio.sleep(6)  # past the listener's 5 s per exchange
            try:
                reply = await http_get(port, "/healthz")
            except (ConnectionError, IndexError, ValueError) as exc:
                pytest.fail(f"/healthz refused while {MAX_CLIENTS} HEAD streams idle: {exc!r}")
            assert reply.status in (200, 503)
        finally:
            for writer in held:
                writer.close()


async def test_a_second_request_on_a_connection_keeps_the_head_bound(tmp_path: Path) -> None:
    """After a 405 raised by aiohttp (not by our guards) the connection is kept alive, and
    the next request's head is not counted (the guard counts only the first head)."""
    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"HEAD /console/api/login HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            pads = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 4000) for i in range(20))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pads + b"\r\n")
            await writer.drain()
            second = await asyncio.wait_for(reader.read(), 10)
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # cut: the bound holds
        finally:
            writer.close()
        assert not second.startswith(b"HTTP/1.1 200"), "an 80 KB head was answered"


async def test_refusals_raised_by_aiohttp_do_not_name_its_version(tmp_path: Path) -> None:
    """http_app.answer sends ``Server: edge-agent`` on purpose; a 405 (or 413) that
    aiohttp raises itself goes out with ``Server: Python/3.x aiohttp/3.y`` and keep-alive."""
    from tests.service_support import http_get

    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        reply = await http_get(console.supervisor.health.bound_port, "/console/api/login", "HEAD")
        assert reply.status == 405
        assert "aiohttp" not in reply.headers["server"]


async def test_a_slow_commissioning_read_gets_its_answer(tmp_path: Path) -> None:
    """Commissioning allows up to 10 s per reply (read_budget: 41 s a request, once: 60 s),
    but the listener cuts every exchange 5 s after the accept (only streams are held open):
    the engineer gets a broken connection instead of the tool's "no answer" and hint."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # a device that never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    device_port = server.sockets[0].getsockname()[1]
    try:
        async with running_console(tmp_path, console_yaml(USERS)) as console:
            assert console.supervisor.health is not None
            port = console.supervisor.health.bound_port
            cookie, csrf = await _anonymous(port)
            head, body = _post(
                "/console/api/login", cookie, csrf, {"user": "alice", "password": PASSWORD}
            )
            _status, headers, _body = await _exchange(port, [head + body])
            cookie = headers["session"]
            request = (
                "GET /console/api/session HTTP/1.1\r\nHost: x\r\n"
                f"Cookie: edge_session={cookie}\r\n\r\n"
            )
            _status, _headers, answer = await _exchange(port, [request.encode()])
            csrf = json.loads(answer)["csrf"]
            read = {
                "target": f"tcp://127.0.0.1:{device_port}",
                "address": 0,
                "count": 2,
                "timeout": 6.0,
            }
            head, body = _post("/console/api/commission/read", cookie, csrf, read)
            try:
                status, _headers, answer = await _exchange(port, [head + body])
            except (ConnectionError, IndexError) as exc:
                pytest.fail(f"the connection was cut before the answer: {exc!r}")
            assert status == 200
            assert json.loads(answer)["ok"] is False
    finally:
        server.close()
        await server.wait_closed()
