"""What a machine model shows and what it takes: states, modes, quantities, settings.

The vocabulary shared by :mod:`simulators.machine` (the state machine),
:mod:`simulators.machine_params` (its parameters) and the servers. Settings are the
few quantities a client may write (a machine's ``mode``, a compressor's
``pressure_setpoint_bar``); :class:`SettingChange` is one accepted write, kept in the
model's history so ground truth over any interval is exact.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from simulators.schema import Quantity, Value


class MachineState(enum.IntEnum):
    """Served as a uint16: 0 off, 1 idle, 2 run, 3 fault."""

    OFF = 0
    IDLE = 1
    RUN = 2
    FAULT = 3


class MachineMode(enum.IntEnum):
    """The ``mode`` setting: 0 auto (follows the shift calendar), 1 stop (off until auto)."""

    AUTO = 0
    STOP = 1


#: Bits of the ``status_word`` quantity (bit 0 = least significant).
STATUS_BITS: Mapping[str, int] = MappingProxyType(
    {"powered": 0, "running": 1, "fault": 2, "idle": 3}
)

#: Everything a machine can serve, with its kind, unit of measure and meaning.
MACHINE_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        "state": Quantity("int", "", "0 off, 1 idle, 2 run, 3 fault"),
        "status_word": Quantity("int", "", "bit 0 powered, bit 1 running, bit 2 fault, bit 3 idle"),
        "powered": Quantity("bool", "", "state is not off"),
        "idle": Quantity("bool", "", "state is idle"),
        "running": Quantity("bool", "", "state is run"),
        "fault": Quantity("bool", "", "state is fault"),
        "alarm_code": Quantity("int", "", "active alarm, 0 when not in fault"),
        "power_kw": Quantity("float", "kW", "motor power during the current step"),
        "energy_kwh": Quantity(
            "float", "kWh", "energy counter: initial + consumed, floored to energy_resolution_kwh"
        ),
        "parts_total": Quantity("int", "", "parts_good + parts_scrap"),
        "parts_good": Quantity("int", "", "initial_good + good parts made since start"),
        "parts_scrap": Quantity("int", "", "initial_scrap + scrap parts made since start"),
        "ideal_cycle_time_s": Quantity("float", "s", "0 for equipment that makes no parts"),
        "last_cycle_time_s": Quantity("float", "s", "duration of the last finished cycle"),
        "program": Quantity("str", "", "active program (changes at shift start)"),
        "speed_rpm": Quantity("float", "rpm", "spindle / strokes per min / motor speed"),
        "position_um": Quantity("int", "µm", "axis or ram position, moves with the cycle"),
        "position_mm": Quantity("float", "mm", "position_um / 1000 (for points scaled to mm)"),
        "run_seconds": Quantity("int", "s", "whole seconds spent in run since start"),
        "outdoor_c": Quantity("float", "degC", "outdoor temperature (the energy model's)"),
        "mode": Quantity(
            "int", "", "setting: 0 auto (follows the shifts), 1 stop (off until set to 0)"
        ),
    }
)

#: A compressor also serves (and takes) its discharge pressure setpoint.
COMPRESSOR_QUANTITIES: Mapping[str, Quantity] = MappingProxyType(
    {
        **MACHINE_QUANTITIES,
        "pressure_setpoint_bar": Quantity(
            "float", "bar", "setting: discharge pressure setpoint (lower: less power)"
        ),
    }
)

#: The quantities a client may write, per model kind (every machine takes ``mode``).
MACHINE_SETTINGS: frozenset[str] = frozenset({"mode"})
COMPRESSOR_SETTINGS: frozenset[str] = frozenset({"mode", "pressure_setpoint_bar"})


class SettingError(ValueError):
    """A write the model refuses (unknown setting, value outside what the machine takes);
    a Modbus server answers it with exception 3, an OPC UA server with Bad_OutOfRange."""


@dataclass(frozen=True)
class SettingChange:
    """One accepted write: when it came, the step from which it acts, what it set."""

    time_ms: int
    """When the write arrived (the model's clock, milliseconds)."""
    step: int
    """Index of the first step that runs with the new value: the step after the write."""
    effective_ms: int
    """Start of that step (milliseconds): the effect begins exactly here."""
    quantity: str
    value: Value
