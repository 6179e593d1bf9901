"""Sparkplug metric tables: aliases, folder names of metric/event/report batches, learning.

Aliases are unique across the edge node (tck-id-payloads-alias-uniqueness) and kept by a
device's rebirth; a name not born yet or a value the born datatype cannot carry makes
``admit`` ask for a DBIRTH before the batch's DDATA.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.metrics.events import event_batch
from edge_agent.metrics.guard import FAMILY as GUARD_FAMILY
from edge_agent.metrics.output import ENERGY_NAMES, metric_batch
from edge_agent.metrics.reports import report_batch
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import DataType
from edge_agent.sinks.sparkplug.metric_table import (
    MAX_PLANS,
    PLACEHOLDER,
    AliasAllocator,
    DeviceTable,
    family_folder,
    known_time_ns,
    naming,
)
from edge_agent.sinks.sparkplug.payloads import encode_data, encode_dbirth

T0 = 1_795_719_600_000_000_000
S = 1_000_000_000


def parse(data: bytes) -> Any:
    return pb.Payload.FromString(data)


def modbus_device(name: str = "press-1") -> DeviceInfo:
    tags = [
        TagInfo(name, "fast", "power_kw", "uint32", None, 1.0, scale=0.1, unit="kW"),
        TagInfo(name, "fast", "running", "bool", None, 1.0),
        TagInfo(name, "fast", "temp", "int16", None, 1.0),
    ]
    return DeviceInfo.of(name, "modbus", tags)


def opcua_device() -> DeviceInfo:
    tags = [TagInfo("oven", "sub", n, None, None, 1.0, change_based=True) for n in ("a", "b")]
    return DeviceInfo.of("oven", "opcua", tags)


def batch(device: str, names: tuple[str, ...], values: list[object], **kw: object) -> SampleBatch:
    n = len(names)
    return SampleBatch(
        device,
        "g",
        T0,
        names,
        values,
        [Quality.GOOD] * n,
        [""] * n,
        **kw,  # type: ignore[arg-type]
    )


def test_aliases_are_unique_across_devices_and_stable_across_rebirths() -> None:
    allocator = AliasAllocator()
    node = [allocator.alias("", "bdSeq"), allocator.alias("", "Node Control/Rebirth")]
    press = DeviceTable.from_device(modbus_device("press-1"), allocator)
    other = DeviceTable.from_device(modbus_device("press-2"), allocator)
    aliases = node + [s.alias for t in (press, other) for s in t.metrics.values()]
    assert len(aliases) == len(set(aliases)) == 8
    before = {name: slot.alias for name, slot in press.metrics.items()}
    assert press.admit(batch("press-1", ("new_tag",), [1.0]))  # a name not born: rebirth
    assert {n: s.alias for n, s in press.metrics.items() if n in before} == before
    again = DeviceTable.from_device(modbus_device("press-1"), allocator)  # a reload
    assert {n: s.alias for n, s in again.metrics.items()} == before
    assert press.metrics["new_tag"].alias not in aliases


def test_a_catalog_device_is_born_typed_and_admits_its_batches_without_rebirth() -> None:
    table = DeviceTable.from_device(modbus_device(), AliasAllocator())
    assert [s.datatype for s in table.metrics.values()] == [
        DataType.Double,
        DataType.Boolean,
        DataType.Int16,
    ]
    assert table.metrics["power_kw"].unit == "kW"
    good = batch("press-1", ("power_kw", "running", "temp"), [12.1, True, -4])
    assert not table.admit(good)
    bad = SampleBatch.all_bad("press-1", "fast", T0, ("power_kw", "running", "temp"), "timeout")
    assert not table.admit(bad)


def test_a_value_the_born_datatype_cannot_carry_changes_it_by_rebirth() -> None:
    table = DeviceTable.from_device(modbus_device(), AliasAllocator())
    assert table.admit(batch("press-1", ("temp",), [2.5]))  # a float for an Int16
    assert table.metrics["temp"].datatype == DataType.Double
    assert not table.admit(batch("press-1", ("temp",), [3]))  # an int fits a Double


def test_tags_typed_by_the_server_learn_from_their_first_value() -> None:
    table = DeviceTable.from_device(opcua_device(), AliasAllocator())
    assert all(s.datatype == PLACEHOLDER and not s.typed for s in table.metrics.values())
    names = ("a", "b")
    first = SampleBatch(
        "oven", "sub", T0, names, [21.5, None], [Quality.GOOD, Quality.BAD], ["", "timeout"]
    )
    assert table.admit(first)  # a: String placeholder -> Double
    assert table.metrics["a"].datatype == DataType.Double
    assert not table.metrics["b"].typed
    assert not table.admit(batch("oven", names, [22.0, "open"]))  # the placeholder was right
    assert table.metrics["b"].typed
    assert table.metrics["b"].datatype == DataType.String
    assert not table.admit(batch("oven", names, [22.5, "shut"]))


def test_a_learned_integer_that_outgrows_int64_is_reborn_unsigned() -> None:
    table = DeviceTable.from_device(opcua_device(), AliasAllocator())
    assert table.admit(batch("oven", ("a",), [5]))
    assert table.metrics["a"].datatype == DataType.Int64
    assert not table.admit(batch("oven", ("a",), [2**63 - 1]))
    assert table.admit(batch("oven", ("a",), [2**63]))  # same Python type, out of range
    assert table.metrics["a"].datatype == DataType.UInt64
    assert not table.admit(batch("oven", ("a",), [2**64]))  # nothing carries it: sent bad


def window(start_ns: int, minutes: int, label: str = "") -> OpenWindow[None]:
    return OpenWindow(start_ns, start_ns + minutes * 60 * 10**9, label, None)


def test_metric_batches_are_named_family_window_name() -> None:
    energy = metric_batch(
        "line-meter", "15m", window(T0, 15), "energy", ENERGY_NAMES, [1.0] * 6, 1.0, 0.9
    )
    how = naming(energy)
    assert how.names(energy.names)[:2] == (
        "Edge Metrics/Energy/15m/energy_kwh",
        "Edge Metrics/Energy/15m/mean_kw",
    )
    assert how.window == "15m"
    shift = metric_batch(
        "press-1", "shift", window(T0, 480, "early"), "oee", ("oee",), [0.8], 1.0, 0.9
    )
    assert naming(shift).names(shift.names) == ("Edge Metrics/OEE/shift/oee",)
    table = DeviceTable.from_device(modbus_device("line-meter"), AliasAllocator())
    assert table.admit(energy)  # the first window: new names, a rebirth
    assert table.metrics["Edge Metrics/Energy/15m/energy_kwh"].window == "15m"
    assert table.metrics["Edge Metrics/Energy/15m/energy_kwh"].datatype == DataType.Double
    assert not table.admit(energy)


def test_family_folders() -> None:
    assert [family_folder(f) for f in ("energy", "oee", "tariff", "water")] == [
        "Energy",
        "OEE",
        "Tariff",
        "Water",
    ]


def test_the_demand_guard_family_has_a_folder_of_its_own_not_a_capitalised_key() -> None:
    """The guard's family is ``demand_guard`` (metrics/guard.py): found by the plant-engineer
    trial as ``Edge Metrics/Demand_guard/15m/...`` on the demo, while docs/SPARKPLUG.md
    promised a ``Guard`` folder for a family no module writes."""
    assert family_folder(GUARD_FAMILY) == "Demand Guard"
    table = DeviceTable(device_id="meter", allocator=AliasAllocator())
    assert table.admit(_guard_batch(T0 + 60 * S))
    assert "Edge Metrics/Demand Guard/15m/predicted_kw" in table.metrics


def test_event_and_report_batches() -> None:
    event = event_batch(
        "demand_limit", "plant", "warning", "start", T0, None, "over 80%", ("kw",), [812.0]
    )
    assert naming(event).names(event.names) == (
        "Edge Metrics/Events/demand_limit/start_s",
        "Edge Metrics/Events/demand_limit/end_s",
        "Edge Metrics/Events/demand_limit/reason",
        "Edge Metrics/Events/demand_limit/kw",
    )
    table = DeviceTable(device_id="plant", allocator=AliasAllocator())
    assert table.admit(event)
    # end_s is None while the event runs: still born a Double, not the placeholder.
    assert table.metrics["Edge Metrics/Events/demand_limit/end_s"].datatype == DataType.Double
    assert table.metrics["Edge Metrics/Events/demand_limit/reason"].datatype == DataType.String
    document = {"plant": "plant", "report": "daily", "day": "2026-12-04", "start_s": T0 / 1e9}
    report = report_batch(document)
    assert naming(report).names(report.names) == ("Edge Metrics/Reports/daily",)
    assert table.admit(report)
    assert table.metrics["Edge Metrics/Reports/daily"].datatype == DataType.String
    assert json.loads(str(report.values[0]))["day"] == "2026-12-04"


def test_see_keeps_one_batch_per_group() -> None:
    table = DeviceTable.from_device(modbus_device(), AliasAllocator())
    names = ("power_kw", "running", "temp")
    for value in (1.0, 2.0, 3.0):
        table.see(batch("press-1", names, [value, True, 1]))
    [latest] = table.latest_batches()
    assert latest.values[0] == 3.0


def test_known_time_is_the_end_of_a_window_or_report_and_the_batch_time_otherwise() -> None:
    """A metric batch's time is its window start and a report's the start of its day, but
    neither is known before the period ends: that end is the time of the values (the DDATA
    stamp, and what the session compares with a birth to call a batch historical)."""
    s = 1_000_000_000
    plain = batch("press-1", ("temp",), [1])
    assert known_time_ns(plain) == T0
    window = OpenWindow(T0, T0 + 900 * s, "", None)
    energy = metric_batch("press-1", "15m", window, "energy", ENERGY_NAMES[:1], [2.5], 1.0, 0.9)
    assert energy.timestamp_ns == T0
    assert known_time_ns(energy) == T0 + 900 * s
    event = event_batch("demand_limit", "plant", "warning", "start", T0, None, "", (), [])
    assert known_time_ns(event) == event.timestamp_ns
    day = {"plant": "plant", "report": "daily", "day": "2026-12-04"}
    report = report_batch({**day, "start_s": T0 / 1e9, "end_s": T0 / 1e9 + 86_400})
    assert report.timestamp_ns == T0
    assert known_time_ns(report) == T0 + 86_400 * s
    # A document that does not say when it ends (not written by this agent): its time.
    for end in ("tomorrow", None, T0 / 1e9 - 60):
        assert known_time_ns(report_batch({**day, "start_s": T0 / 1e9, "end_s": end})) == T0
    for text in ('{"end_s": 1e400}', "[]", "not json"):
        assert known_time_ns(dataclasses.replace(report, values=[text])) == T0


def test_a_running_window_figure_is_known_at_its_poll_not_at_the_window_end() -> None:
    """The demand guard sends its prediction for the running 15 m block with every poll:
    the batch time is the poll, the window the block. Stamping it with the block's end put
    every guard metric up to 15 minutes in the future (seen on the demo: 10 minutes ahead
    of the NBIRTH). A closed
    window (batch time = its start) is still known at its end."""
    poll = T0 + 5 * 60 * S
    guard = _guard_batch(poll)
    assert known_time_ns(guard) == poll
    # A poll on the block's first second too: its as_of says it, not a guess from its
    # time (which equals the window start, as a closed window's does).
    assert known_time_ns(_guard_batch(T0)) == T0
    closed_late = dataclasses.replace(guard, attributes=_guard_batch(T0).attributes | {})
    del closed_late.attributes["as_of"]
    assert known_time_ns(closed_late) == T0 + 900 * S, "no as_of: a closed window's figure"
    sent_ms = poll // 1_000_000 + 40
    payload = parse(encode_data(_born(guard), guard, 1, historical=False, sent_ms=sent_ms))
    assert payload.timestamp == sent_ms
    assert {m.timestamp for m in payload.metrics} == {poll // 1_000_000}


def _guard_batch(poll_ns: int) -> SampleBatch:
    """A live ``demand_guard`` batch as metrics/guard.py makes it: the poll's time, the
    running block's bounds, ``as_of`` = the poll."""
    info = MetricInfo(GUARD_FAMILY, "15m", (T0, T0 + 900 * S), None, poll_ns)
    names = ("predicted_kw", "limit_kw")
    return SampleBatch(
        "meter",
        metric_group("15m"),
        poll_ns,
        names,
        [25.0, 12.0],
        [Quality.GOOD] * 2,
        [""] * 2,
        attributes=info.attributes(),
    )


def _born(batch: SampleBatch) -> DeviceTable:
    table = DeviceTable(device_id=batch.device, allocator=AliasAllocator())
    table.admit(batch)
    return table


def _change(names: list[str], values: list[float], at: int) -> SampleBatch:
    """An OPC UA change batch: only the tags that changed, each with its own time."""
    n = len(names)
    return SampleBatch(
        "oven", "sub", at, names, values, [Quality.GOOD] * n, [""] * n, timestamps_ns=[at] * n
    )


def test_dbirth_carries_the_newest_value_of_an_opcua_subscription_tag() -> None:
    """Subscription batches name only the tags that changed: the birth's value of each
    tag is its newest, whatever subset named it last
    (tck-id-operational-behavior-data-publish-dbirth-values; review finding, issue 17)."""
    s = 1_000_000_000
    table = DeviceTable.from_device(opcua_device(), AliasAllocator())
    batches = [
        (["a", "b"], [1.0, 10.0]),
        (["a"], [2.0]),
        (["a", "b"], [3.0, 30.0]),
        (["b"], [40.0]),
    ]
    for i, (names, values) in enumerate(batches, start=1):
        seen = _change(names, values, T0 + i * s)
        table.admit(seen)
        table.see(seen)
    table.see(SampleBatch.alive("oven", "sub", T0 + 9 * s))  # a proof of life: no value
    birth = {m.name: m for m in parse(encode_dbirth(table, table.latest_batches(), 0, 0)).metrics}
    assert (birth["a"].double_value, birth["a"].timestamp) == (3.0, (T0 + 3 * s) // 10**6)
    assert (birth["b"].double_value, birth["b"].timestamp) == (40.0, (T0 + 4 * s) // 10**6)


def test_a_name_in_two_groups_is_born_with_its_newest_value() -> None:
    """After a reload moved a tag to another group, both groups' latest batches hold it:
    the birth takes the newer by time, not the order the groups were first seen."""
    table = DeviceTable.from_device(opcua_device(), AliasAllocator())
    newer = _change(["a"], [2.0], T0 + 2_000_000_000)
    older = dataclasses.replace(_change(["a"], [1.0], T0 + 1_000_000_000), group="old")
    for seen in (newer, older):
        table.admit(seen)
        table.see(seen)
    birth = {m.name: m for m in parse(encode_dbirth(table, table.latest_batches(), 0, 0)).metrics}
    assert birth["a"].double_value == 2.0


def test_subscription_subsets_do_not_grow_the_table_without_bound() -> None:
    """Every distinct subset of changed tags used to add an entry to ``latest`` and a
    plan to the plan cache, forever: up to 2**tags of each (review finding)."""
    names = [f"t{i}" for i in range(8)]
    tags = [TagInfo("oven", "sub", n, None, None, 1.0, change_based=True) for n in names]
    table = DeviceTable.from_device(DeviceInfo.of("oven", "opcua", tags), AliasAllocator())
    at = T0
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            at += 1_000_000_000
            seen = _change(list(subset), [float(size)] * size, at)
            table.see(seen)
            table.admit(seen)
            encode_data(table, seen, 0, False)
    assert len(table.latest) == 1
    entry = next(iter(table.latest.values()))
    assert len(entry.older or ()) + len(entry.batch.names) == len(names)
    assert len(table._plans) <= MAX_PLANS
    born = parse(encode_dbirth(table, table.latest_batches(), 0, 0)).metrics
    assert {m.name: m.double_value for m in born} == dict.fromkeys(names, 8.0)


def test_a_tag_name_is_never_also_a_metric_folder() -> None:
    """Tag names may be ``Energy``, ``energy``, ``Events`` (NAME_PATTERN), and a device
    that is also a metrics unit holds its metric windows, events and reports in folders:
    "a defined folder should always remain a folder" (Sparkplug_6, Metric name), and
    Ignition cannot hold a tag and a folder of one name side by side, in any case. They
    all sit in ``Edge Metrics``, a name no tag can have (review finding, issue 17)."""
    table = DeviceTable.from_device(
        DeviceInfo.of(
            "press-1",
            "modbus",
            [
                TagInfo("press-1", "g", n, "float64", None, 1.0)
                for n in ("Energy", "events", "Edge")
            ],
        ),
        AliasAllocator(),
    )
    window = OpenWindow(T0, T0 + 900 * 10**9, "", None)
    table.admit(metric_batch("press-1", "15m", window, "energy", ("energy_kwh",), [2.5], 1.0, 0.9))
    table.admit(event_batch("demand_limit", "press-1", "warning", "start", T0, None, "", (), []))
    document = {"plant": "press-1", "report": "daily", "day": "2026-12-04", "start_s": T0 / 1e9}
    table.admit(report_batch(document))
    names = {name.casefold() for name in table.metrics}
    folders = set()
    for name in names:
        parts = name.split("/")[:-1]
        folders |= {"/".join(parts[: i + 1]) for i in range(len(parts))}
    assert len(folders) > 3
    assert not names & folders, names & folders


def test_a_window_figure_that_opens_null_is_born_double_and_not_born_again() -> None:
    """Found by the plant-engineer trial: a metric window's figure whose first batch is
    uncertain and null was born String (the placeholder) and born again as Double at its
    first value, so every meter and machine had a second DBIRTH a minute after start. A
    window's figures are numbers: born Double, an integer or a float fits it."""

    def window(value: float | int | None) -> SampleBatch:
        batch = _guard_batch(T0 + 60 * S)
        quality = Quality.GOOD if value is not None else Quality.UNCERTAIN
        return dataclasses.replace(
            batch, values=[value, 12.0], qualities=[quality, Quality.GOOD], reasons=["", ""]
        )

    table = DeviceTable(device_id="meter", allocator=AliasAllocator())
    assert table.admit(window(None))  # new names: a birth is due
    [slot] = [s for s in table.metrics.values() if s.name.endswith("predicted_kw")]
    assert slot.datatype is DataType.Double
    assert not table.admit(window(25.5)), "born again at the first value"
    assert not table.admit(window(26)), "born again for an integer"
    message = parse(encode_data(table, window(26), 1, False))
    assert message.metrics[0].double_value == 26.0
    assert slot.datatype is DataType.Double
