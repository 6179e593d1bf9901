"""Serve the equipment models over OPC UA (asyncua server, 127.0.0.1 only).

The same models as the Modbus simulators (:mod:`simulators.equipment`), with their
ground truth, under the namespace :data:`NAMESPACE_URI`::

    Objects/
      <unit>/                 one object per machine or meter (e.g. cnc-1)
        <quantity>            every model quantity, ns=<i>;s=<unit>.<quantity>
        state                 machines: MachineState enumeration (Off, Idle, Run, Fault)
        voltages_v, currents_a  meters: Double[3] arrays, phases L1-L3
      TypeCheck/              one variable of every type the driver maps (fixed values)
      Bulk/g00.../            optional N Double nodes ns=<i>;s=b0000... (100 per folder)
                              that change at every update

Variables are read-only (AccessLevel CurrentRead) except the settings a profile lists
under a unit's ``writable:`` (CurrentRead|CurrentWrite); machines with ``methods: true``
also have ``AcknowledgeAlarm(code: UInt16)``. :mod:`simulators.opcua_writes` says how
writes and calls are vetted and how the models follow them.

Values change in real time: every ``update_interval`` the models are advanced to the
clock's now and every changed value is written with that time as source timestamp.
:meth:`OpcUaSimulator.refresh` does the same on demand (tests with a frozen clock).

For tests of the driver's failure handling the simulator can enforce low operation
limits (``MaxNodesPerRead`` ...: larger requests get BadTooManyOperations, as on
small PLCs), stop and start again on the same port (optionally with its namespace
renumbered), and stall every subscription while the session stays up. The asyncua
server internals this needs are in :mod:`simulators.opcua_internals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Node, Server, ua
from asyncua.common.structures104 import new_enum
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulators.equipment import Machine, MachineState, PowerMeter, Simulation
from simulators.opcua_internals import (
    APPLICATION_URI,
    OperationLimits,
    RequestStats,
    SimInternalServer,
    Users,
    server_certificate,
)
from simulators.opcua_writes import METHOD_NAME, OpcUaWrites, WritableNode, method_arguments
from simulators.ports import listen_failure
from simulators.profile import OpcUaServer, WritableVariable
from simulators.schema import Value

# asyncua's server logs every refused request, dropped client and failed start at
# WARNING or ERROR; a simulator that is refused and restarted on purpose would drown
# its own output in them. Set a level on "asyncua.server" to see them.
_SERVER_LOG = logging.getLogger("asyncua.server")
if _SERVER_LOG.level == logging.NOTSET:
    _SERVER_LOG.setLevel(logging.CRITICAL)

LOOPBACK = "127.0.0.1"
NAMESPACE_URI = "urn:edge-agent:simulator:equipment"

#: Endpoints (policy, mode) served by default: open, and the common secured one.
DEFAULT_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("None", "None"),
    ("Basic256Sha256", "SignAndEncrypt"),
)
ALL_ENDPOINTS: tuple[tuple[str, str], ...] = (
    ("None", "None"),
    *(
        (policy, mode)
        for policy in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
        for mode in ("Sign", "SignAndEncrypt")
    ),
)
_POLICY_TYPES: Mapping[tuple[str, str], ua.SecurityPolicyType] = {
    ("None", "None"): ua.SecurityPolicyType.NoSecurity,
    ("Basic256Sha256", "Sign"): ua.SecurityPolicyType.Basic256Sha256_Sign,
    ("Basic256Sha256", "SignAndEncrypt"): ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ("Aes128_Sha256_RsaOaep", "Sign"): ua.SecurityPolicyType.Aes128Sha256RsaOaep_Sign,
    ("Aes128_Sha256_RsaOaep", "SignAndEncrypt"): (
        ua.SecurityPolicyType.Aes128Sha256RsaOaep_SignAndEncrypt
    ),
    ("Aes256_Sha256_RsaPss", "Sign"): ua.SecurityPolicyType.Aes256Sha256RsaPss_Sign,
    ("Aes256_Sha256_RsaPss", "SignAndEncrypt"): (
        ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt
    ),
}

#: OPC UA type of each model quantity (anything not listed is a Double).
_MACHINE_TYPES: Mapping[str, ua.VariantType] = {
    "state": ua.VariantType.Int32,
    "status_word": ua.VariantType.UInt16,
    "powered": ua.VariantType.Boolean,
    "idle": ua.VariantType.Boolean,
    "running": ua.VariantType.Boolean,
    "fault": ua.VariantType.Boolean,
    "alarm_code": ua.VariantType.UInt16,
    "parts_total": ua.VariantType.UInt32,
    "parts_good": ua.VariantType.UInt32,
    "parts_scrap": ua.VariantType.UInt32,
    "program": ua.VariantType.String,
    "speed_rpm": ua.VariantType.Float,
    "position_um": ua.VariantType.Int32,
    "run_seconds": ua.VariantType.UInt64,
    "mode": ua.VariantType.UInt16,
}
_METER_TYPES: Mapping[str, ua.VariantType] = {"energy_import_counter": ua.VariantType.UInt64}
#: Meter arrays: name -> the quantities of the three phases.
METER_ARRAYS: Mapping[str, tuple[str, str, str]] = {
    "voltages_v": ("voltage_l1_n", "voltage_l2_n", "voltage_l3_n"),
    "currents_a": ("current_l1", "current_l2", "current_l3"),
}
MACHINE_STATES = tuple(state.name.title() for state in MachineState)


@dataclass
class ServerOptions:
    """How one simulated OPC UA server looks from the network."""

    port: int = 0
    endpoints: Sequence[tuple[str, str]] = DEFAULT_ENDPOINTS
    #: user name -> password, for UserName identity tokens.
    users: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool = True
    #: DER certificates accepted as X.509 user identities.
    user_certificates: Sequence[bytes] = ()
    #: Server certificate and key (DER or PEM); created under certificate_dir if absent.
    certificate_file: Path | None = None
    private_key_file: Path | None = None
    certificate_dir: Path | None = None
    limits: OperationLimits = field(default_factory=OperationLimits)
    bulk_nodes: int = 0
    update_interval: float = 0.5
    #: URIs registered before ours (so our namespace index moves).
    extra_namespaces: Sequence[str] = ()
    #: Client application certificates (DER) trusted on secured endpoints; None trusts
    #: every one. An untrusted client is refused with BadCertificateUntrusted, and the
    #: set may be added to while running (the server admin trusting a certificate).
    trusted_clients: set[bytes] | None = None
    #: unit -> the settings clients may write (every other variable is read-only).
    writable: Mapping[str, Sequence[WritableVariable]] = field(default_factory=dict)
    #: Machines that have the AcknowledgeAlarm method.
    methods: frozenset[str] = frozenset()


# ---------------------------------------------------------------------- simulator


@dataclass
class _Point:
    node: ua.NodeId
    variant: ua.VariantType
    last: object = None


class OpcUaSimulator:
    """One OPC UA server over a :class:`Simulation`'s models (see the module docstring)."""

    def __init__(
        self,
        simulation: Simulation,
        options: ServerOptions | None = None,
        *,
        units: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "opcua",
    ) -> None:
        self.simulation = simulation
        self.options = options or ServerOptions()
        self.units = list(units) if units is not None else list(simulation.models)
        self.clock = clock
        self.name = name
        self.port = self.options.port or _free_port()
        self.namespace_index = 0
        self._server: Server | None = None
        self._updater: asyncio.Task[None] | None = None
        self._points: dict[str, list[tuple[str, _Point]]] = {}
        self._bulk: list[_Point] = []
        self._now_point: _Point | None = None
        self._refresh_lock = asyncio.Lock()
        self.refreshed_at = 0.0
        self.stats = RequestStats()
        self.writes = OpcUaWrites(simulation, clock)

    @classmethod
    def from_spec(
        cls, spec: OpcUaServer, simulation: Simulation, clock: Callable[[], float] = time.time
    ) -> OpcUaSimulator:
        """The simulator a profile's ``transport: opcua`` server describes."""
        limits = spec.limits
        options = ServerOptions(
            port=spec.port,
            endpoints=tuple(
                ("None", "None") if e == "None" else tuple(e.split("/", 1))  # type: ignore[misc]
                for e in spec.endpoints
            ),
            users=dict(spec.users),
            allow_anonymous=spec.allow_anonymous,
            certificate_dir=Path(spec.certificate_dir).expanduser()
            if spec.certificate_dir
            else None,
            limits=OperationLimits(
                max_nodes_per_read=limits.max_nodes_per_read,
                max_monitored_items_per_call=limits.max_monitored_items_per_call,
                max_nodes_per_browse=limits.max_nodes_per_browse,
                max_nodes_per_translate=limits.max_nodes_per_translate,
                announced=limits.announced,
            ),
            bulk_nodes=spec.bulk_nodes,
            update_interval=spec.update_interval,
            writable={u.name: u.writable for u in spec.units if u.writable},
            methods=frozenset(u.name for u in spec.units if u.methods),
        )
        return cls(
            simulation, options, units=[u.name for u in spec.units], clock=clock, name=spec.name
        )

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{LOOPBACK}:{self.port}"

    @property
    def endpoints(self) -> Mapping[int, object]:
        """Modbus unit endpoints (for fault injection); an OPC UA server has none."""
        return {}

    @property
    def address(self) -> str:
        return self.endpoint

    @property
    def running(self) -> bool:
        return self._server is not None

    def describe(self) -> str:
        secured = ", ".join(
            f"{p}/{m}" if p != "None" else "None" for p, m in self.options.endpoints
        )
        return f"{self.name}: opcua {self.endpoint} ({secured}), units {', '.join(self.units)}"

    def node_id(self, unit: str, quantity: str) -> str:
        """The NodeId string of a unit's quantity on the running server."""
        return f"ns={self.namespace_index};s={unit}.{quantity}"

    def nsu_node_id(self, unit: str, quantity: str) -> str:
        return f"nsu={NAMESPACE_URI};s={unit}.{quantity}"

    # ---------------------------------------------------------------- lifecycle

    async def start(self, *, extra_namespaces: Sequence[str] | None = None) -> None:
        """Build a fresh server (as a restarted device would be) and listen."""
        if self._server is not None:
            return
        options = self.options
        iserver = SimInternalServer(options.limits, self.stats)
        iserver.writes = self.writes
        server = Server(iserver=iserver)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("edge-agent equipment simulator")
        await server.set_application_uri(APPLICATION_URI)
        server.set_security_policy([_POLICY_TYPES[e] for e in options.endpoints])
        tokens: list[type] = [ua.UserNameIdentityToken, ua.X509IdentityToken]
        if options.allow_anonymous:
            tokens.insert(0, ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        users = Users(
            options.users, options.user_certificates, allow_anonymous=options.allow_anonymous
        )
        server.iserver.set_user_manager(users)  # type: ignore[arg-type]
        if any(policy != "None" for policy, _ in options.endpoints):
            cert_file, key_file = self._certificate_files()
            await server.load_certificate(str(cert_file))
            await server.load_private_key(str(key_file))
            if options.trusted_clients is not None:
                server.set_certificate_validator(_trust_list(options.trusted_clients))
        for uri in extra_namespaces if extra_namespaces is not None else options.extra_namespaces:
            await server.register_namespace(uri)
        self.namespace_index = await server.register_namespace(NAMESPACE_URI)
        await self._write_limits(server)
        await self._build(server)
        try:
            await server.start()
        except OSError as exc:
            from simulators.modbus_server import ServeError  # the error `simulate` reports

            where = f"{self.name}: cannot listen on {self.endpoint}"
            if why := listen_failure(self.port, exc):
                raise ServeError(f"{where}: {why}") from None
            raise ServeError(where) from exc
        self._server = server
        await self.refresh()
        if options.update_interval > 0:
            self._updater = asyncio.create_task(self._update_loop(), name=f"sim:{self.name}")

    async def stop(self) -> None:
        """Close the listening socket and every session, as a powered-off device does."""
        if self._updater is not None:
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._updater
            self._updater = None
        server, self._server = self._server, None
        if server is not None:
            clock_task = server.iserver.time_task
            if clock_task is not None:
                # asyncua lets its 1 s CurrentTime loop run out; a power cut does not wait.
                clock_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock_task
                server.iserver.time_task = None
            await server.stop()
            # asyncua keeps sessions (and their subscriptions) alive for a client to
            # reactivate after a lost connection; a stopped device keeps nothing.
            for session in list(server.iserver._external_sessions.values()):
                await session.close_session(True)
            for subscription in list(server.iserver.subscription_service.subscriptions.values()):
                await subscription.stop()

    async def restart(self, *, extra_namespaces: Sequence[str] | None = None) -> None:
        await self.stop()
        await self.start(extra_namespaces=extra_namespaces)

    async def stall_subscriptions(self) -> None:
        """Stop every subscription's publishing, while reads and the session still work:
        the silent stall that a client only notices by a watchdog."""
        server = self._require()
        for subscription in list(server.iserver.subscription_service.subscriptions.values()):
            await subscription.stop()

    def _require(self) -> Server:
        if self._server is None:
            raise RuntimeError(f"simulator {self.name} is not running")
        return self._server

    def _certificate_files(self) -> tuple[Path, Path]:
        options = self.options
        if options.certificate_file and options.private_key_file:
            return options.certificate_file, options.private_key_file
        directory = options.certificate_dir or Path.home() / ".local/state/edge-agent-simulator"
        return server_certificate(directory)

    async def _write_limits(self, server: Server) -> None:
        limits = self.options.limits
        if not limits.announced:
            limits = OperationLimits()
        ids = ua.ObjectIds
        for node, value in (
            (
                ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
                limits.max_nodes_per_read,
            ),
            (
                ids.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                limits.max_monitored_items_per_call,
            ),
            (
                ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerBrowse,
                limits.max_nodes_per_browse,
            ),
            (
                ids.Server_ServerCapabilities_OperationLimits_MaxNodesPerTranslateBrowsePathsToNodeIds,
                limits.max_nodes_per_translate,
            ),
        ):
            await server.write_attribute_value(
                ua.NodeId(node), ua.DataValue(ua.Variant(value, ua.VariantType.UInt32))
            )

    # ----------------------------------------------------------- address space

    async def _build(self, server: Server) -> None:
        ns = self.namespace_index
        objects = server.nodes.objects
        state_type = await new_enum(server, ns, "MachineState", list(MACHINE_STATES))
        await state_type.add_property(
            ua.NodeId("MachineState.EnumStrings", ns),
            ua.QualifiedName("EnumStrings", 0),
            [ua.LocalizedText(label) for label in MACHINE_STATES],
            ua.VariantType.LocalizedText,
        )
        self._points = {}
        self.writes.writable.clear()
        self.writes.read_only.clear()
        for unit in self.units:
            model = self.simulation.model(unit)
            folder = await objects.add_object(ua.NodeId(unit, ns), ua.QualifiedName(unit, ns))
            values: dict[str, Value] = model.read()
            types = _MACHINE_TYPES if isinstance(model, Machine) else _METER_TYPES
            points: list[tuple[str, _Point]] = []
            for quantity, value in values.items():
                variant = types.get(quantity, ua.VariantType.Double)
                node = await self._variable(
                    folder,
                    f"{unit}.{quantity}",
                    quantity,
                    _wire(value, variant),
                    variant,
                    state_type.nodeid if quantity == "state" else None,
                )
                points.append((quantity, _Point(node, variant)))
            if isinstance(model, PowerMeter):
                for array, phases in METER_ARRAYS.items():
                    node = await self._variable(
                        folder,
                        f"{unit}.{array}",
                        array,
                        [float(values[p]) for p in phases],
                        ua.VariantType.Double,
                    )
                    points.append((array, _Point(node, ua.VariantType.Double)))
            self._points[unit] = points
            await self._writable(server, unit, folder, points)
        await self._type_check(server, state_type.nodeid)
        self._bulk = []
        if self.options.bulk_nodes:
            bulk = await objects.add_folder(ua.NodeId("Bulk", ns), ua.QualifiedName("Bulk", ns))
            # Folders of 100: asyncua checks each new node against all its siblings.
            for first in range(0, self.options.bulk_nodes, 100):
                name = f"g{first // 100:02d}"
                group = await bulk.add_folder(
                    ua.NodeId(f"Bulk.{name}", ns), ua.QualifiedName(name, ns)
                )
                names = [
                    bulk_name(i) for i in range(first, min(first + 100, self.options.bulk_nodes))
                ]
                nodes = await _add_doubles(server, group.nodeid, ns, names)
                self._bulk += [_Point(node, ua.VariantType.Double) for node in nodes]

    async def _writable(
        self, server: Server, unit: str, folder: Node, points: list[tuple[str, _Point]]
    ) -> None:
        """Open the unit's settings to writes; register the rest as read-only."""
        specs = {w.quantity: w for w in self.options.writable.get(unit, ())}
        for quantity, point in points:
            spec = specs.get(quantity)
            if spec is None:
                self.writes.read_only.add(point.node)
                continue
            await server.get_node(point.node).set_writable()
            self.writes.writable[point.node] = WritableNode(unit, quantity, point.variant, spec)
        if unit in self.options.methods:
            ns = self.namespace_index
            await folder.add_method(
                ua.NodeId(f"{unit}.{METHOD_NAME}", ns),
                ua.QualifiedName(METHOD_NAME, ns),
                self.writes.acknowledge(unit),
                list(method_arguments()),
                [],
            )

    async def _variable(
        self,
        parent: Node,
        identifier: str,
        name: str,
        value: object,
        variant: ua.VariantType,
        datatype: ua.NodeId | None = None,
    ) -> ua.NodeId:
        ns = self.namespace_index
        node = await parent.add_variable(
            ua.NodeId(identifier, ns), ua.QualifiedName(name, ns), value, variant, datatype
        )
        return node.nodeid

    async def _type_check(self, server: Server, state_type: ua.NodeId) -> None:
        """One variable per type the driver maps, with fixed values (see TYPE_CHECK)."""
        ns = self.namespace_index
        folder = await server.nodes.objects.add_object(
            ua.NodeId("TypeCheck", ns), ua.QualifiedName("TypeCheck", ns)
        )
        for name, (value, variant) in TYPE_CHECK.items():
            datatype = state_type if name.startswith("Enum") else None
            node = await self._variable(folder, f"TypeCheck.{name}", name, value, variant, datatype)
            if name == "NotReadable":
                for attribute in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
                    await server.get_node(node).write_attribute(
                        attribute, ua.DataValue(ua.Variant(0, ua.VariantType.Byte))
                    )
                iserver = server.iserver
                assert isinstance(iserver, SimInternalServer)
                iserver.unreadable = frozenset({node})
        await server.write_attribute_value(
            ua.NodeId("TypeCheck.Uncertain", ns),
            ua.DataValue(
                ua.Variant(21.5, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
            ),
        )
        await server.write_attribute_value(
            ua.NodeId("TypeCheck.Bad", ns),
            ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure)),
        )
        now = await self._variable(
            folder, "TypeCheck.Now", "Now", _utc(self.clock()), ua.VariantType.DateTime
        )
        self._now_point = _Point(now, ua.VariantType.DateTime)

    # ------------------------------------------------------------------ values

    async def refresh(self) -> float:
        """Advance the models to the clock's now and write every changed value."""
        server = self._server
        if server is None:
            return self.refreshed_at
        async with self._refresh_lock:
            now = self.clock()
            self.simulation.advance_to(now)
            stamp = _utc(now)
            for unit, points in self._points.items():
                values = self.simulation.model(unit).read()
                for quantity, point in points:
                    phases = METER_ARRAYS.get(quantity)
                    value: object = (
                        [float(values[p]) for p in phases] if phases else values[quantity]
                    )
                    await self._write(server, point, _wire(value, point.variant), stamp)
            if self._bulk:
                base = round(now * 10) / 10
                for i, point in enumerate(self._bulk):
                    await self._write(server, point, base + i / 1000, stamp)
            if self._now_point is not None:
                await self._write(server, self._now_point, stamp, stamp)
            self.refreshed_at = now
            return now

    async def _write(
        self, server: Server, point: _Point, value: object, stamp: dt.datetime
    ) -> None:
        if value == point.last:
            return
        point.last = value
        await server.write_attribute_value(
            point.node,
            ua.DataValue(
                ua.Variant(value, point.variant),
                SourceTimestamp=stamp,
                ServerTimestamp=_utc(time.time()),
            ),
        )

    async def _update_loop(self) -> None:
        interval = self.options.update_interval
        while True:
            await asyncio.sleep(interval - (time.monotonic() % interval))
            await self.refresh()

    async def add_variable(self, unit: str, name: str, value: float) -> str:
        """A Double that appears while running (a PLC program download); its NodeId."""
        server = self._require()
        ns = self.namespace_index
        folder = server.get_node(ua.NodeId(unit, ns))
        node = await self._variable(folder, f"{unit}.{name}", name, value, ua.VariantType.Double)
        return node.to_string()

    def values(self, unit: str) -> dict[str, Value]:
        """Ground truth: what the server serves for ``unit`` since the last refresh."""
        values = self.simulation.model(unit).read()
        return dict(values)


def _trust_list(
    trusted: set[bytes],
) -> Callable[[x509.Certificate, ua.ApplicationDescription], Awaitable[None]]:
    """A certificate validator that accepts exactly the client certificates in ``trusted``."""

    async def validate(cert: x509.Certificate, _client: ua.ApplicationDescription) -> None:
        if cert.public_bytes(serialization.Encoding.DER) not in trusted:
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    return validate


async def _add_doubles(
    server: Server, parent: ua.NodeId, ns: int, names: Sequence[str]
) -> list[ua.NodeId]:
    """Many Double variables in one AddNodes call (a node at a time costs 1 ms each)."""
    items = []
    for name in names:
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = ua.NodeId(name, ns)
        item.BrowseName = ua.QualifiedName(name, ns)
        item.NodeClass = ua.NodeClass.Variable
        item.ParentNodeId = parent
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasComponent)
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.BaseDataVariableType)
        attributes = ua.VariableAttributes()
        attributes.DisplayName = ua.LocalizedText(name)
        attributes.Description = ua.LocalizedText(name)
        attributes.DataType = ua.NodeId(ua.ObjectIds.Double)
        attributes.Value = ua.Variant(0.0, ua.VariantType.Double)
        attributes.ValueRank = ua.ValueRank.Scalar
        attributes.AccessLevel = ua.AccessLevel.CurrentRead.mask
        attributes.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
        item.NodeAttributes = attributes
        items.append(item)
    results = await server.iserver.isession.add_nodes(items)
    for result in results:
        result.StatusCode.check()
    return [result.AddedNodeId for result in results]


def bulk_name(index: int) -> str:
    return f"b{index:04d}"


def _wire(value: object, variant: ua.VariantType) -> object:
    """A model value in the Python type asyncua encodes for ``variant``."""
    if variant in (ua.VariantType.Double, ua.VariantType.Float):
        if isinstance(value, list):
            return [float(v) for v in value]
        return float(value)  # type: ignore[arg-type]
    if variant == ua.VariantType.Boolean:
        return bool(value)
    if variant == ua.VariantType.String:
        return str(value)
    if isinstance(value, bool | int):
        return int(value)
    return value


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


#: TypeCheck/<name>: value and OPC UA type. Uncertain, Bad and Now are set at start.
TYPE_CHECK: Mapping[str, tuple[object, ua.VariantType]] = {
    "Boolean": (True, ua.VariantType.Boolean),
    "SByte": (-8, ua.VariantType.SByte),
    "Byte": (200, ua.VariantType.Byte),
    "Int16": (-30_000, ua.VariantType.Int16),
    "UInt16": (60_000, ua.VariantType.UInt16),
    "Int32": (-2_000_000_000, ua.VariantType.Int32),
    "UInt32": (4_000_000_000, ua.VariantType.UInt32),
    "Int64": (-9_000_000_000_000_000_000, ua.VariantType.Int64),
    "UInt64": (18_000_000_000_000_000_000, ua.VariantType.UInt64),
    "Float": (0.1, ua.VariantType.Float),
    "Double": (0.1, ua.VariantType.Double),
    "String": ("Grüße ✓", ua.VariantType.String),
    "DateTime": (
        dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),
        ua.VariantType.DateTime,
    ),
    "NullDateTime": (dt.datetime(1601, 1, 1, tzinfo=dt.UTC), ua.VariantType.DateTime),
    "LocalizedText": (ua.LocalizedText("Spindle", "en"), ua.VariantType.LocalizedText),
    "ByteString": (b"\x01\x02\xff", ua.VariantType.ByteString),
    "EnumRun": (2, ua.VariantType.Int32),
    "EnumUnknown": (7, ua.VariantType.Int32),
    "Int32Array": ([1, -2, 3], ua.VariantType.Int32),
    "StringArray": (["a", "b"], ua.VariantType.String),
    "EmptyArray": ([], ua.VariantType.Double),
    #: Above the driver's default max_array_length (1,000): bad unless a tag raises it.
    "LongArray": ([float(k) for k in range(1500)], ua.VariantType.Double),
    "Matrix": ([[1.0, 2.0], [3.0, 4.0]], ua.VariantType.Double),
    "NotReadable": (1.5, ua.VariantType.Double),
    "Uncertain": (21.5, ua.VariantType.Double),
    "Bad": (0.0, ua.VariantType.Double),
}
