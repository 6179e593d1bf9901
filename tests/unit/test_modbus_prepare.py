"""ModbusDriver.prepare: which request carries a value, said in words; what is refused.

Pure: prepare sends nothing (the channel is never connected here).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from drivers.modbus import build_modbus_drivers
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.frames_write import Write
from drivers.modbus.tag_writes import BitChange, Payload
from edge_agent.config import ModbusDeviceConfig
from edge_agent.driver import WriteRefused, Writes

TAGS: list[dict[str, Any]] = [
    {"name": "sp", "address": 10, "scale": 0.01, "unit": "bar"},
    {"name": "wide", "address": 100, "type": "float32"},
    {"name": "flag", "address": 1, "type": "bool", "bit": 3},
    {"name": "pump", "table": "coil", "address": 4, "type": "bool"},
    {"name": "state", "address": 11, "enum": {0: "off", 2: "run"}},
    {"name": "level", "table": "input", "address": 0},
    {"name": "alarm", "table": "discrete_input", "address": 0, "type": "bool"},
    {"name": "long", "address": 200, "type": "string", "length": 124},
]


def driver(connection: dict[str, Any] | None = None, **fields: Any) -> ModbusDriver:
    config = ModbusDeviceConfig.model_validate(
        {
            "name": "d",
            "driver": "modbus",
            "connection": connection or {"transport": "tcp", "host": "127.0.0.1", "port": 1},
            "poll_groups": [{"name": "g", "interval": 1.0, "tags": TAGS}],
        }
        | fields
    )
    [built] = build_modbus_drivers([config])
    return built


def test_the_driver_has_the_writes_capability() -> None:
    assert isinstance(driver(), Writes)


@pytest.mark.parametrize(
    ("writes", "tag", "value", "sent"),
    [
        ({}, "sp", 6.5, "holding 10 <- 0x028A (function 6)"),
        ({"functions": "multiple"}, "sp", 6.5, "holding 10 <- 028A (function 16)"),
        ({}, "wide", 6.5, "holding 100-101 <- 40D0 0000 (function 16)"),
        ({}, "pump", True, "coil 4 <- 1 (function 5)"),
        ({"functions": "multiple"}, "pump", False, "coil 4 <- 0 (function 15)"),
        ({"mask_write": True}, "flag", True, "holding 1 bit 3 <- 1 (function 22)"),
        ({}, "flag", 0, "holding 1 bit 3 <- 0 (read-modify-write: function 3, then 6)"),
        ({}, "state", "run", "holding 11 <- 0x0002 (function 6)"),
    ],
)
async def test_what_is_sent(writes: dict[str, Any], tag: str, value: Any, sent: str) -> None:
    d = driver(writes=writes)
    prepared = await d.prepare(tag, value)
    assert prepared.sent == sent
    assert prepared.tag == tag
    assert prepared.requested == value
    assert isinstance(prepared.payload, Payload)
    assert isinstance(prepared.payload.request, Write | BitChange)
    assert d.channel.requests == 0


async def test_expected_is_what_a_read_shows() -> None:
    d = driver()
    assert (await d.prepare("sp", 6.5)).expected == 6.5
    assert (await d.prepare("wide", 0.1)).expected == 0.1
    assert (await d.prepare("state", 2)).expected == "run"
    assert (await d.prepare("flag", 1)).expected is True


@pytest.mark.parametrize(
    ("tag", "value", "why"),
    [
        ("level", 1, "an input register: Modbus cannot write it"),
        ("alarm", True, "a discrete input: Modbus cannot write it"),
        ("nope", 1, "device d has no tag nope"),
        ("state_code", 2, "raw code of tag state: write state"),
        ("sp", 6.555, "nearest values it can hold are 6.55 and 6.56"),
        ("long", "x", "at most 123"),
        ("state", "idle", "not one of the values"),
    ],
)
async def test_refused(tag: str, value: Any, why: str) -> None:
    with pytest.raises(WriteRefused, match=why):
        await driver().prepare(tag, value)


async def test_broadcast_unit_on_a_serial_line_is_refused() -> None:
    rtu = {"transport": "rtu", "serial_port": "/dev/null", "parity": "N"}
    with pytest.raises(WriteRefused, match="broadcast"):
        await driver(rtu, unit_id=0).prepare("sp", 1.0)


async def test_modbus_has_no_methods() -> None:
    with pytest.raises(WriteRefused, match="no method reset"):
        await driver().call("reset", {})


async def test_a_write_prepared_for_another_device_is_refused() -> None:
    prepared = await driver().prepare("sp", 6.5)
    other = driver(name="e")
    with pytest.raises(WriteRefused, match="not a write prepared for device e"):
        await other.write(prepared)
    assert other.channel.requests == 0


def test_a_device_never_written_keeps_no_map_of_its_tags() -> None:
    # At 100,000 tags the maps by name took 2.6 MB whether anything was written or not.
    from drivers.modbus.tag_writes import TagWrites

    tags = [{"name": f"t{i}", "address": i} for i in range(2000)]
    config = ModbusDeviceConfig.model_validate(
        {
            "name": "d",
            "driver": "modbus",
            "connection": {"transport": "tcp", "host": "127.0.0.1", "port": 1},
            "poll_groups": [{"name": "g", "interval": 1.0, "tags": tags}],
        }
    )
    channel = driver().channel
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        writes = TagWrites(config, channel)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 1000
    assert writes.prepare("t5", 3).sent == "holding 5 <- 0x0003 (function 6)"
    with pytest.raises(WriteRefused, match="has no tag t2000"):
        writes.prepare("t2000", 3)
