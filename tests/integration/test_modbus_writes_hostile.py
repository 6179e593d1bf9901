"""Writes to hostile devices (raw frames, tests/modbus_hostile.py): a write goes out once,
and is called done only on its exact echo.

A device that swallows a write, answers late, echoes something else or answers another
function leaves the outcome unknown (the gate then reads the tag back); the server's
log of what it was asked proves the write was never sent twice. Writes share the
connection with polls: the server counts requests that arrived while another one
still waited for its answer, and there must be none.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus import ModbusDriver, build_modbus_drivers
from edge_agent.config import ModbusDeviceConfig
from edge_agent.config.loader import parse_config
from edge_agent.driver import WriteFailed, WriteOutcomeUnknown
from edge_agent.errors import DriverError
from simulators.pty import pty_pair
from tests.modbus_hostile import (
    Asked,
    Behaviour,
    HostileRtuBus,
    HostileTcpServer,
    Reply,
    exception_pdu,
    honest,
    honest_pdu,
    truth_register,
)

pytestmark = pytest.mark.integration

TIMEOUT = 0.25
WRITES = (5, 6, 15, 16, 22)

DEVICE = """
  - name: d{unit}
    driver: modbus
    connection: {connection}
    unit_id: {unit}
    timeout: {timeout}s
    writes: {{mask_write: {mask_write}}}
    poll_groups:
      - name: low
        interval: 1s
        tags:
          - {{name: a0, address: 0}}
          - {{name: a1, address: 1}}
      - name: set
        interval: 1s
        tags:
          - {{name: sp, address: 10, scale: 0.1}}
          - {{name: wide, address: 12, type: float32}}
          - {{name: flag, address: 20, type: bool, bit: 2}}
          - {{name: pump, table: coil, address: 3, type: bool}}
"""


def plant(connection: str, units: tuple[int, ...] = (1,), mask_write: bool = False) -> str:
    devices = "".join(
        DEVICE.format(
            unit=u,
            connection=connection,
            timeout=TIMEOUT,
            mask_write=str(mask_write).lower(),
        )
        for u in units
    )
    return "plant: {name: p}\ndevices:" + devices


def devices(text: str) -> list[ModbusDeviceConfig]:
    return [d for d in parse_config(text, env={}).devices if isinstance(d, ModbusDeviceConfig)]


@asynccontextmanager
async def drivers_for(text: str) -> AsyncIterator[dict[str, ModbusDriver]]:
    built = build_modbus_drivers(devices(text))
    try:
        for driver in built:
            await driver.connect()
        yield {d.device: d for d in built}
    finally:
        for driver in built:
            await driver.close()


@asynccontextmanager
async def gateway(
    behaviours: dict[int, Behaviour], **kwargs: Any
) -> AsyncIterator[tuple[HostileTcpServer, dict[str, ModbusDriver]]]:
    """A hostile gateway and the (connected) drivers of ``plant(..., **kwargs)`` on it."""
    async with (
        HostileTcpServer(behaviours) as server,
        drivers_for(plant(tcp(server.port), **kwargs)) as drivers,
    ):
        yield server, drivers


def tcp(port: int) -> str:
    return f"{{transport: tcp, host: 127.0.0.1, port: {port}}}"


def on_writes(answer: Callable[[Asked], list[Reply]]) -> Behaviour:
    """Honest to reads; ``answer`` decides what a write gets."""

    def behaviour(asked: Asked) -> list[Reply]:
        return answer(asked) if asked.function in WRITES else honest(asked)

    return behaviour


def _writes(asked: list[Asked]) -> list[Asked]:
    return [a for a in asked if a.function in WRITES]


def _wrong_value(asked: Asked) -> list[Reply]:
    """The echo of another value: the device says it wrote something else."""
    return [Reply(struct.pack(">BHH", asked.function, asked.address, asked.count ^ 1))]


def _wrong_address(asked: Asked) -> list[Reply]:
    return [Reply(struct.pack(">BHH", asked.function, asked.address + 1, asked.count))]


UNKNOWN: dict[str, Callable[[Asked], list[Reply]]] = {
    "swallowed": lambda asked: [],
    "late echo": lambda asked: [Reply(honest_pdu(asked), delay=2 * TIMEOUT)],
    "another value echoed": _wrong_value,
    "another address echoed": _wrong_address,
    "a reply to another function": lambda asked: [Reply(exception_pdu(3, 2))],
    "an undefined exception code": lambda asked: [Reply(exception_pdu(asked.function, 9))],
    "a short echo": lambda asked: [Reply(honest_pdu(asked)[:-1])],
    "another unit": lambda asked: [Reply(honest_pdu(asked), unit=asked.unit + 1)],
}


@pytest.mark.parametrize("fault", list(UNKNOWN))
@pytest.mark.parametrize(("tag", "value"), [("sp", 6.5), ("wide", 1.5), ("pump", True)])
async def test_an_unconfirmed_write_is_unknown_and_never_sent_twice(
    fault: str, tag: str, value: float
) -> None:
    async with gateway({1: on_writes(UNKNOWN[fault])}) as (server, drivers):
        driver = drivers["d1"]
        prepared = await driver.prepare(tag, value)
        with pytest.raises(WriteOutcomeUnknown, match="may or may not have taken it"):
            await driver.write(prepared)
        (batch,) = await driver.read("low")  # the channel is usable, the value true
        assert batch.values == [truth_register(1, 0), truth_register(1, 1)]
        await asyncio.sleep(2 * TIMEOUT)  # a late echo has arrived by now
        assert len(_writes(server.asked)) == 1, "the write went out once"


@pytest.mark.parametrize(
    ("code", "meaning"), [(2, "illegal data address"), (3, "illegal data value")]
)
async def test_an_exception_reply_is_a_failed_write(code: int, meaning: str) -> None:
    refuse = on_writes(lambda asked: [Reply(exception_pdu(asked.function, code))])
    async with gateway({1: refuse}) as (server, drivers):
        prepared = await drivers["d1"].prepare("sp", 6.5)
        with pytest.raises(WriteFailed, match=rf"exception code {code} \({meaning}\)") as failed:
            await drivers["d1"].write(prepared)
        assert len(_writes(server.asked)) == 1
    # Said once, with what was sent and what the code most often means on site.
    assert str(failed.value).startswith(f"exception code {code} ({meaning}) to {prepared.sent}")
    if code == 3:
        assert str(failed.value).endswith("limits may be narrower than the write: block allows")


@pytest.mark.parametrize(
    "code",
    [
        4,  # server device failure: it may have acted (in part) before failing
        5,  # acknowledge: taken, still being carried out
        11,  # gateway target failed to respond: sent on, the device's answer lost
    ],
)
async def test_an_exception_that_is_not_a_refusal_is_an_unknown_outcome(code: int) -> None:
    """Reported as failed, the gate would skip the read-back and invite the operator to
    send it again: a second write of what the device may already hold."""
    answer = on_writes(lambda asked: [Reply(exception_pdu(asked.function, code))])
    async with gateway({1: answer}) as (server, drivers):
        prepared = await drivers["d1"].prepare("sp", 6.5)
        with pytest.raises(WriteOutcomeUnknown, match=rf"exception code {code} .*may or may not"):
            await drivers["d1"].write(prepared)
        assert len(_writes(server.asked)) == 1, "the write went out once"


async def test_a_write_confirmed_with_transaction_id_0() -> None:
    sloppy = on_writes(lambda asked: [Reply(honest_pdu(asked), tid=0)])
    async with gateway({1: sloppy}) as (server, drivers):
        await drivers["d1"].write(await drivers["d1"].prepare("sp", 6.5))
        assert len(_writes(server.asked)) == 1


async def test_nothing_is_sent_when_not_connected() -> None:
    async with HostileTcpServer({}) as server:
        [driver] = build_modbus_drivers(devices(plant(tcp(server.port))))
        prepared = await driver.prepare("sp", 6.5)
        with pytest.raises(DriverError, match="not connected") as raised:
            await driver.write(prepared)
        assert not isinstance(raised.value, WriteOutcomeUnknown)
        assert server.asked == []
        await driver.close()


async def test_read_modify_write_whose_read_fails_writes_nothing() -> None:
    """The register read before a bit is changed gets no answer: a DriverError (nothing
    written, the gate knows the tag kept its value), not an unknown outcome."""

    def silent_reads(asked: Asked) -> list[Reply]:
        return [] if asked.function == 3 and asked.address == 20 else honest(asked)

    async with gateway({1: silent_reads}) as (server, drivers):
        prepared = await drivers["d1"].prepare("flag", True)
        with pytest.raises(DriverError, match="timeout") as raised:
            await drivers["d1"].write(prepared)
        assert not isinstance(raised.value, WriteOutcomeUnknown)
        assert _writes(server.asked) == []


@pytest.mark.parametrize("mask_write", [False, True])
async def test_a_swallowed_bit_write_is_unknown(mask_write: bool) -> None:
    swallow = on_writes(lambda asked: [])
    async with gateway({1: swallow}, mask_write=mask_write) as (server, drivers):
        prepared = await drivers["d1"].prepare("flag", True)
        with pytest.raises(WriteOutcomeUnknown):
            await drivers["d1"].write(prepared)
        [write] = _writes(server.asked)
        if mask_write:
            assert (write.function, write.count, write.data) == (22, 0xFFFB, b"\x00\x04")
        else:  # the truth of register 20 with bit 2 set
            assert (write.function, write.count) == (6, truth_register(1, 20) | 4)


async def test_writes_and_polls_share_the_connection_one_request_at_a_time() -> None:
    """Two devices behind one gateway, polled and written at once: every request waits
    for the answer to the one before (the gateway answers each after 20 ms)."""

    def slow(asked: Asked) -> list[Reply]:
        return [Reply(honest_pdu(asked), delay=0.02)]

    async with gateway({1: slow, 2: slow}, units=(1, 2)) as (server, drivers):
        one, two = drivers["d1"], drivers["d2"]

        async def poll(driver: ModbusDriver) -> None:
            for _ in range(10):
                (batch,) = await driver.read("low")
                assert batch.values[0] == truth_register(int(driver.device[1]), 0)

        async def write(driver: ModbusDriver) -> None:
            for n in range(5):
                await driver.write(await driver.prepare("sp", 1.0 + n))
                await driver.write(await driver.prepare("flag", n % 2 == 0))

        await asyncio.gather(poll(one), poll(two), write(one), write(two))
        assert len(_writes(server.asked)) == 20
        assert server.overlaps == 0


async def test_rtu_a_swallowed_write_leaves_the_unit_in_doubt(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        with HostileRtuBus(pty.server_end, {1: on_writes(lambda asked: [])}) as bus:
            connection = f"{{transport: rtu, serial_port: {pty.client_end}, parity: N}}"
            async with drivers_for(plant(connection)) as drivers:
                driver = drivers["d1"]
                with pytest.raises(WriteOutcomeUnknown):
                    await driver.write(await driver.prepare("wide", 2.5))
                (batch,) = await driver.read("low")
                assert batch.values == [truth_register(1, 0), truth_register(1, 1)]
                functions = [a.function for a in bus.asked]
                assert functions == [16, 8, 3], "the echo proves the unit in step first"


async def test_rtu_write_confirmed(tmp_path: Path) -> None:
    async with pty_pair(tmp_path) as pty:
        with HostileRtuBus(pty.server_end, {}) as bus:
            connection = f"{{transport: rtu, serial_port: {pty.client_end}, parity: N}}"
            async with drivers_for(plant(connection, mask_write=True)) as drivers:
                driver = drivers["d1"]
                for tag, value in [("wide", 2.5), ("sp", 6.5), ("flag", True), ("pump", False)]:
                    await driver.write(await driver.prepare(tag, value))
                assert [a.function for a in bus.asked] == [16, 6, 22, 5]


@pytest.mark.parametrize("code", [4, 11])
async def test_an_exception_to_the_read_of_a_bit_change_is_not_an_unknown_write(
    code: int,
) -> None:
    """Exceptions 4, 5 and 11 answering a write leave its outcome unknown; answering the
    read before a bit change (mask_write: false) they mean nothing was written: failed,
    not unknown (which made the gate count a write, read back, and audit ``unknown`` for
    a command that never reached the device)."""
    from tests.integration.test_modbus_writes_hostile import _writes, gateway
    from tests.modbus_hostile import Reply, exception_pdu, honest

    def refuse_the_read(asked: Asked) -> list[Reply]:
        if asked.function == 3 and asked.address == 20:
            return [Reply(exception_pdu(3, code))]
        return honest(asked)

    async with gateway({1: refuse_the_read}) as (server, drivers):
        prepared = await drivers["d1"].prepare("flag", True)
        with pytest.raises((WriteFailed, DriverError, WriteOutcomeUnknown)) as raised:
            await drivers["d1"].write(prepared)
        assert _writes(server.asked) == []  # nothing was written
    assert not isinstance(raised.value, WriteOutcomeUnknown), str(raised.value)
