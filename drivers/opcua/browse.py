"""The address space as a tree, for commissioning (``edge-agent browse``).

Breadth first from a start node (Objects by default), level by level: one Browse
request per level (chunked to MaxNodesPerBrowse, continuation points followed),
then one Read of DataType, AccessLevel, ValueRank and ArrayDimensions for the
variables found, and of the value of arrays whose size the server does not declare
(an array is one sample per element: its size is what an engineer must see).
Variables are leaves: their properties (EURange, EnumStrings...) are metadata, not tags.

The tag list (``--yaml``) reads every value once more and leaves out, commented with
the reason, each variable that would not read good: not readable, a type the driver
does not map, an array above ``max_array_length``, a bad or uncertain value. The list
as printed is what a poll group can collect with every tag good.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from asyncua import ua

from drivers.opcua.convert import REASON_NULL, decode
from drivers.opcua.limits import chunks
from drivers.opcua.nodes import enumerations, read_namespaces
from drivers.opcua.session import Session
from drivers.opcua.uatypes import node_id, ua_bool
from edge_agent.config import NAME_PATTERN
from edge_agent.config.opcua import DEFAULT_MAX_ARRAY_LENGTH
from edge_agent.model import Quality

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
    #: ``[3]``, ``[2x2]``, ``[]`` (an array of unknown size), or "" (a scalar).
    shape: str = ""
    children: list[BrowseNode] = field(default_factory=list)

    @property
    def is_variable(self) -> bool:
        return self.node_class == ua.NodeClass.Variable

    @property
    def type_text(self) -> str:
        return f"{self.data_type or '?'}{self.shape}"


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


_DESCRIBED = (
    ua.AttributeIds.DataType,
    ua.AttributeIds.AccessLevel,
    ua.AttributeIds.ValueRank,
    ua.AttributeIds.ArrayDimensions,
)


async def _describe_variables(session: Session, variables: Sequence[BrowseNode]) -> None:
    if not variables:
        return
    reads = [
        ua.ReadValueId(NodeId=v.node_id, AttributeId=attribute)
        for v in variables
        for attribute in _DESCRIBED
    ]
    values = await session.read(reads)
    type_ids: dict[int, ua.NodeId] = {}
    unsized: list[BrowseNode] = []
    width = len(_DESCRIBED)
    for k, variable in enumerate(variables):
        data_type, access, rank, dimensions = (_value(values[width * k + n]) for n in range(width))
        if isinstance(data_type, ua.NodeId):
            type_ids[k] = data_type
        if isinstance(access, int):
            variable.access = _access(access)
        if not isinstance(rank, int) or rank == ua.ValueRank.Scalar:
            continue
        sizes = [int(d) for d in dimensions] if isinstance(dimensions, list) else []
        if sizes and all(sizes):
            variable.shape = _shape(sizes)
        else:  # an array (or maybe one) of undeclared size: its value tells
            unsized.append(variable)
    names = await _type_names(session, sorted(set(type_ids.values()), key=lambda n: n.to_string()))
    for k, data_type in type_ids.items():
        variables[k].data_type = names.get(data_type, data_type.to_string())
    if unsized:
        current = await read_values(session, unsized)
        for variable, data in zip(unsized, current, strict=True):
            variant = data.Value
            if variant is not None and variant.is_array:
                sizes = list(variant.Dimensions or []) or [len(variant.Value or [])]
                variable.shape = _shape(sizes)
            elif variant is None or variant.Value is None:
                variable.shape = "[]"  # declared an array, its size unknown


def _shape(sizes: Sequence[int]) -> str:
    return "[" + "x".join(str(size) for size in sizes) + "]"


async def read_values(session: Session, variables: Sequence[BrowseNode]) -> list[ua.DataValue]:
    return await session.read(
        [ua.ReadValueId(NodeId=v.node_id, AttributeId=ua.AttributeIds.Value) for v in variables]
    )


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
                columns += [child.type_text, child.access or "?"]
            lines.append(f"{prefix}{'└── ' if last else '├── '}{'  '.join(columns)}")
            add(child, prefix + ("    " if last else "│   "))

    add(root, "")
    return lines


async def tag_list_yaml(
    session: Session, root: BrowseNode, max_array_length: int = DEFAULT_MAX_ARRAY_LENGTH
) -> list[str]:
    """The variables found, as a ``tags:`` list ready for a poll group of the plant file.

    Nodes are addressed by namespace URI (``nsu=``), which survives a server that
    renumbers its namespaces; names are the browse path below the start node. A
    variable that would not read good is left out, commented with the reason.
    """
    namespaces = await read_namespaces(session)
    variables = [node for node in walk(root) if node.is_variable]
    values = await read_values(session, variables) if variables else []
    # The labels the driver will use: an enumeration value without one is uncertain.
    enums = await enumerations(session, [v.node_id for v in variables], [None] * len(variables))
    lines = ["tags:"]
    used: set[str] = set()
    left_out = 0
    for node, data, enum in zip(variables, values, enums, strict=True):
        name = _tag_name(node.path, used)
        entry = [f"- name: {name}", f"  node: {_quote(_address(node.node_id, namespaces))}"]
        why = _left_out(node, data, enum, max_array_length)
        if why:
            left_out += 1
            lines.append(f"  # left out: {why}")
            lines += [f"  # {line}" for line in entry]
            continue
        lines += [f"  {line}" for line in entry]
        lines.append(f"    # {node.type_text}, {node.access or '?'}")
    if left_out:
        lines.append(
            f"# {left_out} of {len(variables)} variables left out (commented): they would "
            "not read good"
        )
    return lines


def _left_out(
    node: BrowseNode, data: ua.DataValue, enum: Mapping[int, str] | None, max_array_length: int
) -> str:
    """Why a variable does not belong in a tag list as it is ("" if it does)."""
    if node.access and "read" not in node.access.split(","):
        return f"not readable (access: {node.access})"
    _, quality, reason = decode(data, enum, max_array_length)
    if quality is Quality.GOOD:
        return ""
    if reason.startswith("array of "):
        length = len(data.Value.Value) if data.Value is not None and data.Value.Value else 0
        return f"{node.type_text}, {reason}: add max_array_length: {length} to collect it"
    if reason.startswith("unsupported type") or reason == REASON_NULL:
        return f"{node.type_text}: {reason}"
    return f"{quality.name.lower()} at browse time: {reason}"


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
