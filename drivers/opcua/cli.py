"""``edge-agent browse`` and ``edge-agent certs``: the commissioning side of OPC UA.

``browse URL`` prints a server's address space as a tree (NodeId, BrowseName,
DataType, access level), or with ``--yaml`` the variables as a tag list to paste
into a poll group. ``certs list`` / ``certs trust NAME`` review the server
certificates the agent refused and move one to the trust list.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from drivers.opcua.browse import BrowseNode, browse_tree, render_tree, tag_list_yaml, walk
from drivers.opcua.security import (
    MODES,
    POLICIES,
    CertificateInfo,
    OwnCertificateSource,
    Pki,
    application_uri,
    describe,
    file_thumbprint,
)
from drivers.opcua.session import Session
from drivers.opcua.uatypes import node_id
from edge_agent.config import PlantConfig
from edge_agent.config.loader import load_config
from edge_agent.config.opcua import (
    AnonymousIdentity,
    OpcUaDeviceConfig,
    OpcUaIdentity,
    OpcUaPollGroup,
    OpcUaSecurity,
    OpcUaTag,
    UsernameIdentity,
    parse_node_address,
)
from edge_agent.errors import ConfigError, DriverError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# ------------------------------------------------------------------------ plant file


class _EnvWithoutSecrets(Mapping[str, str]):
    """The environment, with every unset variable read as empty (so ``${VAR:-default}``
    takes its default): ``certs`` and ``browse -c`` need the plant's state directory and
    name, not the passwords the service's environment file holds."""

    def __getitem__(self, key: str) -> str:
        return os.environ.get(key, "")

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def load_plant(path: str) -> PlantConfig | None:
    """The plant file for ``certs`` and ``browse``; its problems on stderr, None if any."""
    try:
        return load_config(path, env=_EnvWithoutSecrets())
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- certs


def run_certs(config_path: str, action: str, name: str | None, out: TextIO = sys.stdout) -> int:
    config = load_plant(config_path)
    if config is None:
        return EXIT_USAGE
    try:
        code = _certs(config, action, name, out)
        out.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return code


def _certs(config: PlantConfig, action: str, name: str | None, out: TextIO) -> int:
    pki = Pki.for_state_dir(config.state_dir)
    if action == "trust":
        assert name is not None
        try:
            info = pki.trust(name)
        except LookupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            _print_certificates(pki.certificates(), sys.stderr)
            return EXIT_FAILURE
        print(
            f"trusted {info.name} ({info.subject}, {info.application_uri or 'no URI'}, "
            f"thumbprint {info.thumbprint}): moved to {pki.trusted_dir}",
            file=out,
        )
        print("the agent uses it at its next connect attempt; no restart needed", file=out)
        return EXIT_OK
    _print_own(config, pki, out)
    certificates = pki.certificates()
    if not certificates:
        print(
            f"no server certificates under {pki.root} (trusted/ and rejected/ are empty)", file=out
        )
        return EXIT_OK
    _print_certificates(certificates, out)
    if any(c.state == "rejected" for c in certificates):
        print("trust one with: edge-agent certs trust NAME -c PLANT.yaml", file=out)
    return EXIT_OK


def _print_own(config: PlantConfig, pki: Pki, out: TextIO) -> None:
    """The application certificate(s) the agent presents, for the servers' admins."""
    uri = application_uri(config.plant.name)
    own = pki.own_dir / "cert.der"
    if own.exists():
        info = describe(own.read_bytes(), "own", own)
        print(f"own certificate: {own}", file=out)
        print(
            f"  ApplicationUri {info.application_uri or uri}, thumbprint {info.thumbprint}, "
            f"expires {info.not_after.date().isoformat()}",
            file=out,
        )
        print("  give this file to the servers' administrators to trust the agent", file=out)
    else:
        print(
            f"own certificate: {own}, not made yet: the agent makes it before its first "
            f"secured connect attempt (ApplicationUri {uri})",
            file=out,
        )
    for device in config.devices:
        if isinstance(device, OpcUaDeviceConfig) and device.security.certificate_file:
            path = Path(device.security.certificate_file)
            print(
                f"device {device.name} presents {path} "
                f"(thumbprint {file_thumbprint(path) or 'unreadable'})",
                file=out,
            )


def _print_certificates(certificates: list[CertificateInfo], out: TextIO) -> None:
    rows = [("STATE", "NAME", "SUBJECT", "APPLICATION URI", "EXPIRES", "THUMBPRINT")]
    rows += [
        (
            c.state,
            c.name,
            c.subject,
            c.application_uri or "-",
            c.not_after.date().isoformat(),
            c.thumbprint,
        )
        for c in certificates
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=out,
        )


# -------------------------------------------------------------------------- browse


def session_device(
    url: str, security: str, user: str, password_env: str, *, has_plant: bool
) -> OpcUaDeviceConfig:
    """A device to open a commissioning session with (``browse``, ``read``): the
    endpoint, security and identity from the command line. ValueError says what is wrong."""
    policy, _, mode = security.partition("/")
    if policy != "None" and (policy not in POLICIES or mode not in MODES or mode == "None"):
        raise ValueError(
            f"--security {security!r}: use None or POLICY/MODE with POLICY one of "
            f"{', '.join(POLICIES)} and MODE Sign or SignAndEncrypt"
        )
    if policy != "None" and not has_plant:
        raise ValueError(
            "secured sessions need -c PLANT.yaml: its state directory holds the "
            "agent's certificate and the trust list"
        )
    identity: OpcUaIdentity = AnonymousIdentity(type="anonymous")
    if user:
        password = os.environ.get(password_env)
        if password is None:
            raise ValueError(f"--user needs the password in ${password_env}")
        identity = UsernameIdentity(type="username", username=user, password=password)
    return OpcUaDeviceConfig(
        name="commissioning",
        driver="opcua",
        endpoint=url,
        security=OpcUaSecurity(policy=policy, mode=mode or "None"),  # type: ignore[arg-type]
        identity=identity,
        poll_groups=[OpcUaPollGroup(interval=1.0, tags=[OpcUaTag(name="state", node="i=2259")])],
    )


@asynccontextmanager
async def open_session(
    device: OpcUaDeviceConfig, config: PlantConfig | None
) -> AsyncIterator[Session]:
    """A session as the agent opens it: the plant's certificates and trust list with
    ``-c``, a throwaway state directory without."""
    with tempfile.TemporaryDirectory(prefix="edge-agent-opcua-") as scratch:
        state_dir = config.state_dir if config is not None else Path(scratch)
        plant = config.plant.name if config is not None else "commissioning"
        pki = Pki.for_state_dir(state_dir)
        session = await Session.open(device, pki, OwnCertificateSource(pki, application_uri(plant)))
        try:
            yield session
        finally:
            await session.close()


def run_browse(
    url: str,
    *,
    config: PlantConfig | None,
    depth: int,
    security: str,
    user: str,
    password_env: str,
    as_yaml: bool,
    match: str,
    start: str,
    include_server: bool,
    out: TextIO = sys.stdout,
) -> int:
    try:
        device = session_device(url, security, user, password_env, has_plant=config is not None)
        start_node = parse_node_address(start) if start else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lines = asyncio.run(
            _browse(device, config, depth, as_yaml, match, start_node, include_server)
        )
    except DriverError as exc:
        print(
            f"error: {url}: {exc.reason}" + (f" ({exc.detail})" if exc.detail else ""),
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        for line in lines:
            print(line, file=out)
        out.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return EXIT_OK


def _closed_pipe() -> int:
    """The reader of stdout went away (``browse | head``): stop quietly, as a pipeline
    expects, and point stdout at /dev/null so that Python's flush at exit does not fail
    a second time."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_OK


async def _browse(
    device: OpcUaDeviceConfig,
    config: PlantConfig | None,
    depth: int,
    as_yaml: bool,
    match: str,
    start: object,
    include_server: bool,
) -> list[str]:
    async with open_session(device, config) as session:
        start_id = None
        if start is not None:
            from drivers.opcua.nodes import resolve

            resolution = await resolve(session, [start], [None])  # type: ignore[list-item]
            start_id = resolution.node_ids[0]
            if start_id is None:
                raise DriverError(resolution.reasons[0], "the --start node")
        root = await browse_tree(
            session, start_id or node_id(85), depth, include_server=include_server
        )
        if match:
            _keep_matching(root, match)
        if as_yaml:
            header = [f"# edge-agent browse {device.endpoint}"]
            return header + await tag_list_yaml(session, root)
        lines = render_tree(root)
        variables = sum(1 for n in walk(root) if n.is_variable)
        lines.append(f"{variables} variables; --yaml prints them as a tag list")
        return lines


def _keep_matching(node: BrowseNode, pattern: str) -> bool:
    """Prune variables whose dotted browse path does not match ``pattern`` (glob)."""
    node.children = [c for c in node.children if _keep_matching(c, pattern)]
    if node.is_variable:
        return fnmatch.fnmatchcase(".".join(node.path), pattern)
    return bool(node.children) or node.depth == 0
