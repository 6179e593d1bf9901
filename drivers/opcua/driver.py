"""OpcUaDriver: one OPC UA server, its poll groups in read or subscribe mode.

The scheduler's pull contract holds for both modes (:mod:`drivers.opcua.groups`):
a read group answers each read with one batch of every tag; a subscribe group with
what changed since the last read and a proof of life.

A lost session (closed socket, unanswered keepalive probe, silent subscription) is
reported by the next read, as a DriverConnectError with the loss's reason, before any
reconnect: :attr:`OpcUaDriver.connected` stays true until then. So the poll that meets a
loss turns its tags bad and the device offline at once, instead of spending its budget on a
reconnect, whose success would hide the outage (docs/OPCUA.md, "The bound"). The
scheduler then reconnects with its backoff.

After every connect, namespace URIs and browse paths are resolved again and
monitored items are created again, each with its own result: an unknown node makes
one tag bad with the server's reason (``BadNodeIdUnknown``) and every other tag
keeps flowing. Tags that could not be resolved or monitored are retried every
:data:`RETRY_SECONDS` without a reconnect.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

import structlog

from drivers.opcua.groups import Group, ReadGroup, SubscribeGroup
from drivers.opcua.limits import chunks
from drivers.opcua.methods import MethodCalls
from drivers.opcua.nodes import resolve
from drivers.opcua.security import OwnCertificateSource, Pki, application_uri
from drivers.opcua.session import Session
from drivers.opcua.writes import TagWrites
from edge_agent.config import PlantConfig
from edge_agent.config.opcua import OpcUaDeviceConfig
from edge_agent.driver import GroupSpec, PreparedWrite, TagReading
from edge_agent.errors import DriverConnectError, DriverError, DriverReadError
from edge_agent.model import SampleBatch

log = structlog.get_logger("edge_agent.opcua")

#: Seconds between attempts to resolve (or monitor) the tags that failed at connect.
RETRY_SECONDS = 60.0
#: Requests a connect makes before the first read (endpoints, channel, session,
#: limits, namespaces, browse paths, data types, enum strings), for the guard timeout.
CONNECT_REQUESTS = 10
#: Seconds added to every read budget for scheduling slack.
BUDGET_SLACK = 1.0


def _reported(session: Session, loss: DriverError) -> DriverConnectError:
    """The loss of ``session`` as the scheduler must see it: the device is offline and
    reconnects with its backoff (meanwhile every poll answers bad with this reason)."""
    session.loss_reported = True
    if isinstance(loss, DriverConnectError):
        return loss
    return DriverConnectError(loss.reason, loss.detail or "session lost")


class OpcUaDriver:
    def __init__(self, config: OpcUaDeviceConfig, pki: Pki, own: OwnCertificateSource) -> None:
        self.config = config
        self.pki = pki
        self._own = own
        self._groups: dict[str, Group] = {}
        for group in config.poll_groups:
            if group.mode == "subscribe":
                self._groups[group.name] = SubscribeGroup(config, group)
            else:
                self._groups[group.name] = ReadGroup(config, group)
        self._session: Session | None = None
        self._tag_count = sum(len(g.tags) for g in config.poll_groups)
        self._writes = TagWrites(config, list(self._groups.values()), lambda: self._session)
        self._methods = MethodCalls(config, lambda: self._session)

    @property
    def device(self) -> str:
        return self.config.name

    @property
    def groups(self) -> Sequence[GroupSpec]:
        return [g.spec for g in self._groups.values()]

    @property
    def connected(self) -> bool:
        # A lost session counts as connected until a read has reported the loss: the
        # poll that notices it turns its tags bad and the device offline at once. Were
        # it to reconnect first, a server that stops answering (its socket still open)
        # would keep that poll, and every other group's behind the connect lock, silent
        # for a connect's whole budget, and a reconnect that succeeds would hide the loss.
        session = self._session
        return session is not None and (session.alive or not session.loss_reported)

    @property
    def session(self) -> Session | None:
        return self._session

    async def connect(self) -> None:
        """(Re)open the session, resolve every tag, create the subscriptions."""
        if self._session is not None:
            old, self._session = self._session, None
            await old.close()
        session = await Session.open(self.config, self.pki, self._own)
        try:
            # One resolution for every group: a few requests per connect, not per group.
            groups = list(self._groups.values())
            resolution = await resolve(
                session,
                [a for g in groups for a in g.tags.addresses],
                [t.enum for g in groups for t in g.tags.config.tags],
            )
            start = 0
            for group in groups:
                end = start + len(group.tags.addresses)
                await group.attach(session, resolution.part(start, end))
                group.tags.next_retry = time.monotonic() + RETRY_SECONDS
                start = end
            await self._writes.check_access(session)
        except BaseException as exc:
            await session.close()
            if isinstance(exc, DriverError) and not isinstance(exc, DriverConnectError):
                raise DriverConnectError(exc.reason, exc.detail) from exc
            raise
        self._session = session
        missing = {
            g.spec.names[i]: g.tags.missing[i]
            for g in self._groups.values()
            for i in g.unresolved()
        }
        log.info(
            "OPC UA session open",
            device=self.device,
            endpoint=self.config.endpoint,
            security=f"{self.config.security.policy}/{self.config.security.mode}",
            max_nodes_per_read=session.limits.max_nodes_per_read or "unlimited",
            bad_tags=missing or None,
        )

    async def read(self, group: str) -> Sequence[SampleBatch]:
        session = self._session
        if session is None:
            raise DriverReadError("disconnected", "no session")
        compiled = self._groups[group]
        lost = session.lost_reason
        if lost is not None:
            # Changes that arrived before the loss go on first; the loss on the next read.
            pending = compiled.pending() if isinstance(compiled, SubscribeGroup) else []
            if pending:
                return pending
            raise _reported(session, lost)
        try:
            if compiled.unresolved() and time.monotonic() >= compiled.tags.next_retry:
                await self._retry(session, compiled)
            return await compiled.read(session)
        except DriverError as exc:
            lost = session.lost_reason
            if lost is None:
                raise
            raise _reported(session, lost) from exc  # this read noticed the loss, or met it

    async def _retry(self, session: Session, group: Group) -> None:
        group.tags.next_retry = time.monotonic() + RETRY_SECONDS
        positions = group.unresolved()
        resolution = await resolve(
            session,
            [group.tags.addresses[i] for i in positions],
            [group.tags.config.tags[i].enum for i in positions],
        )
        await group.retry(session, positions, resolution)

    def record_raw(self, on: bool = True) -> None:
        """Nothing to record: a value's source is its node (see :meth:`raw`)."""

    def raw(self, group: str) -> Sequence[str]:
        """Each tag's node id (``ns=2;s=Line1.Power``); a browse path with what it resolved to."""
        tags = self._groups[group].tags
        shown = []
        for n, tag in enumerate(tags.config.tags):
            node_id = tags.node_ids[n] if n < len(tags.node_ids) else None
            resolved = None if node_id is None else node_id.to_string()
            same = resolved is None or resolved == tag.node
            shown.append(tag.node if same else f"{tag.node} -> {resolved}")
        return shown

    def read_budget(self, group: str) -> float:
        """Worst case: a connect (every request one timeout) plus this group's reads."""
        compiled = self._groups[group]
        limit = self._session.limits.max_nodes_per_read if self._session else 0
        reads = sum(1 for _ in chunks(range(len(compiled.spec.names)), limit))
        connect = CONNECT_REQUESTS + sum(1 for _ in chunks(range(self._tag_count), limit))
        return self.config.timeout * (connect + reads) + BUDGET_SLACK

    # ------------------------------------------------------------------ writes
    # The Writes capability (edge_agent.driver.Writes): drivers.opcua.writes and
    # drivers.opcua.methods, on the session the polls use.

    async def prepare(self, tag: str, value: bool | int | float | str) -> PreparedWrite:
        return await self._writes.prepare(tag, value)

    async def write(self, prepared: PreparedWrite) -> None:
        await self._writes.write(prepared)

    async def read_tag(self, tag: str) -> TagReading:
        return await self._writes.read_tag(tag)

    async def call(
        self, method: str, args: Mapping[str, bool | int | float | str]
    ) -> tuple[bool | int | float | str, ...]:
        return await self._methods.call(method, args)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def build_opcua_drivers(
    plant: PlantConfig, devices: Iterable[OpcUaDeviceConfig] | None = None
) -> list[OpcUaDriver]:
    """One driver (one session) per OPC UA device of ``plant``, sharing one PKI."""
    pki = Pki.for_state_dir(plant.state_dir)
    own = OwnCertificateSource(pki, application_uri(plant.plant.name))
    chosen = devices if devices is not None else plant.devices
    return [OpcUaDriver(d, pki, own) for d in chosen if isinstance(d, OpcUaDeviceConfig)]


__all__ = ["OpcUaDriver", "OwnCertificateSource", "build_opcua_drivers"]
