"""Serial ports that cannot be used say why, in one line: no traceback, no "internal error"."""

from __future__ import annotations

from pathlib import Path

import pytest
import serial
import structlog

from drivers.modbus import build_modbus_drivers
from edge_agent.config import ModbusDeviceConfig
from edge_agent.config.loader import parse_config
from edge_agent.errors import DriverConnectError
from edge_agent.runtime.source_runner import DeviceState, SourceRunner
from simulators.pty import pty_pair

pytestmark = pytest.mark.integration

CONFIG = """
plant: {{name: p}}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: rtu, serial_port: {port}, parity: {parity}}}
    poll_groups:
      - {{name: g, interval: 1s, tags: [{{name: a0, address: 0}}]}}
"""


def _device(port: Path, parity: str = "N") -> ModbusDeviceConfig:
    (device,) = parse_config(CONFIG.format(port=port, parity=parity), env={}).devices
    assert isinstance(device, ModbusDeviceConfig)
    return device


async def _connect_error(device: ModbusDeviceConfig) -> str:
    (driver,) = build_modbus_drivers([device])
    try:
        with pytest.raises(DriverConnectError) as caught:
            await driver.connect()
    finally:
        await driver.close()
    return str(caught.value)


async def test_a_setting_the_port_does_not_keep_is_named(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        message = await _connect_error(_device(pty.client_end, parity="E"))
        assert "does not keep parity E" in message, message
        # The port was closed again: the same port opens with settings it keeps.
        (driver,) = build_modbus_drivers([_device(pty.client_end)])
        try:
            await driver.connect()
            assert driver.connected
        finally:
            await driver.close()


async def test_a_missing_port_is_said_not_to_exist(tmp_path: Path) -> None:
    message = await _connect_error(_device(tmp_path / "ttyUSB9"))
    assert message.endswith("the serial port does not exist"), message


async def test_a_port_in_use_is_said_to_be_in_use(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        holder = serial.Serial(str(pty.client_end), exclusive=True)
        try:
            message = await _connect_error(_device(pty.client_end))
        finally:
            holder.close()
        assert "in use by another program" in message, message


async def test_the_runner_reports_the_refused_setting_once_without_a_traceback(
    tmp_path: Path,
) -> None:
    async with pty_pair(tmp_path) as pty:
        (driver,) = build_modbus_drivers([_device(pty.client_end, parity="E")])
        runner = SourceRunner(driver, lambda batch: None)
        group = driver.groups[0]
        with structlog.testing.capture_logs() as logs:
            batch = await runner.poll_once(group)
            await runner.poll_once(group)  # still offline: answered locally, not logged
        await driver.close()
    assert runner.state is DeviceState.OFFLINE
    assert set(batch.reasons) == {"disconnected"}
    assert len(logs) == 1, logs
    assert logs[0]["event"] == "device offline"
    assert "does not keep parity E" in logs[0]["detail"]
    assert "exc_info" not in logs[0]
