"""``edge-agent read opc.tcp://... --node ID``: one node's value, as the agent would take it.

The session is the agent's own (:func:`drivers.opcua.cli.open_session`: security, trust
list, identity as ``browse`` has them), the node is resolved as a tag's ``node:`` is
(NodeId, ``nsu=`` URI or browse path), and the value goes through the agent's conversion
(:func:`drivers.opcua.convert.decode`): what is printed is what a tag with that ``node:``
would publish, with its quality and reason.

Exit codes as the Modbus ``read``: 0 a good value, 1 a value that is not good or a node
the server does not know, 2 usage, 3 no connection (docs/COMMISSIONING.md).
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from asyncua import ua

from drivers.opcua.cli import open_session, session_device
from drivers.opcua.convert import decode
from drivers.opcua.nodes import resolve
from drivers.opcua.quality import status_name
from edge_agent.config import PlantConfig
from edge_agent.config.opcua import OpcUaDeviceConfig, parse_node_address
from edge_agent.errors import DriverConnectError, DriverError
from edge_agent.model import Quality

EXIT_OK = 0
EXIT_NOT_GOOD = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3


def run_read_node(
    url: str,
    node: str,
    *,
    config: PlantConfig | None = None,
    security: str = "None",
    user: str = "",
    password_env: str = "OPCUA_PASSWORD",
    out: TextIO = sys.stdout,
) -> int:
    try:
        device = session_device(url, security, user, password_env, has_plant=config is not None)
        parse_node_address(node)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lines, code = asyncio.run(read_node(device, config, node))
    except DriverConnectError as exc:
        print(f"error: cannot connect to {url}: {exc.reason} ({exc.detail})", file=sys.stderr)
        return EXIT_CONNECT
    except DriverError as exc:
        print(f"error: {url}: {exc.reason} ({exc.detail})", file=sys.stderr)
        return EXIT_NOT_GOOD
    for line in lines:
        print(line, file=out)
    return code


async def read_node(
    device: OpcUaDeviceConfig, config: PlantConfig | None, node: str
) -> tuple[list[str], int]:
    """The lines to print and the exit code for one read of ``node``."""
    address = parse_node_address(node)
    async with open_session(device, config) as session:
        resolution = await resolve(session, [address], [None])
        node_id = resolution.node_ids[0]
        if node_id is None:
            return [
                f"{device.endpoint} {node}: not found ({resolution.reasons[0]})",
                "hint: `edge-agent browse URL` lists the nodes and their NodeIds",
            ], EXIT_NOT_GOOD
        (data,) = await session.read(
            [ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value)]
        )
    value, quality, reason = decode(data, resolution.enums[0])
    variant = data.Value
    kind = variant.VariantType.name if variant is not None else "none"
    if variant is not None and variant.is_array:
        kind += " array"
    status = data.StatusCode.value if data.StatusCode is not None else 0
    lines = [
        f"{device.endpoint} {node} (NodeId {node_id.to_string()}):",
        f"  value      {_shown(value)}",
        f"  type       {kind}",
        f"  quality    {quality.name.lower()}" + (f" ({reason})" if reason else ""),
        f"  status     {status_name(status) if status else 'Good'}",
    ]
    if data.SourceTimestamp is not None:
        lines.append(f"  source ts  {data.SourceTimestamp.isoformat()}")
    if data.ServerTimestamp is not None:
        lines.append(f"  server ts  {data.ServerTimestamp.isoformat()}")
    if status and status_name(status) == "BadNodeIdUnknown":
        lines.append("hint: the server has no such node; `edge-agent browse URL` lists them")
    return lines, EXIT_OK if quality is Quality.GOOD else EXIT_NOT_GOOD


def _shown(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown(v[0]) for v in value) + "]"
    if value is None:
        return "-"
    return repr(value) if isinstance(value, str) else str(value)
