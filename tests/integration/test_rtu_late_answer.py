"""RTU frames carry no transaction id: a late answer must never be taken for the next one.

A hand-written slave on a pty answers the first request after the master's timeout.
Without a quiet period after the timeout, that answer (registers 0-1) would complete the
next request (registers 100-101) and be published as good values of the wrong block.
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


def _slow_first_answer_slave(path: Path, stop: threading.Event) -> None:
    """Answers read-holding-registers with 1000 + address; the first answer 1.5 s late."""
    port = serial.Serial(str(path), 19200, timeout=0.05)
    try:
        late = True
        pending = b""
        while not stop.is_set():
            pending += port.read(64)
            if len(pending) < 8:
                continue
            frame, pending = pending[:8], pending[8:]
            unit, function, address, count = struct.unpack(">BBHH", frame[:6])
            if late:
                late = False
                # Half-way between the master's 1 s timeout and the end of its quiet
                # period (as long again): 0.5 s of margin either side for a busy machine
                # (with 0.2 / 0.1 s the test once failed under the full suite).
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
        slave = threading.Thread(
            target=_slow_first_answer_slave, args=(pty.server_end, stop), name="rtu-slave"
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
