"""What ``check`` can say about an OPC UA device's writes without connecting.

Whether a node is writable is the server's to say (its UserAccessLevel, read at
connect: :meth:`drivers.opcua.writes.TagWrites.check_access`), but one rule holds
for every server: namespace 0 is the OPC UA specification's own address space (the
Server object, its status, capabilities, namespace array...), read-only by the
specification, so a ``write:`` block on a namespace-0 node is a mistake. Pure: no
protocol library, so ``check`` can run it.
"""

from __future__ import annotations

from edge_agent.config.opcua import BrowsePathRef, OpcUaDeviceConfig, parse_node_address

#: Where in the device a finding is (``poll_groups``, 0, ``tags``, 3, ``write``).
Path = tuple[str | int, ...]


def _namespace_zero(node: str) -> bool:
    address = parse_node_address(node)
    if isinstance(address, BrowsePathRef):
        # A browse path's names in namespace 0 are left to the server: some small
        # servers put their own names there, and check must not reject a working plant.
        return False
    return address.namespace_uri is None and address.namespace_index == 0


def opcua_write_problems(device: OpcUaDeviceConfig) -> list[tuple[Path, str]]:
    """Findings for ``device``, each with its path relative to the device."""
    found: list[tuple[Path, str]] = []
    for g, group in enumerate(device.poll_groups):
        for t, tag in enumerate(group.tags):
            if tag.write is not None and _namespace_zero(tag.node):
                found.append(
                    (
                        ("poll_groups", g, "tags", t, "write"),
                        f"tag {tag.name} ({tag.node}) is a node of namespace 0, the OPC UA "
                        "server's own standard nodes, which are read-only: remove its write: "
                        "block (writable nodes are in the device's own namespaces, ns=1 and up)",
                    )
                )
    return found


__all__ = ["opcua_write_problems"]
