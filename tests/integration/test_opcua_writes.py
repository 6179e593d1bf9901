"""The OPC UA driver's writes against a real asyncua Server over loopback.

Each value goes out as the node's own type (checked in the server's own copy of the
DataValue), reads back through the driver as a poll would publish it, and reads back
the same through an independent asyncua client. Refusals send nothing (the server
counts every Write it sees); bad statuses name the code; a Write whose answer never
comes is an unknown outcome, sent exactly once; so is one whose answer is lost to a
channel error (only the server's answer to the request itself is a failure).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from asyncua import Client, ua
from structlog.testing import capture_logs

from drivers.opcua import OpcUaDriver, build_opcua_drivers
from drivers.opcua.convert import convert_value
from edge_agent.driver import WriteFailed, WriteOutcomeUnknown, WriteRefused, Writes
from tests.opcua_answer_proxy import CALL_REQUEST, WRITE_REQUEST, AnswerProxy, port_of
from tests.opcua_support import plant_config
from tests.opcua_write_server import (
    ARRAY,
    READ_ONLY,
    TYPED,
    USER_READ_ONLY,
    WriteServer,
    node_text,
    write_server,
)

pytestmark = pytest.mark.integration

VT = ua.VariantType

#: tag (node) name -> (value sent, what a read shows, the Variant type on the server).
ROUND_TRIPS: dict[str, tuple[object, object, ua.VariantType]] = {
    "Boolean": (True, True, VT.Boolean),
    "SByte": (-128, -128, VT.SByte),
    "Byte": (255, 255, VT.Byte),
    "Int16": (-32768, -32768, VT.Int16),
    "UInt16": (65535, 65535, VT.UInt16),
    "Int32": (-2147483648, -2147483648, VT.Int32),
    "UInt32": (4294967295, 4294967295, VT.UInt32),
    "Int64": (-(2**63), -(2**63), VT.Int64),
    "UInt64": (2**64 - 1, 2**64 - 1, VT.UInt64),
    "Float": (14.545378, 14.545378, VT.Float),
    "Double": (6.5, 6.5, VT.Double),
    "String": ("Recipe 7", "Recipe 7", VT.String),
    "DateTime": ("2026-12-05T14:00:00+08:00", "2026-12-05T06:00:00.000000Z", VT.DateTime),
    "Duration": (1500, 1500.0, VT.Double),
    "State": ("Suspended", "Suspended", VT.Int32),
    "Mode": ("run", "run", VT.UInt16),
}


def _tags(names: list[str], ns: int) -> str:
    lines = []
    for name in names:
        extra = ", enum: {0: stop, 1: run}" if name == "Mode" else ""
        # The write: block check cannot know a node's type: each says what it allows
        # (the driver's tests call the driver directly; the gate is not in the way).
        if name in ROUND_TRIPS:
            bounds = f"allowed: [{json.dumps(ROUND_TRIPS[name][0])}]"
        else:
            bounds = "min: -1000000, max: 1000000"
        lines.append(
            f"      - {{name: {name}, node: '{node_text(name, ns)}'{extra}, "
            f"write: {{channels: [cli], {bounds}}}}}"
        )
    return "\n".join(lines)


METHODS = """\
    methods:
      - name: set_recipe
        object: ns={ns};s=w.Machine
        method: ns={ns};s=w.Machine.SetRecipe
        arguments:
          - {{name: recipe, min: 0, max: 1000}}
          - {{name: speed, min: 0, max: 10}}
          - {{name: note, allowed: [night, day]}}
          - {{name: mode, allowed: [Running, Suspended]}}
          - {{name: hold, min: 0, max: 3600}}
        channels: [cli]
      - name: refuse
        object: ns={ns};s=w.Machine
        method: ns={ns};s=w.Machine.Refuse
        arguments: [{{name: level, min: 0, max: 1000}}]
        channels: [cli]
"""


def _driver(server: WriteServer, tmp_path: Path, timeout: str = "2s") -> OpcUaDriver:
    names = [*TYPED, READ_ONLY, USER_READ_ONLY, ARRAY]
    yaml = (
        f"  - name: plc\n    driver: opcua\n    endpoint: {server.endpoint}\n"
        f"    timeout: {timeout}\n    keepalive_interval: 2s\n"
        + METHODS.format(ns=server.ns)
        + "    poll_groups:\n    - interval: 1s\n      tags:\n"
        + _tags(names, server.ns)
        + "\n"
    )
    return build_opcua_drivers(plant_config(tmp_path, yaml))[0]


@pytest.fixture
async def served() -> AsyncIterator[WriteServer]:
    async with write_server() as server:
        yield server


@pytest.fixture
async def driver(served: WriteServer, tmp_path: Path) -> AsyncIterator[OpcUaDriver]:
    driver = _driver(served, tmp_path)
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()


async def test_a_round_trip_for_every_type_carries_the_nodes_own_variant_type(
    served: WriteServer, driver: OpcUaDriver
) -> None:
    assert isinstance(driver, Writes)
    for name, (value, shown, vtype) in ROUND_TRIPS.items():
        prepared = await driver.prepare(name, value)  # type: ignore[arg-type]
        assert prepared.expected == shown, name
        await driver.write(prepared)
        reading = await driver.read_tag(name)
        assert (reading.value, reading.good) == (shown, True), (name, reading)
        held = await served.served(name)
        assert held.Value is not None, name
        assert held.Value.VariantType is vtype, name
    assert [name for name, _ in served.writes] == list(ROUND_TRIPS), "each written once"
    async with Client(served.endpoint) as client:  # an independent client reads them back
        for name, (_, shown, vtype) in ROUND_TRIPS.items():
            data = await client.get_node(served.node_id(name)).read_data_value()
            assert data.Value is not None
            assert data.Value.VariantType is vtype
            raw = data.Value.Value
            if name in ("State", "Mode"):
                assert raw == {"State": 3, "Mode": 1}[name]
            else:
                assert convert_value(data.Value, None)[0] == shown, name


async def test_refusals_send_nothing_and_say_why(served: WriteServer, driver: OpcUaDriver) -> None:
    refusals = {
        (READ_ONLY, 2.0): "read-only",
        (USER_READ_ONLY, 2.0): "UserAccessLevel",
        (ARRAY, 1): "array",
        ("Int16", 40000): "out of range",
        ("Int16", 1.5): "not a whole number",
        ("Float", 1e39): "Float",
        ("Boolean", "yes"): "true/false",
        ("State", "Exploded"): "not a state of tag State.*Running",
        ("Mode", "fast"): "stop, run",
        ("nope", 1): "has no tag nope",
    }
    for (tag, value), words in refusals.items():
        with pytest.raises(WriteRefused, match=words):
            await driver.prepare(tag, value)  # type: ignore[arg-type]
    assert served.writes == []


async def test_read_only_write_blocks_are_logged_once_at_connect(
    served: WriteServer, tmp_path: Path
) -> None:
    driver = _driver(served, tmp_path)
    with capture_logs() as logs:
        await driver.connect()
        await driver.connect()  # a reconnect does not say it again
    await driver.close()
    warned = {e["tag"]: e["reason"] for e in logs if e["log_level"] == "warning"}
    assert set(warned) == {READ_ONLY, USER_READ_ONLY, ARRAY}
    assert "read-only" in warned[READ_ONLY]
    assert "UserAccessLevel" in warned[USER_READ_ONLY]
    assert len([e for e in logs if e["log_level"] == "warning"]) == 3


async def test_bad_statuses_are_failures_that_name_the_code(
    served: WriteServer, driver: OpcUaDriver
) -> None:
    with pytest.raises(WriteFailed, match=r"BadTypeMismatch \(0x80740000\)"):
        await driver.write(await driver.prepare("Mismatch", 2.5))
    with pytest.raises(WriteFailed, match=r"BadOutOfRange \(0x803C0000\)"):
        await driver.write(await driver.prepare("OutOfRange", 2.5))
    sent = [(name, v.VariantType) for name, v in served.writes]
    assert sent == [("Mismatch", VT.Double), ("OutOfRange", VT.Double)]


async def test_no_answer_is_an_unknown_outcome_and_the_write_is_not_repeated(
    served: WriteServer, tmp_path: Path
) -> None:
    driver = _driver(served, tmp_path, timeout="1s")
    await driver.connect()
    try:
        prepared = await driver.prepare("Slow", 4.25)
        with pytest.raises(WriteOutcomeUnknown, match=r"no answer.*not sent again"):
            await driver.write(prepared)
    finally:
        served.release_slow.set()
        await driver.close()
    # The server takes the held write now; it saw exactly one.
    for _ in range(100):
        held = await served.served("Slow")
        if held.Value is not None and held.Value.Value == 4.25:
            break
        await asyncio.sleep(0.02)
    assert [name for name, _ in served.writes] == ["Slow"]
    assert held.Value is not None
    assert held.Value.Value == 4.25


async def test_a_channel_error_after_the_write_was_sent_is_unknown_not_failed(
    served: WriteServer, tmp_path: Path
) -> None:
    """The server took the write; its answer was lost to a channel error (an ERR
    message, then the connection closed). asyncua fails every pending request with that
    status: it is not the server's answer to the write, so the outcome is unknown (the
    gate's read-back decides), not "the device said no"."""
    async with AnswerProxy(port_of(served.endpoint), WRITE_REQUEST, "error") as proxy:
        driver = _driver(replace(served, endpoint=f"opc.tcp://127.0.0.1:{proxy.port}"), tmp_path)
        await driver.connect()
        try:
            prepared = await driver.prepare("Double", 42.5)
            with pytest.raises(WriteOutcomeUnknown, match=r"BadTcpInternalError.*not sent again"):
                await driver.write(prepared)
        finally:
            await driver.close()
    held = await served.served("Double")
    assert held.Value is not None
    assert held.Value.Value == 42.5, "the server took the write"
    assert [name for name, _ in served.writes] == ["Double"]


async def test_a_channel_error_after_a_method_call_was_sent_is_unknown_not_failed(
    served: WriteServer, tmp_path: Path
) -> None:
    async with AnswerProxy(port_of(served.endpoint), CALL_REQUEST, "error") as proxy:
        driver = _driver(replace(served, endpoint=f"opc.tcp://127.0.0.1:{proxy.port}"), tmp_path)
        await driver.connect()
        try:
            with pytest.raises(WriteOutcomeUnknown, match=r"BadTcpInternalError.*not sent again"):
                await driver.call("refuse", {"level": 7})
        finally:
            await driver.close()
    assert [method for method, _ in served.calls] == ["Refuse"], "the server ran the call"


async def test_a_service_fault_answering_the_write_is_a_failure(
    served: WriteServer, tmp_path: Path
) -> None:
    """The server's own answer to the request, a ServiceFault, is its word: failed."""
    async with AnswerProxy(port_of(served.endpoint), WRITE_REQUEST, "fault") as proxy:
        driver = _driver(replace(served, endpoint=f"opc.tcp://127.0.0.1:{proxy.port}"), tmp_path)
        await driver.connect()
        try:
            prepared = await driver.prepare("Double", 1.5)
            with pytest.raises(WriteFailed, match=r"refused .*BadUserAccessDenied"):
                await driver.write(prepared)
        finally:
            await driver.close()


async def test_a_write_prepared_on_an_old_session_is_not_sent(
    served: WriteServer, driver: OpcUaDriver
) -> None:
    prepared = await driver.prepare("Double", 1.0)
    await driver.connect()  # a reconnect: a new session
    with pytest.raises(WriteRefused, match=r"reconnected.*nothing was sent"):
        await driver.write(prepared)
    assert served.writes == []


async def test_a_method_call_sends_each_argument_as_its_declared_type(
    served: WriteServer, driver: OpcUaDriver
) -> None:
    args: dict[str, bool | int | float | str] = {
        "recipe": 21,
        "speed": 0.1,
        "note": "night",
        "mode": "Running",
        "hold": 30,
    }
    output = await driver.call("set_recipe", args)
    assert output == (42, "ok")
    ((method, received),) = served.calls
    assert method == "SetRecipe"
    assert [(v.VariantType, v.Value) for v in received] == [
        (VT.Int16, 21),
        (VT.Float, pytest.approx(0.1, rel=1e-7)),
        (VT.String, "night"),
        (VT.Int32, 0),
        (VT.Double, 30.0),
    ]


async def test_method_refusals_and_failures(served: WriteServer, driver: OpcUaDriver) -> None:
    with pytest.raises(WriteRefused, match="has no method reset"):
        await driver.call("reset", {})
    with pytest.raises(WriteRefused, match="missing note, mode, hold"):
        await driver.call("set_recipe", {"recipe": 1, "speed": 1.0})
    with pytest.raises(WriteRefused, match="not an argument of it: extra"):
        await driver.call("refuse", {"level": 1, "extra": 2})
    with pytest.raises(WriteRefused, match="out of range"):
        await driver.call("refuse", {"level": 300})
    assert served.calls == []
    with pytest.raises(WriteFailed, match=r"BadInvalidArgument.*level: BadOutOfRange"):
        await driver.call("refuse", {"level": 7})
    assert [(m, [v.VariantType for v in a]) for m, a in served.calls] == [("Refuse", [VT.Byte])]
