"""Writes over the wire to a Modbus server we did not write: libmodbus 3.1 (modbus_reply).

Every value is written through the driver, read back through the driver, and checked
independently: the registers the server holds (its state file, not a Modbus read)
must be what simulators/registers.py (an encoder that shares no code with drivers/)
makes of the value. The server's request log shows which function codes went out,
and that each write went out exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus import ModbusDriver, build_modbus_drivers
from edge_agent.config import ModbusDeviceConfig
from edge_agent.driver import PreparedWrite, WriteFailed, WriteRefused
from simulators.pty import pty_pair
from simulators.registers import encode as sim_encode
from tests.libmodbus_peer import ServerState, compile_image_server, registers, writable_server

pytestmark = pytest.mark.integration

UNIT = 3
ORDERS = ("ABCD", "BADC", "CDAB", "DCBA")
#: type -> a value that uses every byte (sign included).
VALUES: dict[str, int | float] = {
    "int16": -12345,
    "uint16": 54321,
    "int32": -123456789,
    "uint32": 3_000_000_123,
    "int64": -(2**62) + 12345,
    "uint64": 2**64 - 12345,
    "float32": 123.456,
    "float64": -9876.54321012345,
}
#: (type, scale, offset, value): scaled integers and a scaled float.
SCALED: list[tuple[str, float, float, float]] = [
    ("int16", 0.1, -40.0, -12.3),
    ("uint16", 0.01, 0.0, 6.5),
    ("int32", 0.5, 3.0, -1000.5),
    ("uint32", 0.001, 0.0, 123456.789),
    ("float32", 2.0, 1.0, 9.5),
]
BIT_REGISTER = 0b1010_0101_0000_1111


def _tags() -> list[dict[str, Any]]:
    tags: list[dict[str, Any]] = []
    address = 100
    for type_, _value in VALUES.items():
        for order in ORDERS:
            tags.append(
                {"name": f"{type_}_{order}", "address": address, "type": type_, "byte_order": order}
            )
            address += 4
    for n, (type_, scale, offset, _) in enumerate(SCALED):
        for order in ORDERS:
            tags.append(
                {
                    "name": f"scaled{n}_{order}",
                    "address": address,
                    "type": type_,
                    "byte_order": order,
                    "scale": scale,
                    "offset": offset,
                }
            )
            address += 4
    for order in ORDERS:
        tags.append(
            {"name": f"text_{order}", "address": address, "type": "string", "length": 4}
            | {"byte_order": order}
        )
        address += 4
    tags += [
        {"name": "state", "address": 10, "type": "uint16", "enum": {0: "off", 1: "idle", 2: "run"}},
        {"name": "b3", "address": 1, "type": "bool", "bit": 3},
        {"name": "b6", "address": 1, "type": "bool", "bit": 6},
        {"name": "pump", "table": "coil", "address": 4, "type": "bool"},
        {"name": "one", "address": 11, "type": "uint16"},
        {"name": "hole", "address": 900, "type": "uint16"},
        {"name": "level", "table": "input", "address": 0, "type": "uint16"},
    ]
    return tags


def _device(name: str, connection: dict[str, Any], **writes: Any) -> ModbusDeviceConfig:
    return ModbusDeviceConfig.model_validate(
        {
            "name": name,
            "driver": "modbus",
            "connection": connection,
            "unit_id": UNIT,
            "timeout": 1.0,
            "writes": writes,
            "poll_groups": [{"name": "g", "interval": 1.0, "tags": _tags()}],
        }
    )


def _image() -> list[str]:
    image = registers(UNIT, "holding", 0, [0] * 400)
    image[1] = f"{UNIT} holding 1 {BIT_REGISTER}"
    image += registers(UNIT, "coil", 0, [0] * 8)
    image += registers(UNIT, "input", 0, [7])
    return image


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_image_server(tmp_path_factory.mktemp("libmodbus-writable"))


@pytest.fixture
def served(binary: Path, tmp_path: Path) -> Iterator[tuple[int, ServerState]]:
    with writable_server(binary, _image(), tmp_path) as server:
        yield server


def _drivers(port: int, **writes: Any) -> list[ModbusDriver]:
    connection = {"transport": "tcp", "host": "127.0.0.1", "port": port}
    return build_modbus_drivers([_device("d", connection, **writes)])


async def _round_trip(driver: ModbusDriver, tag: str, value: Any) -> PreparedWrite:
    prepared = await driver.prepare(tag, value)
    await driver.write(prepared)
    reading = await driver.read_tag(tag)
    assert reading.good, reading.reason
    assert reading.value == prepared.expected, (tag, reading.value, prepared.expected)
    return prepared


def _held(state: ServerState, address: int, count: int) -> list[int]:
    return state.registers(UNIT, address, count)


async def test_every_type_and_byte_order_round_trips(served: tuple[int, ServerState]) -> None:
    port, state = served
    [driver] = _drivers(port)
    config = {t.name: t for t in driver.config.poll_groups[0].tags}
    await driver.connect()
    try:
        for type_, value in VALUES.items():
            for order in ORDERS:
                name = f"{type_}_{order}"
                prepared = await _round_trip(driver, name, value)
                tag = config[name]
                truth = sim_encode(value, type_, byte_order=order)  # type: ignore[arg-type]
                assert _held(state, tag.address, len(truth)) == truth, name
                if type_ != "float32":
                    assert prepared.expected == value, name
        for n, (type_, scale, offset, value) in enumerate(SCALED):
            for order in ORDERS:
                name = f"scaled{n}_{order}"
                prepared = await _round_trip(driver, name, value)
                tag = config[name]
                truth = sim_encode(value, type_, byte_order=order, scale=scale, offset=offset)  # type: ignore[arg-type]
                assert _held(state, tag.address, len(truth)) == truth, name
                assert prepared.expected == value, name
        for order in ORDERS:
            name = f"text_{order}"
            await _round_trip(driver, name, "PUMP-7")
            # Text is one character pair per register: a word swap does not apply.
            like = "ABCD" if order in ("ABCD", "CDAB") else "BADC"
            truth = sim_encode("PUMP-7", "string", byte_order=like, length=4)  # type: ignore[arg-type]
            assert _held(state, config[name].address, 4) == truth, name
        prepared = await _round_trip(driver, "state", "run")
        assert prepared.expected == "run"
        assert _held(state, 10, 1) == [2]
        assert (await driver.read_tag("state_code")).value == 2
        await _round_trip(driver, "pump", True)
        assert state.image()[UNIT, "coil", 4] == 1
        writes = [r for r in state.requests() if r[1] not in (1, 2, 3, 4)]
        assert {function for _, function, _, _ in writes} == {5, 6, 16}
        assert len(writes) == 4 * len(VALUES) + 4 * len(SCALED) + 4 + 2, "each sent once"
    finally:
        await driver.close()


@pytest.mark.parametrize("mask_write", [False, True])
async def test_a_bit_inside_a_register_leaves_its_neighbours(
    served: tuple[int, ServerState], mask_write: bool
) -> None:
    port, state = served
    [driver] = _drivers(port, mask_write=mask_write)
    await driver.connect()
    try:
        before = len(state.requests())
        prepared = await _round_trip(driver, "b6", True)
        assert _held(state, 1, 1) == [BIT_REGISTER | 1 << 6]
        await _round_trip(driver, "b3", False)
        assert _held(state, 1, 1) == [(BIT_REGISTER | 1 << 6) & ~(1 << 3)]
        functions = [f for _, f, _, _ in state.requests()[before:]]
        if mask_write:
            assert prepared.sent == "holding 1 bit 6 <- 1 (function 22)"
            assert functions == [22, 3, 22, 3]  # each write, then its read-back
        else:
            assert prepared.sent == "holding 1 bit 6 <- 1 (read-modify-write: function 3, then 6)"
            assert functions == [3, 6, 3, 3, 6, 3]
    finally:
        await driver.close()


async def test_multiple_functions_only(served: tuple[int, ServerState]) -> None:
    port, state = served
    [driver] = _drivers(port, functions="multiple")
    await driver.connect()
    try:
        prepared = await _round_trip(driver, "one", 4242)
        assert prepared.sent == "holding 11 <- 1092 (function 16)"
        coil = await _round_trip(driver, "pump", True)
        assert coil.sent == "coil 4 <- 1 (function 15)"
        bit = await _round_trip(driver, "b6", True)
        assert bit.sent.endswith("(read-modify-write: function 3, then 16)")
        assert [f for _, f, _, _ in state.requests() if f not in (1, 3)] == [16, 15, 16]
        assert _held(state, 11, 1) == [4242]
        assert _held(state, 1, 1) == [BIT_REGISTER | 1 << 6]
    finally:
        await driver.close()


async def test_an_exception_reply_is_a_failed_write(served: tuple[int, ServerState]) -> None:
    port, state = served
    [driver] = _drivers(port)
    await driver.connect()
    try:
        prepared = await driver.prepare("hole", 5)
        with pytest.raises(WriteFailed, match=r"exception code 2 \(illegal data address\)"):
            await driver.write(prepared)
        assert [f for _, f, _, _ in state.requests()] == [6], "sent once, never retried"
        with pytest.raises(WriteRefused, match="input register"):
            await driver.prepare("level", 1)
        with pytest.raises(WriteRefused, match="raw code of tag state"):
            await driver.prepare("state_code", 1)
        assert len(state.requests()) == 1
    finally:
        await driver.close()


async def test_rtu_round_trip_over_a_pty(binary: Path, tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        with writable_server(binary, _image(), tmp_path, tty=pty.server_end) as (_, state):
            connection = {"transport": "rtu", "serial_port": str(pty.client_end), "parity": "N"}
            [driver] = build_modbus_drivers([_device("rtu", connection, mask_write=True)])
            await driver.connect()
            try:
                await _round_trip(driver, "float32_CDAB", 123.456)
                [tag] = [t for t in driver.config.poll_groups[0].tags if t.name == "float32_CDAB"]
                truth = sim_encode(123.456, "float32", byte_order="CDAB")
                assert _held(state, tag.address, 2) == truth
                await _round_trip(driver, "b6", True)
                assert _held(state, 1, 1) == [BIT_REGISTER | 1 << 6]
                await _round_trip(driver, "text_BADC", "PUMP-7")
                await _round_trip(driver, "pump", True)
                functions: Sequence[int] = [f for _, f, _, _ in state.requests()]
                assert [f for f in functions if f not in (1, 3)] == [16, 22, 16, 5]
            finally:
                await driver.close()
