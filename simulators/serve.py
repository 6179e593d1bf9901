"""``serve_profile``: run a whole profile and hand tests a :class:`Plant` to steer it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import MappingProxyType
from typing import Any

from simulators.equipment import (
    Machine,
    MachineTruth,
    MeterTruth,
    Model,
    PowerMeter,
    Simulation,
    Truth,
)
from simulators.modbus_server import ServerRunner, UnitEndpoint, UnitFault
from simulators.profile import OpcUaServer, Profile, build_simulation
from simulators.schema import Value


class Plant:
    """Handle on a served profile: addresses, models, ground truth, fault injection.

    Models keep running while a server is stopped, as equipment does while its
    network interface is down; ground truth therefore keeps growing.
    """

    def __init__(
        self,
        profile: Profile,
        simulation: Simulation,
        runners: Mapping[str, ServerRunner],
        clock: Callable[[], float],
    ) -> None:
        self.profile = profile
        self.simulation = simulation
        self._runners = MappingProxyType(dict(runners))
        self._endpoints = {e.unit.name: e for r in runners.values() for e in r.endpoints.values()}
        self._clock = clock

    @property
    def servers(self) -> Mapping[str, ServerRunner]:
        return self._runners

    def server(self, name: str) -> ServerRunner:
        try:
            return self._runners[name]
        except KeyError:
            raise KeyError(f"no server named {name!r}; have {sorted(self._runners)}") from None

    def port(self, server: str) -> int:
        """Bound TCP port of a server (useful when the profile asked for port 0)."""
        return self.server(server).port

    def address(self, server: str) -> str:
        """``127.0.0.1:PORT`` or the RTU device path."""
        return self.server(server).address

    def describe(self) -> list[str]:
        """One line per server: name, transport, address, units."""
        return [runner.describe() for runner in self._runners.values()]

    def model(self, unit: str) -> Model:
        return self.simulation.model(unit)

    def machine(self, unit: str) -> Machine:
        return self.simulation.machine(unit)

    def meter(self, unit: str) -> PowerMeter:
        return self.simulation.meter(unit)

    def advance(self) -> float:
        """Advance every model to the clock's now; return that time."""
        now = self._clock()
        self.simulation.advance_to(now)
        return now

    def truth(self, unit: str) -> Truth:
        """Ground truth of a unit's model at the clock's now."""
        self.advance()
        return self.simulation.truth(unit)

    def machine_truth(self, unit: str) -> MachineTruth:
        """Ground truth of a machine at the clock's now."""
        self.advance()
        return self.simulation.machine(unit).truth()

    def meter_truth(self, unit: str) -> MeterTruth:
        """Ground truth of a power meter at the clock's now."""
        self.advance()
        return self.simulation.meter(unit).truth()

    def read(self, unit: str) -> dict[str, Value]:
        """All quantities of a unit's model at the clock's now."""
        self.advance()
        return self.simulation.model(unit).read()

    def reads_served(self, unit: str) -> int:
        """Read requests of ``unit`` answered with data so far."""
        try:
            return self._endpoints[unit].reads_served
        except KeyError:
            raise KeyError(f"no unit named {unit!r}; have {sorted(self._endpoints)}") from None

    def set_unit_fault(self, unit: str, fault: UnitFault | None) -> None:
        """Make a unit misbehave on the wire (``None``: answer normally again)."""
        try:
            self._endpoints[unit].fault = fault
        except KeyError:
            raise KeyError(f"no unit named {unit!r}; have {sorted(self._endpoints)}") from None

    async def stop_server(self, name: str) -> None:
        """Close a server's listening socket / serial port and its client connections."""
        await self.server(name).stop()

    async def start_server(self, name: str) -> None:
        """Start a stopped server again, on the same port or device."""
        await self.server(name).start()


@asynccontextmanager
async def serve_profile(
    profile: Profile,
    *,
    clock: Callable[[], float] = time.time,
    start: float | None = None,
) -> AsyncIterator[Plant]:
    """Serve every server of ``profile``; stop them all on exit.

    ``clock`` is read on every request (inject a fake one for exact tests);
    ``start`` is the models' start time, by default the clock's now.
    """
    simulation = build_simulation(profile, clock() if start is None else start)
    runners: dict[str, Any] = {}
    for server in profile.servers:
        if isinstance(server, OpcUaServer):
            from simulators.opcua_server import OpcUaSimulator  # lazy: asyncua only if used

            runners[server.name] = OpcUaSimulator.from_spec(server, simulation, clock)
            continue
        runners[server.name] = ServerRunner(
            server, {u.unit_id: UnitEndpoint(u, simulation, clock) for u in server.units}
        )
    plant = Plant(profile, simulation, runners, clock)
    try:
        for runner in runners.values():
            await runner.start()
        yield plant
    finally:
        for runner in reversed(runners.values()):
            await runner.stop()
