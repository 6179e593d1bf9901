"""Checks of the metric definitions: aliases, names, datatypes, properties, DataSets and
Templates (see tests/sparkplug_checks.py for how checks report)."""

from __future__ import annotations

from edge_agent.sinks.sparkplug import sparkplug_b_pb2 as pb
from tests.sparkplug_checks import (
    DATASET,
    INT32,
    PROPERTY_TYPES,
    QUALITY_CODES,
    REBIRTH,
    TEMPLATE,
    VALID_DATATYPES,
    Check,
    each,
)
from tests.sparkplug_view import BIRTHS, DATA, Sent, View


def _births_by_session(view: View) -> dict[int, dict[int, tuple[str, str]]]:
    """session -> alias -> (device or "", name), from every birth of the session."""
    out: dict[int, dict[int, tuple[str, str]]] = {}
    for session in view.sessions.values():
        table = out.setdefault(session.number, {})
        for s in session.of_type(*BIRTHS):
            for m in s.decoded.metrics:
                if m.HasField("alias"):
                    table.setdefault(m.alias, (s.device, m.name))
    return out


def alias_unique(view: View) -> list[str]:
    problems = []
    for session in view.sessions.values():
        owners: dict[int, tuple[str, str]] = {}
        for s in session.of_type(*BIRTHS):
            for m in s.decoded.metrics:
                if m.HasField("alias") and owners.setdefault(m.alias, (s.device, m.name)) != (
                    s.device,
                    m.name,
                ):
                    problems.append(
                        f"{s}: alias {m.alias} of {m.name!r} also names {owners[m.alias]}"
                    )
    return problems or ([] if view.sent_of(*BIRTHS) else ["no births"])


def births_named_and_aliased(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        for m in s.decoded.metrics:
            if not m.name:
                return f"alias {m.alias}: no name"
            if not m.HasField("alias") and m.name != REBIRTH:
                return f"{m.name}: no alias (DATA messages carry aliases only)"
        return None

    return each(view.sent_of(*BIRTHS), rule)


def data_aliases_only(*types: str) -> Check:
    def rule(s: Sent) -> str | None:
        bad = [
            m.name or m.alias
            for m in s.decoded.metrics
            if m.HasField("name") or not m.HasField("alias")
        ]
        return f"metrics with a name or without an alias: {bad[:3]}" if bad else None

    return lambda view: each(view.sent_of(*types), rule, may_be_empty=types == ("NDATA",))


def data_in_birth(*types: str) -> Check:
    """Every metric of a DATA message was in its session's births (by alias)."""

    def check(view: View) -> list[str]:
        tables = _births_by_session(view)

        def rule(s: Sent) -> str | None:
            table = tables[s.session]
            unknown = [
                m.alias for m in s.decoded.metrics if table.get(m.alias, (None,))[0] != s.device
            ]
            return f"aliases not born for this device: {unknown[:3]}" if unknown else None

        return each(view.sent_of(*types), rule, may_be_empty=types == ("NDATA",))

    return check


def names_case_distinct(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        names = [m.name for m in s.decoded.metrics]
        return (
            None
            if len({n.lower() for n in names}) == len(names)
            else "metric names equal in lower case"
        )

    return each(view.sent_of(*BIRTHS), rule)


def datatypes_valid(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        bad = [
            (m.name, m.datatype)
            for m in s.decoded.metrics
            if m.HasField("datatype") and m.datatype not in VALID_DATATYPES
        ]
        return f"datatypes not in the spec's table: {bad[:3]}" if bad else None

    return each(view.sent, rule)


def datatype_in_births(view: View) -> list[str]:
    return each(
        view.sent_of(*BIRTHS),
        lambda s: (
            None
            if all(m.HasField("datatype") for m in s.decoded.metrics)
            else "a metric without datatype"
        ),
    )


def no_datatype_in_data(view: View) -> list[str]:
    return each(
        view.sent_of(*DATA),
        lambda s: (
            "a metric with a datatype"
            if any(m.HasField("datatype") for m in s.decoded.metrics)
            else None
        ),
    )


def _property_sets(s: Sent) -> list[tuple[str, pb.Payload.PropertySet]]:
    return [
        (m.name or str(m.alias), m.properties)
        for m in s.decoded.metrics
        if m.HasField("properties")
    ]


def properties_sized(view: View) -> list[str]:
    def rule(s: Sent) -> str | None:
        bad = [n for n, p in _property_sets(s) if len(p.keys) != len(p.values)]
        return f"keys and values differ in number: {bad[:3]}" if bad else None

    return each(view.sent, rule)


def property_types(*, births_only: bool) -> Check:
    def rule(s: Sent) -> str | None:
        for name, p in _property_sets(s):
            for key, value in zip(p.keys, p.values, strict=False):
                if births_only and not value.HasField("type"):
                    return f"{name}.{key}: no type"
                if value.HasField("type") and value.type not in PROPERTY_TYPES:
                    return f"{name}.{key}: type {value.type}"
        return None

    types = BIRTHS if births_only else ("NBIRTH", "DBIRTH", "DDATA", "NDATA", "DDEATH")
    return lambda view: each(view.sent_of(*types), rule)


def quality_property(*, values: bool) -> Check:
    def check(view: View) -> list[str]:
        seen = 0

        def rule(s: Sent) -> str | None:
            nonlocal seen
            for name, p in _property_sets(s):
                for key, value in zip(p.keys, p.values, strict=False):
                    if key != "Quality":
                        continue
                    seen += 1
                    if not values and value.type != INT32:
                        return f"{name}: Quality type {value.type}"
                    if values and (
                        value.WhichOneof("value") != "int_value"
                        or value.int_value not in QUALITY_CODES
                    ):
                        field = value.WhichOneof("value")
                        return f"{name}: Quality {field}={getattr(value, field or 'type')}"
            return None

        problems = each(view.sent, rule)
        return problems + ([] if seen else ["no Quality property anywhere"])

    return check


def no_datasets_or_templates(view: View) -> list[str]:
    """The node publishes no DataSet or Template: the rules for them hold vacuously."""

    def rule(s: Sent) -> str | None:
        bad = [
            m.name or m.alias
            for m in s.decoded.metrics
            if m.datatype in (DATASET, TEMPLATE)
            or m.WhichOneof("value") in ("dataset_value", "template_value")
        ]
        return f"DataSet/Template metrics: {bad[:3]}" if bad else None

    return each(view.sent, rule)


def chronological(*types: str) -> Check:
    """A metric listed more than once in a payload (not historical) is in time order."""

    def rule(s: Sent) -> str | None:
        last: dict[object, int] = {}
        for m in s.decoded.metrics:
            if m.is_historical:
                continue
            key = m.name or m.alias
            if m.timestamp < last.get(key, 0):
                return f"{key}: out of time order"
            last[key] = m.timestamp
        return None

    return lambda view: each(view.sent_of(*types), rule)


def data_not_empty(*types: str) -> Check:
    return lambda view: each(
        view.sent_of(*types),
        lambda s: None if s.decoded.metrics else "no metrics",
        may_be_empty=types == ("NDATA",),
    )
