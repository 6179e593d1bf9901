"""OPC UA security over the wire: every policy and mode, user identities, the trust list."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import ua
from asyncua.common.connection import SecureConnection, TransportLimits
from asyncua.common.utils import Buffer
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.ua.ua_binary import header_from_binary, struct_to_binary, uatcp_to_binary

from drivers.opcua import OpcUaDriver, build_opcua_drivers
from drivers.opcua.security import POLICY_URIS, Pki, thumbprint
from edge_agent.errors import DriverConnectError
from edge_agent.model import Quality, SampleBatch
from simulators.opcua_server import ALL_ENDPOINTS, OpcUaSimulator
from tests.opcua_support import (
    PLANT,
    FrozenClock,
    Keys,
    device_yaml,
    expected,
    install_own_certificate,
    plant_config,
    session_keys,
    simulator,
    trust_server,
)
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
PASSWORD = "s3cret-Päss"


@pytest.fixture(scope="session")
def opcua_keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return session_keys(tmp_path_factory)


@pytest.fixture
async def secured(opcua_keys: Keys) -> AsyncIterator[OpcUaSimulator]:
    """A server with every endpoint; user name/password or X.509 users, no anonymous."""
    sim = simulator(
        FrozenClock(),
        opcua_keys,
        endpoints=ALL_ENDPOINTS,
        users={"operator": PASSWORD},
        allow_anonymous=False,
        user_certificates=[opcua_keys.user_cert.read_bytes()],
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def _device(
    sim: OpcUaSimulator,
    state_dir: Path,
    security: str,
    identity: str = "{type: username, username: operator, password: '${OPCUA_PASSWORD}'}",
    env: dict[str, str] | None = None,
) -> OpcUaDriver:
    groups = (
        f"- interval: 1s\n  tags:\n  - {{name: power, node: '{sim.node_id('cnc-1', 'power_kw')}'}}"
    )
    extra = f"security: {security}\nidentity: {identity}"
    config = plant_config(
        state_dir,
        device_yaml("cnc", sim.endpoint, groups, extra),
        env=env if env is not None else {"OPCUA_PASSWORD": PASSWORD},
    )
    return build_opcua_drivers(config)[0]


async def _power(driver: OpcUaDriver) -> tuple[object, Quality, str]:
    await driver.connect()
    try:
        (batch,) = await driver.read("default")
    finally:
        await driver.close()
    assert isinstance(batch, SampleBatch)
    return batch.values[0], batch.qualities[0], batch.reasons[0]


def _prepared_state(keys: Keys, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    install_own_certificate(keys, state)
    trust_server(keys, state)
    return state


SECURED = [e for e in ALL_ENDPOINTS if e[0] != "None"]


@pytest.mark.parametrize(("policy", "mode"), SECURED, ids=[f"{p}-{m}" for p, m in SECURED])
async def test_every_policy_and_mode_with_a_password(
    secured: OpcUaSimulator, opcua_keys: Keys, tmp_path: Path, policy: str, mode: str
) -> None:
    state = _prepared_state(opcua_keys, tmp_path)
    own_before = (state / "opcua" / "own" / "cert.der").read_bytes()
    driver = _device(secured, state, f"{{policy: {policy}, mode: {mode}}}")
    await driver.connect()
    try:
        assert driver.session is not None
        channel = driver.session.client.security_policy
        assert POLICY_URIS[policy] == channel.URI
        assert channel.Mode.name == mode
        (batch,) = await driver.read("default")
    finally:
        await driver.close()
    assert isinstance(batch, SampleBatch)
    assert batch.qualities == [Quality.GOOD]
    assert batch.values == [expected(secured, "cnc-1", "power_kw")]
    # The agent's own certificate was used as it was, not made again.
    assert (state / "opcua" / "own" / "cert.der").read_bytes() == own_before


async def test_no_security_with_a_password(secured: OpcUaSimulator, tmp_path: Path) -> None:
    driver = _device(secured, tmp_path / "state", "{policy: None, mode: None}")
    assert (await _power(driver))[1] is Quality.GOOD
    # Nothing secured, so no certificate was needed or made.
    assert not (tmp_path / "state" / "opcua" / "own").exists()


async def test_wrong_password_and_missing_identity_are_refused(
    secured: OpcUaSimulator, opcua_keys: Keys, tmp_path: Path
) -> None:
    state = _prepared_state(opcua_keys, tmp_path)
    security = "{policy: Basic256Sha256, mode: SignAndEncrypt}"
    wrong = _device(secured, state, security, env={"OPCUA_PASSWORD": "guess"})
    with pytest.raises(DriverConnectError) as refused:
        await wrong.connect()
    assert refused.value.reason == "BadUserAccessDenied"
    anonymous = _device(secured, state, security, identity="{type: anonymous}")
    with pytest.raises(DriverConnectError) as rejected:
        await anonymous.connect()
    assert rejected.value.reason.startswith("Bad")
    assert not wrong.connected
    assert not anonymous.connected


async def test_x509_user_identity(
    secured: OpcUaSimulator, opcua_keys: Keys, tmp_path: Path
) -> None:
    state = _prepared_state(opcua_keys, tmp_path)
    identity = (
        f"{{type: certificate, certificate_file: '{opcua_keys.user_cert}', "
        f"private_key_file: '{opcua_keys.user_key}'}}"
    )
    for security in (
        "{policy: Basic256Sha256, mode: SignAndEncrypt}",
        "{policy: Aes256_Sha256_RsaPss, mode: Sign}",
    ):
        driver = _device(secured, state, security, identity)
        assert (await _power(driver))[1] is Quality.GOOD
    # A certificate the server does not know as a user is refused.
    stranger = (
        f"{{type: certificate, certificate_file: '{opcua_keys.server_cert}', "
        f"private_key_file: '{opcua_keys.server_key}'}}"
    )
    driver = _device(secured, state, "{policy: Basic256Sha256, mode: SignAndEncrypt}", stranger)
    with pytest.raises(DriverConnectError) as refused:
        await driver.connect()
    assert refused.value.reason == "BadUserAccessDenied"


async def test_an_unknown_server_is_refused_until_trusted_with_the_cli(
    secured: OpcUaSimulator, opcua_keys: Keys, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    install_own_certificate(opcua_keys, state)  # but the server is trusted by nobody
    plant_file = tmp_path / "plant.yaml"
    node = secured.node_id("cnc-1", "power_kw")
    plant_file.write_text(
        f"plant: {{name: {PLANT}}}\nstate_dir: {state}\ndevices:\n"
        + device_yaml(
            "cnc",
            secured.endpoint,
            f"- interval: 1s\n  tags:\n  - {{name: p, node: '{node}'}}",
            "security: {policy: Basic256Sha256, mode: SignAndEncrypt}\n"
            "identity: {type: username, username: operator, password: '${OPCUA_PASSWORD}'}",
        )
    )
    driver = _device(secured, state, "{policy: Basic256Sha256, mode: SignAndEncrypt}")
    with pytest.raises(DriverConnectError) as refused:
        await driver.connect()
    assert refused.value.reason == "untrusted server certificate"
    (rejected,) = (state / "opcua" / "rejected").iterdir()
    assert rejected.read_bytes() == opcua_keys.server_cert.read_bytes()
    assert not (state / "opcua" / "trusted").exists()

    # The plant's secrets live in the service's environment, not the engineer's shell:
    # certs needs the state directory only.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    listed = _cli(["certs", "list", "-c", str(plant_file)], env)
    own = state / "opcua" / "own" / "cert.der"
    assert f"own certificate: {own}" in listed
    assert f"thumbprint {thumbprint(own.read_bytes())}" in listed
    assert "rejected" in listed
    assert rejected.stem in listed
    assert "edge-agent simulator" in listed  # the certificate's subject
    trusted = _cli(["certs", "trust", rejected.stem, "-c", str(plant_file)], env)
    assert rejected.stem in trusted
    assert (state / "opcua" / "trusted" / rejected.name).exists()
    assert not rejected.exists()

    assert (await _power(driver))[1] is Quality.GOOD


def _cli(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "edge_agent", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_trust_on_first_use_trusts_once_and_refuses_a_changed_certificate(
    opcua_keys: Keys, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    install_own_certificate(opcua_keys, state)
    clock = FrozenClock()
    first = simulator(clock, opcua_keys, users={"operator": PASSWORD})
    await first.start()
    try:
        security = "{policy: Basic256Sha256, mode: SignAndEncrypt, trust_on_first_use: true}"
        driver = _device(first, state, security)
        assert (await _power(driver))[1] is Quality.GOOD
        (trusted,) = (state / "opcua" / "trusted").iterdir()
        assert trusted.read_bytes() == opcua_keys.server_cert.read_bytes()
        assert (await _power(driver))[1] is Quality.GOOD  # known now, trusted as before
    finally:
        await first.stop()
    # The same server (same ApplicationUri) comes back with another certificate.
    impostor = simulator(
        clock,
        users={"operator": PASSWORD},
        port=first.port,
        certificate_file=opcua_keys.other_server_cert,
        private_key_file=opcua_keys.other_server_key,
    )
    await impostor.start()
    try:
        with pytest.raises(DriverConnectError) as refused:
            await driver.connect()
    finally:
        await impostor.stop()
    assert refused.value.reason == "untrusted server certificate"
    (rejected,) = (state / "opcua" / "rejected").iterdir()
    assert rejected.read_bytes() == opcua_keys.other_server_cert.read_bytes()


async def test_a_server_that_refuses_the_agent_names_the_certificate_to_trust(
    opcua_keys: Keys, tmp_path: Path
) -> None:
    """First contact on both sides, in as few rounds as the two admins need: after the
    first attempt the agent's certificate exists (to hand over) and the server's waits in
    rejected/; a server that refuses the agent says which file to trust."""
    trusted_clients: set[bytes] = set()
    sim = simulator(
        FrozenClock(), opcua_keys, users={"operator": PASSWORD}, trusted_clients=trusted_clients
    )
    await sim.start()
    try:
        state = tmp_path / "state"  # fresh: no certificate of our own yet, the server unknown
        driver = _device(sim, state, "{policy: Basic256Sha256, mode: SignAndEncrypt}")
        with pytest.raises(DriverConnectError) as first:
            await driver.connect()
        assert first.value.reason == "untrusted server certificate"
        own = state / "opcua" / "own" / "cert.der"
        assert own.exists(), "the agent's certificate is made before the first attempt"
        (rejected,) = (state / "opcua" / "rejected").iterdir()
        Pki.for_state_dir(state).trust(rejected.stem)

        with pytest.raises(DriverConnectError) as second:
            await driver.connect()
        assert second.value.reason == "BadCertificateUntrusted"
        assert str(own) in second.value.detail
        assert thumbprint(own.read_bytes()) in second.value.detail
        trusted_clients.add(own.read_bytes())  # the server's admin trusts the file named
        assert (await _power(driver))[1] is Quality.GOOD
    finally:
        await sim.stop()


async def _refuse_channels(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An OPC UA server that answers OpenSecureChannel with a ServiceFault, as node-opcua
    does for a client certificate it does not trust."""
    connection = SecureConnection(SecurityPolicyNone(), TransportLimits())
    try:
        while True:
            head = await reader.readexactly(8)
            body = await reader.readexactly(int.from_bytes(head[4:8], "little") - 8)
            data = Buffer(head + body)
            header = header_from_binary(data)
            if header.MessageType == ua.MessageType.Hello:
                ack = ua.Acknowledge(ReceiveBufferSize=65535, SendBufferSize=65535)
                writer.write(uatcp_to_binary(ua.MessageType.Acknowledge, ack))
            elif header.MessageType == ua.MessageType.SecureOpen:
                request = connection.receive_from_header_and_body(header, data)
                fault = ua.ServiceFault()
                fault.ResponseHeader.ServiceResult = ua.StatusCode(
                    ua.StatusCodes.BadSecurityChecksFailed
                )
                writer.write(
                    connection.message_to_binary(
                        struct_to_binary(fault),
                        message_type=ua.MessageType.SecureOpen,
                        request_id=request.SequenceHeader().RequestId,
                    )
                )
                await writer.drain()
                return
    except asyncio.IncompleteReadError:
        return
    finally:
        writer.close()


async def test_a_channel_refused_in_open_secure_channel_reports_its_status_code(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = await asyncio.start_server(_refuse_channels, "127.0.0.1", port)
    try:
        groups = "- interval: 1s\n  tags:\n  - {name: x, node: 'i=2258'}"
        config = plant_config(
            tmp_path, device_yaml("refusing", f"opc.tcp://127.0.0.1:{port}", groups)
        )
        (driver,) = build_opcua_drivers(config)
        with pytest.raises(DriverConnectError) as refused:
            await driver.connect()
        await driver.close()
    finally:
        server.close()
        await server.wait_closed()
    assert refused.value.reason == "BadSecurityChecksFailed", refused.value
