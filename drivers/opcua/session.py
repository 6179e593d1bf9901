"""One OPC UA session: connect (security, trust, identity), raw services, teardown.

A fresh asyncua ``Client`` per session: asyncua's own reconnect is off, because the
scheduler owns retries and backoff for every device alike, and because after a
reconnect the driver must re-resolve namespaces and browse paths and recreate its
monitored items one by one, which only it knows how to do. asyncua still watches the
connection (it probes the server state every ``keepalive_interval``) and reports a
lost one to the subscriptions; :attr:`Session.alive` turns false and the next poll
reconnects.

Services go through ``client.uaclient`` with request objects built once by the
driver: no Node object per value, nothing but the request on the hot path. Every
asyncua failure becomes a :class:`~edge_agent.errors.DriverError` whose reason is
what the bad samples carry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import structlog
from asyncua import Client, ua
from asyncua.client.ua_client import OpenSecureChannelResult, UaClientState, UASocketProtocol
from asyncua.common.utils import Buffer, NotEnoughData
from asyncua.ua.ua_binary import nodeid_from_binary, struct_from_binary
from asyncua.ua.uaerrors import BadTooManyOperations, UaError, UaStatusCodeError

from drivers.opcua.answered import note_sent
from drivers.opcua.limits import OperationLimits, ReadSize, chunks
from drivers.opcua.quality import status_name
from drivers.opcua.security import (
    MODES,
    POLICIES,
    POLICY_URIS,
    OwnCertificateSource,
    Pki,
    UntrustedCertificate,
    file_thumbprint,
)
from drivers.opcua.security import first_certificate as _first_certificate
from edge_agent.config.opcua import CertificateIdentity, OpcUaDeviceConfig, UsernameIdentity
from edge_agent.errors import DriverConnectError, DriverError, DriverReadError
from edge_agent.model import REASON_DISCONNECTED, REASON_TIMEOUT

log = structlog.get_logger("edge_agent.opcua")

# asyncua logs each lost connection, failed publish and revised parameter at WARNING or
# ERROR, with tracebacks, on every reconnect attempt; the scheduler reports a device's
# state once per change instead. Set a level on the "asyncua" logger to see them.
_ASYNCUA_LOG = logging.getLogger("asyncua")
if _ASYNCUA_LOG.level == logging.NOTSET:
    _ASYNCUA_LOG.setLevel(logging.CRITICAL)

T = TypeVar("T")
R = TypeVar("R")

#: Reason of the bad samples of a device whose server certificate is not trusted.
REASON_UNTRUSTED = "untrusted server certificate"
#: Seconds a polite CloseSession may take when the agent stops or reconnects.
CLOSE_TIMEOUT = 2.0

PublishCallback = Callable[[ua.PublishResult], None]


#: What a server answers when it does not accept the agent's application certificate
#: (in OpenSecureChannel, as node-opcua does, or in CreateSession, as asyncua does).
CERTIFICATE_REFUSALS = frozenset(
    {
        "BadSecurityChecksFailed",
        "BadCertificateUntrusted",
        "BadCertificateInvalid",
        "BadCertificateUriInvalid",
        "BadCertificateUseNotAllowed",
        "BadCertificateTimeInvalid",
        "BadCertificateIssuerTimeInvalid",
        "BadCertificateRevoked",
        "BadCertificateIssuerRevoked",
        "BadCertificateRevocationUnknown",
        "BadCertificateIssuerRevocationUnknown",
        "BadCertificateChainIncomplete",
        "BadCertificatePolicyCheckFailed",
        "BadSecurityPolicyRejected",
    }
)


class _ChannelProtocol(UASocketProtocol):
    """asyncua's socket protocol, keeping the server's answer to OpenSecureChannel and
    reporting each request it sends (:mod:`drivers.opcua.answered`).

    A server that refuses the channel (node-opcua, for an application certificate it
    does not trust) answers the OPN with a ServiceFault. asyncua hands that answer to
    the waiting request before it fails to decode it, and the request then fails an
    assertion: "AssertionError" is all that would be left of BadSecurityChecksFailed.
    """

    _channel_answer: Buffer | None = None

    def _send_request(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        future = super()._send_request(*args, **kwargs)
        note_sent(future)  # a write tells the server's answer from a channel failure
        return future

    def _call_callback(self, request_id: int, body: Buffer | ua.Acknowledge) -> None:
        exchange = self._open_secure_channel_exchange
        if isinstance(exchange, ua.OpenSecureChannelParameters) and isinstance(body, Buffer):
            self._channel_answer = body.copy()  # an OPN in flight: rare, so copy
        super()._call_callback(request_id, body)

    async def open_secure_channel(
        self, params: ua.OpenSecureChannelParameters
    ) -> OpenSecureChannelResult:
        self._channel_answer = None
        try:
            return await super().open_secure_channel(params)
        except AssertionError:
            code = _service_result(self._channel_answer)
            if code is None:
                raise
            raise UaStatusCodeError(code) from None  # type: ignore[no-untyped-call]


def _service_result(answer: Buffer | None) -> int | None:
    """The bad ServiceResult of a response (ServiceFault or any other), else None."""
    if answer is None:
        return None
    try:
        nodeid_from_binary(answer)
        header = struct_from_binary(ua.ResponseHeader, answer)
    except (NotEnoughData, UaError, ValueError, struct.error):
        return None  # undecodable: keep asyncua's own error
    code = header.ServiceResult
    return None if code.is_good() else int(code.value)


def _keep_channel_answers(client: Client) -> None:
    """Have ``client`` build :class:`_ChannelProtocol` sockets (same object, two
    methods more: asyncua offers no factory argument for its protocol)."""
    uaclient = client.uaclient
    make = uaclient._make_protocol  # noqa: SLF001 - asyncua has no protocol factory argument

    def make_protocol() -> UASocketProtocol:
        protocol = make()
        protocol.__class__ = _ChannelProtocol
        return protocol

    uaclient._make_protocol = make_protocol  # type: ignore[method-assign]  # noqa: SLF001


def map_error(exc: BaseException, *, connecting: bool = False) -> DriverError:
    """The DriverError (with the reason bad samples carry) for an asyncua failure."""
    kind = DriverConnectError if connecting else DriverReadError
    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, UaStatusCodeError):
        return kind(status_name(exc.code), str(exc))
    if isinstance(exc, TimeoutError):
        return kind(REASON_TIMEOUT, "no answer within the request timeout")
    if isinstance(exc, ConnectionError | OSError):
        return kind(REASON_DISCONNECTED, str(exc) or type(exc).__name__)
    if isinstance(exc, UaError):
        return kind("protocol error", str(exc))
    return kind("protocol error", f"{type(exc).__name__}: {exc}")


class Session:
    """A connected, activated session with one device (see the module docstring)."""

    def __init__(self, client: Client, config: OpcUaDeviceConfig) -> None:
        self.client = client
        self.config = config
        self.limits = OperationLimits()
        self._read_size = ReadSize()
        self._lost: DriverError | None = None
        #: True once a read reported the loss (see OpcUaDriver.connected).
        self.loss_reported = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(cls, config: OpcUaDeviceConfig, pki: Pki, own: OwnCertificateSource) -> Session:
        """Connect, secure, authenticate; raise DriverConnectError on any failure."""
        client = Client(
            config.endpoint,
            timeout=config.timeout,
            watchdog_intervall=config.keepalive_interval,
        )
        client.application_uri = own.uri
        client.name = client.description = f"edge-agent {own.uri.rsplit(':', 1)[-1]}"
        client.product_uri = "urn:edge-agent"
        client.session_timeout = max(60_000, math.ceil(config.keepalive_interval * 4_000))
        _keep_channel_answers(client)
        cert_file: Path | None = None
        try:
            cert_file = await _configure(client, config, pki, own)
            await client.connect(auto_reconnect=False)
        except BaseException as exc:
            client.disconnect_socket()
            if isinstance(exc, Exception) and not isinstance(exc, DriverError):
                error = map_error(exc, connecting=True)
                if cert_file is not None and error.reason in CERTIFICATE_REFUSALS:
                    error = _refused(error, cert_file)
                raise error from exc
            raise
        session = cls(client, config)
        # asyncua's keepalive probe (a read of the server state every keepalive_interval,
        # answered within it) is what notices a server that stopped answering while its
        # socket stays open (a frozen process, a hung PLC runtime): say so in the reason.
        client.connection_lost_callback = session._connection_lost
        try:
            session.limits = await session._read_limits()
        except BaseException:
            await session.close()
            raise
        return session

    @property
    def alive(self) -> bool:
        return self._lost is None and self.client.uaclient.state is UaClientState.CONNECTED

    async def _connection_lost(self, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            keepalive = self.config.keepalive_interval
            self.mark_lost(
                DriverReadError(
                    REASON_TIMEOUT,
                    f"the server did not answer the keepalive probe within {keepalive:g}s",
                )
            )
        else:
            self.mark_lost(map_error(exc))
        # Drop the socket: the requests still waiting on a server that stopped answering
        # (a read group's bulk read) fail now instead of each at its own timeout.
        self.client.disconnect_socket()

    def mark_lost(self, error: DriverError) -> None:
        """Called when a watchdog or a status change tells the session is gone."""
        if self._lost is None:
            self._lost = error

    @property
    def lost_reason(self) -> DriverError | None:
        """Why the session is gone (a fresh error each time: one raised object would
        collect a traceback per raise), or None while it is alive."""
        if self._lost is not None:
            return DriverReadError(self._lost.reason, self._lost.detail)
        if self.client.uaclient.state is not UaClientState.CONNECTED:
            return DriverReadError(REASON_DISCONNECTED, "session lost")
        return None

    async def close(self) -> None:
        """CloseSession if the server still answers (bounded), then drop the socket."""
        try:
            if self.client.uaclient.state is UaClientState.CONNECTED:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await self.client.disconnect()
            else:
                with contextlib.suppress(Exception):
                    await self.client.close_session()
        except (TimeoutError, UaError, OSError, ConnectionError) as exc:
            log.debug("closing the OPC UA session failed", error=repr(exc))
        finally:
            self.client.disconnect_socket()
            # asyncua cancels its publish loop only when the socket is still up; after a
            # lost connection the loop would linger in its 1 s retry sleep.
            publish = self.client.uaclient.session._publish_task  # noqa: SLF001 - no API for it
            if publish is not None and not publish.done():
                publish.cancel()
                await asyncio.wait([publish])

    # ------------------------------------------------------------------- services

    async def read(self, nodes: Sequence[ua.ReadValueId]) -> list[ua.DataValue]:
        """Read ``nodes`` in chunks that fit MaxNodesPerRead, announced or learned.

        A BadTooManyOperations refusal costs only its chunk: :class:`ReadSize` picks the
        next size, and the nodes are read on from where the refusal was.
        """
        if not nodes:
            return []  # an empty Read is BadNothingToDo, not "nothing to report"
        learning = self._read_size
        results: list[ua.DataValue] = []
        while len(results) < len(nodes):
            start = len(results)
            size = learning.next(self.limits.max_nodes_per_read) or len(nodes)
            chunk = nodes[start : start + size]
            try:
                results.extend(await self._read_chunk(chunk))
            except BadTooManyOperations:
                if len(chunk) <= 1:
                    raise DriverReadError(
                        "BadTooManyOperations", "even one node per read"
                    ) from None
                learning.on_refused(len(chunk))
                self.limits.max_nodes_per_read = learning.accepted or learning.next(0)
                continue
            if learning.refused and not learning.learned:
                self._accepted(len(chunk))
        return results

    def _accepted(self, size: int) -> None:
        """A chunk of ``size`` was read while the read limit is being learned."""
        learning = self._read_size
        learning.on_accepted(size)
        self.limits.max_nodes_per_read = learning.accepted or learning.next(0)
        if learning.learned:
            log.info(
                "server refuses reads of more nodes than it announced; reading in chunks",
                device=self.config.name,
                max_nodes_per_read=learning.accepted,
                refused_reads=learning.refusals,
            )

    async def _read_chunk(self, nodes: Sequence[ua.ReadValueId]) -> list[ua.DataValue]:
        params = ua.ReadParameters()
        params.MaxAge = 0
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        params.NodesToRead = list(nodes)
        try:
            return await self.client.uaclient.read(params)
        except BadTooManyOperations:
            raise
        except (UaError, OSError, TimeoutError, ConnectionError) as exc:
            raise map_error(exc) from exc

    async def translate(self, paths: Sequence[ua.BrowsePath]) -> list[ua.BrowsePathResult]:
        out: list[ua.BrowsePathResult] = []
        for chunk in chunks(paths, self.limits.max_nodes_per_translate):
            out.extend(
                await self.call(self.client.uaclient.translate_browsepaths_to_nodeids, list(chunk))
            )
        return out

    async def create_subscription(
        self, params: ua.CreateSubscriptionParameters, callback: PublishCallback
    ) -> ua.CreateSubscriptionResult:
        return await self.call(self.client.uaclient.create_subscription, params, callback)

    async def create_monitored_items(
        self, subscription_id: int, items: Sequence[ua.MonitoredItemCreateRequest]
    ) -> list[ua.MonitoredItemCreateResult]:
        """Create items in chunks of MaxMonitoredItemsPerCall; each item has its result."""
        out: list[ua.MonitoredItemCreateResult] = []
        size = self.limits.max_monitored_items_per_call
        pending = list(items)
        while pending:
            chunk = pending[: size or len(pending)]
            params = ua.CreateMonitoredItemsParameters()
            params.SubscriptionId = subscription_id
            params.TimestampsToReturn = ua.TimestampsToReturn.Both
            params.ItemsToCreate = chunk
            try:
                out.extend(await self.client.uaclient.create_monitored_items(params))
            except BadTooManyOperations:
                if len(chunk) <= 1:
                    raise DriverReadError(
                        "BadTooManyOperations", "even one item per call"
                    ) from None
                size = len(chunk) // 2
                self.limits.max_monitored_items_per_call = size
                continue
            except (UaError, OSError, TimeoutError, ConnectionError) as exc:
                raise map_error(exc) from exc
            pending = pending[len(chunk) :]
        return out

    async def call(self, method: Callable[..., Awaitable[R]], *args: object) -> R:
        """Any other service of ``client.uaclient``, with failures mapped to DriverError."""
        try:
            return await method(*args)
        except (UaError, OSError, TimeoutError, ConnectionError) as exc:
            raise map_error(exc) from exc

    async def _read_limits(self) -> OperationLimits:
        values = await self.read(OperationLimits.read_value_ids())
        return OperationLimits.from_values(
            values,
            max_nodes_per_read=self.config.max_nodes_per_read,
            max_items=self.config.max_monitored_items_per_call,
        )


async def _configure(
    client: Client, config: OpcUaDeviceConfig, pki: Pki, own_certificate: OwnCertificateSource
) -> Path | None:
    """Security (with the trust check) and user identity, before connecting; the
    application certificate the agent presents (None without security)."""
    security = config.security
    cert_file: Path | None = None
    if security.policy != "None":
        # Ours first, then the server's check: when the server's certificate is new, both
        # sides have a certificate to trust after this one attempt, not after two.
        if security.certificate_file:
            cert_file = Path(security.certificate_file)
            key_file = Path(security.private_key_file)
        else:
            own = own_certificate()
            cert_file, key_file = own.cert_file, own.key_file
        server_cert = await _trusted_server_certificate(client, config, pki)
        await client.set_security(
            POLICIES[security.policy],
            certificate=str(cert_file),
            private_key=str(key_file),
            server_certificate=server_cert,
            mode=MODES[security.mode],
        )
    identity = config.identity
    if isinstance(identity, UsernameIdentity):
        client.set_user(identity.username)
        client.set_password(identity.password)
    elif isinstance(identity, CertificateIdentity):
        await client.load_client_certificate(identity.certificate_file)
        await client.load_private_key(
            Path(identity.private_key_file), identity.private_key_password or None
        )
    return cert_file


def _refused(error: DriverError, cert_file: Path) -> DriverConnectError:
    """The server refused the agent's application certificate: say which file to trust."""
    print_ = file_thumbprint(cert_file)
    which = f"{cert_file} (thumbprint {print_})" if print_ else str(cert_file)
    return DriverConnectError(
        error.reason,
        f"the server refused the agent's application certificate: trust {which} on the "
        "server (for example copy it into its PKI's trusted certificates); the agent "
        "connects at its next attempt",
    )


async def _trusted_server_certificate(client: Client, config: OpcUaDeviceConfig, pki: Pki) -> bytes:
    """The certificate of the endpoint the config asks for, once it passed the trust list."""
    endpoints = await client.connect_and_get_server_endpoints()
    policy_uri = POLICY_URIS[config.security.policy]
    mode = MODES[config.security.mode]
    for endpoint in endpoints:
        if endpoint.SecurityPolicyUri == policy_uri and endpoint.SecurityMode == mode:
            break
    else:
        offered = sorted(
            {
                f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name.rstrip('_')}"
                for e in endpoints
            }
        )
        raise DriverConnectError(
            "no matching endpoint",
            f"the server offers no {config.security.policy}/{config.security.mode} "
            f"endpoint (it offers {', '.join(offered)})",
        )
    if not endpoint.ServerCertificate:
        raise DriverConnectError("no server certificate", "the secured endpoint sent none")
    der = _first_certificate(endpoint.ServerCertificate)
    try:
        pki.check_server(
            der,
            endpoint.Server.ApplicationUri,
            trust_on_first_use=config.security.trust_on_first_use,
        )
    except UntrustedCertificate as exc:
        _untrusted(exc, config)
    return der


def _untrusted(exc: UntrustedCertificate, config: OpcUaDeviceConfig) -> NoReturn:
    info = exc.info
    if exc.new:
        # Once per certificate, not on every retry: the scheduler retries with backoff.
        log.warning(
            "OPC UA server certificate is not trusted; refused",
            device=config.name,
            certificate=str(info.path),
            subject=info.subject,
            thumbprint=info.thumbprint,
            trust_with=f"edge-agent certs trust {info.name} -c <plant file>",
        )
    raise DriverConnectError(
        REASON_UNTRUSTED,
        f"{info.subject} ({info.thumbprint}) saved as rejected/{info.path.name}; "
        f"trust it with: edge-agent certs trust {info.name} -c <plant file>",
    )
