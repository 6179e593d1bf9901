"""The edge node's decisions without I/O (edge_agent/sinks/sparkplug/node.py, reach.py):
reloads and the births they need, devices dead and alive again, removed devices, the
historical flag, and batches the encoder fails on. Decoded with the generated protobuf
module and read as a host would: per alias, the datatype of the device's latest DBIRTH
(tck-id-operational-behavior-data-publish-dbirth).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus.codec import REASON_NAN
from drivers.modbus.driver import UNREACHABLE_CODES
from drivers.opcua.groups import REASON_NOT_MONITORED, REASON_WATCHDOG
from drivers.opcua.session import REASON_UNTRUSTED
from edge_agent.config.catalog import DeviceInfo, TagInfo
from edge_agent.metrics.contract import MetricInfo, metric_group
from edge_agent.metrics.reports import report_batch
from edge_agent.model import (
    REASON_DECODE,
    REASON_DISCONNECTED,
    REASON_INTERNAL,
    REASON_INVALID_RESPONSE,
    REASON_SENTINEL,
    REASON_TIMEOUT,
    Quality,
    SampleBatch,
    Value,
    exception_reason,
)
from edge_agent.sinks.sparkplug import node as node_module
from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from edge_agent.sinks.sparkplug.datatypes import FIELD, DataType
from edge_agent.sinks.sparkplug.node import EdgeNode, Message, NodeInfo
from edge_agent.sinks.sparkplug.reach import CONNECTION_REASONS, unreachable
from edge_agent.sinks.sparkplug.topics import Topics

T0 = 1_795_719_600_000_000_000
S = 1_000_000_000
HOUR = 3600 * S


# ---------------------------------------------------------------------------- helpers


def modbus_tag(name: str, value_type: str, group: str = "g", device: str = "dev") -> TagInfo:
    return TagInfo(device, group, name, value_type, None, 1.0)


def opcua_tag(name: str) -> TagInfo:
    """An OPC UA tag: typed by the server, so by its first value here."""
    return TagInfo("dev", "sub", name, None, None, 1.0, change_based=True)


def device(*tags: TagInfo, driver: str = "modbus", name: str = "dev") -> DeviceInfo:
    return DeviceInfo.of(name, driver, tags)


def batch(
    names: Sequence[str],
    values: Sequence[Value],
    qualities: Sequence[Quality] | None = None,
    reasons: Sequence[str] | None = None,
    at: int = T0,
    group: str = "g",
    device: str = "dev",
    **kw: Any,
) -> SampleBatch:
    n = len(values)
    return SampleBatch(
        device,
        group,
        at,
        tuple(names),
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


def edge_node(clock_ns: int | list[int]) -> EdgeNode:
    now = clock_ns if isinstance(clock_ns, list) else [clock_ns]
    return EdgeNode(
        Topics("G", "E"), NodeInfo(1000, {}), lambda name: name, clock_ns=lambda: now[0]
    )


def kind(topic: str) -> str:
    return topic.split("/")[2]


def kinds(messages: Sequence[Message]) -> list[str]:
    return [kind(topic) for topic, _ in messages]


class Host:
    """What a Sparkplug host knows: per alias, the datatype of the latest DBIRTH."""

    def __init__(self) -> None:
        self.datatypes: dict[int, DataType] = {}
        self.born: dict[str, set[int]] = {}

    def read(self, messages: Sequence[Message]) -> list[tuple[str, Any]]:
        """Every (kind, decoded payload), checking each DDATA against its device's birth."""
        seen = []
        for topic, data in messages:
            payload = parse(data)
            device_id = topic.split("/")[-1]
            if kind(topic) == "DBIRTH":
                self.born[device_id] = {m.alias for m in payload.metrics}
                for metric in payload.metrics:
                    self.datatypes[metric.alias] = DataType(metric.datatype)
            elif kind(topic) == "DDEATH":
                self.born.pop(device_id, None)
            elif kind(topic) == "DDATA":
                for metric in payload.metrics:
                    assert metric.alias in self.born.get(device_id, set()), (
                        f"DDATA of {device_id} uses alias {metric.alias}, not born"
                    )
                    which = metric.WhichOneof("value")
                    if which is not None:
                        born = self.datatypes[metric.alias]
                        assert which == FIELD[born], (
                            f"alias {metric.alias} was born {born.name} but DDATA carries "
                            f"{which}: a host reads {FIELD[born]} and sees a wrong value"
                        )
            seen.append((kind(topic), payload))
        return seen


# ------------------------------------------------------- reloads and the births they need


def test_a_reload_that_changes_a_datatype_never_lets_ddata_precede_its_dbirth() -> None:
    """describe() records the change; the next deliver() sends the DBIRTH that declares the
    new datatype before the DDATA that uses it, whoever (send or the session task) comes
    first (tck-id-operational-behavior-data-publish-dbirth)."""
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
    assert kinds(messages) == ["NBIRTH", "DBIRTH", "DDATA", "DBIRTH", "DDATA"]
    host.read(messages)
    assert node.reconcile() == []  # the DBIRTH went out once


def test_a_reload_that_adds_a_tag_never_lets_ddata_use_an_alias_before_its_dbirth() -> None:
    node = edge_node(T0 + 100 * S)
    host = Host()
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    node.describe([device(modbus_tag("a", "int16"), modbus_tag("b", "int16"))])
    messages += node.deliver(batch(("a", "b"), [1, 2], at=T0 + 101 * S))
    host.read(messages)
    assert kinds(messages)[-2:] == ["DBIRTH", "DDATA"]


def test_a_reload_that_removes_a_tag_rebirths_the_device_without_it() -> None:
    """A reload that only removes a tag is a change: a DBIRTH without it, and no later
    birth carries its last value as a current good one."""
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


def test_a_reload_that_changes_nothing_sends_nothing() -> None:
    node = edge_node(T0)
    node.describe([device(modbus_tag("a", "int16"), opcua_tag("b"))])
    node.births(0)
    node.deliver(batch(("b",), [1.5], group="sub"))  # b's datatype learned from its value
    assert not node.describe([device(modbus_tag("a", "int16"), opcua_tag("b"))])
    assert node.reconcile() == []


def test_a_rebirth_together_with_a_reload_keeps_the_removed_devices_ddeath() -> None:
    """An NCMD rebirth answered after a reload removed a device, before the session task
    reconciled: the removed device, born in this session, gets its DDEATH (before the
    new NBIRTH: its seq belongs to the birth it ends), and no DBIRTH."""
    node = edge_node(T0)
    node.describe([device(modbus_tag("a", "int16")), device(modbus_tag("x", "int16"), name="x")])
    node.births(0)
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    assert [(kind(t), t.split("/")[-1]) for t, _ in messages] == [
        ("DDEATH", "x"),
        ("NBIRTH", "E"),
        ("DBIRTH", "dev"),
    ]


def test_a_new_session_sends_no_ddeath_for_a_device_removed_in_the_last_one() -> None:
    """The NDEATH (or the Will) of the last session ended its devices already."""
    node = edge_node(T0)
    node.describe([device(modbus_tag("a", "int16")), device(modbus_tag("x", "int16"), name="x")])
    node.births(0)
    node.describe([device(modbus_tag("a", "int16"))])
    node.end_session()
    assert kinds(node.births(1)) == ["NBIRTH", "DBIRTH"]


def test_a_removed_device_is_not_born_again_by_its_batches_still_in_the_outbox() -> None:
    """A reload removes device ``meter``: its DDEATH goes out. Its batches collected before
    the reload, still in the outbox, are dropped (counted), not a virtual device of the
    same id born again for good (tck-id-operational-behavior-device-ddeath)."""
    node = EdgeNode(Topics("G", "N"), NodeInfo(1000, {}), lambda device: device)
    meter = DeviceInfo.of("meter", "modbus", [modbus_tag("p", "float32", device="meter")])
    other = DeviceInfo.of("other", "modbus", [modbus_tag("x", "float32", device="other")])
    node.describe([meter, other])
    node.births(0)
    collected_before_the_reload = batch(("p",), [1.0], device="meter")
    node.describe([other])
    assert [topic for topic, _ in node.reconcile()] == ["spBv1.0/G/DDEATH/N/meter"]
    node.see_live(collected_before_the_reload)
    topics = [topic for topic, _ in node.deliver(collected_before_the_reload)]
    assert topics == []
    assert "meter" not in node.device_ids
    assert node.counters.removed_batches_dropped == 1
    assert "meter" not in kinds(node.births(0))
    node.describe([meter, other])  # back in the plant: a device again
    assert "spBv1.0/G/DBIRTH/N/meter" in [t for t, _ in node.reconcile()]


# ----------------------------------------------------------------- births and live values


def test_the_first_dbirth_of_an_opcua_device_carries_its_live_values() -> None:
    """Datatypes of OPC UA tags are learned from the live values before the birth, so a
    session born before the first delivery carries them typed and good, and the first
    DDATA needs no second DBIRTH."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(opcua_tag("temp"), driver="opcua")])
    live = batch(("temp",), [21.5], at=T0 + 99 * S, group="sub")
    node.see_live(live)
    [dbirth] = [parse(p) for t, p in node.births(0) if kind(t) == "DBIRTH"]
    [temp] = dbirth.metrics
    assert temp.datatype == DataType.Double
    assert temp.double_value == 21.5
    assert props(temp).get("Quality") == 192
    assert kinds(node.deliver(batch(("temp",), [22.0], group="sub"))) == ["DDATA"]


def test_a_virtual_device_seen_only_live_is_born_with_its_metrics() -> None:
    """A plant total seen live but not delivered yet: its DBIRTH carries what the live
    batch told, never a DBIRTH without metrics."""
    node = edge_node(T0)
    node.see_live(batch(("kw",), [3.5], device="plant"))
    node.see_live(batch((), [], device="hall"))  # nothing to tell: no birth at all
    births = {t.split("/")[-1]: parse(p) for t, p in node.births(0) if kind(t) == "DBIRTH"}
    assert list(births) == ["plant"]
    assert [m.name for m in births["plant"].metrics] == ["kw"]


# --------------------------------------------------------- devices dead and alive again


def test_one_bad_sensor_on_an_opcua_subscription_does_not_kill_the_device() -> None:
    """A subscription batch names only what changed; one tag going BadSensorFailure is a
    bad value, sent as DDATA, not a dead device."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(opcua_tag("a"), opcua_tag("b"), driver="opcua")])
    node.births(0)
    good = batch(["a", "b"], [1.0, 2.0], at=T0 + 101 * S, group="sub")
    node.see_live(good)
    node.deliver(good)
    bad = batch(["a"], [None], [Quality.BAD], ["BadSensorFailure"], at=T0 + 102 * S, group="sub")
    node.see_live(bad)
    messages = node.deliver(bad)
    assert kinds(messages) == ["DDATA"]
    [metric] = parse(messages[0][1]).metrics
    assert metric.is_null
    assert props(metric)["Quality"] == 0


def test_a_group_whose_floats_are_all_nan_does_not_kill_the_device() -> None:
    node = edge_node(T0 + 100 * S)
    node.describe([device(modbus_tag("l3_v", "float32"), modbus_tag("l3_a", "float32"))])
    node.births(0)
    nan = batch(("l3_v", "l3_a"), [None, None], [Quality.BAD] * 2, ["nan", "nan"], at=T0 + S)
    node.see_live(nan)
    assert kinds(node.deliver(nan)) == ["DDATA"]


def test_one_timing_out_group_does_not_make_the_device_flap() -> None:
    """Two poll groups, one timing out while the other answers: the device answers, the
    lost group's samples go out as BAD metrics, no DDEATH/DBIRTH at the poll rate."""
    node = edge_node(T0 + 100 * S)
    node.describe([device(modbus_tag("a", "int16", "fast"), modbus_tag("b", "int16", "block"))])
    node.births(0)
    seen: list[str] = []
    for cycle in range(5):
        at = T0 + (101 + cycle) * S
        good = batch(("a",), [cycle], at=at, group="fast")
        lost = batch(("b",), [None], [Quality.BAD], ["timeout"], at=at, group="block")
        for each in (good, lost):
            node.see_live(each)
            seen += kinds(node.deliver(each))
    assert seen == ["DDATA"] * 10


def test_a_device_dies_when_every_group_is_unreachable_and_lives_when_one_answers() -> None:
    node = edge_node(T0)
    host = Host()
    node.describe([device(modbus_tag("a", "int16", "fast"), modbus_tag("b", "int16", "block"))])
    messages = node.births(0)

    def lost(group: str, name: str) -> SampleBatch:
        return SampleBatch.all_bad("dev", group, T0, (name,), REASON_TIMEOUT)

    steps = [
        (lost("fast", "a"), ["DDATA"]),  # block has not said anything yet
        (lost("block", "b"), ["DDEATH"]),  # now every group: dead, this batch not sent
        (lost("fast", "a"), []),  # counted
        (lost("block", "b"), []),
        (batch(("b",), [7], group="block"), ["DBIRTH", "DDATA"]),  # one group answers
        (lost("fast", "a"), ["DDATA"]),
    ]
    for each, expected in steps:
        out = node.deliver(each)
        assert kinds(out) == expected, each
        messages += out
    host.read(messages)
    assert node.counters.dead_batches_skipped == 2


def test_a_metric_window_of_a_dead_device_goes_out_inside_a_short_birth() -> None:
    """Energy of a meter that cannot be reached any more is still data: DBIRTH, DDATA,
    DDEATH (the device stays dead for the host)."""
    from edge_agent.metrics.output import metric_batch
    from edge_agent.metrics.tracks import OpenWindow

    node = edge_node(T0 + 1000 * S)
    host = Host()
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    messages += node.deliver(SampleBatch.all_bad("dev", "g", T0, ("a",), REASON_DISCONNECTED))
    window = OpenWindow(T0, T0 + 900 * S, "", None)
    energy = metric_batch("dev", "15m", window, "energy", ("energy_kwh",), [2.5], 1.0, 0.9)
    out = node.deliver(energy)
    assert kinds(out) == ["DBIRTH", "DDATA", "DDEATH"]
    host.read(messages + out)
    assert kinds(node.births(0)) == ["NBIRTH"]  # still dead


def test_a_replayed_outage_from_the_backlog_does_not_kill_a_live_device() -> None:
    """The outbox sends the live lane first and replays the backlog (historical) beside it
    (edge_agent/outbox/sink_view.py), so the sink's stream is not in time order. An
    all-timeout batch from an outage an hour ago, replayed while the device answers live,
    must not be taken as the group's latest batch: the live device would get a DDEATH
    (the host marks every metric stale) and flap with every replayed outage, which
    reach.py exists to prevent [tck-id-operational-behavior-device-ddeath]. It goes out
    as historical DDATA, its samples BAD with their reason (review of the delta since
    939608a)."""
    node = edge_node(T0 + 2 * HOUR)
    node.describe([device(modbus_tag("a", "int16"))])
    node.births(0)
    live = batch(("a",), [1], at=T0 + 2 * HOUR)
    node.see_live(live)
    node.deliver(live)
    old_outage = SampleBatch.all_bad("dev", "g", T0 + HOUR, ("a",), REASON_TIMEOUT)
    messages = node.deliver(dataclasses.replace(old_outage, historical=True))
    assert kinds(messages) == ["DDATA"], "a batch replayed from the backlog killed a live device"
    [metric] = parse(messages[0][1]).metrics
    assert metric.is_historical
    assert metric.is_null
    assert props(metric)["Quality"] == 0
    assert node.counters.device_deaths == 0


def test_a_replayed_good_batch_does_not_bring_a_dead_device_back() -> None:
    """The other way round: a good reading from before the device went quiet, replayed
    from the backlog, is data the host has not seen (never dropped, never held: it would
    stop the outbox behind it) but says nothing about now: it goes out inside a short
    birth, historical, and the device stays dead (its next unreachable live batch is
    skipped, no new DBIRTH)."""
    node = edge_node(T0 + 2 * HOUR)
    host = Host()
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    lost = SampleBatch.all_bad("dev", "g", T0 + 2 * HOUR, ("a",), REASON_TIMEOUT)
    node.see_live(lost)
    messages += node.deliver(lost)
    assert kinds(messages)[-1] == "DDEATH"
    replayed = batch(("a",), [7], at=T0 + HOUR, historical=True)
    out = node.deliver(replayed)
    assert kinds(out) == ["DBIRTH", "DDATA", "DDEATH"]
    birth, data = parse(out[0][1]), parse(out[1][1])
    assert birth.metrics[0].is_null, "the birth carries the current value: unreachable"
    assert data.metrics[0].is_historical
    assert data.metrics[0].int_value == 7
    assert node.deliver(lost) == [], "still dead: the replayed batch did not revive it"
    host.read(messages + out)
    assert node.counters.dead_batches_skipped == 1


def test_the_batches_of_a_dead_device_in_one_send_share_one_short_birth() -> None:
    """A backlog replayed for a dead device (or several metric windows of one) in one
    send: one DBIRTH, every DDATA, one DDEATH (``settle``), not a birth and a death per
    batch: the host does not see the device flap at the replay rate."""
    node = edge_node(T0 + 2 * HOUR)
    host = Host()
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    messages += node.deliver(SampleBatch.all_bad("dev", "g", T0 + 2 * HOUR, ("a",), REASON_TIMEOUT))
    out = []
    for k in range(3):
        replayed = batch(("a",), [k], at=T0 + HOUR + k * S, historical=True)
        out += node.deliver(replayed, settle=False)
    out += node.settle()
    assert kinds(out) == ["DBIRTH", "DDATA", "DDATA", "DDATA", "DDEATH"]
    host.read(messages + out)
    assert node.settle() == []
    # A live batch that answers during the send: the device lives, no DDEATH is due.
    node.deliver(batch(("a",), [9], at=T0 + HOUR, historical=True), settle=False)
    node.deliver(batch(("a",), [10], at=T0 + 2 * HOUR + S), settle=False)
    assert node.settle() == []
    assert node.device_ids == {"dev": True}


def test_connection_reasons_are_the_drivers_own_strings() -> None:
    """reach.py writes the drivers' reasons out (edge_agent/ does not import drivers/):
    they must stay the same strings."""
    for reason in (REASON_WATCHDOG, REASON_NOT_MONITORED, REASON_UNTRUSTED):
        assert reason in CONNECTION_REASONS
    for code in UNREACHABLE_CODES:
        assert exception_reason(code) in CONNECTION_REASONS
    from asyncua.ua import status_codes

    for name in CONNECTION_REASONS:
        if name.startswith("Bad"):
            assert hasattr(status_codes.StatusCodes, name), name


@pytest.mark.parametrize(
    ("reason", "dead"),
    [
        (REASON_TIMEOUT, True),
        (REASON_DISCONNECTED, True),
        (REASON_INVALID_RESPONSE, True),
        (exception_reason(10), True),
        (exception_reason(11), True),
        ("BadSessionIdInvalid", True),
        ("BadConnectionClosed", True),
        (REASON_NAN, False),
        (REASON_SENTINEL, False),
        (REASON_DECODE, False),
        (REASON_INTERNAL, False),
        ("BadSensorFailure", False),
        ("BadNodeIdUnknown", False),
        (exception_reason(2), False),
        (exception_reason(4), False),
    ],
)
def test_which_reasons_say_the_device_cannot_be_reached(reason: str, dead: bool) -> None:
    assert unreachable(SampleBatch.all_bad("dev", "g", T0, ("a", "b"), reason)) is dead


def test_a_batch_with_one_good_sample_is_reachable() -> None:
    mixed = batch(("a", "b"), [None, 1], [Quality.BAD, Quality.GOOD], [REASON_TIMEOUT, ""])
    assert not unreachable(mixed)


# --------------------------------------------------------------------- historical flag


def test_a_report_made_after_the_devices_birth_is_live_not_historical() -> None:
    """A report batch's time is the start of its period; what counts is when its values
    became known (the period's end): the daily report made at midnight on a device born
    during that day (its birth carried yesterday's report) is live, and a host updates the
    report tag's value."""
    day_start = 1_767_225_600_000_000_000  # 2026-01-01T00:00Z
    now = [day_start + 10 * 3600 * S]  # the session is born at 10:00
    node = edge_node(now)

    def report(day: str, start_ns: int) -> SampleBatch:
        return report_batch(
            {
                "plant": "plant",
                "report": "daily",
                "day": day,
                "start_s": start_ns / S,
                "end_s": start_ns / S + 86_400,
            }
        )

    node.see_live(report("2025-12-31", day_start - 86_400 * S))  # made last midnight
    node.births(0)
    now[0] = day_start + 24 * 3600 * S  # today's report is made at midnight
    messages = node.deliver(report("2026-01-01", day_start))
    ddata = parse(messages[-1][1])
    assert not any(m.is_historical for m in ddata.metrics), "a live report flagged historical"


def _window_batch(
    unit: str,
    family: str,
    bounds: tuple[int, int],
    names: tuple[str, ...],
    values: list[float],
    as_of: int | None = None,
) -> SampleBatch:
    """A metric batch as edge_agent/metrics writes it: stamped at its window start, or,
    for a running window's figure (``as_of``), as metrics/guard.py stamps its live batch:
    at its poll; a baseline announced during the day stays stamped at the day's start
    (metrics/savings.py ``announce``)."""
    at = as_of if as_of is not None and family == "demand_guard" else bounds[0]
    return SampleBatch(
        unit,
        metric_group("15m" if family == "demand_guard" else "1d"),
        at,
        names,
        list(values),
        [Quality.GOOD] * len(values),
        [""] * len(values),
        attributes=MetricInfo(
            family, "15m" if family == "demand_guard" else "1d", bounds, None, as_of
        ).attributes(),
    )


def test_a_baseline_announced_mid_day_is_not_stamped_at_the_end_of_the_day() -> None:
    """metrics/savings.py announces a new fit at once with today's bounds (stamped at the
    day's start, docs/METRICS.md "Family baseline"). Taken as a closed window's figure it
    would be known at the day's END: the DDATA's metrics stamped up to 24 h after the
    payload's own timestamp, the DBIRTH carrying the same future time (the demo's oven
    baseline at every start). Its ``as_of`` says when it was known (review of the delta
    since 939608a)."""
    now = time.time_ns()
    day = (now - 10 * HOUR, now + 14 * HOUR)
    node = edge_node(now)
    node.births(0)
    announce = _window_batch("oven", "baseline", day, ("r2", "n"), [0.93, 30.0], as_of=now)
    node.see_live(announce)
    messages = node.deliver(announce)
    birth = [parse(p) for t, p in messages if kind(t) == "DBIRTH"]
    [data] = [parse(p) for t, p in messages if kind(t) == "DDATA"]
    late = [m.timestamp for m in data.metrics if m.timestamp > data.timestamp]
    assert not late, f"DDATA metrics stamped {(late[0] - data.timestamp) / 3.6e6:.1f} h ahead"
    assert birth
    assert all(m.timestamp <= now // 1_000_000 for b in birth for m in b.metrics)


def test_the_day_close_baseline_after_a_mid_day_announce_is_live_not_historical() -> None:
    """The same rule's consequence: the announce's DBIRTH (new names) recorded as carried
    the day's end for (metrics:1d, Baseline), so the baseline of the day's close (same
    bounds) was "no newer" and went out is_historical: a host kept the mid-day figures
    as current."""
    day = (T0, T0 + 24 * HOUR)
    node = edge_node(T0 + 10 * HOUR)
    node.births(0)
    announce = _window_batch(
        "oven", "baseline", day, ("r2", "n"), [0.93, 30.0], as_of=T0 + 10 * HOUR
    )
    node.see_live(announce)
    node.deliver(announce)
    closing = _window_batch("oven", "baseline", day, ("r2", "n"), [0.95, 31.0])
    node.see_live(closing)
    [(_, payload)] = node.deliver(closing)
    data = parse(payload)
    assert not any(m.is_historical for m in data.metrics)
    assert {m.timestamp for m in data.metrics} == {day[1] // 1_000_000}


def test_a_guard_poll_at_the_exact_block_start_does_not_freeze_the_block_as_history() -> None:
    """The guard's live batch is stamped with its poll; a poll whose (OPC UA source)
    timestamp is exactly the block start (servers that stamp on whole seconds) was taken
    for a closed window's figure, known at the block's END: its DBIRTH carried the block
    end, and every later guard batch of the block went out historical."""
    block = (T0, T0 + 15 * 60 * S)
    node = edge_node(T0 + 1)
    node.births(0)
    names = ("predicted_kw", "limit_kw")
    first = _window_batch("meter", "demand_guard", block, names, [410.0, 500.0], as_of=T0)
    node.see_live(first)
    node.deliver(first)
    later = _window_batch("meter", "demand_guard", block, names, [420.0, 500.0], as_of=T0 + 5 * S)
    node.see_live(later)
    [(_, payload)] = node.deliver(later)
    data = parse(payload)
    assert not any(m.is_historical for m in data.metrics), (
        "a live guard prediction 5 s into the block went out historical"
    )


def test_a_batch_no_newer_than_what_the_birth_carried_is_historical() -> None:
    """The host outage: the live tap saw every batch, the birth carried the newest; the
    older ones delivered after it (and the carried one itself) are history, a newer one
    is live."""
    node = edge_node(T0 + 10 * S)
    node.describe([device(modbus_tag("a", "int16"))])
    old, carried = batch(("a",), [1], at=T0), batch(("a",), [2], at=T0 + 5 * S)
    node.see_live(old)
    node.see_live(carried)
    node.births(0)
    [first] = node.deliver(old)
    [again] = node.deliver(carried)
    [new] = node.deliver(batch(("a",), [3], at=T0 + 11 * S))
    assert parse(first[1]).metrics[0].is_historical
    assert parse(again[1]).metrics[0].is_historical
    assert not parse(new[1]).metrics[0].is_historical


def test_a_poll_in_flight_at_the_birth_is_the_current_value_not_history() -> None:
    """Found by the plant-engineer trial on the demo: the first poll starts (its batch
    time) before the session is born and answers after it, so the DBIRTH carries every
    metric null "no value yet", and the DDATA with the first values, stamped before the
    birth, went out ``is_historical``: a host keeps showing "no value yet" (BAD) until
    the next poll, a whole poll interval (a minute on a slow group) after every start.
    Nothing newer than this batch was ever published for these metrics, so it is their
    current value. Still historical: what the birth already carried something newer than
    (test_a_batch_collected_before_the_birth_is_historical keeps its meaning once the
    birth carried a newer value)."""
    now = [T0 + S // 2]  # born half a second after the poll started
    node = edge_node(now)
    node.describe([device(modbus_tag("a", "int16"))])
    [_, dbirth] = node.births(0)
    assert parse(dbirth[1]).metrics[0].is_null  # the poll had not answered yet
    first = batch(("a",), [1], at=T0)  # the poll started before the birth ...
    now[0] = T0 + S
    node.see_live(first)  # ... and answered after it
    [ddata] = node.deliver(first)
    assert not parse(ddata[1]).metrics[0].is_historical, (
        "the first value of a metric born null went out historical: a host never shows it"
    )


# ------------------------------------------------------------ batches that cannot be encoded


def test_a_batch_the_encoder_fails_on_goes_out_bad_and_the_next_one_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Any failure of the encoder on one batch (here a value it was not built for) is
    contained: that batch goes out with every sample BAD "not encodable", counted, the
    seq has no gap, and the batches after it go out as usual."""
    encode = node_module.encode_data

    def fragile(table: Any, each: SampleBatch, seq: int, historical: bool) -> bytes:
        if 13 in each.values:
            raise RuntimeError("cannot encode 13")
        return encode(table, each, seq, historical)

    monkeypatch.setattr(node_module, "encode_data", fragile)
    node = edge_node(T0)
    node.describe([device(modbus_tag("a", "int16"))])
    messages = node.births(0)
    messages += node.deliver(batch(("a",), [13], at=T0 + S))
    messages += node.deliver(batch(("a",), [14], at=T0 + S))
    payloads = [parse(p) for _, p in messages]
    assert [p.seq for p in payloads] == [0, 1, 2, 3]
    [poisoned] = payloads[2].metrics
    assert poisoned.is_null
    assert props(poisoned) == {"Quality": 0, "Reason": "not encodable (RuntimeError)"}
    assert payloads[3].metrics[0].int_value == 14
    assert node.counters.unencodable_batches == 1


def test_a_birth_the_encoder_fails_on_goes_out_with_its_values_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encode = node_module.encode_dbirth

    def fragile(table: Any, latest: list[SampleBatch], seq: int, stamp_ms: int) -> bytes:
        if any(13 in each.values for each in latest):
            raise RuntimeError("cannot encode 13")
        return encode(table, latest, seq, stamp_ms)

    monkeypatch.setattr(node_module, "encode_dbirth", fragile)
    node = edge_node(T0)
    node.describe([device(modbus_tag("a", "int16"))])
    node.see_live(batch(("a",), [13]))
    messages = node.births(0)
    assert kinds(messages) == ["NBIRTH", "DBIRTH"]
    [metric] = parse(messages[1][1]).metrics
    assert metric.is_null
    assert props(metric)["Quality"] == 0
    assert node.counters.unencodable_batches == 1


# ------------------------------------------------------------- counted where it is seen

PLANT = """
plant: {{name: p1}}
state_dir: {state}
devices:
  - name: meter
    driver: modbus
    connection: {{transport: tcp, host: 127.0.0.1}}
    poll_groups:
      - {{interval: 1s, tags: [{{name: v, address: 0}}]}}
sinks:
  - {{name: scada, type: sparkplug, host: 127.0.0.1, group_id: G, edge_node_id: N}}
"""


def test_skipped_and_dropped_batches_are_on_metrics_for_the_sink(tmp_path: Path) -> None:
    """Batches the sink does not send (a dead device's, a removed device's, ones it could
    not encode) are counted as sent by the runner: the sink's own events say which, as
    ``edge_agent_sink_events{sink, event}``."""
    from prometheus_client.parser import text_string_to_metric_families

    from edge_agent.config.loader import parse_config
    from edge_agent.service.agent import Agent
    from edge_agent.service.status import ServiceStats
    from edge_agent.service.telemetry import build_registry, render_metrics
    from edge_agent.sinks.sparkplug.sink import SparkplugSink

    agent = Agent(parse_config(PLANT.format(state=tmp_path / "state"), "plant.yaml", env={}))
    sink = agent.sinks[0].sink
    assert isinstance(sink, SparkplugSink)
    counters = sink.node.counters
    counters.dead_batches_skipped, counters.removed_batches_dropped = 7, 3
    counters.unencodable_batches = 2
    body, _ = render_metrics(build_registry(agent, ServiceStats()))
    shown = {
        sample.labels["event"]: sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
        if sample.name == "edge_agent_sink_events_total" and sample.labels.get("sink") == "scada"
    }
    assert shown["dead_batches_skipped"] == 7
    assert shown["removed_batches_dropped"] == 3
    assert shown["unencodable_batches"] == 2
