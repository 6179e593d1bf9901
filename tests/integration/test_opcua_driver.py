"""The OPC UA driver against the simulator over the wire: values, types, addressing, limits."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from drivers.opcua import OpcUaDriver, build_opcua_drivers
from drivers.opcua.groups import SubscribeGroup
from edge_agent.config import PlantConfig
from edge_agent.errors import DriverConnectError
from edge_agent.model import KIND_ALIVE, Quality, SampleBatch
from simulators.equipment import MACHINE_QUANTITIES, METER_QUANTITIES
from simulators.opcua_internals import OperationLimits
from simulators.opcua_server import OpcUaSimulator, bulk_name
from tests.opcua_support import (
    FrozenClock,
    close_enough,
    device_yaml,
    expected,
    plant_config,
    simulator,
    tags_yaml,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def frozen() -> AsyncIterator[tuple[OpcUaSimulator, FrozenClock]]:
    clock = FrozenClock()
    sim = simulator(clock)
    await sim.start()
    try:
        yield sim, clock
    finally:
        await sim.stop()


def _driver(config: PlantConfig, index: int = 0) -> OpcUaDriver:
    return build_opcua_drivers(config)[index]


async def _read(driver: OpcUaDriver, group: str = "default") -> SampleBatch:
    (result,) = await driver.read(group)
    assert isinstance(result, SampleBatch)
    return result


def _session_alive(driver: OpcUaDriver) -> bool:
    return driver.session is not None and driver.session.alive


def _by_name(batch: SampleBatch) -> dict[str, tuple[object, Quality, str]]:
    return {n: (v, q, r) for n, v, q, r in batch}


async def _changes(
    driver: OpcUaDriver, group: str, want: set[str], within: float = 10.0
) -> dict[str, list[tuple[object, Quality, str, int]]]:
    """Read a subscribe group until every name in ``want`` arrived at least once."""
    seen: dict[str, list[tuple[object, Quality, str, int]]] = {}
    deadline = time.monotonic() + within
    while not want <= seen.keys():
        assert time.monotonic() < deadline, f"missing changes: {sorted(want - seen.keys())}"
        await asyncio.sleep(0.05)
        result = await driver.read(group)
        assert isinstance(result, list)
        for batch in result:
            assert len(set(batch.names)) == len(batch.names), "a tag twice in one batch"
            for k, (name, value, quality, reason) in enumerate(batch):
                seen.setdefault(name, []).append((value, quality, reason, batch.sample_time_ns(k)))
    return seen


async def test_read_mode_values_equal_the_simulators_ground_truth(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, clock = frozen
    machine = list(MACHINE_QUANTITIES)
    meter = [*METER_QUANTITIES, "voltages_v"]
    groups = (
        "- name: machine\n  interval: 1s\n  tags:\n"
        + "\n".join("  " + line for line in tags_yaml(sim, "cnc-1", machine).splitlines())
        + "\n- name: meter\n  interval: 1s\n  tags:\n"
        + "\n".join("  " + line for line in tags_yaml(sim, "line-meter", meter).splitlines())
    )
    driver = _driver(plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups)))
    await driver.connect()
    try:
        for step in range(2):
            machine_batch = await _read(driver, "machine")
            meter_batch = await _read(driver, "meter")
            got = _by_name(machine_batch) | _by_name(meter_batch)
            for quantity in machine:
                value, quality, reason = got[f"cnc-1.{quantity}"]
                want = expected(sim, "cnc-1", quantity)
                assert quality is Quality.GOOD, (quantity, reason)
                assert close_enough(value, want), (quantity, value, want)
            for quantity in METER_QUANTITIES:
                value, quality, _ = got[f"line-meter.{quantity}"]
                assert quality is Quality.GOOD
                assert value == expected(sim, "line-meter", quantity), quantity
            volts = [got[f"line-meter.voltages_v[{k}]"][0] for k in range(3)]
            truth = sim.values("line-meter")
            assert volts == [truth["voltage_l1_n"], truth["voltage_l2_n"], truth["voltage_l3_n"]]
            # Source timestamps: when the simulator last changed the value, not the read.
            stamps = dict(zip(machine_batch.names, machine_batch.timestamps_ns or [], strict=True))
            if step == 0:
                assert set(stamps.values()) == {int(clock.now) * 1_000_000_000}
                before = got["cnc-1.energy_kwh"][0]
                clock.now += 3600
                await sim.refresh()
        assert got["cnc-1.energy_kwh"][0] != before, "values must follow the live model"
        assert stamps["cnc-1.energy_kwh"] == int(clock.now) * 1_000_000_000
    finally:
        await driver.close()


async def test_server_timestamps_when_configured(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, clock = frozen
    clock.now -= 86_400  # the source clock is a day behind: easy to tell apart
    await sim.refresh()
    groups = "- interval: 1s\n  tags:\n" + "\n".join(
        "  " + line for line in tags_yaml(sim, "cnc-1", ["power_kw"]).splitlines()
    )
    driver = _driver(
        plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups, "timestamp: server"))
    )
    await driver.connect()
    try:
        batch = await _read(driver)
        assert batch.timestamps_ns is not None
        assert abs(batch.timestamps_ns[0] - time.time_ns()) < 60 * 1_000_000_000
    finally:
        await driver.close()


async def test_subscribe_mode_hands_over_changes_matching_ground_truth(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, clock = frozen
    quantities = ["power_kw", "energy_kwh", "parts_good", "state", "program", "speed_rpm"]
    groups = (
        "- name: live\n  mode: subscribe\n  interval: 100ms\n  sampling_interval: 50ms\n"
        "  queue_size: 10\n  tags:\n"
        + "\n".join("  " + line for line in tags_yaml(sim, "cnc-1", quantities).splitlines())
    )
    driver = _driver(plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups)))
    await driver.connect()
    try:
        names = {f"cnc-1.{q}" for q in quantities}
        initial = await _changes(driver, "live", names)
        for quantity in quantities:
            value, quality, _, stamp = initial[f"cnc-1.{quantity}"][-1]
            assert quality is Quality.GOOD
            assert close_enough(value, expected(sim, "cnc-1", quantity)), quantity
            assert stamp == int(clock.now) * 1_000_000_000
        # An hour later the energy counter moved; it arrives with the new source time.
        clock.now += 3600
        await sim.refresh()
        later = await _changes(driver, "live", {"cnc-1.energy_kwh"})
        value, quality, _, stamp = later["cnc-1.energy_kwh"][-1]
        assert value == expected(sim, "cnc-1", "energy_kwh")
        assert stamp == int(clock.now) * 1_000_000_000
        # Nothing changed since: the next hand-over repeats nothing; it only proves the
        # subscription alive (a batch without samples, for the metrics, never published).
        await asyncio.sleep(0.3)
        await driver.read("live")
        (quiet,) = await driver.read("live")
        assert len(quiet) == 0
        assert quiet.attributes == {"kind": KIND_ALIVE}
    finally:
        await driver.close()


async def test_every_mapped_type_over_the_wire(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, _ = frozen
    ns = sim.namespace_index
    names = [
        "Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
        "Float", "Double", "String", "DateTime", "NullDateTime", "LocalizedText", "ByteString",
        "EnumRun", "EnumUnknown", "Int32Array", "StringArray", "EmptyArray", "Matrix",
        "NotReadable", "Uncertain", "Bad",
    ]  # fmt: skip
    tags = "\n".join(f"  - {{name: {n}, node: 'ns={ns};s=TypeCheck.{n}'}}" for n in names)
    driver = _driver(
        plant_config(
            tmp_path, device_yaml("types", sim.endpoint, f"- interval: 1s\n  tags:\n{tags}")
        )
    )
    await driver.connect()
    try:
        got = _by_name(await _read(driver))
    finally:
        await driver.close()
    good = Quality.GOOD
    assert got["Boolean"] == (True, good, "")
    assert got["SByte"] == (-8, good, "")
    assert got["Byte"] == (200, good, "")
    assert got["Int16"] == (-30_000, good, "")
    assert got["UInt16"] == (60_000, good, "")
    assert got["Int32"] == (-2_000_000_000, good, "")
    assert got["UInt32"] == (4_000_000_000, good, "")
    assert got["Int64"] == (-9_000_000_000_000_000_000, good, "")
    assert got["UInt64"] == (18_000_000_000_000_000_000, good, "")
    # The float32 nearest 0.1 (0.10000000149011612), as its shortest decimal.
    assert got["Float"] == (0.1, good, "")
    assert got["Double"] == (0.1, good, "")
    assert got["String"] == ("Grüße ✓", good, "")
    assert got["DateTime"] == ("2024-05-01T12:00:00.123456Z", good, "")
    assert got["NullDateTime"] == (None, Quality.UNCERTAIN, "null DateTime")
    assert got["LocalizedText"] == ("Spindle", good, "")
    assert got["ByteString"] == ("AQL/", good, "")
    assert got["EnumRun"] == ("Run", good, "")
    assert got["EnumUnknown"] == ("7", Quality.UNCERTAIN, "unknown enum value 7")
    assert [got[f"Int32Array[{k}]"][0] for k in range(3)] == [1, -2, 3]
    assert [got[f"StringArray[{k}]"][0] for k in range(2)] == ["a", "b"]
    assert got["EmptyArray"] == (None, Quality.UNCERTAIN, "empty array")
    assert got["Matrix"][1:] == (Quality.BAD, "unsupported type 2x2 array (only 1-D arrays)")
    assert got["NotReadable"] == (None, Quality.BAD, "BadNotReadable")
    assert got["Uncertain"] == (21.5, Quality.UNCERTAIN, "UncertainLastUsableValue")
    assert got["Bad"] == (None, Quality.BAD, "BadSensorFailure")


async def test_an_array_longer_than_max_array_length_is_bad_not_thousands_of_samples(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, _ = frozen
    # TypeCheck.LongArray: 1,500 Doubles (the same node twice in a group, so two forms).
    tags = (
        f"  - {{name: capped, node: 'ns={sim.namespace_index};s=TypeCheck.LongArray'}}\n"
        f"  - {{name: raised, node: '{sim.nsu_node_id('TypeCheck', 'LongArray')}', "
        "max_array_length: 1500}\n"
    )
    driver = _driver(
        plant_config(
            tmp_path, device_yaml("arrays", sim.endpoint, f"- interval: 1s\n  tags:\n{tags}")
        )
    )
    await driver.connect()
    try:
        got = _by_name(await _read(driver))
    finally:
        await driver.close()
    assert got["capped"] == (
        None,
        Quality.BAD,
        "array of 1500 elements, above max_array_length 1000",
    )
    assert [got[f"raised[{k}]"][:2] for k in (0, 1499)] == [
        (0.0, Quality.GOOD),
        (1499.0, Quality.GOOD),
    ]
    assert len(got) == 1 + 1500


async def test_bad_nodes_fail_only_their_tags_in_both_modes(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, _ = frozen
    ns = sim.namespace_index
    tags = (
        f"  - {{name: power, node: '{sim.node_id('cnc-1', 'power_kw')}'}}\n"
        f"  - {{name: unknown, node: 'ns={ns};s=cnc-1.no_such_thing'}}\n"
        f"  - {{name: locked, node: 'ns={ns};s=TypeCheck.NotReadable'}}\n"
        "  - {name: foreign, node: 'nsu=urn:nobody:here;s=x'}\n"
        f"  - {{name: lost, node: '/Objects/{ns}:cnc-1/{ns}:nothing'}}\n"
        f"  - {{name: parts, node: '{sim.nsu_node_id('cnc-1', 'parts_good')}'}}\n"
    )
    config = plant_config(
        tmp_path,
        device_yaml("polled", sim.endpoint, f"- name: polled\n  interval: 1s\n  tags:\n{tags}")
        + device_yaml(
            "watched",
            sim.endpoint,
            f"- name: watched\n  mode: subscribe\n  interval: 100ms\n  tags:\n{tags}",
        ),
    )
    reader, watcher = build_opcua_drivers(config)
    try:
        # Both devices start although some of their nodes do not exist.
        await reader.connect()
        await watcher.connect()
        polled = _by_name(await _read(reader, "polled"))
        changes = await _changes(watcher, "watched", set(polled))
        watched = {n: v[-1][:3] for n, v in changes.items()}
    finally:
        await reader.close()
        await watcher.close()
    for got in (polled, watched):
        assert got["power"][1] is Quality.GOOD
        assert got["power"][0] == expected(sim, "cnc-1", "power_kw")
        assert got["parts"][:2] == (expected(sim, "cnc-1", "parts_good"), Quality.GOOD)
        assert got["unknown"] == (None, Quality.BAD, "BadNodeIdUnknown")
        assert got["foreign"] == (None, Quality.BAD, "namespace not on server: urn:nobody:here")
        assert got["lost"] == (None, Quality.BAD, "BadNoMatch")
    assert polled["locked"] == (None, Quality.BAD, "BadNotReadable")
    # A monitored item on an unreadable node: the server refuses the item or reports
    # the status with the first notification; bad either way, with a Bad* reason.
    assert watched["locked"][1] is Quality.BAD
    assert watched["locked"][2].startswith("Bad")


async def test_namespace_uris_survive_a_renumbering_restart(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    sim, _ = frozen
    old = sim.namespace_index
    tags = (
        f"  - {{name: by_uri, node: '{sim.nsu_node_id('cnc-1', 'parts_good')}'}}\n"
        f"  - {{name: by_index, node: '{sim.node_id('cnc-1', 'parts_good')}'}}\n"
        f"  - {{name: by_path, node: '/Objects/{old}:cnc-1/{old}:parts_good'}}\n"
    )
    driver = _driver(
        plant_config(
            tmp_path, device_yaml("cell", sim.endpoint, f"- interval: 1s\n  tags:\n{tags}")
        )
    )
    await driver.connect()
    try:
        before = _by_name(await _read(driver))
        want = expected(sim, "cnc-1", "parts_good")
        assert [before[n][:2] for n in ("by_uri", "by_index", "by_path")] == [
            (want, Quality.GOOD)
        ] * 3
        # A firmware update registers another namespace first: ours moves up one.
        await sim.restart(extra_namespaces=["urn:vendor:diagnostics"])
        assert sim.namespace_index == old + 1
        # The next read reports the lost session (the device goes offline); then the
        # scheduler reconnects.
        with pytest.raises(DriverConnectError):
            await driver.read("default")
        assert not driver.connected
        await driver.connect()
        after = _by_name(await _read(driver))
    finally:
        await driver.close()
    assert after["by_uri"][:2] == (want, Quality.GOOD)
    assert after["by_index"][1] is Quality.BAD  # ns=<old> now names another namespace
    assert after["by_path"][1] is Quality.BAD


def _bulk_groups(sim: OpcUaSimulator, count: int, subscribe: bool) -> str:
    ns = sim.namespace_index

    def tags(prefix: str) -> str:
        return "\n".join(
            f"  - {{name: {prefix}{i:04d}, node: 'ns={ns};s={bulk_name(i)}'}}" for i in range(count)
        )

    groups = f"- name: polled\n  interval: 1s\n  tags:\n{tags('r')}\n"
    if subscribe:
        groups += f"- name: watched\n  mode: subscribe\n  interval: 200ms\n  tags:\n{tags('s')}\n"
    return groups


@pytest.mark.parametrize("announced", [True, False], ids=["announced", "unannounced"])
async def test_1000_nodes_are_chunked_to_fit_the_servers_limits(
    tmp_path: Path, announced: bool
) -> None:
    clock = FrozenClock()
    limits = OperationLimits(
        max_nodes_per_read=50, max_monitored_items_per_call=100, announced=announced
    )
    sim = simulator(clock, bulk_nodes=1000, limits=limits)
    await sim.start()
    driver = _driver(
        plant_config(
            tmp_path,
            device_yaml("bulk", sim.endpoint, _bulk_groups(sim, 1000, subscribe=announced)),
        )
    )
    try:
        await driver.connect()
        batch = await _read(driver, "polled")
        if announced:
            changes = await _changes(driver, "watched", {"s" + n[1:] for n in batch.names})
    finally:
        await driver.close()
        await sim.stop()
    base = round(clock.now * 10) / 10
    assert len(batch) == 1000
    assert batch.values == [base + i / 1000 for i in range(1000)]
    assert batch.good_count == 1000
    assert sim.stats.largest_read <= 50
    if announced:
        # The driver cut every request to the announced limits: nothing was refused.
        assert sim.stats.refused == 0
        assert sim.stats.reads >= 20
        assert sim.stats.largest_item_call <= 100
        latest = {name[1:]: v[-1][0] for name, v in changes.items()}
        assert latest == {n[1:]: v for n, v in zip(batch.names, batch.values, strict=True)}
    else:
        # Not announced: refused, halved until it fits, and remembered.
        assert sim.stats.refused >= 1


async def test_an_unannounced_read_limit_is_learned_in_about_log2_n_refusals(
    tmp_path: Path,
) -> None:
    """1000 nodes against a server that takes 10 per Read without saying so: one binary
    search (each accepted chunk is data), one log line, then chunks of exactly 10."""
    clock = FrozenClock()
    limits = OperationLimits(max_nodes_per_read=10, announced=False)
    sim = simulator(clock, bulk_nodes=1000, limits=limits)
    await sim.start()
    driver = _driver(
        plant_config(tmp_path, device_yaml("bulk", sim.endpoint, _bulk_groups(sim, 1000, False)))
    )
    try:
        with capture_logs() as logs:
            # The connect already reads 1000 nodes (their data types): it learns there.
            await driver.connect()
            first = await _read(driver, "polled")
        learning = list(sim.stats.read_sizes)
        sim.stats.read_sizes.clear()
        second = await _read(driver, "polled")
    finally:
        await driver.close()
        await sim.stop()
    base = round(clock.now * 10) / 10
    want = [base + i / 1000 for i in range(1000)]
    assert first.values == want
    assert second.values == want
    refused = [k for k, size in enumerate(learning) if size > 10]
    assert len(refused) <= math.ceil(math.log2(1000)) + 1, learning
    assert max(learning[refused[-1] + 1 :]) == 10, "nothing above the limit once learned"
    told = [e for e in logs if "announced" in e["event"]]
    assert len(told) == 1, logs
    assert (told[0]["max_nodes_per_read"], told[0]["refused_reads"]) == (10, len(refused))
    assert sim.stats.read_sizes == [10] * 100, "every later chunk has the learned size"


async def test_an_unreachable_server_is_a_connect_error(tmp_path: Path) -> None:
    from tests.servers import free_port

    groups = "- interval: 1s\n  tags:\n  - {name: x, node: 'ns=2;s=x'}"
    driver = _driver(
        plant_config(tmp_path, device_yaml("gone", f"opc.tcp://127.0.0.1:{free_port()}", groups))
    )
    with pytest.raises(DriverConnectError) as failure:
        await driver.connect()
    assert failure.value.reason == "disconnected"
    assert not driver.connected
    await driver.close()


async def test_a_node_that_appears_later_is_monitored_without_a_reconnect(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import drivers.opcua.driver as opcua_driver

    monkeypatch.setattr(opcua_driver, "RETRY_SECONDS", 0.2)
    sim, _ = frozen
    ns = sim.namespace_index
    tags = (
        f"  - {{name: power, node: '{sim.node_id('cnc-1', 'power_kw')}'}}\n"
        f"  - {{name: coolant, node: 'ns={ns};s=cnc-1.coolant_bar'}}\n"
    )
    groups = f"- name: watched\n  mode: subscribe\n  interval: 100ms\n  tags:\n{tags}"
    driver = _driver(plant_config(tmp_path, device_yaml("cnc", sim.endpoint, groups)))
    await driver.connect()
    try:
        first = await _changes(driver, "watched", {"power", "coolant"})
        assert first["coolant"][-1][1:3] == (Quality.BAD, "BadNodeIdUnknown")
        session = driver.session
        # The new PLC program brings the node; the next retry monitors it.
        await sim.add_variable("cnc-1", "coolant_bar", 4.5)
        deadline = time.monotonic() + 10
        latest: tuple[object, Quality, str, int] = first["coolant"][-1]
        while latest[1] is not Quality.GOOD:
            assert time.monotonic() < deadline, f"coolant still {latest}"
            latest = (await _changes(driver, "watched", {"coolant"}))["coolant"][-1]
        assert latest[:3] == (4.5, Quality.GOOD, "")
        assert driver.session is session  # same session: no reconnect was needed
    finally:
        await driver.close()


@pytest.mark.parametrize("first", ["read", "reconnect"])
async def test_changes_received_before_a_lost_session_are_handed_over(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path, first: str
) -> None:
    """Changes that arrived but were not yet handed on survive the loss of the session:
    the next read hands them over (the loss is raised on the read after), or, when the
    scheduler reconnects first, the first read on the new session does."""
    sim, clock = frozen
    groups = "- name: live\n  mode: subscribe\n  interval: 100ms\n  tags:\n" + "\n".join(
        "  " + line for line in tags_yaml(sim, "cnc-1", ["energy_kwh"]).splitlines()
    )
    driver = _driver(plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups)))
    name = "cnc-1.energy_kwh"
    await driver.connect()
    try:
        await _changes(driver, "live", {name})
        clock.now += 3600
        await sim.refresh()
        pending = expected(sim, "cnc-1", "energy_kwh")
        group = driver._groups["live"]
        assert isinstance(group, SubscribeGroup)
        subscription = group._subscription
        assert subscription is not None
        deadline = time.monotonic() + 10
        while not subscription.changes:  # delivered to the client, not yet handed on
            assert time.monotonic() < deadline, "the change never arrived"
            await asyncio.sleep(0.05)
        await sim.stop()
        while _session_alive(driver):
            assert time.monotonic() < deadline + 10, "the loss was never noticed"
            await asyncio.sleep(0.05)
        if first == "read":
            result = await driver.read("live")
            assert isinstance(result, list)
            got = [v for b in result for n, v, q, _ in b if n == name and q is Quality.GOOD]
            assert got == [pending], "handed over before the loss is reported"
            assert driver.connected, "the loss is not reported yet"
            with pytest.raises(DriverConnectError):
                await driver.read("live")
            assert not driver.connected
        # The device comes back having counted on: the new session starts from there.
        clock.now += 3600
        await sim.start()
        await driver.connect()
        later = expected(sim, "cnc-1", "energy_kwh")
        seen = await _changes(driver, "live", {name})
        while seen[name][-1][0] != later:
            for each, more in (await _changes(driver, "live", {name})).items():
                seen[each] += more
        values = [v for v, q, _, _ in seen[name] if q is Quality.GOOD]
        if first == "reconnect":
            assert values[0] == pending, "the change of the lost session comes first"
            values = values[1:]
        assert pending not in values, "handed over once"
        assert values[-1] == later
    finally:
        await driver.close()


async def test_a_quiet_subscription_proves_itself_alive_until_the_server_goes(
    frozen: tuple[OpcUaSimulator, FrozenClock], tmp_path: Path
) -> None:
    """Each read of a quiet subscription ends with a proof of life stamped with the
    server's latest publish (keepalives included); a dead server proves nothing."""
    sim, _ = frozen
    groups = "- name: live\n  mode: subscribe\n  interval: 100ms\n  tags:\n" + "\n".join(
        "  " + line for line in tags_yaml(sim, "cnc-1", ["power_kw"]).splitlines()
    )
    driver = _driver(plant_config(tmp_path, device_yaml("cell", sim.endpoint, groups)))
    await driver.connect()
    try:
        await _changes(driver, "live", {"cnc-1.power_kw"})
        proofs: list[int] = []
        deadline = time.monotonic() + 10
        while len(set(proofs)) < 4:  # the frozen simulator changes nothing: keepalives only
            assert time.monotonic() < deadline, f"publish times did not advance: {proofs}"
            await asyncio.sleep(0.1)
            result = await driver.read("live")
            assert isinstance(result, list)
            assert all(len(b) == 0 for b in result), "no value is repeated"
            assert [b.attributes for b in result] == [{"kind": KIND_ALIVE}]
            proofs.append(result[0].timestamp_ns)
        assert proofs == sorted(proofs)
        assert abs(proofs[-1] - time.time_ns()) < 60 * 1_000_000_000, "the server's clock"
        await sim.stop()
        while _session_alive(driver):
            assert time.monotonic() < deadline + 10, "the loss was never noticed"
            await asyncio.sleep(0.05)
        with pytest.raises(DriverConnectError):
            await driver.read("live")
    finally:
        await driver.close()
