"""Real servers for tests, each a child process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """Live (non-zombie) child pids of ``pid``, read from /proc."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        pids = [int(p) for p in path.read_text().split()]
    except OSError:
        return []
    live = []
    for child in pids:
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            live.append(child)
    return live


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A mosquitto broker that can be stopped and started again on the same port."""

    port: int
    workdir: Path
    #: Appended to the config (later lines win): TLS files of the listener, persistence...
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n"
            f"{self.extra_config}\n"
        )
        # The child keeps its own copy of the log fd; ours is closed at once (an
        # unclosed file is a ResourceWarning, an error under filterwarnings=error).
        with (self.workdir / "mosquitto.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()  # reap it: a failed start must not leak the child
            tail = (self.workdir / "mosquitto.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{tail}") from None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)


@dataclass
class VictoriaMetrics:
    """A VictoriaMetrics single-node server (it accepts the InfluxDB v2 write API).

    Stop and start keep the data directory and the port, like a database restart.
    A line ``m,tag=a f=1.5 TS`` is stored as series ``m_f{tag="a"}`` at millisecond
    resolution; strings are not stored as strings; identical samples are all kept.
    """

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        binary = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr={LOOPBACK}:{self.port}",
            # Fixed test timestamps may be old: the default 1-month retention drops them.
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]
        with (self.workdir / "victoria-metrics.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_port(self.port, timeout=15.0)
        except TimeoutError:
            self.stop()
            tail = (self.workdir / "victoria-metrics.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"victoria-metrics did not start on {self.port}:\n{tail}") from None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def _get(self, path: str, params: dict[str, str] | None = None) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=15) as response:
            body: bytes = response.read()
            return body

    def query(self, promql: str, at_s: float) -> list[dict[str, Any]]:
        """The instant vector of ``promql`` at ``at_s`` (Unix seconds), after flushing:
        ``[{"metric": {...labels}, "value": [seconds, "text"]}]``. A query VictoriaMetrics
        cannot parse raises (HTTP 422), so a name that needs quoting fails loudly here."""
        self._get("/internal/force_flush")
        body = self._get("/api/v1/query", {"query": promql, "time": f"{at_s:.3f}"})
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        assert answer["data"]["resultType"] == "vector", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching ``match`` (a series selector), after flushing what was
        written: ``[{"metric": {...labels}, "values": [...], "timestamps": [ms...]}]``."""
        self._get("/internal/force_flush")
        body = self._get("/api/v1/export", {"match[]": match})
        return [json.loads(line) for line in body.splitlines() if line.strip()]
