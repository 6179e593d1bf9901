"""What a write must know about a node: its type, its shape, who may write it.

Read once per session (a reconnect may be to a server that changed) and kept by
:class:`NodeFacts`: the DataType (resolved to its built-in base type with asyncua's
:func:`~asyncua.common.ua_utils.get_base_data_type`: a Duration is a Double, an enum
DataType an Int32), the ValueRank (arrays are not written), and the AccessLevel and
UserAccessLevel (CurrentWrite must be in the UserAccessLevel: what *this session's*
user may do, which is what counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asyncua import ua
from asyncua.common.ua_utils import get_base_data_type
from asyncua.ua.uaerrors import UaError

from drivers.opcua.quality import classify, status_name
from drivers.opcua.session import Session, map_error
from edge_agent.model import Quality

#: Attributes read for each node a write targets, in this order.
ATTRIBUTES = (
    ua.AttributeIds.DataType,
    ua.AttributeIds.ValueRank,
    ua.AttributeIds.AccessLevel,
    ua.AttributeIds.UserAccessLevel,
)
_CURRENT_WRITE = 1 << ua.AccessLevel.CurrentWrite.value
#: Built-in DataTypes that are abstract: a node of such a type may hold anything.
_ABSTRACT = {24: "BaseDataType", 26: "Number", 27: "Integer", 28: "UInteger"}
_STRUCTURE = 22
_ENUMERATION = 29
_LAST_BUILTIN = 25


@dataclass(frozen=True, slots=True)
class BaseType:
    """The built-in type a DataType's values travel as, or why it cannot be written."""

    vtype: ua.VariantType | None
    enumeration: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """A node's attributes as a write needs them (None where the server gave none)."""

    data_type: ua.NodeId | None
    value_rank: int | None
    access: int | None
    user_access: int | None
    #: Why the node's attributes could not be read ("" when they could).
    problem: str = ""

    def not_writable(self) -> str:
        """Why this session may not write the node's value, in words ("" if it may)."""
        if self.problem:
            return self.problem
        if self.access is not None and not self.access & _CURRENT_WRITE:
            return "the node is read-only (its AccessLevel has no CurrentWrite)"
        if self.user_access is not None and not self.user_access & _CURRENT_WRITE:
            return (
                "the server does not let the agent's user write it (its UserAccessLevel "
                "has no CurrentWrite; check the identity: the device uses)"
            )
        return ""

    def array(self) -> bool:
        """True for a node that holds arrays only (ValueRank 0 or more dimensions)."""
        return self.value_rank is not None and self.value_rank >= 0


def _good(value: ua.DataValue) -> object:
    """The value of a DataValue whose status is good, else None."""
    status = value.StatusCode.value if value.StatusCode is not None else 0
    if classify(status)[0] is not Quality.GOOD or value.Value is None:
        return None
    return value.Value.Value


async def read_facts(session: Session, node_ids: Sequence[ua.NodeId]) -> list[NodeFacts]:
    """One Read of :data:`ATTRIBUTES` for every node."""
    ids = [ua.ReadValueId(NodeId=n, AttributeId=a) for n in node_ids for a in ATTRIBUTES]
    values = await session.read(ids)
    out = []
    for k in range(len(node_ids)):
        data_type, rank, access, user = values[k * 4 : k * 4 + 4]
        kind = _good(data_type)
        if not isinstance(kind, ua.NodeId):
            status = data_type.StatusCode.value if data_type.StatusCode is not None else 0
            why = status_name(status) if status else "no DataType"
            out.append(NodeFacts(None, None, None, None, f"the node's DataType: {why}"))
            continue
        ranked, level, user_level = _good(rank), _good(access), _good(user)
        out.append(
            NodeFacts(
                kind,
                ranked if isinstance(ranked, int) else None,
                level if isinstance(level, int) else None,
                user_level if isinstance(user_level, int) else None,
            )
        )
    return out


async def base_type(session: Session, data_type: ua.NodeId) -> BaseType:
    """The built-in type ``data_type`` derives from (browsing its supertypes)."""
    if data_type.NamespaceIndex == 0 and isinstance(data_type.Identifier, int):
        known = _builtin(data_type.Identifier)
        if known is not None:
            return known
    try:
        base = await get_base_data_type(session.client.get_node(data_type))
    except (OSError, TimeoutError, ConnectionError) as exc:
        raise map_error(exc) from exc
    except UaError as exc:
        shown = data_type.to_string()
        return BaseType(None, reason=f"DataType {shown} has no built-in base type: {exc}")
    identifier = base.nodeid.Identifier
    known = _builtin(identifier) if isinstance(identifier, int) else None
    return known or BaseType(None, reason=f"DataType {data_type.to_string()} is not supported")


def _builtin(identifier: int) -> BaseType | None:
    if identifier == _ENUMERATION:
        return BaseType(ua.VariantType.Int32, enumeration=True)
    if identifier in _ABSTRACT:
        return BaseType(
            None,
            reason=f"its DataType is the abstract {_ABSTRACT[identifier]}: the value's type "
            "cannot be chosen safely",
        )
    if identifier == _STRUCTURE:
        return BaseType(None, reason="it holds a structure: writing structures is not supported")
    if 1 <= identifier <= _LAST_BUILTIN:
        return BaseType(ua.VariantType(identifier))
    return None
