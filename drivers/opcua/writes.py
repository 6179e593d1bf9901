"""The OPC UA driver's writes: a tag's Value attribute, typed by the node, sent once.

:meth:`TagWrites.prepare` checks everything that can be checked without writing: the
node is resolved, this session's user may write it (UserAccessLevel), it is not an
array, and the value fits the node's own DataType (:mod:`drivers.opcua.encode`).
:meth:`TagWrites.write` sends one Write of the Value attribute (no timestamps, no
status: the server stamps it) on the device's session, the one the polls and
subscriptions use, and never sends it again: a Good status returns, a Bad status
answering it is :class:`WriteFailed` with the code, and no answer (a timeout, the
connection or the channel failing after sending) is :class:`WriteOutcomeUnknown`,
which the gate resolves by reading the tag back. What is known per node is read once
per session (:class:`FactCache`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from asyncua import ua
from asyncua.ua.status_codes import get_name_and_doc
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from drivers.opcua.answered import watch
from drivers.opcua.convert import decode
from drivers.opcua.encode import encode
from drivers.opcua.groups import Group
from drivers.opcua.nodeinfo import BaseType, NodeFacts, base_type, read_facts
from drivers.opcua.quality import status_name
from drivers.opcua.session import Session
from edge_agent.config.opcua import OpcUaDeviceConfig, OpcUaTag
from edge_agent.driver import (
    PreparedWrite,
    TagReading,
    WriteFailed,
    WriteOutcomeUnknown,
    WriteRefused,
)
from edge_agent.errors import DriverError, DriverReadError
from edge_agent.model import REASON_DISCONNECTED, Quality

log = structlog.get_logger("edge_agent.opcua")

R = TypeVar("R")
#: Seconds a write (or call) may take beyond the device's timeout (waiting its turn
#: behind the session's other requests) before its outcome counts as unknown.
SEND_SLACK = 1.0
_SEVERITY_MASK = 0xC000_0000


def status_words(code: int) -> str:
    """``BadTypeMismatch (0x80740000): The value supplied ...``: name, hex, meaning."""
    name = status_name(code)
    _, doc = get_name_and_doc(code & 0xFFFF_0000)
    shown = f"{name} (0x{code:08X})" if not name.startswith("0x") else name
    return f"{shown}: {doc}" if doc and not doc.startswith("Unknown") else shown


def live_session(session: Session | None) -> Session:
    """The session to send on; DriverReadError when there is none (nothing is sent)."""
    if session is None:
        raise DriverReadError(REASON_DISCONNECTED, "no session")
    lost = session.lost_reason
    if lost is not None:
        raise lost
    return session


async def send_once(service: Callable[[], Awaitable[R]], answer_within: float, what: str) -> R:
    """Send one request that changes the device, once; map what can go wrong.

    Before this is called nothing was sent; once it runs, the request may have
    reached the server, so anything but the server's answer to this very request is
    :class:`WriteOutcomeUnknown`. Only a Bad status answering it (a ServiceFault, a
    bad ServiceResult) is :class:`WriteFailed`: the same status from a failing
    channel (an ERR message fails every pending request) says nothing about whether
    the server took it (:mod:`drivers.opcua.answered`).
    """
    with watch() as exchange:
        try:
            async with asyncio.timeout(answer_within + SEND_SLACK):
                return await service()
        except UaStatusCodeError as exc:
            if exchange.answered():
                raise WriteFailed(
                    f"the server refused the {what}: {status_words(exc.code)}"
                ) from exc
            raise WriteOutcomeUnknown(
                f"the connection failed after the {what} was sent ({status_words(exc.code)}): "
                "the device may or may not have taken it (not sent again)"
            ) from exc
        except TimeoutError as exc:
            raise WriteOutcomeUnknown(
                f"no answer to the {what} within {answer_within:g}s: the device may or may "
                "not have taken it (not sent again)"
            ) from exc
        except (ConnectionError, OSError, UaError) as exc:
            raise WriteOutcomeUnknown(
                f"the connection failed after the {what} was sent ({exc or type(exc).__name__}): "
                "the device may or may not have taken it (not sent again)"
            ) from exc


def outcome_of(code: int, what: str) -> None:
    """Return for a Good status; WriteFailed for Bad, WriteOutcomeUnknown for Uncertain."""
    severity = code & _SEVERITY_MASK
    if severity == 0:
        return
    if severity == 0x4000_0000:
        raise WriteOutcomeUnknown(
            f"the server answered the {what} with {status_words(code)} (uncertain)"
        )
    raise WriteFailed(f"the server refused the {what}: {status_words(code)}")


@dataclass(slots=True)
class FactCache:
    """What has been read about nodes and DataTypes on one session."""

    session: Session | None = None
    facts: dict[ua.NodeId, NodeFacts] = field(default_factory=dict)
    bases: dict[ua.NodeId, BaseType] = field(default_factory=dict)

    def on(self, session: Session) -> FactCache:
        """This cache, emptied if it was filled on another session."""
        if self.session is not session:
            self.session = session
            self.facts.clear()
            self.bases.clear()
        return self

    async def node(self, node: ua.NodeId) -> NodeFacts:
        assert self.session is not None
        hit = self.facts.get(node)
        if hit is None:
            (hit,) = await read_facts(self.session, [node])
            self.facts[node] = hit
        return hit

    async def base(self, data_type: ua.NodeId) -> BaseType:
        assert self.session is not None
        hit = self.bases.get(data_type)
        if hit is None:
            hit = await base_type(self.session, data_type)
            self.bases[data_type] = hit
        return hit


@dataclass(frozen=True, slots=True)
class _Payload:
    """What :meth:`TagWrites.write` sends, and the session it was checked on."""

    session: Session
    node: ua.NodeId
    variant: ua.Variant


@dataclass(frozen=True, slots=True)
class _Where:
    group: Group
    index: int

    @property
    def tag(self) -> OpcUaTag:
        return self.group.tags.config.tags[self.index]

    @property
    def node(self) -> ua.NodeId | None:
        ids = self.group.tags.node_ids
        return ids[self.index] if self.index < len(ids) else None

    @property
    def missing(self) -> str:
        missing = self.group.tags.missing
        return (missing[self.index] if self.index < len(missing) else "") or "not resolved"

    @property
    def enum(self) -> Mapping[int, str] | None:
        enums = self.group.assembler.enums
        return enums[self.index] if self.index < len(enums) else None


class TagWrites:
    """Writes to a device's tags over its current session (see the module docstring)."""

    def __init__(
        self,
        config: OpcUaDeviceConfig,
        groups: Sequence[Group],
        session: Callable[[], Session | None],
    ) -> None:
        self.config = config
        self._session = session
        self._where = {
            tag.name: _Where(group, i)
            for group in groups
            for i, tag in enumerate(group.tags.config.tags)
        }
        self._cache = FactCache()
        #: (tag, reason) already logged by :meth:`check_access`: said once, not per connect.
        self._warned: set[tuple[str, str]] = set()

    def _find(self, tag: str) -> _Where:
        where = self._where.get(tag)
        if where is None:
            raise WriteRefused(f"device {self.config.name} has no tag {tag}")
        return where

    async def prepare(self, tag: str, value: bool | int | float | str) -> PreparedWrite:
        where = self._find(tag)
        session = live_session(self._session())
        node = where.node
        if node is None:
            raise WriteRefused(
                f"tag {tag}: its node {where.tag.node} is not on the server ({where.missing})"
            )
        cache = self._cache.on(session)
        facts = await cache.node(node)
        problem = facts.not_writable()
        if problem:
            raise WriteRefused(f"tag {tag} ({node.to_string()}) cannot be written: {problem}")
        if facts.array():
            raise WriteRefused(
                f"tag {tag} ({node.to_string()}) holds an array (ValueRank "
                f"{facts.value_rank}): writing arrays is not supported"
            )
        assert facts.data_type is not None  # no problem: the DataType was read
        base = await cache.base(facts.data_type)
        if base.vtype is None:
            raise WriteRefused(f"tag {tag} ({node.to_string()}) cannot be written: {base.reason}")
        encoded = encode(value, base.vtype, where.enum, f"tag {tag}")
        return PreparedWrite(
            tag=tag,
            requested=value,
            expected=encoded.expected,
            sent=f"{node.to_string()} <- {encoded.shown}",
            payload=_Payload(session, node, encoded.variant),
        )

    async def write(self, prepared: PreparedWrite) -> None:
        payload = prepared.payload
        if not isinstance(payload, _Payload):
            raise WriteRefused(f"tag {prepared.tag}: not prepared by the OPC UA driver")
        try:
            session = live_session(self._session())
        except DriverError as exc:
            raise WriteRefused(f"device not connected ({exc.reason}): nothing was sent") from exc
        if session is not payload.session:
            # The NodeId, the type or the access may differ on the new session.
            raise WriteRefused(
                "the device reconnected after the value was checked: nothing was sent; "
                "send the command again"
            )
        params = ua.WriteParameters()
        params.NodesToWrite = [
            ua.WriteValue(
                NodeId=payload.node,
                AttributeId=ua.AttributeIds.Value,
                # No timestamps and no status: the server stamps the value itself (many
                # servers refuse a client's timestamps with BadWriteNotSupported).
                Value=ua.DataValue(Value=payload.variant, StatusCode=None),
            )
        ]
        what = f"write of {prepared.sent}"
        results = await send_once(
            lambda: session.client.uaclient.write(params), self.config.timeout, what
        )
        if len(results) != 1:
            raise WriteOutcomeUnknown(
                f"the server answered the {what} with {len(results)} results instead of one"
            )
        outcome_of(results[0].value, what)

    async def read_tag(self, tag: str) -> TagReading:
        where = self._where.get(tag)
        if where is None:
            return TagReading(None, False, f"device {self.config.name} has no tag {tag}")
        session = live_session(self._session())
        node = where.node
        if node is None:
            return TagReading(None, False, where.missing)
        (data,) = await session.read(
            [ua.ReadValueId(NodeId=node, AttributeId=ua.AttributeIds.Value)]
        )
        limit = where.tag.max_array_length or self.config.max_array_length
        value, quality, reason = decode(data, where.enum, limit)
        if isinstance(value, list):
            return TagReading(None, False, "an array: not one value")
        if quality is not Quality.GOOD:
            return TagReading(None, False, reason or quality.name.lower())
        return TagReading(value, True)

    async def check_access(self, session: Session) -> None:
        """At connect: say once, in words, which tags with a ``write:`` block the server
        will not let this session write (prepare refuses them too)."""
        chosen = [
            (name, where, where.node)
            for name, where in self._where.items()
            if where.tag.write is not None and where.node is not None
        ]
        if not chosen:
            return
        cache = self._cache.on(session)
        facts = await read_facts(session, [node for _, _, node in chosen if node is not None])
        for (name, where, node), fact in zip(chosen, facts, strict=True):
            assert node is not None
            cache.facts[node] = fact
            problem = fact.not_writable() or (
                f"it holds an array (ValueRank {fact.value_rank})" if fact.array() else ""
            )
            if problem and (name, problem) not in self._warned:
                self._warned.add((name, problem))
                log.warning(
                    "OPC UA tag has a write: block but cannot be written",
                    device=self.config.name,
                    tag=name,
                    node=where.tag.node,
                    reason=problem,
                )


__all__ = [
    "FactCache",
    "TagWrites",
    "live_session",
    "outcome_of",
    "send_once",
    "status_words",
]
