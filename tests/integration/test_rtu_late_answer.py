"""RTU frames carry no transaction id: a late answer must never be taken for the next one.

A hand-written slave on a pty answers the first request after the master's timeout.
Unless the master makes sure the slave is back in step (a diagnostics echo), that answer
(registers 0-1) would complete the next request (registers 100-101) and be published as
good values of the wrong block. tests/integration/test_modbus_hostile.py has more.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import pytest
import serial

from drivers.modbus import build_modbus_drivers
from edge_agent.config.loader import parse_config
from edge_agent.errors import DriverReadError
from simulators.pty import pty_pair

pytestmark = pytest.mark.integration

CONFIG = """
plant: {{name: p}}
devices:
  - name: d1
    driver: modbus
    connection: {{transport: rtu, serial_port: {port}, parity: N}}
    timeout: 1s
    poll_groups:
      - {{name: low, interval: 1s, tags: [{{name: a0, address: 0}}, {{name: a1, address: 1}}]}}
      - {{name: high, interval: 1s, tags: [{{name: b0, address: 100}}, {{name: b1, address: 101}}]}}
"""


def _crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _slow_first_answer_slave(port: serial.Serial, stop: threading.Event) -> None:
    """Answers read-holding-registers with 1000 + address, the first answer 1.5 s late,
    and echoes diagnostics requests, in order (as a slave does)."""
    try:
        late = True
        pending = b""
        while not stop.is_set():
            pending += port.read(64)
            if len(pending) < 8:
                continue
            frame, pending = pending[:8], pending[8:]
            unit, function, address, count = struct.unpack(">BBHH", frame[:6])
            if function == 8:  # diagnostics "return query data": the echo is the request
                port.write(frame)
                continue
            if late:
                late = False
                # 0.5 s after the master's 1 s timeout: the answer arrives while the
                # master waits for the diagnostics echo it sends after a missed answer.
                time.sleep(1.5)
            body = struct.pack(">BBB", unit, function, 2 * count) + b"".join(
                struct.pack(">H", 1000 + address + i) for i in range(count)
            )
            port.write(body + struct.pack("<H", _crc16(body)))
    finally:
        port.close()


async def test_a_late_answer_is_not_taken_for_the_next_request(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        stop = threading.Event()
        # Opened before the master speaks: opening a port drops what it holds unread.
        port = serial.Serial(str(pty.server_end), 19200, timeout=0.05)
        slave = threading.Thread(
            target=_slow_first_answer_slave, args=(port, stop), name="rtu-slave"
        )
        slave.start()
        [driver] = build_modbus_drivers(
            parse_config(CONFIG.format(port=pty.client_end), env={}).devices
        )
        try:
            await driver.connect()
            with pytest.raises(DriverReadError, match="timeout"):
                await driver.read("low")  # answered, but too late
            (batch,) = await driver.read("high")
            assert batch.values == [1100, 1101], "registers 100-101, not the late 0-1"
            (batch,) = await driver.read("low")
            assert batch.values == [1000, 1001]
        finally:
            await driver.close()
            stop.set()
            slave.join(5)
