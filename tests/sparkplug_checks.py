"""The checks behind the assertion table (tests/sparkplug_assertions.py).

Each check takes the :class:`~tests.sparkplug_view.View` of the story and returns what
breaks the rule ([] = it holds), one line per offending message, so that a failure names
the message (session, order, topic). A check over messages of a kind that the story did
not produce fails ("nothing to check") unless the rule is one the node never exercises
(NDATA: the node sends none in this issue; templates and datasets: never used).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.sparkplug_story import DEVICE_IDS
from tests.sparkplug_view import BIRTHS, DATA, SENT_WINDOW_MS, Sent, View, bdseq_of

Check = Callable[[View], list[str]]
REBIRTH = "Node Control/Rebirth"
BOOLEAN, INT32, DATASET, TEMPLATE = 11, 3, 16, 19
VALID_DATATYPES = frozenset(range(1, 35)) - {0}
PROPERTY_TYPES = frozenset(range(1, 22)) - {16, 17, 18, 19}  # basic + PropertySet(List)
QUALITY_CODES = frozenset({0, 192, 500})


def each(
    items: Iterable[Sent], rule: Callable[[Sent], str | None], *, may_be_empty: bool = False
) -> list[str]:
    items = list(items)
    if not items and not may_be_empty:
        return ["nothing to check: the story produced no such message"]
    return [f"{s}: {problem}" for s in items if (problem := rule(s)) is not None]


def of(*types: str, may_be_empty: bool = False) -> Callable[[Callable[[Sent], str | None]], Check]:
    """Decorator: the rule holds for every sent message of ``types``."""

    def wrap(rule: Callable[[Sent], str | None]) -> Check:
        def check(view: View) -> list[str]:
            return each(view.sent_of(*types), rule, may_be_empty=may_be_empty)

        check.__doc__ = rule.__doc__
        return check

    return wrap


def combine(*checks: Check) -> Check:
    def check(view: View) -> list[str]:
        return [p for c in checks for p in c(view)]

    return check


# ---------------------------------------------------------------------- topics


def topic_structure(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        levels = s.levels
        if s.message_type in ("NBIRTH", "NDEATH", "NDATA") and len(levels) != 4:
            return "a node message topic has 4 levels: namespace/group_id/TYPE/edge_node_id"
        if s.message_type in ("DBIRTH", "DDEATH", "DDATA") and len(levels) != 5:
            return "a device message topic has 5 levels: .../edge_node_id/device_id"
        if s.message_type not in ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA"):
            return f"{s.message_type!r} is not a message type an edge node publishes"
        return None

    return each(view.sent, rule)


def namespace(view: View) -> list[str]:
    return each(
        view.sent, lambda s: None if s.levels[0] == "spBv1.0" else "namespace is not spBv1.0"
    )


def _valid_id(value: str) -> str | None:
    if not value:
        return "empty id"
    if any(c in value for c in "+/#"):
        return f"{value!r} holds + / or #"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{value!r} is not UTF-8"
    return None


def group_id(view: View) -> list[str]:
    return each(
        view.sent,
        lambda s: (
            _valid_id(s.levels[1])
            or (None if s.levels[1] == "Conformance" else "not the configured group_id")
        ),
    )


def edge_node_id(view: View) -> list[str]:
    return each(
        view.sent,
        lambda s: (
            _valid_id(s.levels[3])
            or (None if s.levels[3] == "edge-1" else "not the configured edge_node_id")
        ),
    )


def device_id(view: View) -> list[str]:
    devices = [s for s in view.sent if len(s.levels) == 5]
    return each(
        devices,
        lambda s: (
            _valid_id(s.device)
            or (
                None
                if s.device in view.device_ids
                else f"{s.device!r} is not a configured device id"
            )
        ),
    )


def unique_device_ids(view: View) -> list[str]:
    problems = []
    if len(set(DEVICE_IDS.values())) != len(DEVICE_IDS):
        problems.append("two agent devices share a Sparkplug device id")
    born = {s.device for s in view.sent_of("DBIRTH")}
    if born != set(view.device_ids):
        problems.append(f"devices born {sorted(born)}, configured {sorted(view.device_ids)}")
    return problems


def device_id_levels(view: View) -> list[str]:
    return each(
        view.sent_of("DBIRTH", "DDEATH", "DDATA"),
        lambda s: None if len(s.levels) == 5 and s.device else "no device_id level",
    )


def no_device_id_levels(view: View) -> list[str]:
    problems = each(
        view.sent_of("NBIRTH", "NDEATH", "NDATA"),
        lambda s: None if len(s.levels) == 4 else "a device_id level",
    )
    for session in view.sessions.values():
        will_topic = session.connect.will_topic or ""
        if len(will_topic.split("/")) != 4:
            problems.append(f"session {session.number}: Will topic {will_topic!r}")
    return problems


def case_distinct_ids(view: View) -> list[str]:
    ids = [*view.device_ids]
    return (
        []
        if len({i.lower() for i in ids}) == len(ids)
        else [f"device ids equal in lower case: {ids}"]
    )


def topic_is(message_type: str) -> Check:
    def check(view: View) -> list[str]:
        if message_type.startswith("N"):
            expected = view.node_topic(message_type)
            return each(
                view.sent_of(message_type),
                lambda s: None if s.topic == expected else f"expected {expected}",
                may_be_empty=message_type == "NDATA",
            )
        return each(
            view.sent_of(message_type),
            lambda s: (
                None
                if s.topic == view.device_topic(message_type, s.device)
                and s.device in view.device_ids
                else "not namespace/group_id/TYPE/edge_node_id/device_id"
            ),
        )

    return check


# ---------------------------------------------------------------------- MQTT flags


def qos0(*types: str) -> Check:
    return lambda view: each(
        view.sent_of(*types),
        lambda s: None if s.qos == 0 else f"QoS {s.qos}",
        may_be_empty=types == ("NDATA",),
    )


def not_retained(*types: str) -> Check:
    return lambda view: each(
        view.sent_of(*types),
        lambda s: "retained" if s.retain else None,
        may_be_empty=types == ("NDATA",),
    )


def clean_session(view: View) -> list[str]:
    return [
        f"session {s.number}: clean session off"
        for s in view.sessions.values()
        if not s.connect.clean_session
    ] or _need_sessions(view)


def mqtt_311(view: View) -> list[str]:
    """The MQTT 5.0 rules do not apply: every CONNECT is MQTT 3.1.1 (protocol level 4)."""
    return [
        f"session {s.number}: protocol level {s.connect.protocol_level}"
        for s in view.sessions.values()
        if s.connect.protocol_level != 4
    ] or _need_sessions(view)


def _need_sessions(view: View) -> list[str]:
    return [] if view.sessions else ["no CONNECT seen"]


# ---------------------------------------------------------------------- seq


def has_seq(*types: str) -> Check:
    return lambda view: each(
        view.sent_of(*types),
        lambda s: (
            None if s.decoded.HasField("seq") and 0 <= s.decoded.seq <= 255 else "no seq (0-255)"
        ),
        may_be_empty=types == ("NDATA",),
    )


def nbirth_seq_zero(view: View) -> list[str]:
    return each(
        view.sent_of("NBIRTH"),
        lambda s: (
            None if s.decoded.HasField("seq") and s.decoded.seq == 0 else f"seq {s.decoded.seq}"
        ),
    )


def seq_follows(*types: str) -> Check:
    """Every message of ``types`` has the seq of the node's previous message + 1 (mod 256)."""

    def check(view: View) -> list[str]:
        problems, checked = [], 0
        for session in view.sessions.values():
            previous: Sent | None = None
            for s in session.sent:
                if s.message_type == "NDEATH":
                    continue
                if s.message_type in types and s.message_type != "NBIRTH":
                    checked += 1
                    if previous is None:
                        problems.append(f"{s}: no NBIRTH before it in its session")
                    elif s.decoded.seq != (previous.decoded.seq + 1) % 256:
                        problems.append(f"{s}: seq {s.decoded.seq} after {previous.decoded.seq}")
                previous = s
        if not checked and types != ("NDATA",):
            problems.append("nothing to check")
        return problems

    return check


def no_seq_in_ndeath(view: View) -> list[str]:
    problems = each(
        view.sent_of("NDEATH"), lambda s: "has a seq" if s.decoded.HasField("seq") else None
    )
    for session in view.sessions.values():
        will = session.will
        if will is not None and will.HasField("seq"):
            problems.append(f"session {session.number}: the Will payload has a seq")
    return problems


# ---------------------------------------------------------------------- timestamps


def stamped_when_sent(*types: str) -> Check:
    """The payload timestamp is the time the message was sent (within SENT_WINDOW_MS)."""

    def rule(s: Sent) -> str | None:
        if not s.decoded.HasField("timestamp"):
            return "no payload timestamp"
        off = s.decoded.timestamp - s.at_ms
        return (
            None
            if abs(off) <= SENT_WINDOW_MS
            else f"payload timestamp {off / 1000:+.1f} s from when it was sent"
        )

    return lambda view: each(view.sent_of(*types), rule, may_be_empty=types == ("NDATA",))


def utc(view: View) -> list[str]:
    """Payload and metric timestamps are UTC ms: not after the send, not before the story."""
    first = min(p.start_ns for p in view.story.phases.values()) // 1_000_000 - 60_000

    def rule(s: Sent) -> str | None:
        stamps = [s.decoded.timestamp] + [
            m.timestamp for m in s.decoded.metrics if m.HasField("timestamp")
        ]
        bad = [t for t in stamps if not first <= t <= s.at_ms + SENT_WINDOW_MS]
        return f"timestamps not UTC ms of this run: {bad[:3]}" if bad else None

    return each(view.sent, rule)


def metric_timestamps(view: View) -> list[str]:
    return each(
        view.sent_of(*BIRTHS, *DATA),
        lambda s: (
            None
            if all(m.HasField("timestamp") for m in s.decoded.metrics)
            else "a metric without timestamp"
        ),
    )


# ---------------------------------------------------------------------- metrics


def _has_value(m: pb.Payload.Metric) -> bool:
    return m.WhichOneof("value") is not None


def birth_values(*types: str) -> Check:
    def rule(s: Sent) -> str | None:
        for m in s.decoded.metrics:
            if m.is_null and _has_value(m):
                return f"{m.name}: is_null and a value"
            if not m.is_null and not _has_value(m):
                return f"{m.name}: neither a value nor is_null"
        return None

    return lambda view: each(view.sent_of(*types), rule)


def birth_metric_fields(*types: str) -> Check:
    def rule(s: Sent) -> str | None:
        for m in s.decoded.metrics:
            if not m.HasField("name") or not m.HasField("datatype"):
                return f"metric {m.alias}: no name or datatype"
            if not m.is_null and not _has_value(m):
                return f"{m.name}: no value"
        return None

    return lambda view: each(view.sent_of(*types), rule)


def rebirth_metric(*, alias_allowed: bool = True) -> Check:
    def rule(s: Sent) -> str | None:
        found = [m for m in s.decoded.metrics if m.name == REBIRTH]
        if len(found) != 1:
            return f"{len(found)} metrics named {REBIRTH!r}"
        m = found[0]
        if m.datatype != BOOLEAN or m.WhichOneof("value") != "boolean_value" or m.boolean_value:
            field = m.WhichOneof("value")
            return f"{REBIRTH}: datatype {m.datatype}, {field}={getattr(m, field or 'name')}"
        if not alias_allowed and m.HasField("alias"):
            return f"{REBIRTH} has alias {m.alias}"
        return None

    return lambda view: each(view.sent_of("NBIRTH"), rule)


def bdseq_in_nbirth(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        value = bdseq_of(s.decoded)
        return None if value is not None and 0 <= value <= 255 else "no bdSeq metric (0-255)"

    return each(view.sent_of("NBIRTH"), rule)


def bdseq_matches_will(view: View) -> list[str]:
    problems, checked = [], 0
    for session in view.sessions.values():
        for s in session.of_type("NBIRTH", "NDEATH"):
            checked += 1
            if bdseq_of(s.decoded) != session.will_bdseq:
                problems.append(
                    f"{s}: bdSeq {bdseq_of(s.decoded)}, its CONNECT's Will {session.will_bdseq}"
                )
    return problems or ([] if checked else ["nothing to check"])


def bdseq_increments(view: View) -> list[str]:
    """bdSeq starts at 0 (a new state directory) and is +1 on every CONNECT, kill -9 included."""
    values = [s.will_bdseq for s in view.sessions.values()]
    problems = [] if values and values[0] == 0 else [f"first bdSeq {values[:1]}, expected 0"]
    problems += [
        f"CONNECT {i + 2}: bdSeq {b} after {a}"
        for i, (a, b) in enumerate(itertools.pairwise(values))
        if a is None or b != (a + 1) % 256
    ]
    return problems


def will_set(view: View) -> list[str]:
    return [
        f"session {s.number}: no Will"
        for s in view.sessions.values()
        if s.connect.will_topic is None
    ] or _need_sessions(view)


def will_topic(view: View) -> list[str]:
    expected = view.node_topic("NDEATH")
    return [
        f"session {s.number}: Will topic {s.connect.will_topic!r}"
        for s in view.sessions.values()
        if s.connect.will_topic != expected
    ] or _need_sessions(view)


def will_qos1(view: View) -> list[str]:
    return [
        f"session {s.number}: Will QoS {s.connect.will_qos}"
        for s in view.sessions.values()
        if s.connect.will_qos != 1
    ] or _need_sessions(view)


def will_not_retained(view: View) -> list[str]:
    return [
        f"session {s.number}: Will retained"
        for s in view.sessions.values()
        if s.connect.will_retain
    ] or _need_sessions(view)


def will_is_sparkplug(view: View) -> list[str]:
    problems = []
    for s in view.sessions.values():
        try:
            s.will  # noqa: B018 -- decoding is the check
        except Exception as exc:  # noqa: BLE001 -- protobuf's DecodeError, reported as found
            problems.append(f"session {s.number}: Will payload does not decode: {exc}")
    return problems or _need_sessions(view)


def ndeath_payload(view: View) -> list[str]:
    """The NDEATH (Will and explicit) holds exactly one metric: bdSeq."""
    payloads = [(f"session {s.number} Will", s.will) for s in view.sessions.values()]
    payloads += [(str(s), s.decoded) for s in view.sent_of("NDEATH")]
    return [
        f"{where}: metrics {[m.name for m in p.metrics] if p else None}"
        for where, p in payloads
        if p is None or [m.name for m in p.metrics] != ["bdSeq"]
    ]


def will_delivered_on_kill(view: View) -> list[str]:
    """kill -9: the broker delivers the Will; its bdSeq is the last NBIRTH's; the next
    session's bdSeq differs."""
    killed = view.story.killed_ns
    births = [m for m in view.delivered_of("NBIRTH") if m.at_ns < killed]
    deaths = [m for m in view.delivered_of("NDEATH") if m.at_ns >= killed]
    if not births or not deaths:
        return ["no NBIRTH before the kill or no NDEATH after it"]
    last, will = bdseq_of(births[-1].decoded()), bdseq_of(deaths[0].decoded())
    after = [m for m in view.delivered_of("NBIRTH") if m.at_ns > deaths[0].at_ns]
    problems = [] if last == will else [f"Will bdSeq {will}, last NBIRTH bdSeq {last}"]
    if deaths[0].qos != 1:
        problems.append(f"the Will arrived at QoS {deaths[0].qos}")
    if not after or bdseq_of(after[0].decoded()) == last:
        problems.append("after the restart no NBIRTH with a new bdSeq")
    return problems
