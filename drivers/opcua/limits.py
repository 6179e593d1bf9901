"""The server's operation limits, and requests cut into chunks that fit them.

Servers announce limits under Server/ServerCapabilities/OperationLimits
(MaxNodesPerRead, MaxMonitoredItemsPerCall, ...; 0 means none). Sending more in one
request is answered with BadTooManyOperations and costs the whole request, which is
how many tools fail on large machines. We read the limits after every connect and cut
requests to fit. A server that still refuses reads (limits not announced, or lower
than announced) has its limit learned by :class:`ReadSize`: one binary search for
the session, on the reads the agent makes anyway (every accepted chunk is data), about
log2(n) refusals in all; every later chunk has the learned size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from asyncua import ua

from drivers.opcua.uatypes import node_id

T = TypeVar("T")

_LIMITS = ua.ObjectIds
_LIMIT_NODES = {
    "max_nodes_per_read": _LIMITS.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
    "max_monitored_items_per_call": (
        _LIMITS.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall
    ),
    "max_nodes_per_translate": (
        _LIMITS.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds
    ),
    "max_nodes_per_browse": _LIMITS.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
}


@dataclass(slots=True)
class OperationLimits:
    """Most operations per request; 0 means no limit. Lowered when a server refuses."""

    max_nodes_per_read: int = 0
    max_monitored_items_per_call: int = 0
    max_nodes_per_translate: int = 0
    max_nodes_per_browse: int = 0

    @staticmethod
    def read_value_ids() -> list[ua.ReadValueId]:
        """What to read to learn the limits (one Read, in field order)."""
        return [
            ua.ReadValueId(NodeId=node_id(node), AttributeId=ua.AttributeIds.Value)
            for node in _LIMIT_NODES.values()
        ]

    @classmethod
    def from_values(
        cls, values: Sequence[ua.DataValue], *, max_nodes_per_read: int = 0, max_items: int = 0
    ) -> OperationLimits:
        """Limits from the answer to :meth:`read_value_ids`; a bad or absent value means
        no limit. A configured limit (non-zero) wins when it is lower."""
        found: dict[str, int] = {}
        for field, data in zip(_LIMIT_NODES, values, strict=True):
            raw = data.Value.Value if data.Value is not None else None
            good = data.StatusCode is None or data.StatusCode.is_good()
            found[field] = int(raw) if good and isinstance(raw, int) and raw > 0 else 0
        limits = cls(**found)
        limits.max_nodes_per_read = lowest(limits.max_nodes_per_read, max_nodes_per_read)
        limits.max_monitored_items_per_call = lowest(limits.max_monitored_items_per_call, max_items)
        return limits


@dataclass(slots=True)
class ReadSize:
    """The largest Read a server accepts, learned from its refusals (a binary search).

    Between the largest size accepted since the first refusal and the smallest size
    refused, each next chunk tries the middle; until something is accepted, half of
    what was refused. Once the two are adjacent the limit is known.
    """

    #: Largest chunk accepted since the first refusal (0: none yet).
    accepted: int = 0
    #: Smallest chunk refused (0: no refusal).
    refused: int = 0
    refusals: int = 0

    @property
    def learned(self) -> bool:
        return bool(self.refused) and self.refused - self.accepted <= 1

    def next(self, announced: int) -> int:
        """Size of the next chunk (0: everything), given the announced limit."""
        if not self.refused:
            return announced
        if not self.accepted:
            return max(1, self.refused // 2)
        return (self.accepted + self.refused) // 2

    def on_accepted(self, size: int) -> None:
        if not self.refused or size <= self.accepted:
            return
        if size >= self.refused:  # accepted what was refused before: the limit rose
            self.refused = 0
        self.accepted = size

    def on_refused(self, size: int) -> None:
        self.refusals += 1
        if size <= self.accepted:  # refused what was accepted before: the limit fell
            self.accepted = 0
        self.refused = min(self.refused, size) if self.refused else size


def lowest(a: int, b: int) -> int:
    """The stricter of two limits where 0 means none."""
    if not a:
        return b
    if not b:
        return a
    return min(a, b)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (all at once when size is 0)."""
    if size <= 0 or len(items) <= size:
        yield items
        return
    for start in range(0, len(items), size):
        yield items[start : start + size]
