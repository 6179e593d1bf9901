"""Tag addresses -> NodeIds on the connected server, redone after every connect.

What cannot be resolved (a namespace URI the server does not have, a browse path
without a match) makes only that tag bad, with the reason; every other tag flows.
Enumerations are found here too: a variable whose DataType has an ``EnumStrings`` or
``EnumValues`` property reads as the label, not the number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asyncua import ua

from drivers.opcua.quality import classify
from drivers.opcua.session import Session
from drivers.opcua.uatypes import node_id, ua_bool
from edge_agent.config.opcua import BrowsePathRef, NodeAddress, NodeIdRef
from edge_agent.model import Quality

_ID_TYPES = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}
#: DataTypes 1-29 are the built-in and abstract types: never enumerations.
_LAST_BUILTIN_TYPE = 29


@dataclass(slots=True)
class Resolution:
    """Per tag, in the order asked: its NodeId, or None and why not."""

    node_ids: list[ua.NodeId | None]
    reasons: list[str]
    enums: list[Mapping[int, str] | None]

    def part(self, start: int, end: int) -> Resolution:
        """The resolution of addresses ``start:end`` (one poll group of several)."""
        return Resolution(self.node_ids[start:end], self.reasons[start:end], self.enums[start:end])


def namespace_reason(uri: str) -> str:
    return f"namespace not on server: {uri}"


async def resolve(
    session: Session,
    addresses: Sequence[NodeAddress],
    configured_enums: Sequence[Mapping[int, str] | None],
) -> Resolution:
    """NodeIds (and enum labels) for ``addresses`` on this session's server."""
    count = len(addresses)
    node_ids: list[ua.NodeId | None] = [None] * count
    reasons = [""] * count
    namespaces: list[str] = []
    if any(isinstance(a, NodeIdRef) and a.namespace_uri is not None for a in addresses):
        namespaces = await read_namespaces(session)
    paths: list[tuple[int, BrowsePathRef]] = []
    for i, address in enumerate(addresses):
        if isinstance(address, BrowsePathRef):
            paths.append((i, address))
            continue
        index = address.namespace_index
        if address.namespace_uri is not None:
            if address.namespace_uri not in namespaces:
                reasons[i] = namespace_reason(address.namespace_uri)
                continue
            index = namespaces.index(address.namespace_uri)
        node_ids[i] = node_id(address.identifier, index, _ID_TYPES[address.id_type])
    if paths:
        results = await session.translate(
            [browse_path(node_id(ua.ObjectIds.RootFolder), p.elements) for _, p in paths]
        )
        for (i, _), result in zip(paths, results, strict=True):
            target = _first_target(result)
            if target is None:
                reasons[i] = classify(result.StatusCode.value)[1] or "BadNoMatch"
            else:
                node_ids[i] = target
    enums = await enumerations(session, node_ids, configured_enums)
    return Resolution(node_ids, reasons, enums)


async def read_namespaces(session: Session) -> list[str]:
    (value,) = await session.read(
        [
            ua.ReadValueId(
                NodeId=node_id(ua.ObjectIds.Server_NamespaceArray),
                AttributeId=ua.AttributeIds.Value,
            )
        ]
    )
    raw = value.Value.Value if value.Value is not None else None
    return [str(uri) for uri in raw] if isinstance(raw, list) else []


def browse_path(
    start: ua.NodeId,
    elements: Sequence[tuple[int, str]],
    reference: int = ua.ObjectIds.HierarchicalReferences,
) -> ua.BrowsePath:
    path = ua.BrowsePath()
    path.StartingNode = start
    path.RelativePath = ua.RelativePath(
        Elements=[
            ua.RelativePathElement(
                ReferenceTypeId=node_id(reference),
                IsInverse=ua_bool(False),
                IncludeSubtypes=ua_bool(True),
                TargetName=ua.QualifiedName(name, ns),
            )
            for ns, name in elements
        ]
    )
    return path


def _first_target(result: ua.BrowsePathResult) -> ua.NodeId | None:
    if not result.StatusCode.is_good():
        return None
    for target in result.Targets:
        if target.RemainingPathIndex == 0xFFFFFFFF:  # the whole path matched
            expanded = target.TargetId
            return node_id(expanded.Identifier, expanded.NamespaceIndex, expanded.NodeIdType)
    return None


async def enumerations(
    session: Session,
    node_ids: Sequence[ua.NodeId | None],
    configured: Sequence[Mapping[int, str] | None],
) -> list[Mapping[int, str] | None]:
    """Enum labels per tag: the configured map, else the DataType's EnumStrings/EnumValues."""
    enums: list[Mapping[int, str] | None] = list(configured)
    asked = [i for i, node in enumerate(node_ids) if node is not None and enums[i] is None]
    if not asked:
        return enums
    types = await session.read(
        [ua.ReadValueId(NodeId=node_ids[i], AttributeId=ua.AttributeIds.DataType) for i in asked]
    )
    type_of: dict[int, ua.NodeId] = {}
    for i, data in zip(asked, types, strict=True):
        raw = data.Value.Value if data.Value is not None else None
        if classify(data.StatusCode.value if data.StatusCode else 0)[
            0
        ] is Quality.GOOD and isinstance(raw, ua.NodeId):
            if (
                raw.NamespaceIndex == 0
                and isinstance(raw.Identifier, int)
                and raw.Identifier <= _LAST_BUILTIN_TYPE
            ):
                continue
            type_of[i] = raw
    if not type_of:
        return enums
    labels = await enum_labels(session, sorted(set(type_of.values()), key=lambda n: n.to_string()))
    for i, data_type in type_of.items():
        enums[i] = labels.get(data_type)
    return enums


async def enum_labels(
    session: Session, data_types: Sequence[ua.NodeId]
) -> dict[ua.NodeId, Mapping[int, str]]:
    """EnumStrings (index -> text) or EnumValues (value -> display name) per DataType."""
    properties = ("EnumStrings", "EnumValues")
    paths = [
        browse_path(data_type, [(0, name)], ua.ObjectIds.HasProperty)
        for data_type in data_types
        for name in properties
    ]
    results = await session.translate(paths)
    found: list[tuple[ua.NodeId, str, ua.NodeId]] = []
    for k, result in enumerate(results):
        target = _first_target(result)
        if target is not None:
            found.append((data_types[k // 2], properties[k % 2], target))
    if not found:
        return {}
    values = await session.read(
        [ua.ReadValueId(NodeId=target, AttributeId=ua.AttributeIds.Value) for _, _, target in found]
    )
    labels: dict[ua.NodeId, Mapping[int, str]] = {}
    for (data_type, kind, _), data in zip(found, values, strict=True):
        raw = data.Value.Value if data.Value is not None else None
        if not isinstance(raw, list) or data_type in labels:
            continue
        if kind == "EnumStrings":
            labels[data_type] = {
                k: text.Text or str(k) if isinstance(text, ua.LocalizedText) else str(text)
                for k, text in enumerate(raw)
            }
        else:
            labels[data_type] = {
                int(item.Value): (item.DisplayName.Text or str(item.Value))
                for item in raw
                if isinstance(item, ua.EnumValueType)
            }
    return labels
