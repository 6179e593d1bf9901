"""InfluxDB sink test support: a scripted write endpoint, batches, config builders.

VictoriaMetrics accepts every line it can parse and never answers 413, 429 or 400,
so the error paths of the sink are tested against :class:`ScriptedInflux`: a small
HTTP/1.1 server on loopback that speaks just enough of ``POST /api/v2/write`` to
answer as scripted. influxdb-client talks to it over a real socket; nothing of the
client is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from dataclasses import dataclass, field
from typing import Any

from edge_agent.config import InfluxSinkConfig, PlantConfig
from edge_agent.config.loader import parse_config
from tests.servers import LOOPBACK


@dataclass
class WriteRequest:
    path: str
    headers: dict[str, str]
    lines: list[str]
    status: int


@dataclass
class ScriptedInflux:
    """Answers writes: scripted statuses first, then 413 above ``max_lines``, 400 for
    lines containing ``refuse_marker``, else 204 (and keeps the lines)."""

    max_lines: int | None = None
    refuse_marker: str | None = None
    #: (status, Retry-After header or None) answered to the next requests, in order.
    script: list[tuple[int, str | None]] = field(default_factory=list)
    requests: list[WriteRequest] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in header_lines:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                path = request_line.split(" ")[1]
                status, extra, payload = self._answer(body.decode("utf-8").split("\n"))
                self.requests.append(
                    WriteRequest(path, headers, body.decode("utf-8").split("\n"), status)
                )
                reason = {204: "No Content", 400: "Bad Request", 413: "Too Large"}.get(status, "X")
                response = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(payload)}"]
                response += [f"{k}: {v}" for k, v in extra.items()]
                if payload:
                    response.append("Content-Type: application/json; charset=utf-8")
                writer.write(("\r\n".join(response) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, lines: list[str]) -> tuple[int, dict[str, str], bytes]:
        if self.script:
            status, retry_after = self.script.pop(0)
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            return status, extra, _error("unavailable", "scripted answer")
        if self.max_lines is not None and len(lines) > self.max_lines:
            return 413, {}, _error("request too large", f"{len(lines)} lines")
        if self.refuse_marker is not None:
            bad = [line for line in lines if self.refuse_marker in line]
            if bad:
                return 400, {}, _error("invalid", f"unable to parse '{bad[0]}': bad value")
        self.accepted.extend(lines)
        return 204, {}, b""


def _error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


def influx_config(url: str, **overrides: Any) -> InfluxSinkConfig:
    values: dict[str, Any] = {
        "name": "tsdb",
        "type": "influxdb",
        "url": url,
        "org": "plant-org",
        "bucket": "edge",
        "timeout": 5.0,
    }
    values.update(overrides)
    return InfluxSinkConfig(**values)


PLANT_YAML = """
plant: {name: plant-7, site: Hall 3}
state_dir: /tmp/unused
devices:
  - name: meter-1
    driver: modbus
    device_type: power-meter
    labels: {line: "line 1", "cost,centre": "a=b"}
    connection: {transport: tcp, host: 127.0.0.1, port: 1502}
    poll_groups:
      - name: fast
        interval: 1s
        tags:
          - {name: power, address: 0, type: float32}
"""
#: The same plant with units: power in kW, count without one (two lines per poll).
PLANT_WITH_UNITS_YAML = PLANT_YAML.replace(
    "type: float32}", "type: float32, unit: kW}\n          - {name: count, address: 2}"
)


def plant_config(units: bool = False) -> PlantConfig:
    return parse_config(PLANT_WITH_UNITS_YAML if units else PLANT_YAML, "plant.yaml", env={})
