"""Pydantic models of an OPC UA device in the plant YAML, and the node address grammar.

The address grammar (pure string parsing, no protocol library) can be shared
by config validation and the driver. A tag names its node in one of three ways:

* a NodeId string: ``ns=2;s=Line1.Press.Power``, ``i=2258``, ``ns=3;g=<guid>``,
  ``ns=4;b=<base64>`` (``ns=`` omitted means namespace 0);
* a NodeId with its namespace given by URI, ``nsu=urn:acme:press;s=Power``: the
  index is looked up after every connect, so a server that renumbers its namespace
  table (after a firmware update or a restart) keeps working;
* a browse path from the Root folder, ``/Objects/2:Machine/2:SpindlePower``, each
  element ``[index:]BrowseName`` (``&/``, ``&:`` and ``&&`` escape those characters
  inside a name). Translated to a NodeId after every connect.

Syntax errors are reported by the loader with file and line like every other value.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, Field

from edge_agent.config.base import MAX_INTERVAL_S, Duration, Interval, Name, Strict
from edge_agent.config.catalog import DeviceInfo, TagInfo, described_once
from edge_agent.config.writes import (
    AllowedValue,
    DeviceWrites,
    WriteChannel,
    WriteCondition,
    WritePolicy,
)

IdType = Literal["i", "s", "g", "b"]

#: Default of ``max_array_length``: a 1,000-element array is 1,000 samples per read.
DEFAULT_MAX_ARRAY_LENGTH = 1_000
#: Highest ``max_array_length`` the config accepts.
MAX_ARRAY_LENGTH_LIMIT = 1_000_000

_UINT32_MAX = 2**32 - 1
_UINT16_MAX = 2**16 - 1


@dataclass(frozen=True, slots=True)
class NodeIdRef:
    """A NodeId as written in the config; the namespace by index or by URI."""

    id_type: IdType
    identifier: int | str | uuid.UUID | bytes
    namespace_index: int = 0
    namespace_uri: str | None = None

    def text(self) -> str:
        """The canonical string form (as the server's NodeId would print)."""
        ident = self.identifier
        value = base64.b64encode(ident).decode("ascii") if isinstance(ident, bytes) else str(ident)
        if self.namespace_uri is not None:
            return f"nsu={self.namespace_uri};{self.id_type}={value}"
        prefix = f"ns={self.namespace_index};" if self.namespace_index else ""
        return f"{prefix}{self.id_type}={value}"


@dataclass(frozen=True, slots=True)
class BrowsePathRef:
    """A browse path from the Root folder: (namespace index, browse name) per element."""

    elements: tuple[tuple[int, str], ...]

    def text(self) -> str:
        parts = []
        for ns, name in self.elements:
            escaped = name.replace("&", "&&").replace("/", "&/").replace(":", "&:")
            parts.append(f"{ns}:{escaped}" if ns else escaped)
        return "/" + "/".join(parts)


NodeAddress = NodeIdRef | BrowsePathRef

_NS_PREFIX = re.compile(r"^ns=(\d+);")
_ID = re.compile(r"^([isgb])=(.*)$", re.DOTALL)
_ELEMENT_NS = re.compile(r"^(\d+):")


def parse_node_address(text: str) -> NodeAddress:
    """Parse a tag's ``node:``; raise ValueError with a message fit for the plant file."""
    if not text or text != text.strip():
        raise ValueError("a node address may not be empty or start or end with spaces")
    if text.startswith("/"):
        return _parse_browse_path(text)
    namespace_index = 0
    namespace_uri: str | None = None
    rest = text
    if rest.startswith("nsu="):
        uri, sep, rest = rest[4:].partition(";")
        if not sep or not uri:
            raise ValueError(
                f"{text!r}: nsu= needs a namespace URI and ';' before the identifier "
                "(example: nsu=urn:acme:press;s=Power)"
            )
        namespace_uri = uri
    else:
        match = _NS_PREFIX.match(rest)
        if match is not None:
            namespace_index = int(match.group(1))
            if namespace_index > _UINT16_MAX:
                raise ValueError(f"{text!r}: namespace index {namespace_index} is above 65535")
            rest = rest[match.end() :]
        elif rest.startswith("ns="):
            raise ValueError(f"{text!r}: ns= takes a namespace index (a number) and ';'")
    id_match = _ID.match(rest)
    if id_match is None:
        raise ValueError(
            f"{text!r} is not a node address: write a NodeId (ns=2;s=Name, i=85, "
            "ns=1;g=<guid>, ns=1;b=<base64>), nsu=<uri>;s=Name, or a browse path "
            "/Objects/2:Machine/2:Power"
        )
    id_type = id_match.group(1)
    raw = id_match.group(2)
    identifier = _parse_identifier(text, id_type, raw)
    return NodeIdRef(id_type, identifier, namespace_index, namespace_uri)  # type: ignore[arg-type]


def _parse_identifier(text: str, id_type: str, raw: str) -> int | str | uuid.UUID | bytes:
    if id_type == "i":
        if not raw.isdigit() or int(raw) > _UINT32_MAX:
            raise ValueError(f"{text!r}: i= takes a number from 0 to {_UINT32_MAX}")
        return int(raw)
    if id_type == "s":
        if not raw:
            raise ValueError(f"{text!r}: s= needs a string identifier")
        return raw
    if id_type == "g":
        try:
            return uuid.UUID(raw)
        except ValueError:
            raise ValueError(
                f"{text!r}: g= takes a GUID like 09087e75-8e5e-499b-954f-f2a9603db28a"
            ) from None
    try:
        value = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{text!r}: b= takes base64 bytes") from None
    if not value:
        raise ValueError(f"{text!r}: b= needs at least one byte")
    return value


def _split_path(text: str) -> list[str]:
    """Split on unescaped '/'; keep escapes for the element parser."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text[1:])
    for char in chars:
        if char == "&":
            following = next(chars, "")
            if following not in ("/", ":", "&"):
                raise ValueError(f"{text!r}: '&' escapes only '/', ':' or '&'")
            current.append("&" + following)
        elif char == "/":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_browse_path(text: str) -> BrowsePathRef:
    elements: list[tuple[int, str]] = []
    for part in _split_path(text):
        if not part:
            raise ValueError(f"{text!r}: a browse path has an empty element (// or a trailing /)")
        ns = 0
        match = _ELEMENT_NS.match(part)
        if match is not None:
            ns = int(match.group(1))
            if ns > _UINT16_MAX:
                raise ValueError(f"{text!r}: namespace index {ns} is above 65535")
            part = part[match.end() :]
        name = part.replace("&/", "/").replace("&:", ":").replace("&&", "&")
        if not name:
            raise ValueError(f"{text!r}: an element has a namespace but no browse name")
        elements.append((ns, name))
    return BrowsePathRef(tuple(elements))


def _valid_node_address(value: str) -> str:
    parse_node_address(value)
    return value


#: A tag's node address, checked for syntax when the plant file is loaded.
NodeAddressText = Annotated[str, AfterValidator(_valid_node_address)]


def _valid_endpoint(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "opc.tcp" or not parsed.hostname:
        raise ValueError(f"{value!r} is not an OPC UA endpoint (opc.tcp://HOST:PORT[/path])")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535") from None
    if parsed.username or parsed.password:
        raise ValueError("put credentials under identity:, not in the endpoint URL")
    return value


#: ``opc.tcp://host:port[/path]``; the port defaults to 4840.
EndpointUrl = Annotated[str, AfterValidator(_valid_endpoint)]

SecurityPolicyName = Literal[
    "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
]
SecurityModeName = Literal["None", "Sign", "SignAndEncrypt"]


class OpcUaSecurity(Strict):
    """Secure channel: policy and mode, and how an unknown server certificate is treated."""

    policy: SecurityPolicyName = "None"
    mode: SecurityModeName = "None"
    trust_on_first_use: bool = Field(
        default=False,
        description=(
            "Trust the server's certificate the first time this server is seen (no "
            "certificate for its ApplicationUri trusted yet). A changed certificate is "
            "still refused and kept in rejected/."
        ),
    )
    certificate_file: str = Field(
        default="",
        description="Own application certificate (DER or PEM) instead of the generated one.",
    )
    private_key_file: str = Field(default="", description="Private key of certificate_file.")


class AnonymousIdentity(Strict):
    type: Literal["anonymous"]


class UsernameIdentity(Strict):
    type: Literal["username"]
    username: str = Field(min_length=1)
    password: str = Field(
        default="", repr=False, description="Write ${VAR} to take it from the environment."
    )


class CertificateIdentity(Strict):
    """X.509 user identity: a certificate and key issued to the user (not the application)."""

    type: Literal["certificate"]
    certificate_file: str = Field(min_length=1)
    private_key_file: str = Field(min_length=1)
    private_key_password: str = Field(default="", repr=False)


OpcUaIdentity = Annotated[
    AnonymousIdentity | UsernameIdentity | CertificateIdentity, Field(discriminator="type")
]


class Deadband(Strict):
    """Data change filter of a monitored item: absolute units, or percent of the EURange."""

    type: Literal["absolute", "percent"]
    value: float = Field(ge=0)


class OpcUaTag(Strict):
    """One variable of an OPC UA server."""

    name: Name
    node: NodeAddressText = Field(
        description="NodeId (ns=2;s=..., i=..., g=..., b=...), nsu=URI;s=..., or /browse/path"
    )
    unit: str = ""
    description: str = ""
    enum: dict[int, str] | None = Field(
        default=None,
        description="Integer value -> label; by default taken from the server's EnumStrings.",
    )
    sampling_interval: Duration | None = Field(
        default=None, ge=0, le=MAX_INTERVAL_S, description="Subscribe mode: overrides the group's."
    )
    queue_size: int | None = Field(default=None, ge=1, le=10_000)
    deadband: Deadband | None = None
    max_array_length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ARRAY_LENGTH_LIMIT,
        description="Overrides the device's max_array_length for this tag.",
    )
    write: WritePolicy | None = Field(
        default=None, description="Make the tag writable (docs/WRITES.md); read-only without."
    )


class MethodArgument(Strict):
    """One input argument of a configured method: its name (the command's ``args`` key)
    and the values allowed; the type is the method's own (its InputArguments)."""

    name: Name
    min: float | None = None
    max: float | None = None
    step: float | None = Field(default=None, gt=0)
    allowed: list[AllowedValue] | None = Field(default=None, min_length=1)


class OpcUaMethod(Strict):
    """A method a command may call (deny by default: only the methods listed here)."""

    name: Name = Field(description="What commands call it by; unique among the device's tags.")
    object: NodeAddressText = Field(description="The object the method is called on.")
    method: NodeAddressText = Field(description="The method's node.")
    arguments: list[MethodArgument] = Field(
        default_factory=list, description="Its input arguments, in the method's order."
    )
    channels: list[WriteChannel] = Field(min_length=1, description="Who may call it.")
    max_per_minute: int = Field(default=6, ge=1, le=600)
    only_when: WriteCondition | None = None


class OpcUaPollGroup(Strict):
    name: Name = "default"
    mode: Literal["read", "subscribe"] = "read"
    interval: Interval = Field(
        description=(
            "read: seconds between bulk reads, aligned to the wall clock. subscribe: the "
            "subscription's publishing interval, and how often changes are handed on."
        )
    )
    sampling_interval: Duration | None = Field(
        default=None,
        ge=0,
        le=MAX_INTERVAL_S,
        description="subscribe: how often the server samples each node (default: interval).",
    )
    queue_size: int = Field(
        default=1, ge=1, le=10_000, description="subscribe: changes the server keeps per item."
    )
    deadband: Deadband | None = Field(default=None, description="subscribe only.")
    tags: list[OpcUaTag] = Field(min_length=1)


class OpcUaDeviceConfig(Strict):
    """An OPC UA server (PLC, CNC, robot controller...), one session per device."""

    name: Name
    driver: Literal["opcua"]
    endpoint: EndpointUrl
    security: OpcUaSecurity = OpcUaSecurity()
    identity: OpcUaIdentity = AnonymousIdentity(type="anonymous")
    timeout: Duration = Field(default=5.0, gt=0, le=300, description="Per request.")
    timestamp: Literal["source", "server"] = Field(
        default="source",
        description="Which of the value's timestamps becomes the sample time.",
    )
    keepalive_interval: Duration = Field(
        default=5.0,
        ge=1.0,
        le=3600,
        description="How often the session is probed; a probe must be answered within it.",
    )
    watchdog_intervals: int = Field(
        default=3,
        ge=2,
        le=1000,
        description=(
            "Subscriptions: the session counts as lost when neither a data change nor a "
            "keepalive arrived for this many publishing intervals."
        ),
    )
    max_nodes_per_read: int = Field(
        default=0, ge=0, description="0: use the server's MaxNodesPerRead (or no limit)."
    )
    max_monitored_items_per_call: int = Field(
        default=0, ge=0, description="0: use the server's MaxMonitoredItemsPerCall."
    )
    max_array_length: int = Field(
        default=DEFAULT_MAX_ARRAY_LENGTH,
        ge=1,
        le=MAX_ARRAY_LENGTH_LIMIT,
        description=(
            "Most elements an array tag may have (each element is a sample in every read). "
            "A longer array makes the tag bad, with its length in the reason."
        ),
    )
    device_type: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    writes: DeviceWrites = Field(
        default_factory=DeviceWrites, description="Bounds of the writes to this device's tags."
    )
    methods: list[OpcUaMethod] = Field(
        default_factory=list, description="Methods write commands may call (docs/WRITES.md)."
    )
    poll_groups: list[OpcUaPollGroup] = Field(min_length=1)

    @described_once
    def describe(self) -> DeviceInfo:
        """This device for the :class:`~edge_agent.config.catalog.TagCatalog`; the value
        type of a node is the server's, known only after connecting."""
        tags = (
            TagInfo(
                device=self.name,
                group=group.name,
                name=tag.name,
                value_type=None,
                enum=tag.enum,
                interval=float(group.interval),
                change_based=group.mode == "subscribe",
                unit=tag.unit,
                description=tag.description,
                address={"node": tag.node},
            )
            for group in self.poll_groups
            for tag in group.tags
        )
        return DeviceInfo.of(self.name, self.driver, tags, self.device_type, self.labels)
