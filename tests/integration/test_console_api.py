"""The web console's server over real HTTP: live data, login, CSRF, the brake, secrets, bad input.

A Supervisor runs the demo plant's simulators with ``service.console``; the tests talk
to it with aiohttp's client over loopback as a browser would (cookies kept, the CSRF
token sent back in a header). The browser itself is tests/integration/test_console_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession

from simulators.modbus_server import UnitFault
from tests.console_support import (
    PASSWORD,
    PASSWORD_HASH,
    console_yaml,
    running_console,
)
from tests.service_support import http_get, wait_for

pytestmark = pytest.mark.integration

#: Secrets the plant file holds (from the environment): no answer may contain them.
BROKER_PASSWORD = "broker-Pa55-kept-secret"
INFLUX_TOKEN = "influx-T0ken-kept-secret"


def _users(commissioning: bool = True) -> str:
    return (
        "{users: [{name: alice, password_hash: '" + PASSWORD_HASH + "', "
        f"commissioning: {str(commissioning).lower()}}}, "
        "{name: bob, password_hash: '" + PASSWORD_HASH + "'}], commissioning: true}"
    )


async def _session(client: ClientSession) -> dict[str, object]:
    async with client.get("/console/api/session") as response:
        assert response.status == 200
        document: dict[str, object] = await response.json()
        return document


async def _login(client: ClientSession, user: str, password: str) -> int:
    csrf = str((await _session(client))["csrf"])
    async with client.post(
        "/console/api/login",
        json={"user": user, "password": password},
        headers={"X-CSRF-Token": csrf},
    ) as response:
        return response.status


async def test_live_plant_device_history_and_stream(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.session() as client:
        session = await _session(client)
        assert session["login_required"] is False
        assert session["permissions"] == ["view"]
        await wait_for(
            lambda: all(s.counters.good_polls >= 3 for s in console.agent.sources), 20, "polls"
        )
        async with client.get("/console/api/plant") as response:
            assert response.status == 200
            for header, value in (
                ("X-Frame-Options", "DENY"),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "no-store"),
            ):
                assert response.headers[header] == value
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp
            assert "frame-ancestors 'none'" in csp
            plant = await response.json()
        names = [d["name"] for d in plant["devices"]]
        assert names == [d.name for d in console.agent.config.devices]
        assert all(d["state"] == "online" for d in plant["devices"])
        meter = next(d for d in plant["devices"] if d["name"] == "line-meter")
        assert meter["key"]["tag"] == "power_active"
        assert meter["key"]["unit"] == "kW"
        assert len(meter["key"]["history"]) >= 3
        assert 0 < meter["reads_per_s"] <= 2

        # The device page: every tag, with its value, quality and where it is read.
        async with client.get("/console/api/device/line-meter") as response:
            first = await response.json()
        tags = {t["name"]: t for t in first["tags"]}
        assert set(tags) == set(console.agent.config.devices[0].describe().tags)
        assert tags["power_active"]["quality"] == "good"
        assert tags["power_active"]["source"].startswith("input 16")
        # Raw registers are recorded from the first look on: shown on a later poll.
        await asyncio.sleep(2.2)
        async with client.get("/console/api/device/line-meter") as response:
            later = await response.json()
        power = next(t for t in later["tags"] if t["name"] == "power_active")
        words = power["source"].removeprefix("input 16 (").removesuffix(")").split()
        assert len(words) == 2  # a float32's two registers, in hex
        assert all(len(w) == 4 and int(w, 16) >= 0 for w in words)
        # An enum tag's code (a value the driver adds to the batch) shows its register too.
        async with client.get("/console/api/device/press-1") as response:
            await response.read()  # the first look starts the recording
        await asyncio.sleep(2.2)
        async with client.get("/console/api/device/press-1") as response:
            press = {t["name"]: t for t in (await response.json())["tags"]}
        assert press["state"]["source"].startswith("holding 0 (")
        assert press["state_code"]["source"] == press["state"]["source"]
        assert press["power"]["source"].startswith("holding 2 (")
        assert power["time"] != tags["power_active"]["time"]  # live
        async with client.get(
            "/console/api/device/line-meter/history", params={"tag": "power_active"}
        ) as response:
            history = await response.json()
        assert history["unit"] == "kW"
        assert len(history["points"]) >= 5
        times = [p[0] for p in history["points"]]
        assert times == sorted(times)
        assert all(isinstance(p[1], float) for p in history["points"])
        for path in ("/console/api/device/nope", "/console/api/device/line-meter/history?tag=x"):
            async with client.get(path) as response:
                assert response.status == 404

        # The live stream: plant and device documents, once a second.
        events: list[str] = []
        async with client.get(
            "/console/api/stream", params={"device": "press-1"}, timeout=None
        ) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            while len([e for e in events if e == "device"]) < 2:
                line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
                if line.startswith("event:"):
                    events.append(line.split(":", 1)[1].strip())
        assert "plant" in events


async def test_a_device_going_offline_shows_within_two_polls(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.session() as client:
        await wait_for(
            lambda: all(s.counters.good_polls >= 1 for s in console.agent.sources), 20, "polls"
        )
        console.plant.set_unit_fault("press-1", UnitFault.GATEWAY_NO_RESPONSE)

        async def state() -> str:
            async with client.get("/console/api/plant") as response:
                plant = await response.json()
            return str(next(d for d in plant["devices"] if d["name"] == "press-1")["state"])

        deadline = asyncio.get_running_loop().time() + 15
        while await state() == "online":
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)

        async def device() -> dict[str, Any]:
            async with client.get("/console/api/device/press-1") as response:
                document: dict[str, Any] = await response.json()
                return document

        # Its tags turn bad with the first failed poll's batch (within one more interval).
        document = await device()
        while not all(t["quality"] == "bad" for t in document["tags"]):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
            document = await device()
        assert document["state"] in ("degraded", "offline")
        assert document["reason"]
        assert all(t["reason"] for t in document["tags"])
        assert document["events"][0]["text"].startswith(document["state"])
        # Its parts, for the page to say in its language.
        assert document["events"][0]["state"] == document["state"]
        assert document["events"][0]["reason"] == document["reason"]
        # A bad value shows where it is read, not registers it was not decoded from.
        assert all("(" not in t["source"] for t in document["tags"]), document["tags"]


async def test_login_csrf_brake_and_permissions(tmp_path: Path) -> None:
    extra = console_yaml(_users(), "listen: 127.0.0.1, port: 0")
    async with running_console(tmp_path, extra) as console, console.session() as client:
        # Not logged in: the page sends to the login, the API refuses.
        async with client.get("/console/", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/console/login"
        async with client.get("/console/api/plant") as response:
            assert response.status == 401
        session = await _session(client)
        assert session["login_required"] is True
        assert session["permissions"] == []

        # A POST without the session's CSRF token is refused before the password is looked at.
        async with client.post(
            "/console/api/login", json={"user": "alice", "password": PASSWORD}
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"] == "csrf"
        async with client.post(
            "/console/api/login",
            json={"user": "alice", "password": PASSWORD},
            headers={"X-CSRF-Token": "forged"},
        ) as response:
            assert response.status == 403

        # Wrong passwords: refused, then braked (429 with Retry-After), the right one too.
        for _ in range(5):
            assert await _login(client, "alice", "wrong password") == 401
        assert await _login(client, "alice", "wrong password") == 401  # the 6th starts the wait
        csrf = str((await _session(client))["csrf"])
        async with client.post(
            "/console/api/login",
            json={"user": "alice", "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        ) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
        assert console.supervisor.health is not None
        auth = console.supervisor.health.console.auth  # type: ignore[union-attr]
        # The wait, served (it doubles with every further attempt: seconds to minutes).
        auth.brake.succeeded(["addr:127.0.0.1", "pair:127.0.0.1|alice"])
        auth.user_brake.succeeded(["user:alice"])

        # The right password: a new session cookie, HttpOnly and SameSite=Strict.
        csrf = str((await _session(client))["csrf"])
        async with client.post(
            "/console/api/login",
            json={"user": "alice", "password": PASSWORD},
            headers={"X-CSRF-Token": csrf},
        ) as response:
            assert response.status == 200
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        assert "Secure" not in cookie
        session = await _session(client)
        assert session["user"] == "alice"
        assert session["csrf"] != csrf
        assert session["permissions"] == ["commission", "view"]
        async with client.get("/console/api/plant") as response:
            assert response.status == 200

        # Logged out: refused again.
        async with client.post(
            "/console/api/logout", headers={"X-CSRF-Token": str(session["csrf"])}
        ) as response:
            assert response.status == 200
        async with client.get("/console/api/plant") as response:
            assert response.status == 401

    # bob may look but not commission.
    async with running_console(tmp_path, extra) as console, console.session() as client:
        assert await _login(client, "bob", PASSWORD) == 200
        session = await _session(client)
        assert session["permissions"] == ["view"]
        async with client.post(
            "/console/api/commission/read",
            json={"target": "tcp://127.0.0.1:1", "unit": 1, "table": "holding", "address": 0},
            headers={"X-CSRF-Token": str(session["csrf"])},
        ) as response:
            assert response.status == 403
            assert (await response.json())["error"] == "permission"


async def test_no_secret_in_any_answer(tmp_path: Path) -> None:
    environment = {
        "BROKER_PASSWORD": BROKER_PASSWORD,
        "INFLUX_TOKEN": INFLUX_TOKEN,
        "CONSOLE_HASH": PASSWORD_HASH,
    }
    dead = _free_port()
    extra = (
        "sinks:\n"
        f"  - {{name: broker, type: mqtt, host: 127.0.0.1, port: {dead}, username: edge,"
        " password: '${BROKER_PASSWORD}'}\n"
        f"  - {{name: tsdb, type: influxdb, url: 'http://127.0.0.1:{dead}', org: o, bucket: b,"
        " token: '${INFLUX_TOKEN}'}\n"
        + console_yaml(
            "{users: [{name: alice, password_hash: '${CONSOLE_HASH}', commissioning: true}],"
            " commissioning: true}"
        )
    )
    async with (
        running_console(tmp_path, extra, environment=environment) as console,
        console.session() as client,
    ):
        assert await _login(client, "alice", PASSWORD) == 200
        await wait_for(
            lambda: all(s.counters.polls >= 2 for s in console.agent.sources), 20, "polls"
        )
        bodies: dict[str, str] = {}
        for path in (
            "/console/",
            "/console/login",
            "/console/api/session",
            "/console/api/plant",
            "/console/api/config",
            "/console/api/device/line-meter",
            "/status",
            "/healthz",
            "/metrics",
        ):
            async with client.get(path) as response:
                bodies[path] = await response.text()
        async with client.get("/console/api/stream", timeout=None) as stream:
            bodies["stream"] = (await asyncio.wait_for(stream.content.read(4096), 5)).decode()
        config_text = json.loads(bodies["/console/api/config"])["text"]
        assert "password: '***'" in config_text or "password: '***'" in config_text.replace(
            '"', "'"
        )
        assert "token: '***'" in config_text.replace('"', "'")
        assert "password_hash: '***'" in config_text.replace('"', "'")
        assert "name: line-meter" in config_text  # the rest is there
        for path, body in bodies.items():
            for secret in (BROKER_PASSWORD, INFLUX_TOKEN, PASSWORD_HASH, PASSWORD):
                assert secret not in body, f"{path} shows a secret"


async def test_malformed_and_oversized_requests(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.session() as client:
        csrf = str((await _session(client))["csrf"])
        headers = {"X-CSRF-Token": csrf}
        for body, content_type in (
            (b"not json", "application/json"),
            (b"[1, 2]", "application/json"),
            (b'{"user": 1, "password": 2}', "application/json"),
            (b'{"user": "a", "password": "b"}', "text/plain"),
        ):
            async with client.post(
                "/console/api/login",
                data=body,
                headers={**headers, "Content-Type": content_type},
            ) as response:
                assert response.status == 400, body
        async with client.post(
            "/console/api/login",
            data=b'{"user": "' + b"a" * 200_000 + b'"}',
            headers={**headers, "Content-Type": "application/json"},
        ) as response:
            assert response.status in (400, 413)
        for path in (
            "/console/static/../app.py",
            "/console/static/%2e%2e/app.py",
            "/console/static/..%2fapp.py",
            "/console/static/index.py",
        ):
            async with client.get(path) as response:
                assert response.status == 404, path
        async with client.put("/console/api/plant") as response:
            assert response.status == 405
        async with client.post("/console/api/plant", headers=headers) as response:
            assert response.status == 405
    # (the listener's own bounds on heads and time: tests/integration/test_health_limits.py)


async def test_health_routes_unchanged_with_the_console(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        await wait_for(lambda: console.agent.started.is_set(), 10, "start")
        healthz = await http_get(port, "/healthz")
        assert healthz.status == 200
        assert healthz.headers["content-type"] == "application/json"
        assert "content-security-policy" not in healthz.headers
        missing = await http_get(port, "/nope")
        assert missing.status == 404
        assert b"/console/" in missing.body
        post = await http_get(port, "/status", method="POST")
        assert post.status == 405


async def test_tls_serves_https_and_a_secure_cookie(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    openssl = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
        "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await openssl.wait() == 0
    extra = console_yaml(
        "{}", f"listen: 127.0.0.1, port: 0, tls: {{cert_file: {cert}, key_file: {key}}}"
    )
    async with running_console(tmp_path, extra, scheme="https") as console:
        import ssl

        context = ssl.create_default_context(cafile=str(cert))
        async with console.session() as client:
            async with client.get("/console/api/session", ssl=context) as response:
                assert response.status == 200
                assert "Secure" in response.headers["Set-Cookie"]
            async with client.get("/healthz", ssl=context) as response:
                assert response.status in (200, 503)
        # Plain HTTP to the TLS port gets nothing useful.
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        # `edge-agent status` asks over https when the plant file says tls.
        from concurrent.futures import ThreadPoolExecutor

        from edge_agent.service.status_view import fetch_status, status_url

        with_port = console.agent.config.service.health
        assert with_port is not None
        config = console.agent.config.model_copy(
            update={
                "service": console.agent.config.service.model_copy(
                    update={"health": with_port.model_copy(update={"port": port})}
                )
            }
        )
        assert status_url(config).startswith("https://")
        with ThreadPoolExecutor(1) as pool:
            document = await asyncio.get_running_loop().run_in_executor(
                pool, fetch_status, status_url(config)
            )
        assert document["plant"] == "demo-plant"
        try:
            reply = await http_get(port, "/healthz")
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, OSError, IndexError):
            return  # no HTTP answer at all: the TLS handshake failed, the connection closed
        assert reply.status != 200


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_config_page_shows_a_refused_reload_with_its_lines(tmp_path: Path) -> None:
    from edge_agent.config.loader import load_config
    from edge_agent.service.agent import Agent
    from edge_agent.service.supervisor import Supervisor
    from simulators.serve import serve_profile
    from tests.plant import CONFIG_FILE, DEMO_PORTS, demo_profile

    async with serve_profile(demo_profile()) as plant:
        text = CONFIG_FILE.read_text().replace("${EDGE_AGENT_STATE:-./state}", str(tmp_path))
        for server, port in DEMO_PORTS.items():
            text = text.replace(f"port: {port}}}", f"port: {plant.port(server)}}}")
        path = tmp_path / "plant.yaml"
        path.write_text(text + console_yaml())
        agent = Agent(load_config(path))
        supervisor = Supervisor(agent, config_path=path)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: supervisor.health is not None, 15, "the console")
            assert supervisor.health is not None
            base = f"http://127.0.0.1:{supervisor.health.bound_port}"
            # A broken edit: a tag type misspelt.
            path.write_text(path.read_text().replace("type: float32", "type: flaot32", 1))
            result = await supervisor.reload()
            assert result is not None
            assert not result.applied
            async with ClientSession(base) as client, client.get("/console/api/config") as got:
                document = await got.json()
            assert document["file"] == str(path)
            assert document["reload"]["refused"] == 1
            assert document["reload"]["last"] is not None
            line = next(
                n for n, text in enumerate(path.read_text().splitlines(), 1) if "flaot32" in text
            )
            assert any(
                problem.startswith(f"{path}:{line}:") and "flaot32" in problem
                for problem in document["reload"]["problems"]
            ), document["reload"]["problems"]
            assert "type: float32" in document["text"]  # the running config, not the file
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)


async def test_a_new_stream_ends_the_oldest_when_all_are_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge_agent.console import stream
    from edge_agent.console.stream import MAX_STREAMS

    # Streams younger than this are never ended for a newer one: here, none is.
    monkeypatch.setattr(stream, "STREAM_SETTLED_S", 0.0)

    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        server = console.supervisor.health.console
        assert server is not None
        port = console.supervisor.health.bound_port
        opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        try:
            for _ in range(MAX_STREAMS + 1):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /console/api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                await writer.drain()
                opened.append((reader, writer))
                assert b" 200 " in await asyncio.wait_for(reader.readline(), 5)
            # The first (oldest) one is ended by the server; the newest is served.
            first = opened[0][0]
            while await asyncio.wait_for(first.read(65536), 5):
                pass  # until the server closes it
            await wait_for(lambda: server.streams == MAX_STREAMS, 5, "the oldest ended")
            newest = opened[-1][0]
            assert b"event: plant" in await asyncio.wait_for(newest.readuntil(b"event: plant"), 5)
        finally:
            for _, writer in opened:
                writer.close()
        await wait_for(lambda: server.streams == 0, 5, "every stream ended")


async def test_a_stream_that_just_began_is_not_ended_for_a_newer_one(tmp_path: Path) -> None:
    """Pages that all want a stream would end each other's in turn: the newcomer is
    refused (and polls) until a stream has run STREAM_SETTLED_S."""
    from edge_agent.console.stream import MAX_STREAMS

    async with running_console(tmp_path) as console:
        assert console.supervisor.health is not None
        port = console.supervisor.health.bound_port
        opened: list[asyncio.StreamWriter] = []
        try:
            for _ in range(MAX_STREAMS):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /console/api/stream HTTP/1.1\r\nHost: x\r\n\r\n")
                opened.append(writer)
                assert b" 200 " in await asyncio.wait_for(reader.readline(), 5)
            refused = await http_get(port, "/console/api/stream")
            assert refused.status == 503
            assert refused.headers["retry-after"] == "30"
        finally:
            for writer in opened:
                writer.close()


async def test_raw_registers_are_recorded_only_while_someone_looks(tmp_path: Path) -> None:
    async with running_console(tmp_path) as console, console.session() as client:
        assert console.supervisor.health is not None
        server = console.supervisor.health.console
        assert server is not None
        driver = next(s.driver for s in console.agent.sources if s.device == "line-meter")
        assert driver._raw is None  # nobody looked: polling pays nothing
        async with client.get("/console/api/device/line-meter") as response:
            assert response.status == 200
        assert driver._raw is not None
        server.views.expire_raw(60.0)  # looked just now: kept
        assert driver._raw is not None
        server.views.expire_raw(0.0)  # as the console's timer does after RAW_IDLE_S
        assert driver._raw is None
        async with client.get("/console/api/device/line-meter") as response:
            assert response.status == 200
        assert driver._raw is not None
    assert driver._raw is None  # the console stopped: nobody can look
