"""Hostile devices (raw frames, tests/modbus_hostile.py): a wrong value is never published good.

Each device answers register ``a`` of unit ``u`` with ``u * 1000 + a`` and coils with a
known pattern, so a misplaced or misread value shows up as a good sample that differs
from the truth. B1-B4 are the faults found by independent testing (issue 13); each
fails on the driver that validated only the count of registers (a48aa20).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import structlog

from drivers.modbus import ModbusDriver, build_modbus_drivers
from edge_agent.backoff import Backoff
from edge_agent.config import ModbusDeviceConfig
from edge_agent.config.loader import parse_config
from edge_agent.errors import DriverError
from edge_agent.model import Quality, SampleBatch
from edge_agent.runtime.source_runner import SourceRunner
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
    registers_pdu,
    rtu_frame,
    truth_bit,
    truth_register,
)

pytestmark = pytest.mark.integration

TIMEOUT = 0.25

DEVICE = """
  - name: {name}
    driver: modbus
    connection: {connection}
    unit_id: {unit}
    timeout: {timeout}s
    poll_groups:
      - name: low
        interval: {interval}s
        tags: [{{name: a0, address: 0}}, {{name: a1, address: 1}}]
      - name: high
        interval: {interval}s
        tags: [{{name: b0, address: 100}}, {{name: b1, address: 101}}]
      - name: bits
        interval: {interval}s
        tags:
          - {{name: c0, table: coil, address: 0, type: bool}}
          - {{name: c1, table: coil, address: 1, type: bool}}
          - {{name: c2, table: coil, address: 2, type: bool}}
          - {{name: c3, table: coil, address: 3, type: bool}}
"""


def plant(connection: str, *, interval: float = 1.0, units: Sequence[int] = (1, 2)) -> str:
    names = {1: "hostile", 2: "healthy", 3: "third"}
    devices = "".join(
        DEVICE.format(
            name=names[u], connection=connection, unit=u, timeout=TIMEOUT, interval=interval
        )
        for u in units
    )
    return "plant: {name: p}\ndevices:" + devices


def tcp(port: int) -> str:
    return f"{{transport: tcp, host: 127.0.0.1, port: {port}}}"


def rtu(path: Path) -> str:
    return f"{{transport: rtu, serial_port: {path}, parity: N}}"


def devices(text: str) -> list[ModbusDeviceConfig]:
    return [d for d in parse_config(text, env={}).devices if isinstance(d, ModbusDeviceConfig)]


def assert_no_wrong_good(config: Sequence[ModbusDeviceConfig], batches: list[SampleBatch]) -> int:
    """Every good sample equals the device's truth; returns how many were checked."""
    where = {
        (d.name, t.name): (d.unit_id, t.table, t.address)
        for d in config
        for g in d.poll_groups
        for t in g.tags
    }
    checked = 0
    for batch in batches:
        for name, value, quality, _ in batch:
            if quality is not Quality.GOOD:
                continue
            unit, table, address = where[(batch.device, name)]
            truth = truth_bit(unit, address) if table == "coil" else truth_register(unit, address)
            assert value == truth, f"{batch.device}.{name} = {value!r} good, truth {truth!r}"
            checked += 1
    return checked


async def read(driver: ModbusDriver, group: str) -> SampleBatch | str:
    """One read as the runner does it: connect when needed; a failure gives its reason."""
    try:
        if not driver.connected:
            await driver.connect()
        (batch,) = await driver.read(group)
    except DriverError as exc:
        return exc.reason
    return batch


@asynccontextmanager
async def drivers_for(text: str) -> AsyncIterator[dict[str, ModbusDriver]]:
    built = build_modbus_drivers(devices(text))
    try:
        yield {d.device: d for d in built}
    finally:
        for driver in built:
            await driver.close()


@asynccontextmanager
async def rtu_bus(tmp_path: Path, behaviours: dict[int, Behaviour]) -> AsyncIterator[Path]:
    async with pty_pair(tmp_path) as pty:
        with HostileRtuBus(pty.server_end, behaviours):
            yield pty.client_end


# ----------------------------------------------------------------------------- behaviours


def wrong_function(asked: Asked) -> list[Reply]:
    """B1: a holding read answered as an input read (right tid, unit and count)."""
    if asked.function == 3:
        return [Reply(registers_pdu(4, [0xDEAD] * asked.count))]
    return honest(asked)


def late_with_tid_zero(late: Callable[[Asked], bool]) -> Behaviour:
    """B2: a sloppy gateway answering with transaction id 0, sometimes too late."""

    def behaviour(asked: Asked) -> list[Reply]:
        delay = 1.5 * TIMEOUT if late(asked) else 0.0
        return [Reply(honest_pdu(asked), delay=delay, tid=0)]

    return behaviour


def late(factor: float, which: Callable[[Asked], bool]) -> Behaviour:
    """B3: answers ``factor`` timeouts late."""

    def behaviour(asked: Asked) -> list[Reply]:
        delay = factor * TIMEOUT if which(asked) else 0.0
        return [Reply(honest_pdu(asked), delay=delay)]

    return behaviour


def coils_with_byte_count(byte_count: int, data: bytes) -> Behaviour:
    """B4: a coil reply whose byte count does not fit the read."""

    def behaviour(asked: Asked) -> list[Reply]:
        if asked.function == 1:
            return [Reply(bytes([1, byte_count]) + data)]
        return honest(asked)

    return behaviour


def first(asked: Asked) -> bool:
    return asked.seq == 0


def every_third(asked: Asked) -> bool:
    return asked.seq % 3 == 0


# ----------------------------------------------------------------------------- B1


async def test_b1_tcp_a_reply_with_another_function_code_is_refused() -> None:
    async with (
        HostileTcpServer({1: wrong_function}) as server,
        drivers_for(plant(tcp(server.port))) as drivers,
    ):
        got = await read(drivers["hostile"], "low")
        assert got == "invalid response", got
        healthy = await read(drivers["healthy"], "low")
        assert isinstance(healthy, SampleBatch)
        assert healthy.values == [2000, 2001]


async def test_b1_rtu_a_reply_with_another_function_code_is_refused(tmp_path: Path) -> None:
    async with (
        rtu_bus(tmp_path, {1: wrong_function}) as port,
        drivers_for(plant(rtu(port))) as drivers,
    ):
        for _ in range(2):
            got = await read(drivers["hostile"], "low")
            assert got == "invalid response", got
            healthy = await read(drivers["healthy"], "high")
            assert isinstance(healthy, SampleBatch)
            assert healthy.values == [2100, 2101]


# ----------------------------------------------------------------------------- B2


async def test_b2_a_late_reply_with_transaction_id_0_is_not_taken_for_the_next() -> None:
    # In order: the late answer goes out before the next one, as behind a serial gateway.
    async with HostileTcpServer({1: late_with_tid_zero(first)}, in_order=True) as server:
        text = plant(tcp(server.port))
        async with drivers_for(text) as drivers:
            hostile = drivers["hostile"]
            assert await read(hostile, "low") == "timeout"  # answered 1.5 timeouts late
            batches = []
            for group in ("high", "low", "high", "low"):
                got = await read(hostile, group)
                if isinstance(got, SampleBatch):
                    batches.append(got)
            assert_no_wrong_good(devices(text), batches)
            assert [b.group for b in batches[-2:]] == ["high", "low"], "back in step"
            assert all(b.good_count == 2 for b in batches[-2:])


# ----------------------------------------------------------------------------- B3


@pytest.mark.parametrize("factor", [2.5, 6.5])
async def test_b3_an_rtu_answer_later_than_any_bound_never_lands_on_the_next_read(
    tmp_path: Path, factor: float
) -> None:
    """Registers 0-1 answered ``factor`` timeouts late, while the master reads 100-101
    (the same shape: unit, function and byte count say nothing about the address).
    The old driver waited one more timeout after a timeout, then read again: a factor
    in (2k, 2k + 1) lands the late answer in one of its waits."""
    async with rtu_bus(tmp_path, {1: late(factor, first)}) as port:
        text = plant(rtu(port))
        async with drivers_for(text) as drivers:
            hostile = drivers["hostile"]
            assert await read(hostile, "low") == "timeout"
            batches = []
            deadline = time.monotonic() + factor * TIMEOUT + 1.0
            while time.monotonic() < deadline:
                got = await read(hostile, "high")
                if isinstance(got, SampleBatch):
                    batches.append(got)
            got = await read(hostile, "low")
            assert isinstance(got, SampleBatch)
            batches.append(got)
            assert_no_wrong_good(devices(text), batches)
            assert [b.group for b in batches[-3:]] == ["high", "high", "low"], "back in step"
            assert all(b.good_count == 2 for b in batches[-3:])


def stalling(answers_probes: str) -> Behaviour:
    """A slave that stalls now and then, answering in order: the first read, two probes
    and the next read each answered well after the timeout. Probes are echoed, or
    answered with exception 1 (a slave without function 8)."""
    delays = {0: 1.5, 1: 1.6, 2: 2.2, 3: 2.4}  # in timeouts, by request

    def behaviour(asked: Asked) -> list[Reply]:
        pdu = honest_pdu(asked)
        if asked.function == 8 and answers_probes == "exception":
            pdu = exception_pdu(8, 1)
        return [Reply(pdu, delay=delays.get(asked.seq, 0.0) * TIMEOUT)]

    return behaviour


@pytest.mark.parametrize("answers_probes", ["echo", "exception"])
async def test_b3_the_answer_to_a_probe_sent_before_a_read_does_not_prove_the_unit_in_step(
    tmp_path: Path, answers_probes: str
) -> None:
    """Read low (answered late), probe 1 (late), probe 2: probe 1's answer comes and is
    proof enough (nothing was read since it). Read high goes out with probe 2's answer
    still due, and times out too. Probe 3 then receives probe 2's answer: it was sent
    before that read, so the read's answer still follows it; taken as proof, the next
    read (low, the same shape) got high's registers as good values."""
    async with rtu_bus(tmp_path, {1: stalling(answers_probes)}) as port:
        text = plant(rtu(port), units=(1,))
        async with drivers_for(text) as drivers:
            hostile = drivers["hostile"]
            got = [await read(hostile, g) for g in ("low", "high", "high", "low", "low", "high")]
    assert got[:3] == ["timeout"] * 3, got
    batches = [b for b in got if isinstance(b, SampleBatch)]
    assert_no_wrong_good(devices(text), batches)
    assert [b.group for b in batches[-2:]] == ["low", "high"], "back in step"
    assert all(b.good_count == 2 for b in batches[-2:])


# ----------------------------------------------------------------------------- B4


@pytest.mark.parametrize(
    ("byte_count", "data"),
    [(3, b"\xff"), (2, b"\xff\xff")],
    ids=["count-beyond-data", "more-bytes-than-bits"],
)
async def test_b4_tcp_a_coil_reply_whose_byte_count_does_not_fit_is_refused(
    byte_count: int, data: bytes
) -> None:
    async with (
        HostileTcpServer({1: coils_with_byte_count(byte_count, data)}) as server,
        drivers_for(plant(tcp(server.port))) as drivers,
    ):
        assert await read(drivers["hostile"], "bits") == "invalid response"
        healthy = await read(drivers["healthy"], "bits")
        assert isinstance(healthy, SampleBatch)
        assert healthy.values == [truth_bit(2, a) for a in range(4)]


async def test_b4_rtu_a_coil_reply_with_more_bytes_than_bits_is_refused(tmp_path: Path) -> None:
    async with (
        rtu_bus(tmp_path, {1: coils_with_byte_count(2, b"\xff\xff")}) as port,
        drivers_for(plant(rtu(port))) as drivers,
    ):
        assert await read(drivers["hostile"], "bits") == "invalid response"
        healthy = await read(drivers["healthy"], "bits")
        assert isinstance(healthy, SampleBatch)
        assert healthy.values == [truth_bit(2, a) for a in range(4)]


# ----------------------------------------------------------------------------- B5


async def test_b5_a_device_that_refused_everything_is_read_again_once_it_recovers() -> None:
    """A glitch answering exception 2 to every read is a device state: the first read
    after it ends is good (it blanked the device for 100 polls: every tag learned invalid)."""
    glitch = True

    def behaviour(asked: Asked) -> list[Reply]:
        return [Reply(exception_pdu(asked.function, 2))] if glitch else honest(asked)

    async with (
        HostileTcpServer({1: behaviour}) as server,
        drivers_for(plant(tcp(server.port))) as drivers,
    ):
        hostile = drivers["hostile"]
        for _ in range(2):
            for group in ("low", "high", "bits"):
                got = await read(hostile, group)
                assert isinstance(got, SampleBatch)
                assert set(got.reasons) == {"exception code 2"}
        glitch = False
        for group in ("low", "high", "bits"):
            got = await read(hostile, group)
            assert isinstance(got, SampleBatch)
            assert got.good_count == len(got), (group, got.reasons)


# ----------------------------------------------------------------------------- item 14


async def test_a_degraded_device_logs_the_refused_tags_their_addresses_and_the_code() -> None:
    def behaviour(asked: Asked) -> list[Reply]:
        if asked.function == 3 and asked.address >= 100:
            return [Reply(exception_pdu(3, 2))]
        if asked.function == 1:
            return [Reply(exception_pdu(1, 6))]
        return honest(asked)

    async with (
        HostileTcpServer({1: behaviour}) as server,
        drivers_for(plant(tcp(server.port), units=(1,))) as drivers,
    ):
        hostile = drivers["hostile"]
        runner = SourceRunner(hostile, lambda batch: None)
        groups = {g.name: g for g in hostile.groups}
        with structlog.testing.capture_logs() as logs:
            await runner.poll_once(groups["low"])
            await runner.poll_once(groups["high"])
            await runner.poll_once(groups["high"])  # no change of state: not logged again
            await runner.poll_once(groups["bits"])
    degraded = [e for e in logs if e["event"] == "device degraded"]
    assert [e["reason"] for e in degraded] == ["exception code 2"], degraded
    assert degraded[0]["detail"] == (
        "group high: exception code 2 (illegal data address): holding 100 (b0), holding 101 (b1)"
    )
    # The first bad group stays the device's reason; the bits group adds no log line.
    assert runner.state_reason == "exception code 2"


# ----------------------------------------------------------------------------- side by side


async def run_side_by_side(text: str, seconds: float) -> tuple[list[SampleBatch], SourceRunner]:
    """Both devices under their runners for ``seconds``; the batches and the healthy runner."""
    seen: list[SampleBatch] = []
    runners = [SourceRunner(d, seen.append) for d in build_modbus_drivers(devices(text))]
    tasks = [asyncio.create_task(r.run(), name=f"run:{r.device}") for r in runners]
    try:
        await asyncio.sleep(seconds)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    (healthy,) = [r for r in runners if r.device == "healthy"]
    return seen, healthy


def garbage(asked: Asked) -> list[Reply]:
    """Noise, undefined exception codes, exceptions of another function, then the truth."""
    kind = asked.seq % 4
    if kind == 0:
        return [Reply(raw=bytes([0x5A, 0xA5, 0xFF, 0x00, 0x13, 0x37, 0x42]))]
    if kind == 1:
        return [Reply(exception_pdu(asked.function, 104))]
    if kind == 2:
        return [Reply(exception_pdu(asked.function % 4 + 1, 2))]
    return honest(asked)


SIDE_BY_SIDE: dict[str, Behaviour] = {
    "b1-wrong-function": wrong_function,
    "b3-late": late(3.0, every_third),
    "b4-byte-count": coils_with_byte_count(2, b"\xff\xff"),
    "garbage": garbage,
}


@pytest.mark.parametrize(
    ("fault", "transport"),
    [(f, t) for f in SIDE_BY_SIDE for t in ("tcp", "rtu")] + [("b2-tid-zero", "tcp")],
)
async def test_a_hostile_unit_never_publishes_a_wrong_good_value_and_its_neighbour_keeps_every_tick(
    tmp_path: Path, transport: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    # RTU frames carry no transaction id: B2 is a TCP fault.
    behaviour = late_with_tid_zero(every_third) if fault == "b2-tid-zero" else SIDE_BY_SIDE[fault]
    caplog.set_level(logging.WARNING)
    seconds = 3.5
    if transport == "tcp":
        # A gateway that answers in order holds its other units back behind a late
        # answer; B2 needs that (the late answer comes first), B3 is about RTU.
        in_order = fault == "b2-tid-zero"
        async with HostileTcpServer({1: behaviour}, in_order=in_order) as server:
            text = plant(tcp(server.port))
            seen, healthy = await run_side_by_side(text, seconds)
    else:
        async with rtu_bus(tmp_path, {1: behaviour}) as port:
            text = plant(rtu(port))
            seen, healthy = await run_side_by_side(text, seconds)
    assert_no_wrong_good(devices(text), seen)
    neighbour = [b for b in seen if b.device == "healthy"]
    assert len(neighbour) >= 3 * 3, "a read at start and at (at least) two ticks, per group"
    assert all(b.good_count == len(b) for b in neighbour), {
        r for b in neighbour for r in b.reasons if r
    }
    assert healthy.counters.skipped_ticks == 0
    assert healthy.counters.failed_polls == 0
    assert not [r for r in caplog.records if r.name == "asyncio"], "no fatal protocol errors"


# ----------------------------------------------------------------------------- shared recovery


async def test_every_device_on_a_shared_connection_is_retried_once_it_is_back() -> None:
    """Item 13: one device reconnects; its neighbours follow at their next tick, not after
    their own backoff (here a fixed 4 s for two of them)."""
    async with HostileTcpServer({}) as server:
        port = server.port
        text = plant(tcp(port), interval=0.2, units=(1, 2, 3))
    seen: list[SampleBatch] = []
    built = build_modbus_drivers(devices(text))
    backoffs = {
        "hostile": Backoff(initial=0.3, cap=0.3, minimum=0.3),
        "healthy": Backoff(initial=4.0, cap=4.0, minimum=4.0),
        "third": Backoff(initial=4.0, cap=4.0, minimum=4.0),
    }
    runners = [SourceRunner(d, seen.append, backoff=backoffs[d.device]) for d in built]
    tasks = [asyncio.create_task(r.run(), name=f"run:{r.device}") for r in runners]
    try:
        await asyncio.sleep(1.0)  # the gateway is down: everyone goes offline
        async with HostileTcpServer({}, port=port):
            back = time.monotonic()
            firsts: dict[str, float] = {}
            while len(firsts) < 3 and time.monotonic() < back + 6:
                await asyncio.sleep(0.02)
                for batch in seen:
                    if batch.good_count and batch.device not in firsts:
                        firsts[batch.device] = time.monotonic()
            assert set(firsts) == {"hostile", "healthy", "third"}
            spread = max(firsts.values()) - min(firsts.values())
            assert spread < 1.0, firsts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ----------------------------------------------------------------------------- line noise


def noisy_line(asked: Asked) -> list[Reply]:
    """An RS-485 transceiver switching over: a 0x00 glitch before every answer."""
    return [Reply(raw=b"\x00" + rtu_frame(asked.unit, honest_pdu(asked)))]


async def test_rtu_a_glitch_byte_before_the_answer_costs_nothing(tmp_path: Path) -> None:
    async with (
        rtu_bus(tmp_path, {1: noisy_line}) as port,
        drivers_for(plant(rtu(port))) as drivers,
    ):
        for group in ("low", "high", "low"):
            got = await read(drivers["hostile"], group)
            assert isinstance(got, SampleBatch), got
            assert got.good_count == 2
            assert_no_wrong_good(devices(plant(rtu(port))), [got])
