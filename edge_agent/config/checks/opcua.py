"""Cross-field rules of an OPC UA device, each finding tied to the path it is about.

The counterpart of the Modbus rules in :mod:`edge_agent.config.checks.modbus`: names that
must be unique, options that only mean something in one mode, a security policy
and mode that do not fit together, and the same node read twice in one group.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from edge_agent.config.checks.common import Finding, Loc, duplicates
from edge_agent.config.opcua import (
    OpcUaDeviceConfig,
    OpcUaPollGroup,
    OpcUaSecurity,
    OpcUaTag,
    parse_node_address,
)


def check_opcua_device(index: int, device: OpcUaDeviceConfig) -> list[Finding]:
    base: Loc = ("devices", index)
    found = [((*base, "security", key), msg) for key, msg in _security_rules(device.security)]
    groups = [(g, group, list(enumerate(group.tags))) for g, group in enumerate(device.poll_groups)]
    return found + _groups_findings(base, groups)


def check_opcua_partial(index: int, item: dict[str, Any]) -> list[Finding]:
    """Rules for the valid parts of an OPC UA device that pydantic rejected: each group
    whose own fields are valid, with those of its tags that are valid on their own."""
    base: Loc = ("devices", index)
    found: list[Finding] = []
    security = item.get("security")
    if isinstance(security, dict):
        try:
            parsed = OpcUaSecurity.model_validate(security)
        except ValidationError:
            pass
        else:
            found += [((*base, "security", key), msg) for key, msg in _security_rules(parsed)]
    raw_groups = item.get("poll_groups")
    groups: list[tuple[int, OpcUaPollGroup, list[tuple[int, OpcUaTag]]]] = []
    for g, raw in enumerate(raw_groups if isinstance(raw_groups, list) else []):
        if not isinstance(raw, dict):
            continue
        try:
            # The group's own fields, checked with a stand-in tag list.
            group = OpcUaPollGroup.model_validate({**raw, "tags": [{"name": "t", "node": "i=1"}]})
        except ValidationError:
            continue
        tags: list[tuple[int, OpcUaTag]] = []
        raw_tags = raw.get("tags")
        for t, raw_tag in enumerate(raw_tags if isinstance(raw_tags, list) else []):
            try:
                tags.append((t, OpcUaTag.model_validate(raw_tag)))
            except ValidationError:
                continue
        groups.append((g, group, tags))
    return found + _groups_findings(base, groups)


def _groups_findings(
    base: Loc, groups: list[tuple[int, OpcUaPollGroup, list[tuple[int, OpcUaTag]]]]
) -> list[Finding]:
    found = duplicates(
        [((*base, "poll_groups", g, "name"), group.name) for g, group, _ in groups],
        "poll group name",
    )
    found += duplicates(
        [
            ((*base, "poll_groups", g, "tags", t, "name"), tag.name)
            for g, _, tags in groups
            for t, tag in tags
        ],
        "tag name",
    )
    for g, group, tags in groups:
        found += _group_findings((*base, "poll_groups", g), group, tags)
    return found


def _security_rules(security: OpcUaSecurity) -> Iterator[tuple[str, str]]:
    if security.policy == "None" and security.mode != "None":
        yield "mode", f"mode {security.mode} needs a security policy (policy is None)"
    if security.policy != "None" and security.mode == "None":
        yield "mode", f"policy {security.policy} needs mode Sign or SignAndEncrypt"
    if bool(security.certificate_file) != bool(security.private_key_file):
        key = "private_key_file" if security.certificate_file else "certificate_file"
        yield key, "certificate_file and private_key_file go together"


def _group_findings(
    path: Loc, group: OpcUaPollGroup, tags: list[tuple[int, OpcUaTag]]
) -> list[Finding]:
    found: list[Finding] = []
    subscribe = group.mode == "subscribe"
    if not subscribe:
        for key, default in (("sampling_interval", None), ("queue_size", 1), ("deadband", None)):
            if getattr(group, key) != default:
                found.append(((*path, key), f"{key} applies only to mode: subscribe"))
    if group.deadband is not None:
        found += [
            ((*path, "deadband", "value"), message)
            for message in _deadband_rules(group.deadband.type, group.deadband.value)
        ]
    nodes: dict[str, str] = {}
    for t, tag in tags:
        tag_path = (*path, "tags", t)
        found += [((*tag_path, key), message) for key, message in _tag_rules(tag, subscribe)]
        key = parse_node_address(tag.node).text()
        if key in nodes:
            found.append(((*tag_path, "node"), f"node {tag.node} is already tag {nodes[key]!r}"))
        else:
            nodes[key] = tag.name
    return found


def _tag_rules(tag: OpcUaTag, subscribe: bool) -> Iterator[tuple[str, str]]:
    if not subscribe:
        for key in ("sampling_interval", "queue_size", "deadband"):
            if getattr(tag, key) is not None:
                yield key, f"{key} applies only to a group with mode: subscribe"
    if tag.deadband is not None:
        for message in _deadband_rules(tag.deadband.type, tag.deadband.value):
            yield "deadband", message


def _deadband_rules(kind: str, value: float) -> Iterator[str]:
    if kind == "percent" and value > 100:
        yield f"a percent deadband is at most 100, not {value:g}"
