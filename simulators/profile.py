"""Simulation profiles: servers, units, models and register maps declared in YAML.

A profile is validated once and frozen. Unknown keys, duplicate keys,
overlapping points, unknown quantities and dangling meter loads are all errors
(raised as :class:`ProfileError` with one line per finding). Addresses not
covered by a point answer ILLEGAL DATA ADDRESS on the wire, as real devices do.

Points are read-only unless declared ``writable: true``; only a model's settings
(every machine's ``mode``, a compressor's ``pressure_setpoint_bar``) can be, and only
in the holding or coil table. ``min`` / ``max`` bound what the device takes, in
physical units; a value outside them is answered with exception 3 (ILLEGAL DATA
VALUE), as a device that checks its parameters does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from edge_agent.config import TimeZoneName
from simulators.drive import DRIVE_QUANTITIES, Drive, DriveParams
from simulators.equipment import (
    GAS_METER_QUANTITIES,
    MACHINE_QUANTITIES,
    METER_QUANTITIES,
    GasMeter,
    Machine,
    Model,
    PowerMeter,
    Simulation,
)
from simulators.gas_meter import GasMeterParams
from simulators.machine import CncParams, CompressorParams, PressParams
from simulators.machine_state import (
    COMPRESSOR_QUANTITIES,
    COMPRESSOR_SETTINGS,
    MACHINE_SETTINGS,
)
from simulators.meter import MeterParams
from simulators.registers import (
    BIT_TABLES,
    ByteOrder,
    RegisterType,
    Table,
    register_count,
)
from simulators.schema import Name, Quantity, Strict

ModelParams = Annotated[
    CncParams | PressParams | CompressorParams | DriveParams | MeterParams | GasMeterParams,
    Field(discriminator="kind"),
]


class ProfileError(ValueError):
    """A profile that cannot be loaded; the message lists every finding."""


class Point(Strict):
    """One value in a unit's register map.

    ``physical = raw * scale + offset`` (the agent's convention), so the agent's
    tag for this point uses the same ``scale`` and ``offset``.
    """

    name: Name
    table: Table = "holding"
    address: int = Field(ge=0, le=65535, description="Protocol address, 0-based.")
    type: RegisterType = "uint16"
    length: int | None = Field(default=None, ge=1, le=125, description="string: registers")
    byte_order: ByteOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    quantity: str | None = Field(default=None, description="Model quantity; default: name.")
    codes: dict[int, int] | None = Field(
        default=None,
        description="Model value -> raw value served (a device's own codes for a state).",
    )
    unit: str = Field(default="", description="Unit of measure, documentation only.")
    description: str = ""
    writable: bool = Field(
        default=False, description="Clients may write it (a model setting; holding or coil)."
    )
    min: float | None = Field(default=None, description="Lowest value taken (physical).")
    max: float | None = Field(default=None, description="Highest value taken (physical).")

    @field_validator("scale")
    @classmethod
    def _usable_scale(cls, value: float) -> float:
        if value == 0 or value != value or value in (float("inf"), float("-inf")):
            raise ValueError("scale must be a finite, non-zero number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        in_bits = self.table in BIT_TABLES
        if in_bits != (self.type == "bool"):
            raise ValueError("coil / discrete_input points are type bool, and only those")
        if (self.type == "string") != (self.length is not None):
            raise ValueError("length is required for type string and only for it")
        if self.type == "string" and self.byte_order not in ("ABCD", "BADC"):
            raise ValueError("a string's byte_order is ABCD or BADC")
        if self.address + self.size > 65536:
            raise ValueError("the point runs past address 65535")
        if self.writable and self.table not in ("holding", "coil"):
            raise ValueError("only holding registers and coils can be writable")
        if not self.writable and (self.min is not None or self.max is not None):
            raise ValueError("min / max bound writes: only for writable points")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def takes(self, value: float) -> bool:
        """Whether ``value`` (physical) is within the point's ``min`` / ``max``."""
        slack = 1e-9  # relative: 5.5 decoded from raw 550 x 0.01 is 5.500000000000001
        if self.min is not None and value < self.min - slack * max(1.0, abs(self.min)):
            return False
        return self.max is None or value <= self.max + slack * max(1.0, abs(self.max))

    @property
    def source(self) -> str:
        """The model quantity this point serves."""
        return self.quantity or self.name

    @property
    def size(self) -> int:
        """Registers (or bits) the point occupies."""
        return register_count(self.type, self.length)

    def addresses(self) -> range:
        return range(self.address, self.address + self.size)


class Unit(Strict):
    """One Modbus unit (slave) id on a server, backed by one equipment model."""

    unit_id: int = Field(ge=1, le=247)
    name: Name = Field(description="Model name; meters refer to machines by it.")
    seed: int | None = Field(default=None, description="Default: derived from profile seed.")
    model: ModelParams
    points: tuple[Point, ...] = Field(min_length=1)

    @property
    def settings(self) -> frozenset[str]:
        """The quantities of the model a client may write."""
        return model_settings(self.model)

    @property
    def quantities(self) -> dict[str, Quantity]:
        if isinstance(self.model, CompressorParams):
            return dict(COMPRESSOR_QUANTITIES)
        if isinstance(self.model, MeterParams):
            return dict(METER_QUANTITIES)
        if isinstance(self.model, DriveParams):
            return dict(DRIVE_QUANTITIES)
        if isinstance(self.model, GasMeterParams):
            return dict(GAS_METER_QUANTITIES)
        return dict(MACHINE_QUANTITIES)

    @model_validator(mode="after")
    def _valid_map(self) -> Unit:
        errors = list(self._map_findings())
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _map_findings(self) -> Iterator[str]:
        quantities = self.quantities
        names: set[str] = set()
        used: dict[tuple[str, int], str] = {}
        for point in self.points:
            if point.name in names:
                yield f"point name {point.name!r} used twice"
            names.add(point.name)
            quantity = quantities.get(point.source)
            if quantity is None:
                yield (
                    f"point {point.name!r}: {self.model.kind} has no quantity "
                    f"{point.source!r} (has: {', '.join(sorted(quantities))})"
                )
            elif (point.type == "string") != (quantity.kind == "str"):
                yield f"point {point.name!r}: {point.source!r} is {quantity.kind}, not {point.type}"
            if point.writable and point.source not in self.settings:
                takes = ", ".join(sorted(self.settings)) or "none"
                yield (
                    f"point {point.name!r}: {point.source!r} cannot be writable "
                    f"(the settings of a {self.model.kind} are: {takes})"
                )
            for address in point.addresses():
                other = used.setdefault((point.table, address), point.name)
                if other != point.name:
                    yield f"points {other!r} and {point.name!r} overlap at {point.table} {address}"
                    break


class TcpServer(Strict):
    name: Name
    transport: Literal["tcp"]
    port: int = Field(default=0, ge=0, le=65535, description="0: pick a free port.")
    units: tuple[Unit, ...] = Field(min_length=1)


class RtuServer(Strict):
    name: Name
    transport: Literal["rtu"]
    device: str = Field(min_length=1, description="Serial device path, e.g. one end of a pty.")
    baudrate: int = Field(default=19200, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    units: tuple[Unit, ...] = Field(min_length=1)


class WritableVariable(Strict):
    """A variable of an OPC UA unit that clients may write (a model setting)."""

    quantity: Name
    min: float | None = Field(default=None, description="Lowest value taken.")
    max: float | None = Field(default=None, description="Highest value taken.")

    @model_validator(mode="after")
    def _in_order(self) -> WritableVariable:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class OpcUaUnit(Strict):
    """One equipment model served as an object of an OPC UA server (no register map:
    every quantity becomes a variable, see :mod:`simulators.opcua_server`)."""

    name: Name = Field(description="Model name; meters refer to machines by it.")
    seed: int | None = Field(default=None, description="Default: derived from profile seed.")
    model: ModelParams
    writable: tuple[WritableVariable, ...] = Field(
        default=(),
        description="Settings served CurrentRead|CurrentWrite; every other variable is read-only.",
    )
    methods: bool = Field(
        default=False,
        description="Machines: add the method AcknowledgeAlarm(code: UInt16) to the object.",
    )

    @model_validator(mode="after")
    def _settings_only(self) -> OpcUaUnit:
        settings = model_settings(self.model)
        names = [w.quantity for w in self.writable]
        for name in names:
            if name not in settings:
                takes = ", ".join(sorted(settings)) or "none"
                raise ValueError(
                    f"{name!r} cannot be writable (the settings of a {self.model.kind} are: "
                    f"{takes})"
                )
        if len(set(names)) != len(names):
            raise ValueError("writable lists a quantity twice")
        if self.methods and isinstance(self.model, MeterParams | GasMeterParams):
            raise ValueError("methods: only machines have alarms to acknowledge")
        return self


def model_settings(params: object) -> frozenset[str]:
    """The settings (writable quantities) of a model kind."""
    if isinstance(params, CompressorParams):
        return COMPRESSOR_SETTINGS
    if isinstance(params, MeterParams | GasMeterParams):
        return frozenset()
    return MACHINE_SETTINGS


OpcUaEndpoint = Literal[
    "None",
    "Basic256Sha256/Sign",
    "Basic256Sha256/SignAndEncrypt",
    "Aes128_Sha256_RsaOaep/Sign",
    "Aes128_Sha256_RsaOaep/SignAndEncrypt",
    "Aes256_Sha256_RsaPss/Sign",
    "Aes256_Sha256_RsaPss/SignAndEncrypt",
]


class OpcUaLimits(Strict):
    """Operation limits the server enforces (0: none), as small PLCs do."""

    max_nodes_per_read: int = Field(default=0, ge=0)
    max_monitored_items_per_call: int = Field(default=0, ge=0)
    max_nodes_per_browse: int = Field(default=0, ge=0)
    max_nodes_per_translate: int = Field(default=0, ge=0)
    announced: bool = Field(default=True, description="False: enforce without announcing.")


class OpcUaServer(Strict):
    """An OPC UA server (asyncua) on 127.0.0.1 serving units as objects."""

    name: Name
    transport: Literal["opcua"]
    port: int = Field(default=0, ge=0, le=65535, description="0: pick a free port.")
    endpoints: tuple[OpcUaEndpoint, ...] = Field(
        default=("None", "Basic256Sha256/SignAndEncrypt"), min_length=1
    )
    users: dict[str, str] = Field(default_factory=dict, description="user name -> password")
    allow_anonymous: bool = True
    certificate_dir: str = Field(
        default="", description="Where the server keeps its certificate (created once)."
    )
    limits: OpcUaLimits = OpcUaLimits()
    bulk_nodes: int = Field(default=0, ge=0, le=100_000, description="Extra changing Doubles.")
    update_interval: float = Field(default=0.5, gt=0, le=60, description="Seconds.")
    units: tuple[OpcUaUnit, ...] = ()


Server = Annotated[TcpServer | RtuServer | OpcUaServer, Field(discriminator="transport")]


class Profile(Strict):
    """A simulated plant: models on one step grid, served by one or more servers."""

    name: Name
    description: str = ""
    timezone: TimeZoneName = Field(default="UTC", description="IANA zone of the shift times.")
    seed: int = 0
    step_s: float = Field(default=1.0, ge=0.01, le=60, description="Model step in seconds.")
    servers: tuple[Server, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _cross_checks(self) -> Profile:
        errors = list(self._findings())
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _findings(self) -> Iterator[str]:
        server_names = [s.name for s in self.servers]
        for name in sorted({n for n in server_names if server_names.count(n) > 1}):
            yield f"server name {name!r} used twice"
        ports = [s.port for s in self.servers if isinstance(s, TcpServer | OpcUaServer) and s.port]
        for port in sorted({p for p in ports if ports.count(p) > 1}):
            yield f"port {port} used by two servers"
        units = [u for s in self.servers for u in s.units]
        unit_names = [u.name for u in units]
        for name in sorted({n for n in unit_names if unit_names.count(n) > 1}):
            yield f"unit name {name!r} used twice"
        for server in self.servers:
            if isinstance(server, OpcUaServer):
                continue
            ids = [u.unit_id for u in server.units]
            for uid in sorted({i for i in ids if ids.count(i) > 1}):
                yield f"server {server.name!r}: unit id {uid} used twice"
        machines = {u.name for u in units if not isinstance(u.model, MeterParams | GasMeterParams)}
        for unit in units:
            if isinstance(unit.model, MeterParams):
                for load in unit.model.loads:
                    if load not in machines:
                        yield f"meter {unit.name!r}: load {load!r} is not a machine unit"

    def units(self) -> Iterator[tuple[TcpServer | RtuServer | OpcUaServer, Unit | OpcUaUnit]]:
        for server in self.servers:
            for unit in server.units:
                yield server, unit

    def unit_seed(self, unit: Unit | OpcUaUnit) -> int:
        """The unit's seed, or one derived from the profile seed and the unit name."""
        if unit.seed is not None:
            return unit.seed
        digest = hashlib.sha256(f"{self.seed}/{unit.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big")


def build_simulation(profile: Profile, start: float) -> Simulation:
    """The profile's models, all starting at ``start`` (seconds of the injected clock)."""
    models: dict[str, Model] = {}
    meters: list[tuple[Unit | OpcUaUnit, MeterParams]] = []
    for _, unit in profile.units():
        if isinstance(unit.model, MeterParams):
            meters.append((unit, unit.model))
            continue
        seed, zone = profile.unit_seed(unit), profile.timezone
        params = unit.model
        if isinstance(params, GasMeterParams):
            models[unit.name] = GasMeter(params, seed=seed, start=start, step_s=profile.step_s)
            continue
        models[unit.name] = (
            Drive(params, seed=seed, start=start, step_s=profile.step_s, timezone=zone)
            if isinstance(params, DriveParams)
            else Machine(params, seed=seed, start=start, step_s=profile.step_s, timezone=zone)
        )
    for unit, params in meters:
        loads = [models[name] for name in params.loads]
        models[unit.name] = PowerMeter(
            params,
            seed=profile.unit_seed(unit),
            start=start,
            step_s=profile.step_s,
            loads=[m for m in loads if isinstance(m, Machine)],
        )
    return Simulation(models)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a profile must not."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in keys:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        keys.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    """Validate profile YAML text; raise :class:`ProfileError` listing every finding."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ProfileError(f"{source}: invalid profile:\n" + "\n".join(lines)) from exc


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_profile(text, str(path))


PROFILES_DIR = Path(__file__).parent / "profiles"
"""Profiles shipped with the package (``demo-plant``)."""
