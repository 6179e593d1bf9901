"""asyncua server internals for the simulator: a fast start, limits, users, a certificate.

* the standard address space (6,000 nodes, 2 s to build) is built once per process and
  copied for every further server (70 ms), so tests can start and restart servers;
* client sessions refuse requests above the configured operation limits with
  BadTooManyOperations (asyncua enforces none), count what was asked, and refuse to
  read variables whose AccessLevel forbids it (asyncua serves them regardless);
* users: anonymous if allowed, user name and password, or an allowed X.509 certificate;
* client writes are vetted by the simulator's :class:`~simulators.opcua_writes.OpcUaWrites`
  before asyncua stores them, and accepted ones handed to the models.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.address_space import AttributeValue, NodeData
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.standard_address_space import standard_address_space
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

if TYPE_CHECKING:
    from simulators.opcua_writes import OpcUaWrites

APPLICATION_URI = "urn:edge-agent:simulator"


@dataclass(frozen=True)
class OperationLimits:
    """Limits the simulator enforces (0: none), and whether it announces them."""

    max_nodes_per_read: int = 0
    max_monitored_items_per_call: int = 0
    max_nodes_per_browse: int = 0
    max_nodes_per_translate: int = 0
    #: False: enforce without announcing, like servers whose OperationLimits are empty.
    announced: bool = True


@dataclass
class RequestStats:
    """What clients asked of the server (sizes of the largest requests, refusals)."""

    reads: int = 0
    largest_read: int = 0
    #: Nodes asked in each Read, refused ones included, in order.
    read_sizes: list[int] = field(default_factory=list)
    item_calls: int = 0
    largest_item_call: int = 0
    refused: int = 0


_TEMPLATE: dict[ua.NodeId, NodeData] | None = None
_ANONYMOUS = User(role=UserRole.Anonymous)
_NOT_READABLE = ua.StatusCode(ua.StatusCodes.BadNotReadable)


def _clone(nodes: Mapping[ua.NodeId, NodeData]) -> dict[ua.NodeId, NodeData]:
    """Copy of the standard address space: own nodes and attribute slots, shared values.

    Values are replaced, never mutated, on write; so sharing them is safe, and a
    copy costs 70 ms where building the 6,000 standard nodes costs 2 s.
    """
    out: dict[ua.NodeId, NodeData] = {}
    for node_id, data in nodes.items():
        copy = NodeData(node_id)
        for attribute, slot in data.attributes.items():
            fresh = AttributeValue(slot.value)
            fresh.value_callback = slot.value_callback
            copy.attributes[attribute] = fresh
        copy.references = list(data.references)
        copy.call = data.call
        out[node_id] = copy
    return out


class LimitedSession(InternalSession):
    """A client session that refuses requests above the announced operation limits."""

    limits = OperationLimits()
    stats = RequestStats()
    unreadable: frozenset[ua.NodeId] = frozenset()
    writes: OpcUaWrites | None = None

    async def write(self, params: ua.WriteParameters) -> list[ua.StatusCode]:
        rules = self.writes
        if rules is None:
            return await super().write(params)
        verdicts = [rules.vet(item) for item in params.NodesToWrite]
        passing = [item for item, v in zip(params.NodesToWrite, verdicts, strict=True) if v is None]
        stored = iter(
            await super().write(ua.WriteParameters(NodesToWrite=passing)) if passing else []
        )
        results: list[ua.StatusCode] = []
        for item, verdict in zip(params.NodesToWrite, verdicts, strict=True):
            if verdict is not None:
                results.append(verdict)
                continue
            status = next(stored)
            results.append(status)
            if status.is_good():
                rules.apply(item)
        return results

    def _check(self, count: int, limit: int) -> None:
        if limit and count > limit:
            self.stats.refused += 1
            raise ServiceError(ua.StatusCodes.BadTooManyOperations)

    async def read(self, params: ua.ReadParameters) -> list[ua.DataValue]:
        count = len(params.NodesToRead)
        self.stats.read_sizes.append(count)
        self._check(count, self.limits.max_nodes_per_read)
        self.stats.reads += 1
        self.stats.largest_read = max(self.stats.largest_read, count)
        results = await super().read(params)
        if self.unreadable:
            # asyncua serves every value regardless of AccessLevel; real servers do not.
            for i, item in enumerate(params.NodesToRead):
                if item.NodeId in self.unreadable and item.AttributeId == ua.AttributeIds.Value:
                    results[i] = ua.DataValue(StatusCode=_NOT_READABLE)
        return results

    async def create_monitored_items(
        self, params: ua.CreateMonitoredItemsParameters
    ) -> list[ua.MonitoredItemCreateResult]:
        count = len(params.ItemsToCreate)
        self._check(count, self.limits.max_monitored_items_per_call)
        self.stats.item_calls += 1
        self.stats.largest_item_call = max(self.stats.largest_item_call, count)
        refused = [i.ItemToMonitor.NodeId in self.unreadable for i in params.ItemsToCreate]
        if not any(refused):
            return await super().create_monitored_items(params)
        params.ItemsToCreate = [
            item for item, no in zip(params.ItemsToCreate, refused, strict=True) if not no
        ]
        created = iter(await super().create_monitored_items(params))
        return [
            ua.MonitoredItemCreateResult(StatusCode=_NOT_READABLE) if no else next(created)
            for no in refused
        ]

    async def browse(self, params: ua.BrowseParameters) -> list[ua.BrowseResult]:
        self._check(len(params.NodesToBrowse), self.limits.max_nodes_per_browse)
        return await super().browse(params)

    async def translate_browsepaths_to_nodeids(
        self, params: list[ua.BrowsePath]
    ) -> list[ua.BrowsePathResult]:
        self._check(len(params), self.limits.max_nodes_per_translate)
        return await super().translate_browsepaths_to_nodeids(params)


class SimInternalServer(InternalServer):
    """Copies the standard address space instead of rebuilding it, limits sessions."""

    def __init__(self, limits: OperationLimits, stats: RequestStats) -> None:
        super().__init__()
        self._limits = limits
        self._stats = stats
        #: Nodes whose value is not readable (AccessLevel without CurrentRead).
        self.unreadable: frozenset[ua.NodeId] = frozenset()
        #: The simulator's write rules (None: asyncua's own).
        self.writes: OpcUaWrites | None = None

    async def load_standard_address_space(self, shelf_file: Path | None = None) -> None:
        global _TEMPLATE
        if _TEMPLATE is None:
            # Built once per process, on the loop's thread: asyncua would use a worker
            # thread, which outlives the call (and the tests' thread-leak check).
            standard_address_space.fill_address_space(self.node_mgt_service)
            _TEMPLATE = _clone(self.aspace._nodes)
            return
        self.aspace._nodes.update(_clone(_TEMPLATE))

    def create_session(
        self, name: str, user: User = _ANONYMOUS, external: bool = False
    ) -> InternalSession:
        if not external:
            return super().create_session(name, user, external)
        session = LimitedSession(
            self, self.aspace, self.subscription_service, name, user=user, external=external
        )
        session.limits = self._limits
        session.stats = self._stats
        session.unreadable = self.unreadable
        session.writes = self.writes
        return session


class Users:
    """Anonymous (if allowed), user name and password, or an allowed user certificate."""

    def __init__(
        self,
        passwords: Mapping[str, str],
        certificates: Iterable[bytes],
        *,
        allow_anonymous: bool,
    ) -> None:
        self._passwords = dict(passwords)
        self._certificates = {bytes(c) for c in certificates}
        self._anonymous = allow_anonymous

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        if username is not None:
            if self._passwords.get(username) == password and password is not None:
                return User(role=UserRole.User, name=username)
            return None
        if certificate is not None:
            der = certificate if isinstance(certificate, bytes) else _der(certificate)
            if der in self._certificates:
                return User(role=UserRole.User, name="x509")
        return User(role=UserRole.User) if self._anonymous else None


def _der(certificate: Any) -> bytes:
    if isinstance(certificate, x509.Certificate):
        return certificate.public_bytes(serialization.Encoding.DER)
    return bytes(certificate)


# ------------------------------------------------------------------- certificates


def server_certificate(directory: Path, hostname: str = "localhost") -> tuple[Path, Path]:
    """The simulator's certificate and key under ``directory``, created once."""
    cert_file = directory / "server_cert.der"
    key_file = directory / "server_key.pem"
    if cert_file.exists() and key_file.exists():
        return cert_file, key_file
    directory.mkdir(parents=True, exist_ok=True)
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "edge-agent simulator",
        {"organizationName": "edge-agent"},
        [
            x509.UniformResourceIdentifier(APPLICATION_URI),
            x509.DNSName(hostname),
            x509.DNSName(socket.gethostname()),
        ],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=3650,
    )
    key_file.write_bytes(cert_gen.dump_private_key_as_pem(key))
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return cert_file, key_file
