"""``edge-agent status`` asks the agent itself, whatever proxy the shell is set up with."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from edge_agent.config.loader import load_config
from edge_agent.config.stand_ins import stand_in_environment
from edge_agent.service.status_view import fetch_status, status_url

DOCUMENT = {"plant": "p", "state": "online"}


class _Status(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(DOCUMENT).encode() if self.path == "/status" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def agent_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Status)
    thread = threading.Thread(target=server.serve_forever, name="fake /status")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_is_not_asked_through_the_shells_http_proxy(
    agent_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway's shell often exports http_proxy for apt; the agent is not behind it."""
    proxy = f"http://127.0.0.1:{_dead_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert fetch_status(agent_url) == DOCUMENT


_PLANT_WITH_A_SECRET = """\
plant: {name: p1}
devices:
  - name: meter
    driver: modbus
    connection: {transport: tcp, host: 127.0.0.1}
    poll_groups: [{interval: 1s, tags: [{name: v, address: 0}]}]
sinks:
  - name: scada
    type: sparkplug
    host: 127.0.0.1
    group_id: G
    edge_node_id: N
    username: edge
    password: ${EDGE_TEST_SPB_PASSWORD}
service:
  health:
    port: ${EDGE_TEST_HEALTH_PORT:-19899}
"""


def test_status_finds_the_agent_without_the_sinks_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the plant-engineer trial: `edge-agent status` refused to run without the
    sink's password in the shell, though it only needs the health address. A variable the
    file lacks here gets a stand-in; defaults still apply; other problems are reported."""
    monkeypatch.delenv("EDGE_TEST_SPB_PASSWORD", raising=False)
    monkeypatch.delenv("EDGE_TEST_HEALTH_PORT", raising=False)
    plant = tmp_path / "plant.yaml"
    plant.write_text(_PLANT_WITH_A_SECRET)
    env = stand_in_environment(str(plant))
    assert env is not None
    assert "EDGE_TEST_HEALTH_PORT" not in env  # its default applies
    config = load_config(plant, env)
    assert status_url(config) == "http://127.0.0.1:19899"
    plant.write_text(_PLANT_WITH_A_SECRET.replace("group_id: G", "group_id: a/b"))
    assert stand_in_environment(str(plant)) is None  # a real problem: reported as usual
