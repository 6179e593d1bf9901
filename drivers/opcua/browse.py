"""The address space as a tree, for commissioning (``edge-agent browse``).

Breadth first from a start node (Objects by default), level by level: one Browse
request per level (chunked to MaxNodesPerBrowse, continuation points followed),
then one Read of DataType and AccessLevel for the variables found. Variables are
leaves: their properties (EURange, EnumStrings...) are metadata, not tags.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from asyncua import ua

from drivers.opcua.limits import chunks
from drivers.opcua.nodes import read_namespaces
from drivers.opcua.session import Session
from drivers.opcua.uatypes import node_id, ua_bool
from edge_agent.config import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_SERVER_OBJECT = node_id(ua.ObjectIds.Server)


@dataclass(slots=True)
class BrowseNode:
    """One node of the tree."""

    node_id: ua.NodeId
    browse_name: ua.QualifiedName
    node_class: ua.NodeClass
    depth: int
    path: tuple[str, ...]
    data_type: str = ""
    access: str = ""
    children: list[BrowseNode] = field(default_factory=list)

    @property
    def is_variable(self) -> bool:
        return self.node_class == ua.NodeClass.Variable


async def browse_tree(
    session: Session,
    start: ua.NodeId | None = None,
    depth: int = 3,
    *,
    include_server: bool = False,
) -> BrowseNode:
    """The tree below ``start`` (Objects), ``depth`` levels deep."""
    root = BrowseNode(
        node_id=start or node_id(ua.ObjectIds.ObjectsFolder),
        browse_name=ua.QualifiedName("Objects", 0),
        node_class=ua.NodeClass.Object,
        depth=0,
        path=(),
    )
    level = [root]
    variables: list[BrowseNode] = []
    for current in range(1, depth + 1):
        parents = [n for n in level if not n.is_variable]
        if not parents:
            break
        results = await _browse(session, [p.node_id for p in parents])
        level = []
        for parent, references in zip(parents, results, strict=True):
            for ref in references:
                if ref.NodeClass not in (ua.NodeClass.Object, ua.NodeClass.Variable):
                    continue
                target = node_id(
                    ref.NodeId.Identifier, ref.NodeId.NamespaceIndex, ref.NodeId.NodeIdType
                )
                if target == _SERVER_OBJECT and not include_server:
                    continue
                child = BrowseNode(
                    node_id=target,
                    browse_name=ref.BrowseName,
                    node_class=ref.NodeClass,
                    depth=current,
                    path=(*parent.path, ref.BrowseName.Name or str(target)),
                )
                parent.children.append(child)
                level.append(child)
                if child.is_variable:
                    variables.append(child)
    await _describe_variables(session, variables)
    return root


async def _browse(
    session: Session, nodes: Sequence[ua.NodeId]
) -> list[list[ua.ReferenceDescription]]:
    """Forward hierarchical references of each node, following continuation points."""
    out: list[list[ua.ReferenceDescription]] = []
    client = session.client.uaclient
    for chunk in chunks(nodes, session.limits.max_nodes_per_browse):
        params = ua.BrowseParameters()
        params.RequestedMaxReferencesPerNode = 0
        params.NodesToBrowse = [
            ua.BrowseDescription(
                NodeId=n,
                BrowseDirection=ua.BrowseDirection.Forward,
                ReferenceTypeId=node_id(ua.ObjectIds.HierarchicalReferences),
                IncludeSubtypes=ua_bool(True),
                NodeClassMask=0,
                ResultMask=ua.BrowseResultMask.All,
            )
            for n in chunk
        ]
        results = await session.call(client.browse, params)
        for result in results:
            references = list(result.References)
            point = result.ContinuationPoint
            while point:
                more = ua.BrowseNextParameters()
                more.ReleaseContinuationPoints = ua_bool(False)
                more.ContinuationPoints = [point]
                (following,) = await session.call(client.browse_next, more)
                references.extend(following.References)
                point = following.ContinuationPoint
            out.append(references)
    return out


async def _describe_variables(session: Session, variables: Sequence[BrowseNode]) -> None:
    if not variables:
        return
    reads = [
        ua.ReadValueId(NodeId=v.node_id, AttributeId=attribute)
        for v in variables
        for attribute in (ua.AttributeIds.DataType, ua.AttributeIds.AccessLevel)
    ]
    values = await session.read(reads)
    type_ids: dict[int, ua.NodeId] = {}
    for k, variable in enumerate(variables):
        data_type = _value(values[2 * k])
        access = _value(values[2 * k + 1])
        if isinstance(data_type, ua.NodeId):
            type_ids[k] = data_type
        if isinstance(access, int):
            variable.access = _access(access)
    names = await _type_names(session, sorted(set(type_ids.values()), key=lambda n: n.to_string()))
    for k, data_type in type_ids.items():
        variables[k].data_type = names.get(data_type, data_type.to_string())


async def _type_names(session: Session, types: Sequence[ua.NodeId]) -> dict[ua.NodeId, str]:
    names: dict[ua.NodeId, str] = {}
    unknown: list[ua.NodeId] = []
    for data_type in types:
        if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
            name = ua.ObjectIdNames.get(data_type.Identifier)
            if name:
                names[data_type] = name
                continue
        unknown.append(data_type)
    if unknown:
        values = await session.read(
            [ua.ReadValueId(NodeId=t, AttributeId=ua.AttributeIds.BrowseName) for t in unknown]
        )
        for data_type, value in zip(unknown, values, strict=True):
            raw = value.Value.Value if value.Value is not None else None
            if isinstance(raw, ua.QualifiedName) and raw.Name:
                names[data_type] = raw.Name
    return names


def _value(data: ua.DataValue) -> object:
    return data.Value.Value if data.Value is not None else None


def _access(level: int) -> str:
    parts = []
    if level & (1 << ua.AccessLevel.CurrentRead):
        parts.append("read")
    if level & (1 << ua.AccessLevel.CurrentWrite):
        parts.append("write")
    if level & (1 << ua.AccessLevel.HistoryRead):
        parts.append("history")
    return ",".join(parts) or "none"


def walk(node: BrowseNode) -> Iterator[BrowseNode]:
    yield node
    for child in node.children:
        yield from walk(child)


def render_tree(root: BrowseNode) -> list[str]:
    """``├── 2:power_kw  ns=2;s=cnc-1.power_kw  Double  read`` lines."""
    lines = [f"Objects  {root.node_id.to_string()}"]

    def add(node: BrowseNode, prefix: str) -> None:
        for k, child in enumerate(node.children):
            last = k == len(node.children) - 1
            name = child.browse_name.to_string()
            columns = [name, child.node_id.to_string()]
            if child.is_variable:
                columns += [child.data_type or "?", child.access or "?"]
            lines.append(f"{prefix}{'└── ' if last else '├── '}{'  '.join(columns)}")
            add(child, prefix + ("    " if last else "│   "))

    add(root, "")
    return lines


async def tag_list_yaml(session: Session, root: BrowseNode) -> list[str]:
    """The variables found, as a ``tags:`` list ready for a poll group of the plant file.

    Nodes are addressed by namespace URI (``nsu=``), which survives a server that
    renumbers its namespaces; names are the browse path below the start node.
    """
    namespaces = await read_namespaces(session)
    lines = ["tags:"]
    used: set[str] = set()
    for node in walk(root):
        if not node.is_variable:
            continue
        name = _tag_name(node.path, used)
        address = _address(node.node_id, namespaces)
        lines.append(f"  - name: {name}")
        lines.append(f"    node: {_quote(address)}")
        lines.append(f"    # {node.data_type or '?'}, {node.access or '?'}")
    return lines


def _address(node: ua.NodeId, namespaces: Sequence[str]) -> str:
    text = node.to_string()
    index = node.NamespaceIndex
    if index == 0 or index >= len(namespaces):
        return text
    identifier = text.split(";", 1)[1] if text.startswith("ns=") else text
    return f"nsu={namespaces[index]};{identifier}"


def _tag_name(path: Sequence[str], used: set[str]) -> str:
    raw = ".".join(path)
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", raw).strip("._-") or "tag"
    if not _NAME.match(name):
        name = f"t_{name}"
    name = name[:120]
    candidate, k = name, 2
    while candidate in used:
        candidate = f"{name}_{k}"
        k += 1
    used.add(candidate)
    return candidate


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
