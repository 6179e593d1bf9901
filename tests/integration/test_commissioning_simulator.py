"""``read`` and ``probe`` over the wire against our simulators (TCP, and RTU on a pty).

The expected values are the simulator's ground truth (its model quantities), and the
expected map is the one simulators/profiles/demo-plant.yaml documents: the tools must
find the type, byte order and holes the profile serves without being told.
"""

from __future__ import annotations

import io
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.modbus.scan_tools import run_scan_registers, run_scan_units
from drivers.modbus.target import parse_target
from drivers.modbus.tools import Device, run_probe, run_read
from edge_agent.config import ModbusTable
from simulators.profile import RtuServer
from simulators.pty import pty_pair
from simulators.serve import Plant, serve_profile
from simulators.templates import SERVER_NAME, UNIT_NAME, load_bundled, template_profile
from tests.modbus_hostile import (
    Asked,
    Behaviour,
    HostileRtuBus,
    HostileTcpServer,
    Reply,
    honest,
    registers_pdu,
)
from tests.plant import demo_profile

pytestmark = pytest.mark.integration


class FrozenClock:
    """The simulator's clock, still: values do not move between the tool's reads."""

    def __init__(self) -> None:
        self.now = 1_699_956_000.0  # Tuesday 2023-11-14 10:00 UTC: inside the shifts

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def plant() -> AsyncIterator[Plant]:
    clock = FrozenClock()
    async with serve_profile(demo_profile(), clock=clock, start=clock.now - 600) as served:
        yield served


def _device(plant: Plant, server: str, unit: int, timeout: float = 1.0) -> Device:
    return Device(parse_target(f"tcp://{plant.address(server)}"), unit, timeout)


def _float32(value: object) -> str:
    assert isinstance(value, float)
    return f"{struct.unpack('>f', struct.pack('>f', value))[0]:.7g}"


async def test_read_shows_the_true_value_in_the_float32_abcd_column(plant: Plant) -> None:
    out = io.StringIO()
    code = await run_read(
        _device(plant, "line-gateway", 1), table="input", address=0, count=2, out=out
    )
    assert code == 0, out.getvalue()
    (row,) = [line.split() for line in out.getvalue().splitlines() if "float32" in line]
    assert row[1] == _float32(plant.read("line-meter")["voltage_l1_n"])


@pytest.mark.parametrize(
    ("unit", "name", "table", "address", "quantity", "expected"),
    [
        (1, "line-meter", "input", 0, "voltage_l1_n", "float32 ABCD"),
        (2, "cnc-1", "holding", 4, "power_kw", "float32 CDAB"),
        (3, "press-1", "holding", 2, "power_kw", "float32 BADC"),
        (3, "press-1", "holding", 11, "power_kw", "uint16 ABCD x0.1"),
    ],
)
async def test_probe_finds_the_served_type_and_byte_order(
    plant: Plant,
    unit: int,
    name: str,
    table: ModbusTable,
    address: int,
    quantity: str,
    expected: str,
) -> None:
    truth = plant.read(name)[quantity]
    assert isinstance(truth, float)
    assert truth > 1.0, "the machine should be working at this time of the profile"
    out = io.StringIO()
    code = await run_probe(
        _device(plant, "line-gateway", unit),
        table=table,
        address=address,
        low=truth * 0.95,
        high=truth * 1.05,
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert f"likeliest: {expected} at address {address} = " in text, text


async def test_scan_units_on_a_gateway(plant: Plant) -> None:
    out = io.StringIO()
    code = await run_scan_units(
        _device(plant, "line-gateway", 1, timeout=0.5),
        first=1,
        last=5,
        table="holding",
        address=0,
        pause=0.0,
        budget=60,
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    # Unit 1 (the meter) has no holding register 0: its exception 2 still says "here".
    assert "unit   1: is there: answered exception 2" in text
    assert "5 unit ids asked; devices at: 1, 2, 3" in text
    assert "gateway answered exception 11" in text


async def test_scan_registers_maps_the_profiles_holes(plant: Plant) -> None:
    out = io.StringIO()
    code = await run_scan_registers(
        _device(plant, "line-gateway", 1),
        table="input",
        first=0,
        last=39,
        block=16,
        pause=0.0,
        budget=60,
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    spans = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert spans == ["0-11", "12-15", "16-25", "26-31", "32-37", "38-39"]
    assert "12-15  4 registers    hole: exception 2 (illegal data address)" in text


async def test_read_and_scan_over_rtu(tmp_path: Path) -> None:
    """The CNC and the press as two slaves on one RS-485 bus (a socat pty pair)."""
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
        clock = FrozenClock()
        profile = demo.model_copy(update={"servers": [bus]})
        async with serve_profile(profile, clock=clock, start=clock.now - 600) as served:
            target = parse_target(f"rtu://{pty.client_end}?baud=19200&parity=N")
            out = io.StringIO()
            code = await run_read(
                Device(target, 2, 1.0),
                table="holding",
                address=4,
                type_="float32",
                byte_order="CDAB",
                out=out,
            )
            assert code == 0, out.getvalue()
            power = _float32(served.read("cnc-1")["power_kw"])
            assert f"float32 CDAB at holding 4: {power}" in out.getvalue()

            out = io.StringIO()
            code = await run_scan_units(
                Device(target, 1, 0.3),
                first=1,
                last=4,
                table="holding",
                address=0,
                pause=0.0,
                budget=60,
                out=out,
            )
            assert code == 0, out.getvalue()
            assert "4 unit ids asked; devices at: 2, 3" in out.getvalue()

            out = io.StringIO()
            code = await run_read(Device(target, 5, 0.3), table="holding", address=0, out=out)
            assert code == 1
            assert "on the serial line" in out.getvalue()


def _silent_hole_no_diagnostics(asked: Asked) -> list[Reply]:
    """A meter that ignores reads touching holding 10-11 and never answers function 8
    (cheap meters do both): every read after a missed answer finds the unit in doubt."""
    if asked.function == 8 or (asked.address < 12 and asked.address + asked.count > 10):
        return []
    return honest(asked)


async def test_a_silent_hole_on_rtu_does_not_hide_the_registers_after_it(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        with HostileRtuBus(pty.server_end, {1: _silent_hole_no_diagnostics}):
            target = parse_target(f"rtu://{pty.client_end}?baud=19200&parity=N")
            out = io.StringIO()
            code = await run_scan_registers(
                Device(target, 1, 0.1),
                table="holding",
                first=0,
                last=29,
                block=10,
                pause=0.0,
                budget=60,
                out=out,
            )
    text = out.getvalue()
    assert code == 0, text
    spans = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert spans == ["0-9", "10-11", "12-29"], text
    assert "12-29  18 registers   readable" in text


# ----------------------------------------------------------- replies that do not fit


def _wrong_function(asked: Asked) -> list[Reply]:
    """Answers a holding read (fc 3) as if it were an input read (fc 4)."""
    return [Reply(registers_pdu(4, [0x4366, 0x199A][: asked.count]))]


def _short_byte_count(asked: Asked) -> list[Reply]:
    """One register fewer than asked, with a byte count that says so."""
    return [Reply(registers_pdu(asked.function, [0x4366] * (asked.count - 1)))]


@pytest.mark.parametrize(
    ("behaviour", "words"),
    [
        (_wrong_function, "a reply to function 4 came for a read with function 3"),
        (_short_byte_count, "byte count 2 for 2 registers (4 expected)"),
    ],
)
async def test_a_reply_that_does_not_fit_is_never_decoded(behaviour: Behaviour, words: str) -> None:
    async with HostileTcpServer({1: behaviour}) as server:
        target = Device(parse_target(f"tcp://127.0.0.1:{server.port}"), 1, 1.0)
        out = io.StringIO()
        code = await run_read(target, table="holding", address=0, count=2, out=out)
        text = out.getvalue()
        assert code == 1, text
        assert "invalid reply" in text
        assert words in text
        assert "float32" not in text  # no decode table of a reply that was refused
        out = io.StringIO()
        code = await run_probe(target, table="holding", address=0, low=220, high=240, out=out)
        assert code == 1
        assert "230.1" not in out.getvalue()


@pytest.fixture
async def sdm630() -> AsyncIterator[Plant]:
    """The Eastron SDM630 template served (unit 1) on a free loopback port."""
    clock = FrozenClock()
    template = load_bundled("eastron-sdm630")
    async with serve_profile(
        template_profile(template, unit_id=1), clock=clock, start=clock.now - 600
    ) as served:
        yield served


@pytest.mark.parametrize("high", [10.0, 100000.0])
async def test_probe_of_a_round_energy_value_is_not_fooled_by_absurd_floats(
    sdm630: Plant, high: float
) -> None:
    # energy_export is a round 1.25 kWh, [3FA0 0000]: word-swapped it reads 2.28e-41
    # and float64 from 72 reads 3.4e-310, both "in" 0..high and neither a measurement.
    truth = sdm630.read(UNIT_NAME)["energy_export_kwh"]
    assert truth == 1.25
    device = Device(parse_target(f"tcp://{sdm630.address(SERVER_NAME)}"), 1, 1.0)
    for address in (74, 72):
        out = io.StringIO()
        code = await run_probe(device, table="input", address=address, low=0, high=high, out=out)
        text = out.getvalue()
        assert code == 0, text
        if address == 74:
            assert "likeliest: float32 ABCD at address 74 = 1.25" in text, text
        assert "e-41" not in text.split("likeliest")[1], text
        assert "e-310" not in text.split("likeliest")[1], text
        assert "strong evidence" not in text, text
