"""``python -m bench.fleet_sims``: the simulated plants of many agents, in one process.

Each agent of the fleet has its own small plant (one simulator profile per agent, from
bench/plant.py); one process serves the profiles of several agents, each device on its
own loopback port, so that a fleet of 50 agents needs two processes, not fifty.

The process is also the judge of what the agents collected: every read request answered
with data is logged with its wall-clock time, per agent and device
(bench/fleet_accounting.py says why that, and not the agent's own counters, is what the
consumer's arrivals are checked against). The served values themselves come from the
simulators' equipment models, as in every other scenario.

Protocol with the harness: one line ``device AGENT DEVICE PORT`` per device, then
``ready``; on SIGTERM the servers stop and ``{"AGENT": {"DEVICE": [served_ns, ...]}}``
is written to ``--out``, then the process exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from pymodbus.constants import ExcCodes

from simulators.equipment import Simulation
from simulators.modbus_server import ServerRunner, UnitEndpoint
from simulators.profile import Profile, TcpServer, Unit, build_simulation, load_profile


class LoggedEndpoint(UnitEndpoint):
    """A unit that remembers when it answered each read (``refresh`` runs once per read)."""

    def __init__(self, unit: Unit, simulation: Simulation, clock: Callable[[], float]) -> None:
        super().__init__(unit, simulation, clock)
        self.served_ns: list[int] = []

    async def refresh(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        served = time.time_ns()
        answer = await super().refresh(
            function_code, start_address, address, count, registers, set_values
        )
        if answer is None and set_values is None:
            self.served_ns.append(served)
        return answer


def runners_of(profile: Profile) -> tuple[list[ServerRunner], dict[str, LoggedEndpoint]]:
    """The profile's TCP servers with logged units (as simulators.serve.serve_profile does)."""
    simulation = build_simulation(profile, time.time())
    runners: list[ServerRunner] = []
    endpoints: dict[str, LoggedEndpoint] = {}
    for server in profile.servers:
        if not isinstance(server, TcpServer):
            raise SystemExit(f"{profile.name}: fleet simulators serve Modbus TCP only")
        units = {u.unit_id: LoggedEndpoint(u, simulation, time.time) for u in server.units}
        for endpoint in units.values():
            endpoints[endpoint.unit.name] = endpoint
        runners.append(ServerRunner(server, units))
    return runners, endpoints


async def serve(profiles: Mapping[str, Path]) -> dict[str, dict[str, list[int]]]:
    """Serve until SIGTERM; returns agent -> device -> served read times (ns)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    started: list[ServerRunner] = []
    logged: dict[str, dict[str, LoggedEndpoint]] = {}
    try:
        for agent, path in profiles.items():
            runners, endpoints = runners_of(load_profile(path))
            logged[agent] = endpoints
            for runner in runners:
                await runner.start()
                started.append(runner)
                for endpoint in runner.endpoints.values():
                    print(f"device {agent} {endpoint.unit.name} {runner.port}", flush=True)
        print("ready", flush=True)
        await stop.wait()
    finally:
        for runner in reversed(started):
            await runner.stop()
    return {
        agent: {name: e.served_ns for name, e in endpoints.items()}
        for agent, endpoints in logged.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_sims", description=__doc__)
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="AGENT=PATH",
        help="an agent's simulator profile (repeat)",
    )
    parser.add_argument("--out", type=Path, required=True, help="served-read log (JSON)")
    args = parser.parse_args(argv)
    profiles = {}
    for item in args.profile:
        agent, _, path = item.partition("=")
        profiles[agent] = Path(path)
    served = asyncio.run(serve(profiles))
    args.out.write_text(json.dumps(served, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
