"""Writes to the simulators over the wire, with a bare pymodbus client on 127.0.0.1.

What a unit accepts and how it refuses is documented in simulators/modbus_writes.py;
each rule here is checked against the model's ground truth, and a plant written over
the wire is compared with a twin written through the model's API at the same instant:
equal to the microjoule, so the wire path decodes exactly what was sent.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from pymodbus.pdu.register_message import ReadWriteMultipleRegistersRequest

from simulators.equipment import MachineState, Simulation
from simulators.machine import SettingChange
from simulators.profile import Profile, build_simulation, parse_profile
from simulators.serve import Plant, serve_profile
from tests.integration.test_simulator_modbus import T0, FakeClock, demo_profile, tcp_client

pytestmark = pytest.mark.integration

CNC, PRESS, COMPRESSOR = 2, 3, 1  # unit ids on their servers


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def plant(clock: FakeClock) -> AsyncIterator[Plant]:
    async with serve_profile(demo_profile(), clock=clock) as served:
        yield served


def twin(profile: Profile, writes: list[tuple[float, str, str, float]]) -> Simulation:
    """The same plant, written through the models' API at the same instants."""
    simulation = build_simulation(profile, T0)
    for at, unit, quantity, value in writes:
        simulation.advance_to(at)
        simulation.machine(unit).write(quantity, value)
    return simulation


async def test_a_setpoint_written_acts_from_the_next_step_exactly(
    plant: Plant, clock: FakeClock
) -> None:
    clock.t = T0 + 600.25
    async with tcp_client(plant.port("utility")) as client:
        before = await client.read_holding_registers(0, count=1, device_id=COMPRESSOR)
        echo = await client.write_register(0, 650, device_id=COMPRESSOR)
        after = await client.read_holding_registers(0, count=1, device_id=COMPRESSOR)
    assert list(before.registers) == [700]  # 7.00 bar at start
    assert not echo.isError()
    assert list(echo.registers) == [650]
    assert list(after.registers) == [650]  # a device shows the stored setting at once
    (change,) = plant.machine_truth("compressor-1").changes
    assert change == SettingChange(
        time_ms=round((T0 + 600.25) * 1000),
        step=601,
        effective_ms=round((T0 + 601) * 1000),
        quantity="pressure_setpoint_bar",
        value=6.5,
    )

    clock.t = T0 + 6 * 3600
    written = twin(demo_profile(), [(T0 + 600.25, "compressor-1", "pressure_setpoint_bar", 6.5)])
    untouched = twin(demo_profile(), [])
    for simulation in (written, untouched):
        simulation.advance_to(clock.t)
    for unit in ("compressor-1", "compressor-meter"):
        assert plant.truth(unit) == written.truth(unit)
        assert plant.read(unit) == written.model(unit).read()
    # The meter that measures the compressor follows: less energy at 6.5 bar than at 7.
    saved = (
        untouched.meter("compressor-meter").truth().energy_uj
        - plant.meter_truth("compressor-meter").energy_uj
    )
    compressor = (
        untouched.machine("compressor-1").truth().energy_uj
        - plant.machine_truth("compressor-1").energy_uj
    )
    assert saved == compressor > 0


async def test_values_outside_the_point_range_are_refused_with_exception_3(
    plant: Plant,
) -> None:
    async with tcp_client(plant.port("utility")) as client:
        low = await client.write_register(0, 549, device_id=COMPRESSOR)  # 5.49 bar
        high = await client.write_register(0, 801, device_id=COMPRESSOR)
        edge = await client.write_register(0, 550, device_id=COMPRESSOR)  # 5.50: allowed
    async with tcp_client(plant.port("line-gateway")) as client:
        mode = await client.write_register(40, 2, device_id=CNC)
    assert (low.exception_code, high.exception_code, mode.exception_code) == (3, 3, 3)
    assert not edge.isError()
    assert [c.value for c in plant.machine_truth("compressor-1").changes] == [5.5]
    assert plant.machine_truth("cnc-1").changes == ()


@pytest.mark.parametrize(
    ("server", "unit_id", "request_kind", "address", "values", "code"),
    [
        ("utility", COMPRESSOR, "register", 1, [1], 2),  # no point there
        ("utility", COMPRESSOR, "registers", 0, [650, 1], 2),  # runs past the setpoint
        ("line-gateway", CNC, "register", 0, [1], 2),  # state: read-only
        ("line-gateway", CNC, "registers", 39, [0, 1], 2),  # 39 is a hole before mode
        ("line-gateway", CNC, "coil", 0, [True], 2),  # a lamp: read-only
        ("line-gateway", CNC, "coils", 7, [False, True], 2),  # 7 is a hole
        ("line-gateway", PRESS, "register", 0, [1], 1),  # no writable point at all
        ("line-gateway", PRESS, "coil", 0, [True], 1),
    ],
)
async def test_writes_touching_a_read_only_address_are_refused(
    plant: Plant,
    server: str,
    unit_id: int,
    request_kind: str,
    address: int,
    values: list[int],
    code: int,
) -> None:
    async with tcp_client(plant.port(server)) as client:
        if request_kind == "register":
            response = await client.write_register(address, values[0], device_id=unit_id)
        elif request_kind == "registers":
            response = await client.write_registers(address, values, device_id=unit_id)
        elif request_kind == "coil":
            response = await client.write_coil(address, bool(values[0]), device_id=unit_id)
        else:
            response = await client.write_coils(
                address, [bool(v) for v in values], device_id=unit_id
            )
    assert response.isError()
    assert response.exception_code == code
    for unit in ("cnc-1", "compressor-1", "press-1"):
        assert plant.machine_truth(unit).changes == (), unit


async def test_read_write_multiple_is_not_implemented(plant: Plant) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        request = ReadWriteMultipleRegistersRequest(
            read_address=40, read_count=1, write_address=40, write_registers=[1], dev_id=CNC
        )
        response = await client.execute(False, request)
    assert response.isError()
    assert response.exception_code == 1
    assert plant.machine_truth("cnc-1").changes == ()


async def test_mask_write_sets_the_mode_and_the_setpoint(plant: Plant, clock: FakeClock) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        echo = await client.mask_write_register(
            address=40, and_mask=0xFFFE, or_mask=0x0001, device_id=CNC
        )
        mode = await client.read_holding_registers(40, count=1, device_id=CNC)
        # A mask that would make mode 3 is refused, and leaves it at 1.
        refused = await client.mask_write_register(
            address=40, and_mask=0xFFFD, or_mask=0x0002, device_id=CNC
        )
    assert not echo.isError()
    assert (echo.and_mask, echo.or_mask) == (0xFFFE, 0x0001)
    assert list(mode.registers) == [1]
    assert refused.exception_code == 3
    async with tcp_client(plant.port("utility")) as client:
        # 700 = 0x02BC -> clear all, set 600 = 0x0258: 6.00 bar.
        setpoint = await client.mask_write_register(
            address=0, and_mask=0x0000, or_mask=600, device_id=COMPRESSOR
        )
    assert not setpoint.isError()
    assert plant.read("compressor-1")["pressure_setpoint_bar"] == 6.0
    assert [c.value for c in plant.machine_truth("cnc-1").changes] == [1]


async def test_mode_stop_and_auto_stop_and_start_the_machine(
    plant: Plant, clock: FakeClock
) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        assert (await client.read_holding_registers(0, count=1, device_id=CNC)).registers[0] != 0
        clock.t = T0 + 100.5
        assert not (await client.write_register(40, 1, device_id=CNC)).isError()
        clock.t = T0 + 101  # the step after the write: off
        state = await client.read_holding_registers(0, count=1, device_id=CNC)
        power = await client.read_holding_registers(4, count=2, device_id=CNC)
        parts = plant.machine_truth("cnc-1").parts_total
        clock.t = T0 + 3600  # an hour stopped: nothing made, no energy drawn
        assert (await client.read_holding_registers(0, count=1, device_id=CNC)).registers[0] == 0
        stopped = plant.machine_truth("cnc-1")
        # The coil shows the same setting; writing it 0 starts the machine again.
        stop_coil = await client.read_coils(8, count=1, device_id=CNC)
        assert not (await client.write_coil(8, False, device_id=CNC)).isError()
        clock.t = T0 + 3601
        restarted = await client.read_holding_registers(0, count=1, device_id=CNC)
    assert list(state.registers) == [0]
    assert list(power.registers) == [0, 0]
    assert stopped.parts_total == parts
    assert stopped.ms_in_state[MachineState.OFF] >= (3600 - 101) * 1000
    assert stop_coil.bits[0] is True
    assert list(restarted.registers) == [int(MachineState.IDLE)]  # warm-up after a start
    assert [(c.quantity, c.value) for c in plant.machine_truth("cnc-1").changes] == [
        ("mode", 1),
        ("mode", 0),
    ]


_FLOAT_PROFILE = """
name: writes
seed: 5
servers:
  - name: plc
    transport: tcp
    units:
      - unit_id: 1
        name: comp
        model: {kind: compressor, shifts: [{start: "00:00", end: "24:00"}]}
        points:
          - {name: setpoint, address: 10, type: float32, byte_order: CDAB,
             quantity: pressure_setpoint_bar, writable: true, min: 5, max: 9}
          - {name: mode, address: 20, type: int32, byte_order: DCBA, writable: true}
          - {name: stop, table: coil, address: 3, quantity: mode, type: bool, writable: true}
"""


async def test_multi_register_values_must_be_written_whole(clock: FakeClock) -> None:
    profile = parse_profile(_FLOAT_PROFILE)
    async with serve_profile(profile, clock=clock) as served:
        async with tcp_client(served.port("plc")) as client:
            half = await client.write_register(10, 0x40C8, device_id=1)
            other_half = await client.write_registers(11, [0x0000, 0], device_id=1)
            high, low = struct.unpack(">HH", struct.pack(">f", 6.25))
            whole = await client.write_registers(10, [low, high], device_id=1)  # CDAB
            mode_words = list(struct.unpack(">HH", struct.pack("<i", 1)))  # DCBA
            mode = await client.write_registers(20, mode_words, device_id=1)
            coils = await client.write_coils(3, [False], device_id=1)
        values = served.read("comp")
        changes = served.machine_truth("comp").changes
    assert (half.exception_code, other_half.exception_code) == (2, 2)
    assert not whole.isError()
    assert not mode.isError()
    assert not coils.isError()
    assert values["pressure_setpoint_bar"] == 6.25
    assert [(c.quantity, c.value) for c in changes] == [
        ("pressure_setpoint_bar", 6.25),
        ("mode", 1),
        ("mode", 0),
    ]
