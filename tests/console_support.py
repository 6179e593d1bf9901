"""A running agent with its web console, on the demo plant's simulators, for the console tests.

Everything on loopback and free ports: the demo profile's simulators, a Supervisor
(the same service wrapper ``edge-agent run`` uses) with ``service.health`` on port 0
and ``service.console`` as the test asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import ClientSession, CookieJar

from edge_agent.service.agent import Agent
from edge_agent.service.supervisor import Supervisor
from simulators.serve import Plant, serve_profile
from tests.plant import demo_config, demo_profile
from tests.service_support import wait_for

#: A password and its argon2 hash (made once with `edge-agent console hash-password`).
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$oSGvjEhNm"
    "Iutg9C2mp/wgw$aBnN6o4SMY6M/EIah2bvnOM/yZh917yUJ5HuWTRkLF8"
)


@dataclass
class RunningConsole:
    agent: Agent
    supervisor: Supervisor
    plant: Plant
    base: str

    def session(self) -> ClientSession:
        """A browser-like client: keeps cookies (also for 127.0.0.1), no proxy."""
        return ClientSession(base_url=self.base, cookie_jar=CookieJar(unsafe=True))


def console_yaml(console: str = "{}", health: str = "listen: 127.0.0.1, port: 0") -> str:
    return f"service:\n  health: {{{health}}}\n  console: {console}\n"


@contextlib.asynccontextmanager
async def running_console(
    tmp_path: Path,
    extra_yaml: str = "",
    *,
    scheme: str = "http",
    environment: Mapping[str, str] | None = None,
    replace: Mapping[str, str] | None = None,
) -> AsyncIterator[RunningConsole]:
    """``replace``: text replacements in the demo plant file (a tag made writable)."""
    async with serve_profile(demo_profile()) as plant:
        ports = {name: plant.port(name) for name in plant.servers}
        config = demo_config(
            ports,
            tmp_path,
            extra_yaml=extra_yaml or console_yaml(),
            environment=environment,
            **(replace or {}),
        )
        agent = Agent(config)
        supervisor = Supervisor(agent)
        task = asyncio.create_task(supervisor.run(), name="supervisor")
        try:
            await wait_for(lambda: supervisor.health is not None, 15, "the console")
            assert supervisor.health is not None
            base = f"{scheme}://127.0.0.1:{supervisor.health.bound_port}"
            yield RunningConsole(agent, supervisor, plant, base)
        finally:
            supervisor.request_stop()
            await asyncio.wait_for(task, 30)
