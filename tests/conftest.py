"""Shared fixtures: leak checks, and real servers (mosquitto) on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import PlantIdentity
from tests.mqtt_support import Subscriber
from tests.servers import Mosquitto, VictoriaMetrics, children_of, free_port


@pytest.fixture(autouse=True)
def _no_leaked_threads_or_processes() -> Iterator[None]:
    """Fail any test that leaves a thread or a child process behind."""
    threads_before = set(threading.enumerate())
    children_before = set(children_of(os.getpid()))
    yield
    deadline = time.monotonic() + 2.0
    while True:
        extra_threads = [
            t for t in threading.enumerate() if t not in threads_before and t.is_alive()
        ]
        extra_children = [p for p in children_of(os.getpid()) if p not in children_before]
        if not (extra_threads or extra_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra_threads, f"test leaked threads: {extra_threads}"
    assert not extra_children, f"test leaked child processes: {extra_children}"


#: The default ``state_dir`` of a plant file: a real system path that no test may write.
SYSTEM_STATE_DIR = Path("/var/lib/edge-agent")


@pytest.fixture(autouse=True)
def _no_writes_to_the_system_state_dir() -> Iterator[None]:
    """Fail a test whose plant left ``state_dir`` out and so wrote the outbox (or metric
    state, certificates) to the gateway's real state directory."""
    existed = SYSTEM_STATE_DIR.exists()
    yield
    assert existed or not SYSTEM_STATE_DIR.exists(), (
        f"the test wrote to {SYSTEM_STATE_DIR}: give its plant a state_dir under tmp_path"
    )


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail any async test that leaves a task running on the loop."""
    before = asyncio.all_tasks()
    yield
    current = asyncio.current_task()
    for _ in range(20):
        leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
        if not leaked:
            return
        await asyncio.sleep(0.05)
    names = ", ".join(t.get_name() for t in leaked)
    for task in leaked:
        task.cancel()
    pytest.fail(f"test leaked asyncio tasks: {names}")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto broker on a free 127.0.0.1 port, stopped after the test."""
    broker = Mosquitto(port=free_port(), workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def plant() -> PlantIdentity:
    return PlantIdentity(name=f"p{uuid.uuid4().hex[:10]}", site="Hall 3")


@pytest.fixture
async def subscriber_factory() -> Any:
    made: list[Subscriber] = []

    async def factory(
        port: int, topic_filter: str, *, persistent: bool = False, **credentials: str
    ) -> Subscriber:
        sub = Subscriber(port, topic_filter, persistent=persistent, **credentials)
        await sub.connect()
        made.append(sub)
        return sub

    yield factory
    for sub in made:
        sub.close()


@pytest.fixture
def persistent_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that keeps sessions across a restart, so a subscriber misses nothing."""
    workdir = tmp_path / "mosquitto"
    broker = Mosquitto(
        port=free_port(),
        workdir=workdir,
        # user root: as root, mosquitto would switch to the "mosquitto" user, which
        # cannot write to pytest's private tmp dir (no effect when not run as root).
        extra_config=f"persistence true\npersistence_location {workdir}/\nuser root\n",
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """A real VictoriaMetrics (InfluxDB v2 write API) on a free 127.0.0.1 port."""
    server = VictoriaMetrics(port=free_port(), workdir=tmp_path / "victoria-metrics")
    server.start()
    try:
        yield server
    finally:
        server.stop()
