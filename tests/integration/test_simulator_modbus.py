"""The simulators over the wire: bare pymodbus clients on 127.0.0.1 and on a socat pty."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU

from simulators.cli import run_simulate
from simulators.modbus_server import LOOPBACK, UnitFault
from simulators.profile import PROFILES_DIR, Point, Profile, load_profile
from simulators.pty import pty_pair
from simulators.serve import Plant, serve_profile

pytestmark = pytest.mark.integration

T0 = 1_699_956_000.0  # Tuesday 2023-11-14 10:00 UTC: inside the demo plant's shifts
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """The clock the simulators read on every request; tests move it by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def demo_profile() -> Profile:
    """The shipped demo plant on free ports, so tests never collide with a running demo."""
    profile = load_profile(PROFILES_DIR / "demo-plant.yaml")
    servers = tuple(s.model_copy(update={"port": 0}) for s in profile.servers)
    return profile.model_copy(update={"servers": servers})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def plant(clock: FakeClock) -> AsyncIterator[Plant]:
    async with serve_profile(demo_profile(), clock=clock) as served:
        yield served


@asynccontextmanager
async def tcp_client(
    port: int, response_timeout: float = 2.0
) -> AsyncIterator[AsyncModbusTcpClient]:
    # reconnect_delay=0: no background reconnect task once the server goes away.
    client = AsyncModbusTcpClient(
        LOOPBACK, port=port, timeout=response_timeout, retries=0, reconnect_delay=0
    )
    assert await client.connect()
    try:
        yield client
    finally:
        client.close()


# --------------------------------------------------------------------------- an independent decoder

_FORMATS = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}


def decode(registers: list[int], point: Point) -> Any:
    """Registers back to a physical value, written from the documented conventions."""
    data = b"".join(struct.pack(">H", r) for r in registers)
    if point.byte_order in ("BADC", "DCBA"):
        data = b"".join(data[i + 1 : i + 2] + data[i : i + 1] for i in range(0, len(data), 2))
    if point.byte_order in ("CDAB", "DCBA"):
        data = b"".join(data[i : i + 2] for i in reversed(range(0, len(data), 2)))
    if point.type == "string":
        return data.rstrip(b"\0").decode("ascii")
    (raw,) = struct.unpack(_FORMATS[point.type], data)
    return raw * point.scale + point.offset


async def read_raw(
    client: AsyncModbusTcpClient | AsyncModbusSerialClient,
    table: str,
    address: int,
    count: int,
    unit_id: int,
) -> ModbusPDU:
    if table == "coil":
        return await client.read_coils(address, count=count, device_id=unit_id)
    if table == "discrete_input":
        return await client.read_discrete_inputs(address, count=count, device_id=unit_id)
    if table == "holding":
        return await client.read_holding_registers(address, count=count, device_id=unit_id)
    return await client.read_input_registers(address, count=count, device_id=unit_id)


async def read_point(
    client: AsyncModbusTcpClient | AsyncModbusSerialClient, unit_id: int, point: Point
) -> Any:
    response = await read_raw(client, point.table, point.address, point.size, unit_id)
    assert not response.isError(), f"{point.name}: {response}"
    if point.type == "bool":
        return response.bits[0]
    return decode(list(response.registers), point)


def assert_served(point: Point, served: Any, expected: Any) -> None:
    """``served`` (decoded off the wire) represents the model's ``expected`` value."""
    if point.type in ("bool", "string"):
        assert served == (expected if point.type == "bool" else expected[: 2 * point.size])
    elif point.type == "float32":
        assert math.isclose(served, expected, rel_tol=1e-6, abs_tol=1e-9), point.name
    elif point.type == "float64" or isinstance(expected, int):
        assert served == expected, point.name
    else:  # scaled integer: within half a count
        assert abs(served - expected) <= abs(point.scale) / 2 * (1 + 1e-9), point.name


# --------------------------------------------------------------------------- TCP


async def test_every_demo_point_decodes_to_the_model_value(plant: Plant, clock: FakeClock) -> None:
    checked = 0
    for hours in (0.0, 2.75):  # the second pass sees counters that moved
        clock.t = T0 + hours * 3600
        for runner in plant.servers.values():
            async with tcp_client(runner.port) as client:
                for unit_id, endpoint in runner.endpoints.items():
                    served = {
                        p.name: await read_point(client, unit_id, p) for p in endpoint.unit.points
                    }
                    expected = plant.read(endpoint.unit.name)  # same clock: same instant
                    for point in endpoint.unit.points:
                        assert_served(point, served[point.name], expected[point.source])
                        checked += 1
    assert checked == 2 * sum(len(u.points) for _, u in plant.profile.units())


async def test_counters_on_the_wire_match_ground_truth(plant: Plant, clock: FakeClock) -> None:
    clock.t = T0 + 3 * 3600
    gateway = plant.servers["line-gateway"]
    points = {(e.unit.name, p.name): p for e in gateway.endpoints.values() for p in e.unit.points}
    async with tcp_client(gateway.port) as client:
        good = await read_point(client, 2, points["cnc-1", "parts_good"])
        scrap = await read_point(client, 2, points["cnc-1", "parts_scrap"])
        counter = await read_point(client, 1, points["line-meter", "energy_import"])
    cnc = plant.machine("cnc-1")
    truth = plant.machine_truth("cnc-1")
    assert truth.parts_total > 0
    assert good == cnc.params.initial_good + truth.parts_good
    assert scrap == cnc.params.initial_scrap + truth.parts_scrap
    meter = plant.meter_truth("line-meter")
    assert round(counter / 0.01) == meter.counter


@pytest.mark.parametrize(
    ("table", "address", "count", "unit_id"),
    [
        ("input", 10, 4, 1),  # meter: 12-15 reserved
        ("input", 0, 26, 1),  # one coalesced read across the hole
        ("input", 38, 1, 1),  # past the last point (float64 at 34-37)
        ("holding", 0, 4, 2),  # CNC: 3 is a hole
        ("holding", 8, 2, 2),
        ("holding", 24, 9, 2),  # string ends at 31
        ("input", 0, 1, 2),  # CNC has no input registers at all
        ("discrete_input", 0, 5, 2),  # 3 is a hole between bits
        ("coil", 1, 3, 2),  # coils end at 2
    ],
)
async def test_reads_touching_a_hole_get_illegal_data_address(
    plant: Plant, table: str, address: int, count: int, unit_id: int
) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        response = await read_raw(client, table, address, count, unit_id)
    assert response.isError()
    assert response.exception_code == 2


async def test_reads_next_to_holes_succeed(plant: Plant) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        for table, address, count, unit_id in [
            ("input", 0, 12, 1),
            ("input", 16, 10, 1),
            ("input", 32, 4, 1),
            ("holding", 0, 3, 2),
            ("holding", 4, 4, 2),
            ("holding", 10, 13, 2),
            ("discrete_input", 0, 3, 2),
            ("coil", 0, 3, 2),
        ]:
            response = await read_raw(client, table, address, count, unit_id)
            assert not response.isError(), (table, address, count, response)


async def test_unknown_unit_and_writes_are_refused(plant: Plant) -> None:
    async with tcp_client(plant.port("line-gateway")) as client:
        unknown = await client.read_holding_registers(0, count=1, device_id=9)
        # press-1 has no writable point: it implements no write function.
        write = await client.write_register(0, 1, device_id=3)
        # cnc-1 takes writes to its mode only: its state register and lamps are read-only.
        read_only = await client.write_register(0, 1, device_id=2)
        coil = await client.write_coil(0, True, device_id=2)
    assert unknown.exception_code == 11  # gateway: target device failed to respond
    assert write.exception_code == 1
    assert read_only.exception_code == 2
    assert coil.exception_code == 2


async def test_stopped_server_closes_clients_and_restarts_on_the_same_port(
    plant: Plant,
) -> None:
    port = plant.port("utility")
    async with tcp_client(port) as client:
        assert not (await client.read_input_registers(0, count=1, device_id=1)).isError()
        await plant.stop_server("utility")
        deadline = time.monotonic() + 2
        while client.connected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert not client.connected, "the server kept the client connection open"
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(LOOPBACK, port)
    async with tcp_client(plant.port("line-gateway")) as other:  # the other server is unaffected
        assert not (await other.read_input_registers(0, count=2, device_id=1)).isError()
    await plant.start_server("utility")
    assert plant.port("utility") == port
    async with tcp_client(port) as client:
        assert not (await client.read_input_registers(0, count=1, device_id=1)).isError()


async def test_a_silent_unit_times_out_while_its_neighbours_answer(plant: Plant) -> None:
    plant.set_unit_fault("cnc-1", UnitFault.NO_RESPONSE)
    async with tcp_client(plant.port("line-gateway"), response_timeout=0.3) as client:
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(0, count=1, device_id=2)
        assert not (await client.read_holding_registers(0, count=1, device_id=3)).isError()
        plant.set_unit_fault("cnc-1", UnitFault.DEVICE_BUSY)
        busy = await client.read_holding_registers(0, count=1, device_id=2)
        assert busy.exception_code == 6
        plant.set_unit_fault("cnc-1", None)
        assert not (await client.read_holding_registers(0, count=1, device_id=2)).isError()


ROLLOVER_PROFILE = {
    "name": "rollover",
    "servers": [
        {
            "name": "meter",
            "transport": "tcp",
            "units": [
                {
                    "unit_id": 1,
                    "name": "meter",
                    "model": {
                        "kind": "power_meter",
                        "base_load_kw": 36.0,  # exactly one count (0.01 kWh) per second
                        "base_load_noise": 0.0,
                        "initial_counter": 2**32 - 10,
                    },
                    "points": [
                        {
                            "name": "energy_import",
                            "address": 48,
                            "type": "uint32",
                            "byte_order": "CDAB",
                            "scale": 0.01,
                            "quantity": "energy_import_kwh",
                        }
                    ],
                }
            ],
        }
    ],
}


async def test_energy_counter_rolls_over_on_the_wire(clock: FakeClock) -> None:
    profile = Profile.model_validate(ROLLOVER_PROFILE)
    async with serve_profile(profile, clock=clock) as served, tcp_client(served.port("meter")) as c:
        raw = []
        for seconds in (5, 9.999, 10, 12.5):
            clock.t = T0 + seconds
            response = await c.read_holding_registers(48, count=2, device_id=1)
            low, high = response.registers
            raw.append(high << 16 | low)
    assert raw == [2**32 - 5, 2**32 - 1, 0, 2]
    assert served.meter_truth("meter").rollovers == 1


# --------------------------------------------------------------------------- RTU on a pty


def rtu_profile(device: Path) -> Profile:
    cnc_points = [
        {"name": "state", "address": 0},
        {"name": "parts_total", "address": 1, "type": "uint32", "byte_order": "CDAB"},
        {"name": "power_kw", "address": 4, "type": "float32"},
        {"name": "running", "table": "coil", "address": 3, "type": "bool"},
    ]
    return Profile.model_validate(
        {
            "name": "rtu",
            "servers": [
                {
                    "name": "rs485",
                    "transport": "rtu",
                    "device": str(device),
                    "parity": "N",  # a pty rejects parity bits
                    "units": [
                        {
                            "unit_id": 5,
                            "name": "cnc",
                            "model": {"kind": "cnc"},
                            "points": cnc_points,
                        },
                        {
                            "unit_id": 6,
                            "name": "meter",
                            "model": {"kind": "power_meter", "loads": ["cnc"]},
                            "points": [{"name": "frequency_hz", "address": 0, "type": "float32"}],
                        },
                    ],
                }
            ],
        }
    )


async def test_rtu_over_a_pty(tmp_path: Path, clock: FakeClock) -> None:
    async with pty_pair(tmp_path) as pair:
        profile = rtu_profile(pair.server_end)
        points = {p.name: p for _, u in profile.units() for p in u.points}
        async with serve_profile(profile, clock=clock) as served:
            client = AsyncModbusSerialClient(
                str(pair.client_end), baudrate=19200, parity="N", timeout=0.3, retries=0
            )
            try:
                assert await client.connect()
                values = served.read("cnc")
                for name in ("state", "parts_total", "power_kw", "running"):
                    assert_served(
                        points[name], await read_point(client, 5, points[name]), values[name]
                    )
                frequency = await read_point(client, 6, points["frequency_hz"])
                assert 49.9 < frequency < 50.1
                hole = await client.read_holding_registers(0, count=4, device_id=5)
                assert hole.exception_code == 2
                with pytest.raises(ModbusIOException):  # nobody on the line answers id 7
                    await client.read_holding_registers(0, count=1, device_id=7)
                await served.stop_server("rs485")
                await served.start_server("rs485")
                assert not (await client.read_holding_registers(0, count=1, device_id=5)).isError()
            finally:
                client.close()


# --------------------------------------------------------------------------- command line


def write_profile(directory: Path, port: int = 0) -> Path:
    text = (PROFILES_DIR / "demo-plant.yaml").read_text()
    text = text.replace("port: 15020", f"port: {port}").replace("port: 15021", "port: 0")
    path = directory / "plant.yaml"
    path.write_text(text)
    return path


def test_run_simulate_prints_one_line_per_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_simulate(write_profile(tmp_path), duration=0.2) == 0
    out = capsys.readouterr().out
    assert out.count("modbus-tcp 127.0.0.1:") == 2
    assert "line-gateway" in out
    assert "utility" in out


def test_run_simulate_reports_a_bad_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nservers: []\n")
    assert run_simulate(path, duration=0.1) == 2
    assert "servers" in capsys.readouterr().err


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_run_simulate_reports_a_port_in_use(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_simulate(write_profile(tmp_path, busy_port), duration=0.1) == 1
    assert f"127.0.0.1:{busy_port}" in capsys.readouterr().err


def test_ctrl_c_stops_the_simulator_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators", "-c", str(write_profile(tmp_path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert "simulating 'demo-plant'" in lines[0]
        assert all("modbus-tcp 127.0.0.1:" in line for line in lines[1:])
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
        assert process.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
