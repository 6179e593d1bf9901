"""A plain asyncua Server for the OPC UA write tests: one writable node per built-in
type, nodes that must be refused, a server that answers with bad statuses, a write
that never gets its answer, and methods that record what they received.

Every Write that reaches the server is counted (a PreWrite callback sees the request
before the address space does), so a test can tell "nothing sent" from "sent once".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback

from simulators.opcua_internals import OperationLimits, RequestStats, SimInternalServer
from tests.servers import free_port

NAMESPACE = "urn:edge-agent:test:writes"
VT = ua.VariantType

#: Writable nodes: name -> (initial Variant, DataType NodeId or None for the Variant's).
TYPED: dict[str, tuple[ua.Variant, int | None]] = {
    "Boolean": (ua.Variant(False, VT.Boolean), None),
    "SByte": (ua.Variant(0, VT.SByte), None),
    "Byte": (ua.Variant(0, VT.Byte), None),
    "Int16": (ua.Variant(0, VT.Int16), None),
    "UInt16": (ua.Variant(0, VT.UInt16), None),
    "Int32": (ua.Variant(0, VT.Int32), None),
    "UInt32": (ua.Variant(0, VT.UInt32), None),
    "Int64": (ua.Variant(0, VT.Int64), None),
    "UInt64": (ua.Variant(0, VT.UInt64), None),
    "Float": (ua.Variant(0.0, VT.Float), None),
    "Double": (ua.Variant(0.0, VT.Double), None),
    "String": (ua.Variant("", VT.String), None),
    "DateTime": (ua.Variant(datetime(2026, 1, 1, tzinfo=UTC), VT.DateTime), None),
    # A subtype of Double (i=290): travels as a Double.
    "Duration": (ua.Variant(0.0, VT.Double), ua.ObjectIds.Duration),
    # An enumeration of the specification (EnumStrings Running, Failed, ...): an Int32.
    "State": (ua.Variant(0, VT.Int32), ua.ObjectIds.ServerState),
    # A UInt16 the plant file gives labels (enum:).
    "Mode": (ua.Variant(0, VT.UInt16), None),
    # Declared Double, but holding a Float: asyncua answers a Double with BadTypeMismatch.
    "Mismatch": (ua.Variant(1.5, VT.Float), ua.ObjectIds.Double),
    # Answered BadOutOfRange by the server whatever is written.
    "OutOfRange": (ua.Variant(0.0, VT.Double), None),
    # Its Write is held until the test releases it: the client's answer never comes in time.
    "Slow": (ua.Variant(0.0, VT.Double), None),
}
#: Not writable: AccessLevel without CurrentWrite; UserAccessLevel without it; an array.
READ_ONLY = "ReadOnly"
USER_READ_ONLY = "UserReadOnly"
ARRAY = "Array"


def node_text(name: str, ns: int = 2) -> str:
    return f"ns={ns};s=w.{name}"


@dataclass
class WriteServer:
    server: Server
    endpoint: str
    ns: int
    #: (node name, Variant) of every Write that reached the server, in order.
    writes: list[tuple[str, ua.Variant]] = field(default_factory=list)
    #: (method, [Variant...]) of every call.
    calls: list[tuple[str, list[ua.Variant]]] = field(default_factory=list)
    release_slow: asyncio.Event = field(default_factory=asyncio.Event)

    def node_id(self, name: str) -> ua.NodeId:
        return ua.NodeId(f"w.{name}", self.ns)

    async def served(self, name: str) -> ua.DataValue:
        """The node's DataValue as the server itself holds it."""
        return await self.server.get_node(self.node_id(name)).read_data_value()


async def _build(server: Server, ns: int, state: WriteServer) -> None:
    objects = server.nodes.objects
    for name, (variant, data_type) in TYPED.items():
        node = await objects.add_variable(
            ua.NodeId(f"w.{name}", ns),
            ua.QualifiedName(name, ns),
            variant,
            datatype=ua.NodeId(data_type) if data_type is not None else None,
        )
        await node.set_writable()
    await objects.add_variable(ua.NodeId(f"w.{READ_ONLY}", ns), READ_ONLY, 1.0)
    user_only = await objects.add_variable(
        ua.NodeId(f"w.{USER_READ_ONLY}", ns), USER_READ_ONLY, 1.0
    )
    await user_only.write_attribute(
        ua.AttributeIds.AccessLevel, ua.DataValue(ua.Variant(3, VT.Byte))
    )
    await user_only.write_attribute(
        ua.AttributeIds.UserAccessLevel, ua.DataValue(ua.Variant(1, VT.Byte))
    )
    array = await objects.add_variable(
        ua.NodeId(f"w.{ARRAY}", ns), ARRAY, ua.Variant([1, 2, 3], VT.Int32)
    )
    await array.write_attribute(ua.AttributeIds.ValueRank, ua.DataValue(ua.Variant(1, VT.Int32)))
    await array.set_writable()
    machine = await objects.add_object(ua.NodeId("w.Machine", ns), "Machine")

    async def set_recipe(parent: ua.NodeId, *args: ua.Variant) -> list[ua.Variant]:
        state.calls.append(("SetRecipe", list(args)))
        return [ua.Variant(int(args[0].Value) * 2, VT.Int32), ua.Variant("ok", VT.String)]

    async def refuse(parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        state.calls.append(("Refuse", list(args)))
        return ua.CallMethodResult(
            StatusCode=ua.StatusCode(ua.StatusCodes.BadInvalidArgument),
            InputArgumentResults=[ua.StatusCode(ua.StatusCodes.BadOutOfRange)],
        )

    recipe_args = [
        _argument("recipe", ua.ObjectIds.Int16),
        _argument("speed", ua.ObjectIds.Float),
        _argument("note", ua.ObjectIds.String),
        _argument("mode", ua.ObjectIds.ServerState),
        _argument("hold", ua.ObjectIds.Duration),
    ]
    await machine.add_method(
        ua.NodeId("w.Machine.SetRecipe", ns),
        "SetRecipe",
        set_recipe,
        recipe_args,
        [VT.Int32, VT.String],
    )
    await machine.add_method(
        ua.NodeId("w.Machine.Refuse", ns),
        "Refuse",
        refuse,
        [_argument("level", ua.ObjectIds.Byte)],
        [],
    )


def _argument(name: str, data_type: int) -> ua.Argument:
    return ua.Argument(Name=name, DataType=ua.NodeId(data_type), ValueRank=-1)


@asynccontextmanager
async def write_server() -> AsyncIterator[WriteServer]:
    # The simulator's internal server: it copies the standard address space on the
    # loop's thread (asyncua's own would leave a worker thread behind).
    server = Server(iserver=SimInternalServer(OperationLimits(), RequestStats()))
    await server.init()
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}"
    server.set_endpoint(endpoint)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace(NAMESPACE)
    state = WriteServer(server, endpoint, ns)
    await _build(server, ns, state)
    names = {state.node_id(name): name for name in [*TYPED, READ_ONLY, USER_READ_ONLY, ARRAY]}

    async def pre_write(event: ServerItemCallback, dispatcher: Any) -> None:
        if not event.is_external:
            return  # the server's own updates (its status, its clock)
        for item in event.request_params.NodesToWrite:
            name = names.get(item.NodeId, item.NodeId.to_string())
            state.writes.append((name, item.Value.Value))
            if name == "Slow":
                await state.release_slow.wait()

    server.subscribe_server_callback(CallbackType.PreWrite, pre_write)
    service = server.iserver.attribute_service
    plain_write = service.write

    async def write(params: ua.WriteParameters, user: Any = None) -> list[ua.StatusCode]:
        results = await plain_write(params, user=user)
        return [
            ua.StatusCode(ua.StatusCodes.BadOutOfRange)
            if item.NodeId == state.node_id("OutOfRange")
            else result
            for item, result in zip(params.NodesToWrite, results, strict=True)
        ]

    service.write = write  # type: ignore[method-assign]
    await server.start()
    try:
        yield state
    finally:
        state.release_slow.set()
        await server.stop()
