"""A running agent with ``remote_config:`` for the remote configuration tests, and
documents to push at it.

The plant is configs/demo-plant.yaml cut to a few devices (as tests/integration/
test_reload.py does), served by the demo simulators, with one MQTT sink to the test's
broker; the agent runs under a real :class:`~edge_agent.service.supervisor.Supervisor`
started from the plant file, as ``edge-agent run`` does.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.config.loader import load_config
from edge_agent.remote_config.cli import _push
from edge_agent.remote_config.document import DocumentError, parse_document
from edge_agent.remote_config.keys import public_line
from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from edge_agent.sinks.mqtt import MqttSink
from tests.plant import demo_devices_text
from tests.service_support import wait_for

PLANT = "demo-plant"


def plant_text(
    ports: dict[str, int],
    broker_port: int,
    devices: tuple[str, ...],
    keys: list[Ed25519PrivateKey],
    *,
    rollback_after: str | None = None,
    edits: dict[str, str] | None = None,
    remote_config: bool = True,
) -> str:
    """The demo plant with ``devices`` only, a sink ``cloud`` to the broker and a
    ``remote_config:`` listing the public halves of ``keys``."""
    text = demo_devices_text(ports, devices, edits)
    text += (
        "sinks:\n"
        f"  - {{name: cloud, type: mqtt, host: 127.0.0.1, port: {broker_port}, keepalive: 5}}\n"
        "service: {drain_timeout: 5s}\n"
    )
    if remote_config:
        listed = "".join(f'    - "{public_line(k.public_key())}"\n' for k in keys)
        text += f"remote_config:\n  sink: cloud\n  public_keys:\n{listed}"
        if rollback_after is not None:
            text += f"  rollback_after: {rollback_after}\n"
    return text


@asynccontextmanager
async def running_agent(path: Path) -> AsyncIterator[Supervisor]:
    """The agent of the plant file ``path``, as ``edge-agent run`` runs it, until the
    block ends; yields once its sink has subscribed to ``config/set``."""
    supervisor = Supervisor(Agent(load_config(path)), config_path=path)
    task = asyncio.create_task(supervisor.run(), name="supervisor")
    try:
        await wait_for(lambda: cloud_sink(supervisor).topics.granted >= 1, 15, "config/set")
        yield supervisor
    finally:
        supervisor.request_stop()
        await task


def cloud_sink(supervisor: Supervisor) -> MqttSink:
    [runner] = supervisor.agent.sinks
    sink = runner.sink
    assert isinstance(sink, MqttSink)
    return sink


def broker_args(port: int, timeout: float = 20.0) -> argparse.Namespace:
    """What ``edge-agent config push --broker 127.0.0.1:PORT --plant demo-plant`` parses."""
    return argparse.Namespace(
        broker=f"127.0.0.1:{port}",
        plant=PLANT,
        tls=False,
        ca_file=None,
        cert_file=None,
        key_file=None,
        insecure=False,
        username="",
        password_env=None,
        timeout=timeout,
    )


async def push(port: int, payload: bytes) -> dict[str, Any]:
    """Publish ``payload`` on config/set and return the agent's report about it (the
    first new one for a payload that is no document: it has no name to match)."""
    try:
        digest: str | None = parse_document(payload).digest
    except DocumentError:
        digest = None
    answer = await _push(broker_args(port), payload, digest)
    assert answer is not None, "no report from the agent"
    return answer
