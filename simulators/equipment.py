"""Pure equipment models and the simulation that steps them together.

The models (:class:`Machine`, :class:`PowerMeter`) do no I/O and own no clock;
front ends (Modbus now, OPC UA later) call :meth:`Simulation.advance_to` with
the time they want and then read values and ground truth. Same seeds and the
same final time give the same values, however the time was stepped there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from simulators.gas_meter import GAS_METER_QUANTITIES, GasMeter, GasMeterTruth
from simulators.machine import (
    MACHINE_QUANTITIES,
    STATUS_BITS,
    Machine,
    MachineState,
    MachineTruth,
)
from simulators.meter import METER_QUANTITIES, MeterTruth, PowerMeter
from simulators.stepping import to_ms

__all__ = [
    "GAS_METER_QUANTITIES",
    "MACHINE_QUANTITIES",
    "METER_QUANTITIES",
    "STATUS_BITS",
    "GasMeter",
    "GasMeterTruth",
    "Machine",
    "MachineState",
    "MachineTruth",
    "MeterTruth",
    "Model",
    "PowerMeter",
    "Simulation",
    "Truth",
]

Model = Machine | PowerMeter | GasMeter
Truth = MachineTruth | MeterTruth | GasMeterTruth


class Simulation:
    """Named models on one step grid, advanced in lockstep.

    Lockstep matters because a meter needs each machine's power for the same
    step: advancing a machine alone past its meter would lose that power.
    """

    def __init__(self, models: Mapping[str, Model]) -> None:
        grids = {(m.start_ms, m.step_ms) for m in models.values()}
        if len(grids) > 1:
            raise ValueError("all models of a simulation must share start time and step")
        self._models = MappingProxyType(dict(models))
        self._now_ms = min((m.start_ms for m in models.values()), default=0)
        meters = [m for m in models.values() if isinstance(m, PowerMeter)]
        loads = [id(load) for meter in meters for load in meter.loads]
        # A meter steps its own loads boundary by boundary. Only a machine
        # measured by two meters needs the (slower) plant-wide lockstep.
        self._lockstep = len(loads) != len(set(loads))
        self._order: tuple[Model, ...] = (*meters, *(m for m in models.values() if m not in meters))

    @property
    def models(self) -> Mapping[str, Model]:
        return self._models

    @property
    def now(self) -> float:
        """Time (seconds) the simulation was last advanced to."""
        return self._now_ms / 1000

    def model(self, name: str) -> Model:
        try:
            return self._models[name]
        except KeyError:
            raise KeyError(f"no model named {name!r}; have {sorted(self._models)}") from None

    def machine(self, name: str) -> Machine:
        model = self.model(name)
        if not isinstance(model, Machine):
            raise TypeError(f"{name!r} is a {type(model).__name__}, not a Machine")
        return model

    def meter(self, name: str) -> PowerMeter:
        model = self.model(name)
        if not isinstance(model, PowerMeter):
            raise TypeError(f"{name!r} is a {type(model).__name__}, not a PowerMeter")
        return model

    def gas_meter(self, name: str) -> GasMeter:
        model = self.model(name)
        if not isinstance(model, GasMeter):
            raise TypeError(f"{name!r} is a {type(model).__name__}, not a GasMeter")
        return model

    def truth(self, name: str) -> Truth:
        """Ground truth of one model at the time the simulation was last advanced to."""
        return self.model(name).truth()

    def advance_to(self, t: float) -> None:
        """Advance every model to ``t`` seconds; meters before the machines they measure."""
        t_ms = to_ms(t)
        if t_ms <= self._now_ms or not self._models:
            return
        if self._lockstep:
            first = self._order[0]
            k = min(m.step_index for m in self._order) + 1
            for boundary in range(first.boundary_ms(k), t_ms + 1, first.step_ms):
                for model in self._order:
                    model.advance_to_ms(boundary)
        for model in self._order:
            model.advance_to_ms(t_ms)
        self._now_ms = t_ms
