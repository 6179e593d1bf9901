"""Test support for the service runtime: a notify socket, an HTTP client, metrics parsing."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.servers import LOOPBACK


@dataclass
class NotifyListener:
    """The AF_UNIX datagram socket systemd would own; messages parsed into dicts."""

    path: Path
    messages: list[dict[str, str]] = field(default_factory=list)
    sock: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def drain(self) -> list[dict[str, str]]:
        """Read what has arrived (never blocks); return the new messages."""
        new = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            new.append(dict(line.split("=", 1) for line in data.decode().split("\n") if line))
        self.messages += new
        return new

    def seen(self, key: str) -> list[dict[str, str]]:
        self.drain()
        return [m for m in self.messages if key in m]

    def close(self) -> None:
        self.sock.close()


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_get(port: int, path: str, method: str = "GET", accept: str = "") -> HttpResponse:
    """One HTTP/1.1 request to 127.0.0.1:``port`` (the endpoint closes after each answer)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        extra = f"Accept: {accept}\r\n" if accept else ""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if method != "HEAD":
        assert int(headers.get("content-length", len(body))) == len(body)
    return HttpResponse(int(lines[0].split(" ")[1]), headers, body)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed by (name, labels)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
