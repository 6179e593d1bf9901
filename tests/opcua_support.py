"""OPC UA test support: keys made once per session, simulators, plant files, expected values.

RSA keys are the slow part of security tests, so the server's, the agent's and a
user's certificate are made once per test session (in a temporary directory) and
copied where each test needs them. A simulator runs in-process on a free port, with
a frozen clock by default so that what it serves equals the models' ground truth.
"""

from __future__ import annotations

import math
import shutil
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.opcua.security import Pki, application_uri
from edge_agent.config import PlantConfig
from edge_agent.config.loader import parse_config
from simulators.equipment import Simulation
from simulators.opcua_internals import server_certificate
from simulators.opcua_server import OpcUaSimulator, ServerOptions
from simulators.profile import build_simulation
from tests.plant import demo_profile

#: Plant name of every OPC UA test config: the agent's ApplicationUri derives from it.
PLANT = "opcua-test"
MACHINES = ("cnc-1", "press-1", "compressor-1")
METERS = ("line-meter", "compressor-meter")


class FrozenClock:
    """A simulator clock that moves only when told."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Keys:
    """Certificates made once per test session."""

    server_cert: Path
    server_key: Path
    #: A second server identity: "the same server" with a new certificate.
    other_server_cert: Path
    other_server_key: Path
    own_dir: Path
    user_cert: Path
    user_key: Path


_SESSION_KEYS: list[Keys] = []


def session_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    """The test session's keys, made by the first module that asks (one RSA run)."""
    if not _SESSION_KEYS:
        _SESSION_KEYS.append(make_keys(tmp_path_factory.mktemp("opcua-keys")))
    return _SESSION_KEYS[0]


def make_keys(root: Path) -> Keys:
    server_cert, server_key = server_certificate(root / "server")
    other_cert, other_key = server_certificate(root / "server2")
    own = Pki(root / "agent").own_certificate(application_uri(PLANT))
    user_dir = root / "user"
    user_dir.mkdir()
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        "operator",
        {},
        [x509.UniformResourceIdentifier("urn:edge-agent:test-user")],
        extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    (user_dir / "user.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (user_dir / "user.pem").write_bytes(cert_gen.dump_private_key_as_pem(key))
    return Keys(
        server_cert,
        server_key,
        other_cert,
        other_key,
        own.cert_file.parent,
        user_dir / "user.der",
        user_dir / "user.pem",
    )


def install_own_certificate(keys: Keys, state_dir: Path) -> None:
    """Give a test's state directory the session's agent certificate (no new RSA key)."""
    target = state_dir / "opcua" / "own"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("cert.der", "key.pem"):
        shutil.copy2(keys.own_dir / name, target / name)


def trust_server(keys: Keys, state_dir: Path, cert: Path | None = None) -> None:
    trusted = state_dir / "opcua" / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cert or keys.server_cert, trusted / "simulator.der")


def simulation(clock: Callable[[], float]) -> Simulation:
    return build_simulation(demo_profile(), clock() - 600)


def simulator(
    clock: Callable[[], float], keys: Keys | None = None, **options: object
) -> OpcUaSimulator:
    """A simulator over the demo plant's models; ``options`` go to ServerOptions."""
    if keys is not None:
        options.setdefault("certificate_file", keys.server_cert)
        options.setdefault("private_key_file", keys.server_key)
    elif "certificate_file" not in options:
        # No certificate, no secured endpoint: it would make a certificate in $HOME.
        options.setdefault("endpoints", [("None", "None")])
    options.setdefault("update_interval", 0)
    return OpcUaSimulator(simulation(clock), ServerOptions(**options), clock=clock)  # type: ignore[arg-type]


def plant_config(
    state_dir: Path, devices_yaml: str, env: Mapping[str, str] | None = None
) -> PlantConfig:
    text = f"plant: {{name: {PLANT}}}\nstate_dir: {state_dir}\ndevices:\n{devices_yaml}"
    return parse_config(text, "opcua-test.yaml", env=env or {})


def device_yaml(
    name: str,
    endpoint: str,
    groups_yaml: str,
    extra: str = "",
) -> str:
    """One OPC UA device in plant YAML (indented for the devices: list)."""
    lines = [
        f"  - name: {name}",
        "    driver: opcua",
        f"    endpoint: {endpoint}",
        "    timeout: 2s",
        "    keepalive_interval: 2s",
    ]
    lines += [f"    {line}" for line in extra.strip().splitlines()] if extra.strip() else []
    lines.append("    poll_groups:")
    lines += [f"      {line}" for line in groups_yaml.strip().splitlines()]
    return "\n".join(lines) + "\n"


def tags_yaml(sim: OpcUaSimulator, unit: str, quantities: list[str], style: str = "ns") -> str:
    """Tag list for ``quantities`` of ``unit``, addressed as ns=, nsu= or a browse path."""
    out = []
    for q in quantities:
        if style == "ns":
            node = sim.node_id(unit, q)
        elif style == "nsu":
            node = sim.nsu_node_id(unit, q)
        else:
            ns = sim.namespace_index
            node = f"/Objects/{ns}:{unit}/{ns}:{q}"
        out.append(f"  - {{name: {unit}.{q}, node: '{node}'}}")
    return "\n".join(out)


def expected(sim: OpcUaSimulator, unit: str, quantity: str) -> object:
    """What the agent should read for a quantity: the model's value, typed as served."""
    value = sim.values(unit)[quantity]
    if quantity == "state":
        return ("Off", "Idle", "Run", "Fault")[int(value)]
    if quantity == "speed_rpm":  # served as Float: float32 precision
        return float32(float(value))
    return value


def float32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def close_enough(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return math.isclose(got, want, rel_tol=1e-6)
    return got == want
