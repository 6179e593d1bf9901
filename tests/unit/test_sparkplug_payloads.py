"""Sparkplug payloads: births, deaths, DDATA and commands, read back through the generated
module. The quality rules are the core: a BAD sample never goes out with a value, an
UNCERTAIN one never without Quality 0 (docs/SPARKPLUG.md, "Quality")."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.metrics.output import metric_batch
from edge_agent.metrics.reports import report_batch
from edge_agent.metrics.tracks import OpenWindow
from edge_agent.model import Quality, SampleBatch, Value
from edge_agent.sinks.sparkplug import ddata
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import DataType, from_wire_int
from edge_agent.sinks.sparkplug.metric_table import AliasAllocator, DeviceTable
from edge_agent.sinks.sparkplug.payloads import (
    BD_SEQ,
    REBIRTH,
    SCAN_RATE,
    Command,
    CommandError,
    decode_command,
    encode_data,
    encode_dbirth,
    encode_ddeath,
    encode_nbirth,
    encode_ndeath,
)

T0 = 1_795_719_600_000_000_000
T0_MS = T0 // 1_000_000
NAMES = ("power_kw", "running", "temp", "count", "label")


def device() -> DeviceInfo:
    tags = [
        TagInfo("press", "fast", "power_kw", "uint32", None, 1.0, scale=0.1, unit="kW"),
        TagInfo("press", "fast", "running", "bool", None, 1.0, description="motor on"),
        TagInfo("press", "fast", "temp", "int16", None, 1.0),
        TagInfo("press", "fast", "count", "int64", None, 1.0),
        TagInfo("press", "fast", "label", "string", None, 1.0),
    ]
    return DeviceInfo.of("press", "modbus", tags)


def table() -> DeviceTable:
    return DeviceTable.from_device(device(), AliasAllocator())


def good(values: list[Value], at: int = T0, **kw: Any) -> SampleBatch:
    n = len(values)
    return SampleBatch("press", "fast", at, NAMES, values, [Quality.GOOD] * n, [""] * n, **kw)


GOOD_VALUES: list[Value] = [12.1, True, -4, -(2**40), "Ölpumpe"]


def parse(data: bytes) -> Any:
    return pb.Payload.FromString(data)


def props(metric: Any) -> dict[str, Any]:
    out = {}
    for key, value in zip(metric.properties.keys, metric.properties.values, strict=True):
        out[key] = (value.type, getattr(value, value.WhichOneof("value")))
    return out


def decoded(metric: Any, datatype: DataType) -> Value:
    which = metric.WhichOneof("value")
    raw = getattr(metric, which)
    return from_wire_int(datatype, raw) if which in ("int_value", "long_value") else raw


def test_nbirth() -> None:
    allocator = AliasAllocator()
    message = parse(encode_nbirth(7, 0, T0_MS, allocator, 500, {"version": "0.1", "site": "A"}))
    assert message.seq == 0
    assert message.timestamp == T0_MS
    by_name = {m.name: m for m in message.metrics}
    assert list(by_name) == [BD_SEQ, REBIRTH, SCAN_RATE, "Properties/version", "Properties/site"]
    assert by_name[BD_SEQ].datatype == DataType.Int64
    assert by_name[BD_SEQ].long_value == 7
    rebirth = by_name[REBIRTH]  # tck-id-payloads-nbirth-rebirth-req
    assert rebirth.datatype == DataType.Boolean
    assert rebirth.HasField("boolean_value")
    assert rebirth.boolean_value is False
    assert by_name[SCAN_RATE].long_value == 500
    assert all(m.timestamp == T0_MS for m in message.metrics)
    # tck-id-operational-behavior-data-commands-rebirth-name-aliases: Rebirth has no alias.
    assert not rebirth.HasField("alias")
    others = [m for m in message.metrics if m.name != REBIRTH]
    assert all(m.HasField("alias") for m in others)
    assert len({m.alias for m in others}) == 4


def test_ndeath_has_the_bdseq_and_no_seq() -> None:
    """tck-id-payloads-ndeath-seq, tck-id-payloads-ndeath-bdseq."""
    message = parse(encode_ndeath(255, T0_MS))
    assert not message.HasField("seq")
    [metric] = message.metrics
    assert (metric.name, metric.datatype, metric.long_value) == (BD_SEQ, DataType.Int64, 255)


def test_ddeath() -> None:
    message = parse(encode_ddeath(9, T0_MS))
    assert message.seq == 9
    assert message.timestamp == T0_MS
    assert not message.metrics


def test_dbirth_carries_every_metric_with_its_current_value() -> None:
    t = table()
    message = parse(encode_dbirth(t, [good(GOOD_VALUES)], 1, T0_MS + 5))
    assert message.seq == 1
    by_name = {m.name: m for m in message.metrics}
    assert list(by_name) == list(NAMES)
    for metric, slot, value in zip(message.metrics, t.metrics.values(), GOOD_VALUES, strict=True):
        assert metric.alias == slot.alias
        assert metric.datatype == slot.datatype
        assert metric.timestamp == T0_MS
        assert decoded(metric, slot.datatype) == value
        assert props(metric)["Quality"] == (DataType.Int32, 192)
    assert props(by_name["power_kw"])["engUnit"] == (DataType.String, "kW")
    assert props(by_name["running"])["documentation"] == (DataType.String, "motor on")


def test_dbirth_without_values_says_null_and_bad_and_sorts_by_time() -> None:
    """tck-id-operational-behavior-data-publish-dbirth-values and -order."""
    t = table()
    t.admit(SampleBatch("press", "slow", T0 - 10**9, ("other",), [1.5], [Quality.GOOD], [""]))
    latest = [
        good(GOOD_VALUES),
        SampleBatch("press", "slow", T0 - 10**9, ("other",), [1.5], [Quality.GOOD], [""]),
    ]
    message = parse(encode_dbirth(t, latest, 1, T0_MS + 5))
    assert [m.name for m in message.metrics] == ["other", *NAMES]
    assert [m.timestamp for m in message.metrics] == sorted(m.timestamp for m in message.metrics)
    empty = parse(encode_dbirth(table(), [], 1, T0_MS))
    for metric in empty.metrics:
        assert metric.is_null
        assert metric.WhichOneof("value") is None
        assert props(metric)["Quality"] == (DataType.Int32, 0)


def test_ddata_has_aliases_only() -> None:
    """tck-id-payloads-alias-data-cmd-requirement, -name-birth-data-requirement,
    -metric-datatype-not-req."""
    t = table()
    birth = {m.name: m.alias for m in parse(encode_dbirth(t, [], 0, T0_MS)).metrics}
    message = parse(encode_data(t, good(GOOD_VALUES), 2, historical=False, sent_ms=T0_MS + 7))
    assert message.seq == 2
    assert message.timestamp == T0_MS + 7  # when published; the metrics: when read
    assert [m.alias for m in message.metrics] == [birth[n] for n in NAMES]
    for metric, slot, value in zip(message.metrics, t.metrics.values(), GOOD_VALUES, strict=True):
        assert not metric.HasField("name")
        assert not metric.HasField("datatype")
        assert metric.timestamp == T0_MS
        assert decoded(metric, slot.datatype) == value
        assert not metric.HasField("is_historical")


def test_the_reused_message_and_the_general_path_agree() -> None:
    t = table()
    t.not_good.clear()
    for seq, values in enumerate([GOOD_VALUES, [0.0, False, 32767, 2**63 - 1, ""]]):
        batch = good(values, at=T0 + seq * 10**9)
        for historical in (True, False, True):
            fast = ddata._fast(t, t.plan(batch), batch, seq, T0_MS, T0_MS, historical)
            assert fast is not None
            general = ddata._general(t, t.plan(batch), batch, seq, T0_MS, T0_MS, historical)
            assert parse(fast) == parse(general)


def test_historical_flags_every_metric() -> None:
    t = table()
    for historical in (True, False):
        message = parse(encode_data(t, good(GOOD_VALUES), 3, historical=historical))
        assert all(m.is_historical == historical for m in message.metrics)


QUALITIES = st.sampled_from(list(Quality))
VALUES: dict[str, Any] = {
    "power_kw": st.floats(allow_nan=True, allow_infinity=True) | st.none(),
    "running": st.booleans() | st.none(),
    "temp": st.integers(-(2**15), 2**15 - 1) | st.none() | st.floats(),
    "count": st.integers(-(2**63), 2**63 - 1) | st.none(),
    # Lone surrogates: what asyncua makes of bytes that are not UTF-8 (surrogateescape).
    "label": st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr)) | st.none(),
}
REASONS = st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(*(st.tuples(VALUES[n], QUALITIES, REASONS) for n in NAMES)),
        min_size=1,
        max_size=6,
    ),
    historical=st.booleans(),
)
def test_never_a_wrong_value_as_good(rows: list[Any], historical: bool) -> None:
    t = table()
    datatypes = [slot.datatype for slot in t.metrics.values()]
    last_sent: dict[int, int] = {}  # alias -> Quality the host remembers (births: 192)
    encode_dbirth(t, [good(GOOD_VALUES)], 0, T0_MS)
    last_sent = {slot.alias: 192 for slot in t.metrics.values()}
    for seq, row in enumerate(rows, start=1):
        values = [v for v, _, _ in row]
        qualities = [q for _, q, _ in row]
        reasons = [r for _, _, r in row]
        batch = SampleBatch("press", "fast", T0, NAMES, values, qualities, reasons)
        message = parse(encode_data(t, batch, seq, historical))
        assert len(message.metrics) == len(NAMES)
        for metric, value, quality, datatype in zip(
            message.metrics, values, qualities, datatypes, strict=True
        ):
            p = props(metric)
            has_value = metric.WhichOneof("value") is not None
            assert has_value != metric.is_null
            if "Quality" in p:
                assert p["Quality"][0] == DataType.Int32
                assert p["Quality"][1] in (0, 192)
            sent_quality = p["Quality"][1] if "Quality" in p else 192
            if quality is Quality.BAD:
                assert not has_value
                assert sent_quality == 0
                assert p["Reason"][1]
            elif quality is Quality.UNCERTAIN:
                assert sent_quality == 0
                assert p["Reason"][1].startswith("uncertain: ")
            if has_value:
                assert decoded(metric, datatype) == value or _float32(value, metric)
                if isinstance(value, float):
                    assert math.isfinite(value)
                if isinstance(value, str):
                    assert not _surrogates(value)
            if sent_quality == 192 and quality is Quality.GOOD:
                assert has_value
            if not historical:
                if sent_quality == 192 and last_sent[metric.alias] != 192:
                    assert "Quality" in p  # the return to GOOD is said once
                if "Quality" in p and p["Quality"][1] == 192:
                    assert last_sent[metric.alias] != 192  # ... and only then
                last_sent[metric.alias] = sent_quality


def _surrogates(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def _float32(value: Value, metric: Any) -> bool:
    return metric.WhichOneof("value") == "float_value" and metric.float_value == value


def test_a_return_to_good_carries_192_once() -> None:
    t = table()
    encode_dbirth(t, [good(GOOD_VALUES)], 0, T0_MS)
    bad = SampleBatch.all_bad("press", "fast", T0, NAMES, "timeout")
    for metric in parse(encode_data(t, bad, 1, False)).metrics:
        assert props(metric)["Quality"] == (DataType.Int32, 0)
        assert props(metric)["Reason"] == (DataType.String, "timeout")
    back = parse(encode_data(t, good(GOOD_VALUES), 2, False))
    assert all(props(m)["Quality"] == (DataType.Int32, 192) for m in back.metrics)
    again = parse(encode_data(t, good(GOOD_VALUES), 3, False))
    assert all("Quality" not in props(m) for m in again.metrics)


def test_a_value_that_does_not_fit_goes_out_bad() -> None:
    t = table()
    values: list[Value] = [math.inf, True, 70000, 1, "x"]  # not finite; too wide for Int16
    message = parse(encode_data(t, good(values), 1, False))
    power, _, temp, _, _ = message.metrics
    for metric in (power, temp):
        assert metric.is_null
        assert metric.WhichOneof("value") is None
        assert props(metric)["Quality"] == (DataType.Int32, 0)
    assert props(power)["Reason"][1] == "not finite (inf)"
    assert "does not fit" in props(temp)["Reason"][1]


def test_per_value_timestamps_are_sent_in_time_order() -> None:
    stamps = [T0 + 3 * 10**6, T0 + 1 * 10**6, T0 + 2 * 10**6, T0, T0 + 4 * 10**6]
    message = parse(encode_data(table(), good(GOOD_VALUES, timestamps_ns=stamps), 1, False))
    assert [m.timestamp for m in message.metrics] == sorted(s // 10**6 for s in stamps)


def test_a_metric_window_carries_its_window() -> None:
    start = T0
    window = OpenWindow(start, start + 900 * 10**9, "", None)
    energy = metric_batch("press", "15m", window, "energy", ("energy_kwh",), [2.5], 1.0, 0.9)
    t = table()
    assert t.admit(energy)
    birth = {m.name: m for m in parse(encode_dbirth(t, [energy], 1, T0_MS)).metrics}
    metric = birth["Edge Metrics/Energy/15m/energy_kwh"]
    assert metric.timestamp == (start + 900 * 10**9) // 10**6  # the window end
    assert props(metric)["window"] == (DataType.String, "15m")
    assert props(metric)["window_start"] == (DataType.DateTime, start // 10**6)
    [data] = parse(encode_data(t, energy, 2, False)).metrics
    assert props(data)["window_end"] == (DataType.DateTime, (start + 900 * 10**9) // 10**6)
    assert data.double_value == 2.5
    assert not data.HasField("name")


def test_a_window_or_report_ddata_is_not_stamped_before_its_metrics() -> None:
    """A metric window's values are stamped at the window end, not its start (15 minutes
    before its values were captured); a daily report's at the end of the day (review
    finding, issue 17). The payload is stamped when it is published, never before its
    metrics (tck-id-payloads-ddata-timestamp)."""
    window = OpenWindow(T0, T0 + 900 * 10**9, "", None)
    energy = metric_batch("press", "15m", window, "energy", ("energy_kwh",), [2.5], 1.0, 0.9)
    document = {"plant": "press", "report": "daily", "day": "2026-12-04"}
    report = report_batch({**document, "start_s": T0 / 1e9, "end_s": T0 / 1e9 + 86_400})
    t = table()
    for batch, end_ms in ((energy, T0_MS + 900_000), (report, T0_MS + 86_400_000)):
        t.admit(batch)
        before_ms = time.time_ns() // 1_000_000
        message = parse(encode_data(t, batch, 0, False))
        assert before_ms <= message.timestamp <= time.time_ns() // 1_000_000
        assert all(m.timestamp == end_ms for m in message.metrics)
        [born] = [
            m for m in parse(encode_dbirth(t, [batch], 1, T0_MS)).metrics if m.is_null is False
        ]
        assert born.timestamp == end_ms


def test_decode_command_reads_an_ncmd_rebirth() -> None:
    payload = pb.Payload(timestamp=T0_MS)
    payload.metrics.add(name=REBIRTH, datatype=DataType.Boolean, boolean_value=True)
    payload.metrics.add(alias=12, datatype=DataType.Int16, int_value=0xFFFF_FFFE)
    payload.metrics.add(alias=13, is_null=True)
    assert decode_command(payload.SerializeToString()) == [
        Command(REBIRTH, None, True, DataType.Boolean),
        Command(None, 12, -2, DataType.Int16),
        Command(None, 13, None, None),
    ]


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x12\x05ab", b"\x0a"])
def test_decode_command_refuses_garbage_clearly(garbage: bytes) -> None:
    with pytest.raises(CommandError, match="not a Sparkplug B payload"):
        decode_command(garbage)


@given(st.binary(max_size=64))
def test_decode_command_never_crashes(data: bytes) -> None:
    try:
        commands = decode_command(data)
    except CommandError:
        return
    assert all(isinstance(c, Command) for c in commands)


def _opcua_table(*names: str) -> DeviceTable:
    tags = [TagInfo("press", "sub", n, None, None, 1.0, change_based=True) for n in names]
    return DeviceTable.from_device(DeviceInfo.of("press", "opcua", tags), AliasAllocator())


def _batch(names: tuple[str, ...], values: list[Value]) -> SampleBatch:
    n = len(values)
    return SampleBatch("press", "sub", T0, names, values, [Quality.GOOD] * n, [""] * n)


def test_an_opcua_string_with_undecodable_bytes_is_sent_bad_not_raised() -> None:
    """asyncua decodes OPC UA Strings with errors="surrogateescape", so bytes that are not
    UTF-8 arrive as lone surrogates, which protobuf refuses (UnicodeEncodeError): the
    batch would be re-sent forever, a poison batch stopping the sink. It goes out BAD,
    on the reused-message path and the general one alike (review finding, issue 17)."""
    t = _opcua_table("label", "temp")
    names = ("label", "temp")
    first = _batch(names, ["ok", 20.5])
    t.admit(first)
    encode_data(t, first, 0, False)
    for seq in (1, 2):  # the second: with the return-to-GOOD memory of the first
        poisoned = _batch(names, ["Pumpe \udcc3", 21.0])
        assert not t.admit(poisoned)
        label, temp = parse(encode_data(t, poisoned, seq, False)).metrics
        assert label.is_null
        assert label.WhichOneof("value") is None
        assert props(label)["Quality"] == (DataType.Int32, 0)
        assert "UTF-8" in props(label)["Reason"][1]
        assert temp.double_value == 21.0
    again = parse(encode_data(t, first, 3, False)).metrics[0]
    assert again.string_value == "ok"
    assert props(again)["Quality"] == (DataType.Int32, 192)


def test_a_dbirth_with_an_undecodable_string_does_not_raise() -> None:
    """The same value as the latest live one: births would raise at every new session."""
    t = _opcua_table("label")
    t.admit(_batch(("label",), ["ok"]))
    [label] = parse(encode_dbirth(t, [_batch(("label",), ["Pumpe \udcc3"])], 0, T0_MS)).metrics
    assert label.is_null
    assert props(label)["Quality"] == (DataType.Int32, 0)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats()
        | st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=4),
        min_size=4,
        max_size=4,
    ),
    stamps=st.none() | st.lists(st.integers(-(2**70), 2**70), min_size=4, max_size=4),
    reason=st.text(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=4),
    learn=st.booleans(),
)
def test_no_value_reason_or_time_makes_an_encoder_raise(
    values: list[Value], stamps: list[int] | None, reason: str, learn: bool
) -> None:
    """Whatever a driver hands over, each encoder returns bytes: what protobuf cannot
    carry goes out BAD (a value) or escaped (a reason), a time before 1970 or beyond
    uint64 as the batch's time."""
    tags = [
        TagInfo("press", "fast", n, vt, None, 1.0)
        for n, vt in (("f", "float32"), ("i", "int16"), ("u", "uint64"), ("s", "string"))
    ]
    t = DeviceTable.from_device(DeviceInfo.of("press", "modbus", tags), AliasAllocator())
    names = ("f", "i", "u", "s")
    n = len(names)
    for quality in Quality:
        batch = SampleBatch(
            "press", "fast", T0, names, values, [quality] * n, [reason] * n, timestamps_ns=stamps
        )
        if learn:
            t.admit(batch)
        for metric in parse(encode_data(t, batch, 1, False)).metrics:
            assert (metric.WhichOneof("value") is None) == metric.is_null
            if metric.HasField("float_value"):
                assert math.isfinite(metric.float_value)
        parse(encode_dbirth(t, [batch], 2, T0_MS))


def test_a_float32_metric_never_turns_a_finite_value_into_infinity() -> None:
    """A double beyond float32's range set into float_value reads back as inf, GOOD: it
    is sent BAD, and the Float datatype is kept (a float32 tag's value is wrong, not its
    type), on both paths (review finding, issue 17)."""
    tag = TagInfo("press", "fast", "flow", "float32", None, 1.0)
    t = DeviceTable.from_device(DeviceInfo.of("press", "modbus", [tag]), AliasAllocator())
    for values in ([1e39], [-1e39]):
        big = SampleBatch("press", "fast", T0, ("flow",), values, [Quality.GOOD], [""])
        assert not t.admit(big)
        assert t.metrics["flow"].datatype == DataType.Float
        [metric] = parse(encode_data(t, big, 0, False)).metrics
        assert metric.is_null, metric.float_value
        assert props(metric)["Quality"] == (DataType.Int32, 0)
        assert "float32" in props(metric)["Reason"][1]


def test_decode_command_never_returns_bytes_for_names_or_values() -> None:
    """proto2 strings are not UTF-8 checked by upb: a name or string_value that is not
    UTF-8 comes back as bytes; decode_command refuses such a payload (review finding)."""
    name = b"\xff\xfeRebirth"
    metric = b"\x0a" + bytes([len(name)]) + name + b"\x7a\x01\xff"  # name, string_value
    with pytest.raises(CommandError, match="not UTF-8"):
        decode_command(b"\x12" + bytes([len(metric)]) + metric)
    value_only = b"\x0a\x01x\x7a\x01\xff"
    with pytest.raises(CommandError, match="not UTF-8"):
        decode_command(b"\x12" + bytes([len(value_only)]) + value_only)


@pytest.mark.parametrize(
    ("datatype", "expected"),
    [(None, True), (DataType.Boolean, True), (DataType.String, None), (DataType.Int32, None)],
)
def test_a_rebirth_is_boolean_true_only(datatype: DataType | None, expected: Value) -> None:
    """tck-id-operational-behavior-data-commands-ncmd-rebirth-value: Boolean true. A value
    not in the field of its declared datatype is no value (review finding: a String
    Rebirth with boolean_value true was taken for a rebirth request)."""
    payload = pb.Payload(timestamp=T0_MS)
    metric = payload.metrics.add(name=REBIRTH, boolean_value=True)
    if datatype is not None:
        metric.datatype = datatype
    [command] = decode_command(payload.SerializeToString())
    assert command.value is expected
