"""The Modbus driver and the scheduler against the simulators, over the wire on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from drivers.modbus import ModbusDriver, build_modbus_drivers
from edge_agent.config import PlantConfig
from edge_agent.errors import DriverReadError
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import DeviceState
from edge_agent.service.agent import Agent
from simulators.modbus_server import UnitFault
from simulators.profile import RtuServer
from simulators.pty import pty_pair
from simulators.serve import Plant, serve_profile
from tests.plant import close_enough, demo_config, demo_profile, expected_value

pytestmark = pytest.mark.integration


class FrozenClock:
    """A simulator clock that moves only when told: values are stable between reads."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def frozen_plant() -> AsyncIterator[tuple[Plant, FrozenClock]]:
    clock = FrozenClock()
    async with serve_profile(demo_profile(), clock=clock, start=clock.now - 3600) as plant:
        yield plant, clock


def _ports(plant: Plant) -> dict[str, int]:
    return {name: plant.port(name) for name in plant.servers}


async def _read_all(drivers: list[ModbusDriver]) -> dict[str, dict[str, SampleBatch]]:
    batches: dict[str, dict[str, SampleBatch]] = {}
    for driver in drivers:
        await driver.connect()
        for group in driver.groups:
            (batches.setdefault(driver.device, {})[group.name],) = await driver.read(group.name)
    return batches


def _check_against_truth(
    config: PlantConfig, plant: Plant, batches: dict[str, dict[str, SampleBatch]]
) -> int:
    """Every tag against the simulator's truth; an enum tag's code too (its raw number)."""
    checked = 0
    for device in config.devices:
        quantities = plant.read(device.name)
        for group in device.poll_groups:
            batch = batches[device.name][group.name]
            codes = [t.code_name for t in group.tags if t.code_name is not None]
            assert list(batch.names) == [t.name for t in group.tags] + codes
            samples = {name: (v, q, r) for name, v, q, r in batch}
            for tag in group.tags:
                value, quality, reason = samples[tag.name]
                assert quality is Quality.GOOD, (device.name, tag.name, reason)
                want = expected_value(plant.profile, quantities, device, tag)
                assert close_enough(tag, value, want), (device.name, tag.name, value, want)
                checked += 1
                if tag.code_name is not None:
                    assert tag.enum is not None
                    code = samples[tag.code_name]
                    assert code[1:] == (Quality.GOOD, ""), (device.name, tag.code_name)
                    assert isinstance(code[0], int), code
                    assert tag.enum[code[0]] == value, code
    return checked


async def test_every_demo_tag_decodes_to_the_simulators_ground_truth(
    frozen_plant: tuple[Plant, FrozenClock], tmp_path: Path
) -> None:
    plant, clock = frozen_plant
    config = demo_config(_ports(plant), tmp_path)
    drivers = build_modbus_drivers(config.devices)
    try:
        # Twice, at two simulator times: the first poll also learns the meter's holes.
        for _ in range(2):
            checked = _check_against_truth(config, plant, await _read_all(drivers))
            assert checked == sum(len(g.tags) for d in config.devices for g in d.poll_groups)
            clock.now += 37.0
        meter = next(d for d in drivers if d.device == "line-meter")
        plan = meter.plan("electrical")
        assert plan.barriers, "the meter's map has holes at 12-15 and 26-31"
        assert not plan.invalid_positions
        assert len(plan.requests) == 3
    finally:
        for driver in drivers:
            await driver.close()


async def test_rtu_over_a_pseudo_terminal(tmp_path: Path) -> None:
    """The demo's CNC and press as two slaves on one RS-485 bus (a socat pty pair)."""
    async with pty_pair(tmp_path) as pty:
        demo = demo_profile()
        units = [u for s in demo.servers for u in s.units if u.name in ("cnc-1", "press-1")]
        bus = RtuServer(
            name="bus",
            transport="rtu",
            device=str(pty.server_end),
            baudrate=19200,
            parity="N",
            units=units,
        )
        profile = demo.model_copy(update={"servers": [bus]})
        clock = FrozenClock()
        async with serve_profile(profile, clock=clock, start=clock.now - 600) as plant:
            rtu = f"{{transport: rtu, serial_port: {pty.client_end}, baudrate: 19200, parity: N}}"
            config = demo_config(
                {"line-gateway": 1, "utility": 2},
                tmp_path,
                **{"{transport: tcp, host: 127.0.0.1, port: 1}": rtu},
            )
            devices = [d for d in config.devices if d.name in ("cnc-1", "press-1")]
            config = config.model_copy(update={"devices": devices})
            drivers = build_modbus_drivers(config.devices)
            assert drivers[0].channel is drivers[1].channel, "one bus, one connection"
            try:
                checked = _check_against_truth(config, plant, await _read_all(drivers))
                assert checked == sum(len(g.tags) for d in devices for g in d.poll_groups)
                # A unit that missed an answer is asked for a diagnostics echo before it is
                # read again: the simulator (pymodbus' server) must answer it.
                press = next(d for d in drivers if d.device == "press-1")
                group = press.groups[0].name
                plant.set_unit_fault("press-1", UnitFault.NO_RESPONSE)
                with pytest.raises(DriverReadError, match="timeout"):
                    await press.read(group)
                plant.set_unit_fault("press-1", None)
                (batch,) = await press.read(group)
                assert batch.good_count == len(batch)
            finally:
                for driver in drivers:
                    await driver.close()


async def test_a_killed_device_goes_bad_then_recovers_while_others_keep_flowing(
    tmp_path: Path,
) -> None:
    async with serve_profile(demo_profile()) as plant:
        config = demo_config(_ports(plant), tmp_path)
        agent = Agent(config)
        seen: list[SampleBatch] = []
        agent.pipeline.add_consumer(seen.append)
        states = {s.device: s for s in agent.sources}
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await _until(lambda: all(s.state is DeviceState.ONLINE for s in agent.sources), 10)
            await plant.stop_server("utility")
            await _until(lambda: states["compressor-1"].state is DeviceState.OFFLINE, 15)
            mark = len(seen)
            await asyncio.sleep(2.5)
            window = seen[mark:]
            compressor = [b for b in window if b.device == "compressor-1"]
            line = [b for b in window if b.device == "cnc-1" and b.group == "fast"]
            assert compressor
            assert all(q is Quality.BAD for b in compressor for q in b.qualities), (
                "a dead device's samples are bad, never stale values marked good"
            )
            assert {r for b in compressor for r in b.reasons} <= {"disconnected", "timeout"}
            assert len(line) >= 2
            assert all(b.good_count == len(b) for b in line)
            await plant.start_server("utility")
            await _until(lambda: states["compressor-1"].state is DeviceState.ONLINE, 90)
            assert any(b.device == "compressor-1" and b.good_count == len(b) for b in seen[-30:])
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 10)


async def test_a_silent_unit_times_out_while_its_gateway_neighbours_keep_flowing(
    tmp_path: Path,
) -> None:
    async with serve_profile(demo_profile()) as plant:
        # A shared gateway waits the longest timeout of its units: shorten them all.
        short = {f"    unit_id: {u}\n": f"    unit_id: {u}\n    timeout: 0.3s\n" for u in (2, 3)}
        config = demo_config(_ports(plant), tmp_path, **{"timeout: 1s": "timeout: 0.3s"}, **short)
        agent = Agent(config)
        seen: list[SampleBatch] = []
        agent.pipeline.add_consumer(seen.append)
        states = {s.device: s for s in agent.sources}
        task = asyncio.create_task(agent.run(), name="agent")
        try:
            await _until(lambda: all(s.state is DeviceState.ONLINE for s in agent.sources), 10)
            plant.set_unit_fault("press-1", UnitFault.NO_RESPONSE)
            await _until(lambda: states["press-1"].state is DeviceState.OFFLINE, 10)
            mark = len(seen)
            await asyncio.sleep(3.0)
            window = seen[mark:]
            press = [b for b in window if b.device == "press-1"]
            assert press
            assert all(b.good_count == 0 for b in press)
            assert "timeout" in {r for b in press for r in b.reasons}
            for neighbour in ("line-meter", "cnc-1"):
                # The neighbours' own reads, not their metric batches: a 1 m window that
                # closes in these 3 s after a start covers a few seconds of the minute and
                # is rightly uncertain ("coverage 3.4% below 90%").
                batches = [
                    b
                    for b in window
                    if b.device == neighbour and b.group != "slow" and not b.attributes
                ]
                assert len(batches) >= 2, neighbour
                assert all(b.good_count == len(b) for b in batches), neighbour
            plant.set_unit_fault("press-1", None)
            await _until(lambda: states["press-1"].state is DeviceState.ONLINE, 90)
        finally:
            agent.request_stop()
            await asyncio.wait_for(task, 10)


async def test_exception_codes_mark_samples_bad_with_the_code(tmp_path: Path) -> None:
    async with serve_profile(demo_profile()) as plant:
        config = demo_config(_ports(plant), tmp_path)
        drivers = {d.device: d for d in build_modbus_drivers(config.devices)}
        try:
            plant.set_unit_fault("cnc-1", UnitFault.DEVICE_BUSY)
            await drivers["cnc-1"].connect()
            (batch,) = await drivers["cnc-1"].read("fast")
            assert "state_code" in batch.names  # an enum's code goes bad with its label
            assert set(batch.qualities) == {Quality.BAD}
            assert set(batch.reasons) == {"exception code 6"}
            plant.set_unit_fault("cnc-1", None)
            (batch,) = await drivers["cnc-1"].read("fast")
            assert batch.good_count == len(batch)
        finally:
            for driver in drivers.values():
                await driver.close()


async def _until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
