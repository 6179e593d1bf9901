"""A simulator unit refreshes only the registers a read covers, and those always live.

A benchmark plant serves hundreds of points per unit; re-encoding all of them on every
read made the simulator, not the agent, the bottleneck. These tests pin down that the
narrower refresh still answers every read with the model's values at that moment,
including a read that starts in the middle of a point.
"""

from __future__ import annotations

import pytest
from pymodbus.client import AsyncModbusTcpClient

from simulators.modbus_server import LOOPBACK
from simulators.profile import Profile
from simulators.serve import serve_profile

pytestmark = pytest.mark.integration

T0 = 1_699_956_000.0
POINTS = 200  # uint32 counters at 0, 2, 4, ... 398


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def big_meter() -> Profile:
    points = [
        {"name": f"c{i}", "address": 2 * i, "type": "uint32", "quantity": "energy_import_counter"}
        for i in range(POINTS)
    ]
    return Profile.model_validate(
        {
            "name": "big",
            "servers": [
                {
                    "name": "meter",
                    "transport": "tcp",
                    "port": 0,
                    "units": [
                        {
                            "unit_id": 1,
                            "name": "meter",
                            # 40 kW base load: the counter (0.01 kWh) moves by ~11 in 10 s.
                            "model": {
                                "kind": "power_meter",
                                "base_load_kw": 40.0,
                                "initial_counter": 123_456_789,
                            },
                            "points": points,
                        }
                    ],
                }
            ],
        }
    )


def words(counter: int) -> list[int]:
    return [counter >> 16 & 0xFFFF, counter & 0xFFFF]


async def test_reads_see_live_values_of_every_point_they_touch() -> None:
    clock = FakeClock(T0)
    async with serve_profile(big_meter(), clock=clock) as plant:
        client = AsyncModbusTcpClient(LOOPBACK, port=plant.port("meter"), timeout=2, retries=0)
        assert await client.connect()
        try:
            # Far from the window below, so that its points have never been refreshed.
            first = await client.read_holding_registers(300, count=4, device_id=1)
            counter = plant.meter_truth("meter").counter
            assert first.registers == words(counter) * 2

            clock.t = T0 + 10
            # Starts on the low word of the point at 100, ends on the high word of 104.
            middle = await client.read_holding_registers(101, count=4, device_id=1)
            later = plant.meter_truth("meter").counter
            assert later != counter
            assert middle.registers == [*words(later)[1:], *words(later), words(later)[0]]

            # A full-size read across many points, and the last point of the map.
            clock.t = T0 + 20
            block = await client.read_holding_registers(250, count=125, device_id=1)
            tail = await client.read_holding_registers(2 * POINTS - 2, count=2, device_id=1)
            now = plant.meter_truth("meter").counter
            assert now != later
            assert block.registers[:124] == words(now) * 62
            assert block.registers[124] == words(now)[0]
            assert tail.registers == words(now)
        finally:
            client.close()
