"""Writes and a method call to the OPC UA simulator (opcua-cell), with a plain asyncua client.

The rules are in simulators/opcua_writes.py: only the profile's settings are writable,
with the node's own type and within range; the model follows from the next step, as a
twin written through the model's API at the same instant shows, to the microjoule.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncua import Client, Node, ua

from simulators.equipment import MachineState
from simulators.profile import PROFILES_DIR, Profile, build_simulation, parse_profile
from simulators.serve import Plant, serve_profile
from tests.integration.test_simulator_modbus import T0, FakeClock

pytestmark = pytest.mark.integration

NAMESPACE = "urn:edge-agent:simulator:equipment"


def cell_profile() -> Profile:
    """The shipped cell on a free port, open endpoint only (no certificate to make)."""
    text = (PROFILES_DIR / "opcua-cell.yaml").read_text()
    return parse_profile(
        text.replace("port: 4841", "port: 0").replace(
            'endpoints: ["None", "Basic256Sha256/SignAndEncrypt"]', 'endpoints: ["None"]'
        )
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def cell(clock: FakeClock) -> AsyncIterator[tuple[Plant, Client, int]]:
    async with serve_profile(cell_profile(), clock=clock) as plant:
        client = Client(f"opc.tcp://127.0.0.1:{plant.port('cell-server')}", timeout=5)
        async with client:
            ns = await client.get_namespace_index(NAMESPACE)
            yield plant, client, ns


def node(client: Client, ns: int, name: str) -> Node:
    return client.get_node(ua.NodeId(name, ns))


async def write_status(target: Node, variant: ua.Variant) -> int:
    """The status code the server answers a write of ``variant`` with."""
    try:
        await target.write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))
    except ua.UaStatusCodeError as exc:
        return int(exc.code)
    return int(ua.StatusCodes.Good)


async def test_a_setpoint_written_is_stored_and_the_model_follows_exactly(
    cell: tuple[Plant, Client, int], clock: FakeClock
) -> None:
    plant, client, ns = cell
    setpoint = node(client, ns, "compressor-5.pressure_setpoint_bar")
    assert await setpoint.read_value() == 7.0
    clock.t = T0 + 300.6
    status = await write_status(setpoint, ua.Variant(6.5, ua.VariantType.Double))
    assert status == ua.StatusCodes.Good
    assert await setpoint.read_value() == 6.5
    clock.t = T0 + 4 * 3600
    twin = build_simulation(cell_profile(), T0)
    twin.advance_to(T0 + 300.6)
    twin.machine("compressor-5").write("pressure_setpoint_bar", 6.5)
    twin.advance_to(clock.t)
    assert plant.machine_truth("compressor-5") == twin.machine("compressor-5").truth()
    untouched = build_simulation(cell_profile(), T0)
    untouched.advance_to(clock.t)
    saved = untouched.machine("compressor-5").truth().energy_uj
    assert plant.machine_truth("compressor-5").energy_uj < saved


async def test_only_the_settings_are_writable(cell: tuple[Plant, Client, int]) -> None:
    plant, client, ns = cell
    writable = ua.AccessLevel.CurrentRead.mask | ua.AccessLevel.CurrentWrite.mask
    for name in ("compressor-5.pressure_setpoint_bar", "cnc-7.mode", "press-3.mode"):
        level = await node(client, ns, name).read_attribute(ua.AttributeIds.AccessLevel)
        assert level.Value.Value == writable, name
    for name in ("compressor-5.power_kw", "cnc-7.state", "cell-meter.energy_import_kwh"):
        target = node(client, ns, name)
        level = await target.read_attribute(ua.AttributeIds.AccessLevel)
        assert level.Value.Value == ua.AccessLevel.CurrentRead.mask, name
        value = await target.read_data_value()
        status = await write_status(target, value.Value)  # its own value, its own type
        assert status == ua.StatusCodes.BadNotWritable, name
    assert all(plant.machine_truth(m).changes == () for m in ("cnc-7", "compressor-5"))


@pytest.mark.parametrize(
    ("name", "variant", "status"),
    [
        ("compressor-5.pressure_setpoint_bar", ua.Variant(6.5, ua.VariantType.Float), "type"),
        ("compressor-5.pressure_setpoint_bar", ua.Variant(6, ua.VariantType.Int32), "type"),
        ("compressor-5.pressure_setpoint_bar", ua.Variant([6.5], ua.VariantType.Double), "type"),
        ("compressor-5.pressure_setpoint_bar", ua.Variant(8.01, ua.VariantType.Double), "range"),
        ("compressor-5.pressure_setpoint_bar", ua.Variant(5.49, ua.VariantType.Double), "range"),
        ("cnc-7.mode", ua.Variant(1, ua.VariantType.Int32), "type"),
        ("cnc-7.mode", ua.Variant(True, ua.VariantType.Boolean), "type"),
        ("cnc-7.mode", ua.Variant(2, ua.VariantType.UInt16), "range"),
    ],
)
async def test_a_wrong_type_or_range_is_refused_and_nothing_changes(
    cell: tuple[Plant, Client, int], name: str, variant: ua.Variant, status: str
) -> None:
    plant, client, ns = cell
    target = node(client, ns, name)
    before = await target.read_value()
    want = ua.StatusCodes.BadTypeMismatch if status == "type" else ua.StatusCodes.BadOutOfRange
    assert await write_status(target, variant) == want
    assert await target.read_value() == before
    assert plant.machine_truth(name.split(".")[0]).changes == ()


async def test_mode_stop_and_auto_over_opcua(
    cell: tuple[Plant, Client, int], clock: FakeClock
) -> None:
    plant, client, ns = cell
    mode = node(client, ns, "cnc-7.mode")
    clock.t = T0 + 60.5
    assert await write_status(mode, ua.Variant(1, ua.VariantType.UInt16)) == 0
    clock.t = T0 + 61
    assert plant.machine_truth("cnc-7").state is MachineState.OFF
    clock.t = T0 + 600
    stopped = plant.machine_truth("cnc-7")
    assert await write_status(mode, ua.Variant(0, ua.VariantType.UInt16)) == 0
    clock.t = T0 + 601
    assert plant.machine_truth("cnc-7").state is MachineState.IDLE
    assert stopped.ms_in_state[MachineState.OFF] == (600 - 61) * 1000


async def test_acknowledge_alarm_ends_the_fault(
    cell: tuple[Plant, Client, int], clock: FakeClock
) -> None:
    plant, client, ns = cell
    cnc = node(client, ns, "cnc-7")
    method = f"{ns}:AcknowledgeAlarm"
    with pytest.raises(ua.UaStatusCodeError) as no_alarm:
        await cnc.call_method(method, ua.Variant(1001, ua.VariantType.UInt16))
    assert no_alarm.value.code == ua.StatusCodes.BadInvalidState
    while plant.machine_truth("cnc-7").state is not MachineState.FAULT:
        clock.t += 60
        assert clock.t < T0 + 7 * 24 * 3600, "no fault in a simulated week"
    alarm = plant.read("cnc-7")["alarm_code"]
    assert isinstance(alarm, int)
    with pytest.raises(ua.UaStatusCodeError) as other:
        await cnc.call_method(method, ua.Variant(alarm + 1, ua.VariantType.UInt16))
    assert other.value.code == ua.StatusCodes.BadInvalidArgument
    with pytest.raises(ua.UaStatusCodeError) as wrong_type:
        await cnc.call_method(method, ua.Variant(alarm, ua.VariantType.Int32))
    assert wrong_type.value.code == ua.StatusCodes.BadInvalidArgument
    assert await cnc.call_method(method, ua.Variant(alarm, ua.VariantType.UInt16)) is None
    clock.t += 1
    assert plant.machine_truth("cnc-7").state is MachineState.IDLE
    assert [c.quantity for c in plant.machine_truth("cnc-7").changes] == ["acknowledge_alarm"]
