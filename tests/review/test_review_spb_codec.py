"""Review of the Sparkplug B codec side (issue 17): each test shows one finding and FAILS on
the merged code. Pure units through the real generated protobuf module: what is encoded is
decoded again and looked at as a host would (Tahu / TCK ``Utils.hasValue`` reading rules).

Rule that matters most: never a wrong value as good (docs/SPARKPLUG.md, "Quality").
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import FIELD, DataType
from edge_agent.sinks.sparkplug.metric_table import AliasAllocator, DeviceTable
from edge_agent.sinks.sparkplug.node import EdgeNode, NodeInfo
from edge_agent.sinks.sparkplug.payloads import (
    CommandError,
    decode_command,
    encode_data,
    encode_dbirth,
)
from edge_agent.sinks.sparkplug.topics import Topics

T0 = 1_795_719_600_000_000_000
S = 1_000_000_000


# ---------------------------------------------------------------------------- helpers


def modbus_tag(name: str, value_type: str, group: str = "g") -> TagInfo:
    return TagInfo("dev", group, name, value_type, None, 1.0)


def opcua_tag(name: str) -> TagInfo:
    """An OPC UA tag: typed by the server, so by its first value here."""
    return TagInfo("dev", "sub", name, None, None, 1.0, change_based=True)


def device(*tags: TagInfo, driver: str = "modbus") -> DeviceInfo:
    return DeviceInfo.of("dev", driver, tags)


def table(*tags: TagInfo) -> DeviceTable:
    return DeviceTable.from_device(device(*tags), AliasAllocator())


def batch(
    names: Sequence[str],
    values: Sequence[Value],
    qualities: Sequence[Quality] | None = None,
    reasons: Sequence[str] | None = None,
    at: int = T0,
    group: str = "g",
    **kw: Any,
) -> SampleBatch:
    n = len(values)
    return SampleBatch(
        "dev",
        group,
        at,
        names,
        list(values),
        list(qualities or [Quality.GOOD] * n),
        list(reasons or [""] * n),
        **kw,
    )


def parse(data: bytes) -> Any:
    return pb.Payload.FromString(data)


def props(metric: Any) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("value"))
        for key, value in zip(metric.properties.keys, metric.properties.values, strict=True)
    }


def edge_node(clock_ns: int) -> EdgeNode:
    return EdgeNode(
        Topics("G", "E"), NodeInfo(1000, {}), lambda name: name, clock_ns=lambda: clock_ns
    )


def kind(topic: str) -> str:
    return topic.split("/")[2]


class Host:
    """What a Sparkplug host knows: per alias, the datatype of the latest DBIRTH."""

    def __init__(self) -> None:
        self.datatypes: dict[int, DataType] = {}

    def read(self, messages: Sequence[tuple[str, bytes]]) -> list[tuple[str, Any]]:
        """Every (kind, decoded payload), checking each DDATA value against the born type."""
        seen = []
        for topic, data in messages:
            payload = parse(data)
            if kind(topic) == "DBIRTH":
                for metric in payload.metrics:
                    self.datatypes[metric.alias] = DataType(metric.datatype)
            elif kind(topic) == "DDATA":
                for metric in payload.metrics:
                    which = metric.WhichOneof("value")
                    if which is not None:
                        born = self.datatypes[metric.alias]
                        assert which == FIELD[born], (
                            f"alias {metric.alias} was born {born.name} but DDATA carries "
                            f"{which}: a host reads {FIELD[born]} and sees a wrong value"
                        )
            seen.append((kind(topic), payload))
        return seen


# ------------------------------------------------ 1. strings protobuf cannot encode


def test_an_opcua_string_with_undecodable_bytes_is_sent_bad_not_raised() -> None:
    """asyncua decodes OPC UA Strings with errors="surrogateescape" (ua_binary._String.unpack),
    so a server string with bytes that are not UTF-8 arrives as a str with lone surrogates.
    ``fits(String, s)`` accepts it and protobuf raises UnicodeEncodeError when it is set:
    encode_data raises, the sink drops the session and the runner re-sends the same batch
    forever (a poison batch that stops the whole Sparkplug sink). It must go out BAD."""
    t = table(opcua_tag("label"), opcua_tag("temp"))
    names = ("label", "temp")
    first = batch(names, ["ok", 20.5])
    t.admit(first)
    encode_data(t, first, 0, False)
    poisoned = batch(names, ["Pumpe \udcc3", 21.0])
    t.admit(poisoned)
    label, temp = parse(encode_data(t, poisoned, 1, False)).metrics
    assert label.is_null
    assert label.WhichOneof("value") is None
    assert props(label)["Quality"] == 0
    assert temp.double_value == 21.0


def test_a_dbirth_with_an_undecodable_string_does_not_raise() -> None:
    """The same value as the latest live one: births() would raise on every new session."""
    t = table(opcua_tag("label"))
    live = batch(("label",), ["Pumpe \udcc3"])
    t.admit(batch(("label",), ["ok"]))
    birth = parse(encode_dbirth(t, [live], 0, T0 // 10**6))
    [label] = birth.metrics
    assert label.is_null
    assert props(label)["Quality"] == 0


# ------------------------------------------- 2. births with a stale value as the current


def test_dbirth_carries_the_newest_value_of_an_opcua_subscription_tag() -> None:
    """Subscription batches name only the tags that changed (drivers/opcua/batches.py), so
    the live tap keeps one batch per names *subset* and ``_current`` lets the dict's first
    insertion order decide, not time: here the DBIRTH says a = 2.0 (Quality 192, GOOD)
    while the tag has been 3.0 since; with a change-based group the host keeps that stale
    value until the tag changes again (tck-id-operational-behavior-data-publish-dbirth-values:
    the value MUST be the current value)."""
    t = table(opcua_tag("a"), opcua_tag("b"))
    for i, (names, values) in enumerate(
        [(["a", "b"], [1.0, 10.0]), (["a"], [2.0]), (["a", "b"], [3.0, 30.0])], start=1
    ):
        seen = batch(names, values, at=T0 + i * S, timestamps_ns=[T0 + i * S] * len(names))
        t.admit(seen)
        t.see(seen)
    birth = {
        m.name: m
        for m in parse(encode_dbirth(t, t.latest_batches(), 0, T0 // 10**6 + 9000)).metrics
    }
    assert birth["a"].double_value == 3.0
    assert birth["a"].timestamp == (T0 + 3 * S) // 10**6


def test_subscription_subsets_do_not_grow_the_table_without_bound() -> None:
    """Every distinct subset of changed tags adds an entry to ``latest`` and a Plan to the
    plan cache, forever: N tags on a subscription give up to 2**N of each (here 8 tags,
    255 subsets). On a gateway that runs for months this is a leak, and every DBIRTH walks
    all of ``latest``."""
    names = [f"t{i}" for i in range(8)]
    t = table(*(opcua_tag(n) for n in names))
    at = T0
    for size in range(1, len(names) + 1):
        for subset in combinations(names, size):
            at += S
            seen = batch(list(subset), [1.5] * size, at=at, timestamps_ns=[at] * size)
            t.see(seen)
            t.admit(seen)
            encode_data(t, seen, 0, False)
    assert len(t.latest) <= len(t.metrics)
    assert len(t._plans) <= 64  # the OPC UA assembler itself caps its name cache at 64


# -------------------------------------------------- 3. reloads and the births they need


def test_a_reload_that_changes_a_datatype_never_lets_ddata_precede_its_dbirth() -> None:
    """describe() swaps in the new table (Float) and marks the device for reconcile(); a
    send() that takes the lock before the session task does runs deliver() first. admit()
    resets the fresh table's pending-birth flag (``self._due = False``), so deliver()
    sends float_value for the alias the host knows as Int16: Tahu/TCK read int_value
    for Int16 and get 0 or nothing (tck-id-operational-behavior-data-publish-dbirth)."""
    node = edge_node(T0 + 100 * S)
    host = Host()
    node.describe([device(modbus_tag("t", "int16"))])
    messages = node.births(0)
    first = batch(("t",), [5], at=T0 + 101 * S)
    node.see_live(first)
    messages += node.deliver(first)
    assert node.describe([device(modbus_tag("t", "float32"))])
    after = batch(("t",), [5.5], at=T0 + 102 * S)
    node.see_live(after)
    messages += node.deliver(after)  # before reconcile(): the race in sink.send()
    host.read(messages)


def test_a_reload_that_removes_a_tag_rebirths_the_device_without_it() -> None:
    """_same_metrics() only checks that every new tag is unchanged, so a reload that only
    removes a tag changes nothing: no DBIRTH (the contract: "a reload that changes a
    device's tags does the same"), and every later DBIRTH still carries the removed tag
    with its last value and Quality 192, a stale value as good, for the life of the process."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(modbus_tag("a", "int16"), modbus_tag("temp", "float64"))])
    node.births(0)
    old = batch(("a", "temp"), [1, 20.5], at=T0 + 101 * S)
    node.see_live(old)
    node.deliver(old)
    changed = node.describe([device(modbus_tag("a", "int16"))])
    new = batch(("a",), [2], at=T0 + 102 * S)
    node.see_live(new)
    node.deliver(new)
    rebirth = [parse(p) for t, p in node.births(1) if kind(t) == "DBIRTH"]
    assert changed
    assert [m.name for m in rebirth[0].metrics] == ["a"]


def test_the_first_dbirth_of_an_opcua_device_carries_its_live_values() -> None:
    """births() at the start of a session uses the live values, but the datatypes of OPC UA
    tags are learned only in deliver(): a session born before the first delivery (start-up,
    outbox behind) gives a DBIRTH where every value is is_null, Quality 0 BAD, "value 21.5
    does not fit the metric's datatype String", followed by a second DBIRTH at the first
    DDATA. Good values shown bad, and one rebirth more per new process."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(opcua_tag("temp"), driver="opcua")])
    live = batch(("temp",), [21.5], at=T0 + 99 * S, group="sub")
    node.see_live(live)
    [dbirth] = [parse(p) for t, p in node.births(0) if kind(t) == "DBIRTH"]
    [temp] = dbirth.metrics
    assert temp.datatype == DataType.Double
    assert temp.double_value == 21.5
    assert props(temp).get("Quality") == 192


# --------------------------------------------- 4. value-level BAD taken for a dead device


def test_one_bad_sensor_on_an_opcua_subscription_does_not_kill_the_device() -> None:
    """A subscription batch names only what changed; when the one tag that changed went
    BadSensorFailure, is_connection_loss() sees "every sample bad, not a value reason" and
    sends DDEATH for the whole device: the host marks every other tag stale although the
    server answers, until some other tag changes (hours, on a change-based group); further
    such batches are not even sent. The BAD value itself must go out as DDATA."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(opcua_tag("a"), opcua_tag("b"), driver="opcua")])
    node.births(0)
    good = batch(["a", "b"], [1.0, 2.0], at=T0 + 101 * S, group="sub")
    node.see_live(good)
    node.deliver(good)
    bad = batch(["a"], [None], [Quality.BAD], ["BadSensorFailure"], at=T0 + 102 * S, group="sub")
    node.see_live(bad)
    messages = node.deliver(bad)
    assert [kind(t) for t, _ in messages] == ["DDATA"]
    [metric] = parse(messages[0][1]).metrics
    assert metric.is_null
    assert props(metric)["Quality"] == 0


def test_a_group_whose_floats_are_all_nan_does_not_kill_the_device() -> None:
    """The Modbus driver's reason for a NaN/inf float is "nan" (drivers/modbus/codec.py
    REASON_NAN), which _VALUE_REASONS does not list: a group of meter values that all read
    NaN (an unused phase, a meter at rest) is reported as the device being unreachable."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(modbus_tag("l3_v", "float32"), modbus_tag("l3_a", "float32"))])
    node.births(0)
    nan = batch(("l3_v", "l3_a"), [None, None], [Quality.BAD] * 2, ["nan", "nan"], at=T0 + 101 * S)
    node.see_live(nan)
    assert [kind(t) for t, _ in node.deliver(nan)] == ["DDATA"]


def test_one_timing_out_group_does_not_make_the_device_flap() -> None:
    """A device with two poll groups, one of which times out (a large block read with a
    short response timeout) while the other answers: each timeout batch sends DDEATH,
    each good batch DBIRTH, every poll cycle: a rebirth storm at the poll rate (the
    contract's per-batch rule; the device is plainly reachable)."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(modbus_tag("a", "int16", "fast"), modbus_tag("b", "int16", "block"))])
    node.births(0)
    kinds: list[str] = []
    for cycle in range(5):
        at = T0 + (101 + cycle) * S
        good = batch(("a",), [cycle], at=at, group="fast")
        lost = batch(("b",), [None], [Quality.BAD], ["timeout"], at=at, group="block")
        for seen in (good, lost):
            node.see_live(seen)
            kinds += [kind(t) for t, _ in node.deliver(seen)]
    assert kinds.count("DBIRTH") + kinds.count("DDEATH") <= 1, kinds


# ------------------------------------------------------------ 5. smaller codec findings


def test_decode_command_never_returns_bytes_for_names_or_values() -> None:
    """proto2 strings are not UTF-8 checked by upb: a name or string_value that is not UTF-8
    comes back as ``bytes`` from decode_command, outside its declared ``str | None`` /
    ``Value`` types (commands.py logs it; the safe-writes policy of issue 18 would get a
    bytes value to write). It should be a CommandError (or the metric left out)."""
    name = b"\xff\xfeRebirth"
    metric = b"\x0a" + bytes([len(name)]) + name + b"\x7a\x01\xff"  # name, string_value
    payload = b"\x12" + bytes([len(metric)]) + metric
    try:
        commands = decode_command(payload)
    except CommandError:
        return
    for command in commands:
        assert command.name is None or isinstance(command.name, str)
        assert not isinstance(command.value, bytes)


def test_a_float32_metric_never_turns_a_finite_value_into_infinity() -> None:
    """fits(Float, x) takes any float (datatypes.fits: "the value was a float32 to begin
    with"); a value beyond float32's range is set into float_value and read back as inf,
    GOOD. Latent today (the drivers hand over float32 values for float32 tags), but the
    codec is the last line of "never a wrong value as good"."""
    t = table(modbus_tag("flow", "float32"))
    big = batch(("flow",), [1e39])
    t.admit(big)
    [metric] = parse(encode_data(t, big, 0, False)).metrics
    assert metric.is_null, metric.float_value
    assert props(metric)["Quality"] == 0


def test_a_tag_name_is_never_also_a_metric_folder() -> None:
    """Tag names may be ``Energy``, ``Events``, ``OEE`` (NAME_PATTERN), and a device that is
    also a metric unit then has a metric ``Energy`` beside the folder ``Energy/15m/...``:
    "a defined folder should always remain a folder" (Sparkplug_6, Metric name); Ignition
    cannot hold a tag and a folder of one name side by side."""
    t = table(modbus_tag("Energy", "float64"))
    window = OpenWindow(T0, T0 + 900 * S, "", None)
    t.admit(metric_batch("dev", "15m", window, "energy", ("energy_kwh",), [2.5], 1.0, 0.9))
    names = set(t.metrics)
    folders = {name.rsplit("/", 1)[0] for name in names if "/" in name}
    folders |= {f.split("/", 1)[0] for f in folders}
    assert not names & folders, names & folders
