"""Modbus TCP and RTU driver: channel (connection), planner (requests), codec (decoding).

:mod:`drivers.modbus.kind` is its entry in the driver registry.
"""

from drivers.modbus.driver import ModbusDriver, build_modbus_drivers

__all__ = ["ModbusDriver", "build_modbus_drivers"]
